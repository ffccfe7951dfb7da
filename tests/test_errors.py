"""Every user mistake ends in one 'error: ...' line on stderr and exit status 2, with no
traceback and nothing overwritten."""
import os
import shutil

import pytest
import torch

from conftest import PRIMER, SHAKESPEARE, TINY_FLAGS, assert_one_line_error, run_script
from tinychar.settings import parse_args, resolve_configs


def train_cli(tmp_path, *args):
    return run_script("train.py", "--out", str(tmp_path / "run"), "--steps", "2", *TINY_FLAGS, *args)


def test_missing_data_file(tmp_path):
    assert_one_line_error(train_cli(tmp_path, "--data", str(tmp_path / "absent.txt")), "not found")


def test_empty_data_file(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(train_cli(tmp_path, "--data", str(tmp_path / "empty.txt")), "empty")


def test_non_utf8_data_file(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 100)
    assert_one_line_error(train_cli(tmp_path, "--data", str(tmp_path / "latin1.txt")), "not UTF-8", "offset 3")


def test_corpus_too_short_for_a_window_in_each_split(tmp_path):
    (tmp_path / "short.txt").write_text("x" * 100)   # validation split: 10 characters < 17
    assert_one_line_error(train_cli(tmp_path, "--data", str(tmp_path / "short.txt")), "too short", "validation")


@pytest.mark.parametrize("flag,value,fragment", [
    ("--d-model", "30", "divisible"), ("--n-heads", "0", "n_heads"), ("--lr", "0", "--lr"),
    ("--lr", "-0.1", "--lr"), ("--steps", "0", "--steps"), ("--seq-len", "-5", "seq_len"),
    ("--batch-size", "0", "--batch-size"), ("--eval-every", "0", "--eval-every"),
    ("--pos", "rotary", "--pos"), ("--learned-init", "zeros", "--learned-init"), ("--steps", "many", "--steps"),
    ("--n-heads", "3", "divisible"), ("--optimizer", "sgd", "--optimizer"), ("--activation", "swiglu", "--activation"),
    ("--logit-softcap", "-1", "logit_softcap"), ("--norm", "batchnorm", "--norm"), ("--adamw-kernel", "cuda", "--adamw-kernel"),
    ("--muon-lr", "3e-3", "needs --optimizer muon"), ("--muon-lr", "-1", "--muon-lr"),
])
@pytest.mark.slow
def test_invalid_flag_values(tmp_path, flag, value, fragment):
    assert_one_line_error(train_cli(tmp_path, flag, value), fragment)


def one_line_error(capsys, parse, argv):
    """The line a command line parsed in-process (parse: a script's parse_args) ends with: exit status
    2 and one 'error: ...' line on stderr, nothing else."""
    from tinychar import cli
    with pytest.raises(SystemExit) as exit:
        cli.run(parse, argv)   # as the script runs it: a UserError raised while parsing is a line too
    lines = capsys.readouterr().err.splitlines()
    assert exit.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("argv,close", [(["--d-modle", "64"], "--d-model"), (["--warmup_step=5"], "--warmup-steps"),
                                        (["--devcie", "cpu"], "--device"), (["--xyzzy"], None)])
def test_an_unknown_flag_is_a_one_line_error_naming_the_closest_flag(capsys, argv, close):
    said = one_line_error(capsys, parse_args, argv)
    assert said.startswith(f"error: unrecognized arguments: {' '.join(argv)}")
    assert said.endswith(f" (did you mean {close}?)") if close else "did you mean" not in said


def test_eval_and_export_take_the_run_positionally_or_after_ckpt_alike(capsys):
    import eval as eval_script
    import export
    assert eval_script.parse_args(["--ckpt", "a", "b"]).runs == eval_script.parse_args(["a", "b"]).runs == ["a", "b"]
    assert export.parse_args(["--ckpt", "a", "--out", "o"]).run == export.parse_args(["a", "--out", "o"]).run == "a"


@pytest.mark.parametrize("script,argv,said", [
    ("eval", ["a", "--ckpt", "b"], "not both"), ("eval", [], "the following arguments are required: runs"),
    ("export", ["a", "--ckpt", "b", "--out", "o"], "not both"),
    ("export", ["--out", "o"], "the following arguments are required: run")])
def test_a_run_given_both_ways_or_not_at_all_is_a_one_line_error(capsys, script, argv, said):
    import eval as eval_script
    import export
    parse = {"eval": eval_script.parse_args, "export": export.parse_args}[script]
    assert said in one_line_error(capsys, parse, argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_requested_without_a_gpu(tmp_path):
    assert_one_line_error(train_cli(tmp_path, "--device", "cuda"), "no CUDA GPU")


def test_resume_without_a_checkpoint(tmp_path):
    assert_one_line_error(train_cli(tmp_path, "--resume"), "no checkpoint")


@pytest.mark.slow
def test_resume_against_other_data_or_another_shape(tiny_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run, run_dir)
    other = tmp_path / "other.txt"
    other.write_text(open(PRIMER, encoding="utf-8").read()[:-1])   # one character shorter
    resume = ("train.py", "--out", str(run_dir), "--resume")
    assert_one_line_error(run_script(*resume, "--data", str(other)), "not the text")
    assert_one_line_error(run_script(*resume, "--n-heads", "2"), "n_heads")
    assert sorted(os.listdir(run_dir)) == sorted(os.listdir(tiny_run))


def corrupt_copies(tiny_run, tmp_path):
    original = open(os.path.join(tiny_run, "step_000012.pt"), "rb").read()
    truncated, garbage, foreign = tmp_path / "truncated.pt", tmp_path / "garbage.pt", tmp_path / "foreign.pt"
    truncated.write_bytes(original[: len(original) // 2])
    garbage.write_bytes(b"this is not a checkpoint" * 50)
    torch.save({"weights": torch.ones(2)}, foreign)
    return {"truncated": truncated, "garbage": garbage, "foreign": foreign}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "missing"])
def test_bad_checkpoints_in_generate_and_eval(tiny_run, tmp_path, kind):
    path = str(corrupt_copies(tiny_run, tmp_path).get(kind, tmp_path / "missing.pt"))
    expected = {"missing": "not found", "foreign": "not a tinychar checkpoint"}.get(kind, "cannot read checkpoint")
    assert_one_line_error(run_script("generate.py", "--ckpt", path), expected)
    assert_one_line_error(run_script("eval.py", path), expected)


def test_prepare_without_network_suggests_a_local_copy(tmp_path):
    result = run_script("data/prepare.py", "shakespeare", "--url", "http://127.0.0.1:9/input.txt",
                        "--out", str(tmp_path / "ts.txt"))
    assert_one_line_error(result, "could not read", "--from FILE")
    assert not (tmp_path / "ts.txt").exists()


def test_prepare_rejects_a_local_copy_with_the_wrong_checksum(tmp_path):
    result = run_script("data/prepare.py", "shakespeare", "--from", PRIMER, "--out", str(tmp_path / "ts.txt"))
    assert_one_line_error(result, "not the expected shakespeare text")
    assert not (tmp_path / "ts.txt").exists()


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="../shared/data/tinyshakespeare.txt is not here")
def test_prepare_copies_and_verifies_tiny_shakespeare(tmp_path):
    result = run_script("data/prepare.py", "shakespeare", "--from", SHAKESPEARE, "--out", str(tmp_path / "ts.txt"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "ts.txt").read_text(encoding="utf-8")
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")


def small_zip(tmp_path, member, payload):
    import hashlib
    import zipfile
    path = tmp_path / f"{member}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("corpus", ["enwik8", "text8"])
def test_prepare_unzips_a_verified_zip_and_prints_the_standard_split_command(tmp_path, corpus):
    payload = b"<page> some wiki text \xc3\xa9 </page>\n" * 50
    zipped, sha = small_zip(tmp_path, corpus, payload)
    out = tmp_path / corpus
    result = run_script("data/prepare.py", corpus, "--from", str(zipped), "--sha256", sha, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == payload
    assert "--split 90000000,5000000,5000000" in result.stdout and ("--bytes" in result.stdout) == (corpus == "enwik8")
    assert "--split test" in result.stdout


def test_prepare_refuses_a_zip_with_another_checksum_and_writes_nothing(tmp_path):
    zipped, _ = small_zip(tmp_path, "enwik8", b"x" * 100)
    result = run_script("data/prepare.py", "enwik8", "--from", str(zipped), "--out", str(tmp_path / "enwik8"))
    assert_one_line_error(result, "not the expected enwik8 zip", "547994d9980e")
    assert not (tmp_path / "enwik8").exists() and not [n for n in os.listdir(tmp_path) if n.startswith("tmp")]
    not_a_zip = tmp_path / "fake.zip"
    not_a_zip.write_bytes(b"plain bytes")
    import hashlib
    result = run_script("data/prepare.py", "text8", "--from", str(not_a_zip), "--sha256",
                        hashlib.sha256(b"plain bytes").hexdigest(), "--out", str(tmp_path / "text8"))
    assert_one_line_error(result, "not a zip holding text8")
    assert_one_line_error(run_script("data/prepare.py", "enwik9"), "invalid choice")


@pytest.mark.slow
def test_a_checkpoint_from_another_version_is_a_one_line_error_not_a_traceback(tiny_run, tmp_path):
    ckpt = torch.load(os.path.join(tiny_run, "step_000012.pt"), weights_only=True)
    newer_model = tmp_path / "model" / "step_000012.pt"
    newer_model.parent.mkdir()
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "mixture_of_experts": 8}}, newer_model)
    assert_one_line_error(run_script("eval.py", str(newer_model.parent)), "another version", "mixture_of_experts")
    newer_training = tmp_path / "training" / "step_000012.pt"
    newer_training.parent.mkdir()
    torch.save({**ckpt, "train_config": {**ckpt["train_config"], "accumulate": 4}}, newer_training)
    assert_one_line_error(run_script("train.py", "--out", str(newer_training.parent), "--resume"), "accumulate")
    newer_plan = tmp_path / "plan" / "step_000012.pt"
    newer_plan.parent.mkdir()
    torch.save({**ckpt, "plan": {**ckpt["plan"], "curriculum": "short first"}}, newer_plan)
    assert_one_line_error(run_script("train.py", "--out", str(newer_plan.parent), "--resume"), "another version",
                          "curriculum")


def test_a_checkpoint_of_the_first_format_still_evaluates_generates_and_resumes(tiny_run, tmp_path):
    # what format 1 held before the settings added since: no learned_init, levers, dropout_attention,
    # unit, split, optimizer, precision, schedule or time budget; one process's generator; no budget costs or plan
    import train
    from tinychar import scoring
    ckpt = torch.load(os.path.join(tiny_run, "step_000012.pt"), weights_only=True)
    for field in ("learned_init", "qk_norm", "activation", "zero_init", "logit_softcap", "dropout_attention", "bias", "norm"):
        del ckpt["model_config"][field]
    for field in ("unit", "split", "optimizer", "precision", "schedule", "decay_fraction", "time_budget", "adamw_kernel"):
        del ckpt["train_config"][field]
    del ckpt["rng"]["ranks"], ckpt["budget_costs"], ckpt["plan"]
    old = tmp_path / "old"
    old.mkdir()
    torch.save(ckpt, old / "step_000012.pt")
    (row,), _ = scoring.evaluate_run(str(old))
    assert row["precision"] == "fp32" and row["unit"] == "chars" and 0 < row["val_bpc"] < 8
    assert run_script("generate.py", "--ckpt", str(old), "--max-new-tokens", "20").returncode == 0
    model_cfg, cfg, resumed, _ = resolve_configs(parse_args(["--out", str(old), "--resume", "--steps", "14"]))
    assert (cfg.optimizer, cfg.split, model_cfg.learned_init) == ("adamw", "0.9,0.1", "sinusoidal")
    assert train.train(model_cfg, cfg, resumed, progress=False)[-1]["step"] == 14


@pytest.mark.slow
@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's Metal backend")
@pytest.mark.parametrize("script", ["eval.py", "generate.py"])
def test_mps_requested_where_there_is_none_is_a_one_line_error(tiny_run, script):
    args = [tiny_run] if script == "eval.py" else ["--ckpt", tiny_run]
    assert_one_line_error(run_script(script, *args, "--device", "mps"), "--device mps")
