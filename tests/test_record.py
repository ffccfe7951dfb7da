"""The run record: every run says where and how it ran (machine, software, code, command), in its
folder and in its checkpoints, and eval.py's JSON carries it with each figure."""
import json
import os
import subprocess
import sys

from conftest import ROOT, TINY_FLAGS
import eval as eval_script
import train
from tinychar import record
from tinychar.checkpoint import load_checkpoint
from tinychar.settings import parse_args, resolve_configs


def run(out, *extra):
    model_cfg, cfg, resumed, _ = resolve_configs(parse_args(
        ["--out", str(out), "--steps", "4", "--eval-every", "2", "--ckpt-every", "2", *TINY_FLAGS, *extra]))
    return train.train(model_cfg, cfg, resumed, progress=False)


def test_a_run_records_its_machine_software_code_and_command_in_its_folder_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    run(out)
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert len(sessions) == 1
    session = sessions[0]
    assert session["cores"] == os.cpu_count() and session["cpu"] and session["python"] and session["os"]
    assert session["torch"] == str(__import__("torch").__version__) and session["precision"] == "fp32"
    assert session["device"] == "cpu" and session["processes"] == 1 and session["gpu"] is None
    assert session["command"].startswith(os.path.basename(sys.executable) + " ")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode == 0:   # a git checkout (CI's clean clone is one)
        assert session["commit"] == commit.stdout.strip() and session["dirty"] in (True, False)
    assert load_checkpoint(str(out))["run_record"] == sessions


def test_a_resumed_run_adds_a_session_and_keeps_the_earlier_ones(tmp_path):
    out = tmp_path / "run"
    run(out)
    first = json.loads((out / "run.json").read_text())["sessions"]
    run(out, "--resume", "--steps", "6")
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0] == first[0]
    assert load_checkpoint(str(out))["run_record"] == sessions
    assert load_checkpoint(str(out), "2")["run_record"] == first   # a checkpoint holds the sessions up to it


def test_eval_json_carries_the_run_record_and_where_it_was_evaluated(tmp_path, capsys):
    out = tmp_path / "run"
    run(out)
    capsys.readouterr()
    eval_script.main([str(out), "--json", "--no-references"])
    row = json.loads(capsys.readouterr().out)["runs"][0]
    assert row["run_record"] == json.loads((out / "run.json").read_text())["sessions"]
    assert row["evaluated_on"]["precision"] == row["precision"] and row["evaluated_on"]["cores"] == os.cpu_count()


def test_outside_a_git_checkout_the_commit_is_unknown_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "HERE", str(tmp_path))
    assert record.git_state() == (None, None)
    assert "no git" in record.describe(record.session("cpu", "fp32"))


def test_the_machine_is_named_by_cpu_cores_and_bf16_hardware_or_by_gpu():
    cpu = dict(cpu="Intel(R) Xeon(R) Processor", cores=2, bf16_hardware="amx", gpu=None, processes=1)
    assert record.machine(cpu) == "Intel(R) Xeon(R) Processor, 2 cores, amx"
    assert record.machine(dict(cpu, bf16_hardware=None, cpu="AMD EPYC")) == "AMD EPYC, 2 cores"
    assert record.machine(dict(cpu, gpu="NVIDIA H200", processes=2)) == "NVIDIA H200 x 2"


def test_checkpoints_from_before_run_records_load_with_an_empty_record(tmp_path):
    out = tmp_path / "run"
    run(out)
    import torch
    path = out / "step_000004.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["run_record"]
    torch.save(ckpt, path)
    assert load_checkpoint(str(path))["run_record"] == []
