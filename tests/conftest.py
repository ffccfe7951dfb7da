import os
import sys

# tests import the flat scripts (model, train, ...) from the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import subprocess  # noqa: E402

import pytest  # noqa: E402

SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
PRIMER = os.path.join(ROOT, "data", "lm_primer.txt")


# A model small enough that a few steps take well under a second on 2 cores. On the CPU even where
# a GPU is present (tests/test_cuda.py gives --device cuda after these): --device auto would compile
# every tiny run for the GPU. fp32: the exactness tests compare runs to 1e-5 (bf16 has its own tests).
TINY_FLAGS = ["--device", "cpu", "--precision", "fp32", "--d-model", "32", "--n-heads", "4", "--n-layers", "1",
              "--seq-len", "16", "--batch-size", "4", "--eval-batches", "2", "--warmup-steps", "2"]


def signals_as_in_a_terminal():
    """preexec_fn of a child that tests send SIGINT: a suite started in the background (`cmd &`)
    has SIGINT ignored, the child would inherit that, and train.py leaves an ignored signal ignored."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tiny_model(seed=0, **overrides):
    """A small CharTransformer in eval mode with its init perturbed (no tied logits)."""
    import torch
    from model import CharTransformer, ModelConfig
    torch.manual_seed(seed)
    fields = dict(vocab_size=13, seq_len=16, d_model=32, n_layers=2, n_heads=4)
    fields.update(overrides)
    model = CharTransformer(ModelConfig(**fields)).eval()
    with torch.no_grad():  # break the symmetry of the init so logits have no ties
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def run_script(*args, timeout=120):
    """Run one of the repository's scripts as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(result, *fragments):
    """A user mistake: exit status 2, a single 'error: ...' line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny training run on the bundled corpus (12 steps, checkpoints at 6 and 12)."""
    from train import main
    out = str(tmp_path_factory.mktemp("runs") / "tiny")
    main(["--out", out, "--steps", "12", "--eval-every", "3", "--ckpt-every", "6", *TINY_FLAGS])
    return out


CYCLE = "the cat sat on a mat; a dog dug up a log. "   # 42 characters; "a", "t", " " are followed by
                                                      # different characters, so context matters


@pytest.fixture(scope="session", params=["sinusoidal", "rope"])
def cycle_run(tmp_path_factory, request):
    """A tiny run fitted to CYCLE repeated (150 steps, ~2 s): its greedy text is the cycle, varied
    characters, so a comparison of two decoding paths cannot pass on one repeated character.
    Once with absolute positions (the cache is rebuilt as the window slides) and once with RoPE
    (the cache rolls)."""
    from train import main
    root = tmp_path_factory.mktemp("cycle")
    (root / "cycle.txt").write_text(CYCLE * 60, encoding="utf-8")
    out = str(root / request.param)
    main(["--data", str(root / "cycle.txt"), "--out", out, "--steps", "150", "--eval-every", "50",
          "--ckpt-every", "150", *TINY_FLAGS, "--lr", "1e-2", "--pos", request.param])
    return out


@pytest.fixture(scope="session")
def dropout_run(tmp_path_factory):
    """A tiny run with heavy dropout (0.5, attention weights included): evaluated in training mode by
    mistake, its scores would change from one call to the next."""
    from train import main
    out = str(tmp_path_factory.mktemp("runs") / "dropout")
    main(["--out", out, "--steps", "6", "--eval-every", "3", "--ckpt-every", "6", *TINY_FLAGS, "--dropout", "0.5"])
    return out


BYTE_TEXT = "café, naïve, über; à la carte. "   # é ï ü à: two UTF-8 bytes each


@pytest.fixture(scope="session")
def byte_run(tmp_path_factory):
    """A tiny byte-level run (--bytes) on a text whose characters are one or two UTF-8 bytes."""
    from train import main
    root = tmp_path_factory.mktemp("bytes")
    (root / "text.txt").write_text(BYTE_TEXT * 40, encoding="utf-8")
    out = str(root / "run")
    main(["--data", str(root / "text.txt"), "--bytes", "--out", out, "--steps", "30", "--eval-every", "30",
          "--ckpt-every", "30", *TINY_FLAGS, "--lr", "1e-2"])
    return out
