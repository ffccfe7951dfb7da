"""Scaling out and speeding up must not change the numbers: DDP with 2 ranks x batch B/2 gives
the losses of 1 process x batch B, and a compiled step the losses of an eager one."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import PRIMER, ROOT, TINY_FLAGS
import train
from model import CharTransformer, ModelConfig
from tinychar import runtime
from tinychar.cli import UserError
from tinychar.metrics import read_metrics
from tinychar.settings import parse_args, resolve_configs


def losses(rows):
    return [(r["train_loss"], r["val_loss"]) for r in rows]


def torchrun(out, *flags):
    """train.py under torchrun with 2 gloo ranks on the CPU; returns the CompletedProcess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "train.py", "--out", str(out), *flags],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_gloo_ranks_with_half_batches_match_one_process_with_the_whole_batch(tmp_path):
    flags = ["--steps", "10", "--eval-every", "1", "--ckpt-every", "5", "--device", "cpu", *TINY_FLAGS,
             "--batch-size", "8"]
    ddp = torchrun(tmp_path / "ddp", *flags)
    assert "2 processes" in ddp.stdout and ddp.stdout.count("parameters,") == 1   # only rank 0 prints
    assert "compiled" not in ddp.stdout   # the DDP wrapper is not a compiled model
    train.main(["--out", str(tmp_path / "single"), *flags])
    two = losses(read_metrics(tmp_path / "ddp" / "metrics.csv"))
    one = losses(read_metrics(tmp_path / "single" / "metrics.csv"))
    assert len(two) == len(one) == 10
    diff = max(abs(a - b) for pair_a, pair_b in zip(two, one) for a, b in zip(pair_a, pair_b))
    assert diff <= 1e-5, f"max loss difference {diff:.2e}"
    assert sorted(os.listdir(tmp_path / "ddp")) == sorted(os.listdir(tmp_path / "single"))
    # and a DDP checkpoint resumes like any other: same saved keys, loadable
    ckpt = torch.load(tmp_path / "ddp" / "step_000010.pt", weights_only=True)
    assert set(ckpt["model"]) == set(torch.load(tmp_path / "single" / "step_000010.pt", weights_only=True)["model"])


@pytest.mark.slow
def test_two_ranks_of_two_micro_batches_each_match_one_process_with_the_whole_batch(tmp_path):
    flags = ["--steps", "6", "--eval-every", "2", "--ckpt-every", "6", "--device", "cpu", *TINY_FLAGS,
             "--batch-size", "8"]
    torchrun(tmp_path / "ddp", *flags, "--grad-accum", "2")   # 4 windows a rank, in 2 micro-batches of 2
    train.main(["--out", str(tmp_path / "single"), *flags])
    two = losses(read_metrics(tmp_path / "ddp" / "metrics.csv"))
    one = losses(read_metrics(tmp_path / "single" / "metrics.csv"))
    assert len(two) == len(one) == 3
    assert max(abs(a - b) for pair_a, pair_b in zip(two, one) for a, b in zip(pair_a, pair_b)) <= 1e-5


@pytest.mark.slow
def test_with_dropout_each_rank_draws_its_own_masks_and_an_interrupted_ddp_run_resumes_exactly(tmp_path):
    data = tmp_path / "corpus.txt"   # a fresh corpus: no token cache yet
    shutil.copy(PRIMER, data)
    flags = ["--data", str(data), "--steps", "12", "--eval-every", "2", "--ckpt-every", "4", "--device", "cpu",
             "--dropout", "0.2", *TINY_FLAGS, "--batch-size", "8"]
    first = torchrun(tmp_path / "whole", *flags)
    # rank 0 encodes the corpus once while rank 1 waits; then both map the one cache file
    assert first.stdout.count("token cache written") + first.stderr.count("token cache written") == 1
    states = torch.load(tmp_path / "whole" / "step_000012.pt", weights_only=True)["rng"]["ranks"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])
    crashed = tmp_path / "crashed"
    again = torchrun(crashed, *flags)
    assert "token cache written" not in again.stdout + again.stderr   # reused by a later run and both ranks
    os.remove(crashed / "step_000012.pt")   # as if both ranks died after step 11: resume from step 8
    torchrun(crashed, "--resume")
    resumed = losses(read_metrics(crashed / "metrics.csv"))
    assert len(resumed) == 6 and resumed == losses(read_metrics(tmp_path / "whole" / "metrics.csv"))


def test_batch_size_must_divide_among_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(runtime, "setup_distributed", lambda device: (0, 3))
    model_cfg, cfg, _, _ = resolve_configs(parse_args(
        ["--out", str(tmp_path / "r"), "--steps", "2", *TINY_FLAGS, "--batch-size", "4"]))
    with pytest.raises(UserError, match="divisible"):
        train.train(model_cfg, cfg, progress=False)


@pytest.mark.slow
def test_compiled_training_gives_the_losses_of_eager_training(tmp_path):
    flags = ["--steps", "20", "--eval-every", "1", "--ckpt-every", "20", *TINY_FLAGS]
    eager = read_metrics(_run(tmp_path / "eager", flags + ["--no-compile"]))
    compiled_out = tmp_path / "compiled"
    compiled = read_metrics(_run(compiled_out, flags + ["--compile"]))
    diff = max(abs(a - b) for pa, pb in zip(losses(eager), losses(compiled)) for a, b in zip(pa, pb))
    assert len(compiled) == 20 and diff <= 1e-5, f"max loss difference {diff:.2e}"
    ckpt = torch.load(compiled_out / "step_000020.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod") for key in ckpt["model"])


def test_the_compile_trial_runs_the_real_batch_shape_and_precision_so_training_compiles_once(tmp_path, monkeypatch):
    from torch._dynamo.utils import counters
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend="eager"))  # fast: dynamo only
    torch._dynamo.reset()
    counters.clear()
    train.main(["--out", str(tmp_path / "r"), "--steps", "3", "--eval-every", "3", "--compile",
                *TINY_FLAGS, "--precision", "bf16", "--batch-size", "6"])
    # the trial's compilation is the only one: the real steps (batch 6, bf16 autocast) reuse it
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def _run(out, flags):
    train.main(["--out", str(out), *flags])
    return out / "metrics.csv"


def test_compile_falls_back_to_eager_with_one_warning_when_no_compiler_works(monkeypatch, capsys):
    def broken_compile(model):
        def fails(*args):
            raise RuntimeError("no C++ compiler")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = CharTransformer(ModelConfig(vocab_size=5, seq_len=8, d_model=16, n_heads=2))
    example = (torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))
    assert runtime.compile_model(model, example) is model
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: torch.compile is not available")
    assert all(p.grad is None for p in model.parameters())


def test_a_rank_other_than_0_names_the_checkpoint_rank_0_kept_when_the_loss_turns_nan(tmp_path, monkeypatch):
    # rank 1 of 2, simulated in this process: the collectives stand in for a partner that agrees
    monkeypatch.setattr(runtime, "setup_distributed", lambda device: (1, 2))
    monkeypatch.setattr(runtime, "gather_rng_states", lambda device, world_size: [runtime.rng_state(device)] * 2)
    monkeypatch.setattr(torch.distributed, "barrier", lambda: None)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, *args, **kwargs: tensor.mul_(2))
    monkeypatch.setattr(torch.distributed, "broadcast", lambda tensor, src: tensor)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda module: module)
    forward, calls = CharTransformer.forward, [0]

    def nan_at_step_6(self, idx, targets=None, **kwargs):
        logits, loss = forward(self, idx, targets, **kwargs)
        calls[0] += 1
        return logits, loss * float("nan") if calls[0] == 6 else loss
    monkeypatch.setattr(CharTransformer, "forward", nan_at_step_6)
    model_cfg, cfg, _, _ = resolve_configs(parse_args(
        ["--out", str(tmp_path / "r"), "--steps", "8", "--ckpt-every", "4", "--eval-every", "4", *TINY_FLAGS]))
    with pytest.raises(UserError, match=r"nan at step 6.*the last good checkpoint is .*step_000004\.pt"):
        train.train(model_cfg, cfg, progress=False)
