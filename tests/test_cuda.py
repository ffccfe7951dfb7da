"""The CUDA path: training (compiled by default there), exact resume with dropout, evaluation and
generation (eager and --compile) on a GPU. Skipped where CUDA is absent: every other test file runs
on the CPU, and these are the only checks of the GPU code."""
import json
import os

import pytest
import torch

from conftest import TINY_FLAGS, run_script
import train
from tinychar import runtime
from tinychar.checkpoint import load_checkpoint
from tinychar.metrics import read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

CUDA_FLAGS = [*TINY_FLAGS, "--device", "cuda", "--dropout", "0.1", "--eval-every", "4", "--ckpt-every", "8"]
# GPU kernels (atomics in some backward passes) need not repeat bit for bit; a dropout stream that
# was not restored moves the loss by ~1e-2, far above this
TOLERANCE = 1e-4


def losses(run_dir):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_metrics(os.path.join(run_dir, "metrics.csv"))]


def close(a, b):
    return len(a) == len(b) and all(sa == sb and abs(x - y) <= TOLERANCE and abs(u - v) <= TOLERANCE
                                    for (sa, x, u), (sb, y, v) in zip(a, b))


@pytest.mark.parametrize("compile_flag", ["--no-compile", "--compile"])
def test_cuda_training_with_dropout_resumes_exactly(tmp_path, compile_flag):
    flags = ["--steps", "16", *CUDA_FLAGS, compile_flag]
    train.main(["--out", str(tmp_path / "whole"), *flags])
    crashed = tmp_path / "crashed"
    train.main(["--out", str(crashed), *flags])
    os.remove(crashed / "step_000016.pt")   # resume from step 8
    train.main(["--out", str(crashed), "--resume"])
    assert close(losses(crashed), losses(tmp_path / "whole")), (losses(crashed), losses(tmp_path / "whole"))
    ckpt = load_checkpoint(str(crashed))
    assert "cuda" in ckpt["rng"]["ranks"][0]
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert runtime.resolve_precision("auto", torch.device("cuda")) == expected


def test_cuda_evaluation_matches_the_cpu(tmp_path):
    out = tmp_path / "r"
    train.main(["--out", str(out), "--steps", "8", *CUDA_FLAGS])
    on_gpu = run_script("eval.py", str(out), "--device", "cuda", "--json", "--no-references")
    on_cpu = run_script("eval.py", str(out), "--device", "cpu", "--json", "--no-references")
    assert on_gpu.returncode == 0 and on_cpu.returncode == 0, on_gpu.stderr + on_cpu.stderr
    gpu_bpc, cpu_bpc = (json.loads(r.stdout)["runs"][0]["val_bpc"] for r in (on_gpu, on_cpu))
    assert abs(gpu_bpc - cpu_bpc) < 1e-3


def test_cuda_generation_eager_and_compiled(tmp_path):
    out = tmp_path / "r"
    train.main(["--out", str(out), "--steps", "8", *CUDA_FLAGS])
    args = ["generate.py", "--ckpt", str(out), "--device", "cuda", "--prompt", "the", "--max-new-tokens", "40",
            "--temperature", "0"]
    eager, compiled, uncached = run_script(*args), run_script(*args, "--compile"), run_script(*args, "--no-cache")
    for result in (eager, compiled, uncached):
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(result.stdout) == len("the") + 40 + 1
    assert "warning" not in compiled.stderr, compiled.stderr
    assert eager.stdout == uncached.stdout == compiled.stdout
