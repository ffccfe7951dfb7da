"""Scaling out and speeding up must not change the numbers: DDP with 2 ranks x batch B/2 gives
the losses of 1 process x batch B, and a compiled step the losses of an eager one."""
import os
import subprocess
import sys

import pytest
import torch

import train
from conftest import ROOT, TINY_FLAGS


def losses(rows):
    return [(r["train_loss"], r["val_loss"]) for r in rows]


def test_two_gloo_ranks_with_half_batches_match_one_process_with_the_whole_batch(tmp_path):
    flags = ["--steps", "10", "--eval-every", "1", "--ckpt-every", "5", "--device", "cpu", *TINY_FLAGS,
             "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "train.py", "--out", str(tmp_path / "ddp"), *flags],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 processes" in ddp.stdout and ddp.stdout.count("parameters,") == 1   # only rank 0 prints
    train.main(["--out", str(tmp_path / "single"), *flags])
    two = losses(train.read_metrics(tmp_path / "ddp" / "metrics.csv"))
    one = losses(train.read_metrics(tmp_path / "single" / "metrics.csv"))
    assert len(two) == len(one) == 10
    diff = max(abs(a - b) for pair_a, pair_b in zip(two, one) for a, b in zip(pair_a, pair_b))
    assert diff <= 1e-5, f"max loss difference {diff:.2e}"
    assert sorted(os.listdir(tmp_path / "ddp")) == sorted(os.listdir(tmp_path / "single"))
    # and a DDP checkpoint resumes like any other: same saved keys, loadable
    ckpt = torch.load(tmp_path / "ddp" / "step_000010.pt", weights_only=True)
    assert set(ckpt["model"]) == set(torch.load(tmp_path / "single" / "step_000010.pt", weights_only=True)["model"])


def test_batch_size_must_divide_among_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(train, "setup_distributed", lambda device: (0, 3))
    model_cfg, cfg, _ = train.resolve_configs(train.parse_args(
        ["--out", str(tmp_path / "r"), "--steps", "2", *TINY_FLAGS, "--batch-size", "4"]))
    with pytest.raises(train.UserError, match="divisible"):
        train.train(model_cfg, cfg, progress=False)


def test_compiled_training_gives_the_losses_of_eager_training(tmp_path):
    flags = ["--steps", "20", "--eval-every", "1", "--ckpt-every", "20", *TINY_FLAGS]
    eager = train.read_metrics(_run(tmp_path / "eager", flags + ["--no-compile"]))
    compiled_out = tmp_path / "compiled"
    compiled = train.read_metrics(_run(compiled_out, flags + ["--compile"]))
    diff = max(abs(a - b) for pa, pb in zip(losses(eager), losses(compiled)) for a, b in zip(pa, pb))
    assert len(compiled) == 20 and diff <= 1e-5, f"max loss difference {diff:.2e}"
    ckpt = torch.load(compiled_out / "step_000020.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod") for key in ckpt["model"])


def _run(out, flags):
    train.main(["--out", str(out), *flags])
    return out / "metrics.csv"


def test_compile_falls_back_to_eager_with_one_warning_when_no_compiler_works(monkeypatch, capsys):
    def broken_compile(model):
        def fails(*args):
            raise RuntimeError("no C++ compiler")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = train.CharTransformer(train.ModelConfig(vocab_size=5, seq_len=8, d_model=16, n_heads=2))
    example = (torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))
    assert train.compile_model(model, example) is model
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: torch.compile is not available")
    assert all(p.grad is None for p in model.parameters())
