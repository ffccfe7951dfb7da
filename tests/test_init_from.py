"""train.py --init-from: a new run that starts from a trained model's weights on any corpus. The
shape is the source's; the vocabulary is the source's with the new text's new symbols appended,
so nothing the source knew is lost; a byte model continues on any file."""
import os

import pytest
import torch

from conftest import CYCLE, TINY_FLAGS, assert_one_line_error, run_script
import train
from model import CharTransformer, ModelConfig
from tinychar.checkpoint import load_checkpoint
from tinychar.run_checkpoints import start_from
from tinychar.settings import parse_args, resolve_configs

FLAGS = ["--eval-every", "4", "--ckpt-every", "4", *TINY_FLAGS]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny run on the bundled primer (characters) and its new text: CYCLE with two symbols the
    primer does not have."""
    root = tmp_path_factory.mktemp("source")
    out = str(root / "primer")
    train.main(["--out", out, "--steps", "8", *FLAGS])
    text = root / "new.txt"
    text.write_text((CYCLE + "Zebra@ ") * 40, encoding="utf-8")
    return out, str(text)


def test_start_from_copies_the_sources_rows_and_leaves_the_new_symbols_rows_as_initialised():
    torch.manual_seed(0)
    small = CharTransformer(ModelConfig(vocab_size=5, seq_len=8, d_model=16, n_heads=2))
    torch.manual_seed(1)
    big = CharTransformer(ModelConfig(vocab_size=7, seq_len=8, d_model=16, n_heads=2))
    fresh_rows = big.tok_emb.weight[5:].detach().clone()
    start_from(big, small.state_dict())
    assert torch.equal(big.tok_emb.weight[:5], small.tok_emb.weight) and torch.equal(big.tok_emb.weight[5:], fresh_rows)
    assert big.head.weight is big.tok_emb.weight   # still tied
    assert all(torch.equal(big.state_dict()[k], v) for k, v in small.state_dict().items() if "tok_emb" not in k
               and "head" not in k)


def test_a_run_from_a_source_starts_at_its_weights_and_extends_its_vocabulary(source, tmp_path):
    out = str(tmp_path / "tuned")
    # a learning rate of 1e-12: two steps leave the weights where the source put them
    train.main(["--out", out, "--data", source[1], "--init-from", source[0], "--steps", "2", "--lr", "1e-12",
                "--min-lr", "0", "--dropout", "0.1", *FLAGS])
    before, after = load_checkpoint(source[0], "best"), load_checkpoint(out)
    known = len(before["vocab"])
    assert after["vocab"][:known] == before["vocab"] and after["vocab"][known:] == "@Z"   # the new, sorted
    assert after["train_config"]["init_from"] == source[0] and after["model_config"]["dropout"] == 0.1
    for name, weights in before["model"].items():
        tuned = after["model"][name][:known] if name in ("tok_emb.weight", "head.weight") else after["model"][name]
        assert torch.allclose(tuned, weights, atol=1e-6), name


@pytest.mark.parametrize("flags,message", [
    (["--n-layers", "3"], "has n_layers=1 but the flags give 3"),
    (["--pos", "rope"], "has pos_encoding='sinusoidal' but the flags give 'rope'"),
    (["--no-bias"], "has bias=True but the flags give False"), (["--norm", "rmsnorm"], "has norm='layernorm'"),
    (["--bytes"], "was trained on chars (--no-bytes)"),
])
@pytest.mark.slow
def test_a_shape_or_unit_that_disagrees_with_the_source_is_a_one_line_error(source, tmp_path, flags, message):
    done = run_script("train.py", "--out", str(tmp_path / "r"), "--init-from", source[0], *TINY_FLAGS, *flags)
    assert_one_line_error(done, "--init-from", message)


def test_a_source_that_is_not_there_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "r"), "--init-from", str(tmp_path / "none")),
                          "checkpoint not found")


def test_a_byte_model_continues_on_any_file(tmp_path):
    first, then = str(tmp_path / "bytes"), str(tmp_path / "binary")
    train.main(["--out", first, "--bytes", "--steps", "4", *FLAGS])
    data = tmp_path / "blob.bin"
    data.write_bytes(bytes(range(256)) * 8 + b"\xff\xfe not text " * 40)
    train.main(["--out", then, "--data", str(data), "--bytes", "--init-from", first, "--steps", "4", *FLAGS])
    assert len(load_checkpoint(first)["vocab"]) == len(load_checkpoint(then)["vocab"]) == 256
    assert os.path.exists(os.path.join(then, "best.pt"))


def test_a_run_started_from_a_source_resumes_exactly(source, tmp_path):
    flags = ["--data", source[1], "--init-from", source[0], "--steps", "12", "--dropout", "0.1", *FLAGS]
    whole = train.train(*resolve_configs(parse_args(["--out", str(tmp_path / "w"), *flags]))[:2],
                        progress=False)
    crashed = tmp_path / "c"
    train.main(["--out", str(crashed), *flags])
    os.remove(crashed / "step_000012.pt")
    model_cfg, cfg, resumed, _ = resolve_configs(parse_args(["--out", str(crashed), "--resume"]))
    again = train.train(model_cfg, cfg, resumed, progress=False)
    assert [(r["train_loss"], r["val_loss"]) for r in again] == [(r["train_loss"], r["val_loss"]) for r in whole]
