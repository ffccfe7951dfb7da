"""eval.py: the full-pass protocol scores every validation character exactly once, with at least
seq_len / 2 characters of context; BPC is the mean in bits; the table, JSON and plot."""
import json
import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import PRIMER, TINY_FLAGS, assert_one_line_error, run_script
import eval as evaluation
from model import CharTransformer, ModelConfig
from tinychar import scoring
from tinychar.corpus import Vocab, load_corpus


@pytest.mark.parametrize("n_context,n_scored,seq_len", [
    (8, 100, 16), (8, 17, 16), (8, 16, 16), (7, 40, 15), (64, 3667, 128), (1, 50, 2), (0, 30, 8)])
def test_windows_score_every_character_once_with_at_least_half_a_window_of_context(n_context, n_scored, seq_len):
    scored = []
    for start, first in scoring.scoring_windows(n_context, n_scored, seq_len):
        assert 0 <= start and start + seq_len <= n_context + n_scored - 1 + 1
        for i in range(first, seq_len):
            position = start + 1 + i        # the stream position this target predicts
            scored.append(position)
            if position >= seq_len // 2:    # enough text exists before it
                assert i + 1 >= seq_len // 2, f"position {position} scored with only {i + 1} characters of context"
    assert sorted(scored) == list(range(n_context, n_context + n_scored))


def test_a_model_that_knows_nothing_scores_exactly_log2_of_the_vocabulary():
    vocab, train_ids, val_ids, _ = load_corpus(PRIMER, 16)
    model = CharTransformer(ModelConfig(vocab_size=len(vocab), seq_len=16, d_model=32, n_heads=4)).eval()
    with torch.no_grad():
        model.tok_emb.weight.zero_()   # tied head: every logit is 0, a uniform prediction
    bpc, n = scoring.full_pass_bpc(model, train_ids, val_ids, batch_size=7)
    assert n == len(val_ids)
    assert bpc == pytest.approx(math.log2(len(vocab)), rel=1e-6)


def test_full_pass_does_not_depend_on_the_batch_size(tiny_run):
    ckpt_model, vocab = evaluation.model_from_checkpoint(evaluation.load_checkpoint(tiny_run))
    _, train_ids, val_ids, _ = load_corpus(PRIMER, 16, vocab)
    a, _ = scoring.full_pass_bpc(ckpt_model, train_ids, val_ids, batch_size=1000)
    b, _ = scoring.full_pass_bpc(ckpt_model, train_ids, val_ids, batch_size=3)
    assert a == pytest.approx(b, abs=1e-6)


def test_reference_rows_are_uniform_unigram_and_conditional_compression():
    text = "aab" * 400                 # training split: 720 a, 360 b; validation: 80 a, 40 b
    ids = np.array([0 if c == "a" else 1 for c in text], dtype=np.uint8)
    refs = evaluation.reference_bpcs(Vocab("ab"), ids[:1080], ids[1080:])
    assert refs["uniform (log2 V)"] == 1.0
    p_a, p_b = 721 / 1082, 361 / 1082  # add-one smoothed training counts
    assert refs["unigram (train counts)"] == pytest.approx(-(80 * math.log2(p_a) + 40 * math.log2(p_b)) / 120)
    assert refs["bz2 -9 | train"] < 1.0 and refs["lzma -9e | train"] < 1.0           # a repetitive text
    # a symbol the training split never has still costs finite bits: its count of 0 counts as 1
    ids = np.array([0, 1] * 500 + [0, 1, 2] * 10, dtype=np.uint8)   # training: 500 a, 500 b; validation: 10 of each
    refs = evaluation.reference_bpcs(Vocab("abc"), ids[:1000], ids[1000:])
    assert refs["unigram (train counts)"] == pytest.approx(-(20 * math.log2(501 / 1003) + 10 * math.log2(1 / 1003)) / 30)


@pytest.mark.slow
def test_eval_prints_a_table_with_the_run_and_the_reference_rows(tiny_run):
    result = run_script("eval.py", tiny_run)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "params", "steps", "val", "BPC", "unit", "note"]
    row = lines[2].split()
    assert row[0] == "tiny" and row[2] == "12" and 0 < float(row[3]) < math.log2(69) and row[4] == "char"
    for name in ("uniform", "unigram", "bz2", "lzma"):
        assert any(line.startswith(name) for line in lines)
    assert "stride seq_len/2" in result.stdout


@pytest.mark.slow
def test_eval_json_and_plot(tiny_run, tmp_path):
    plot = tmp_path / "compare.png"
    result = run_script("eval.py", tiny_run, tiny_run + "/step_000006.pt", "--json", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["steps"] for r in report["runs"]] == [12, 6]
    assert report["runs"][0]["val_chars"] == 3667
    assert report["references"]["uniform (log2 V)"] == pytest.approx(math.log2(69))
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_eval_runs_where_train_does_by_default_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert evaluation.parse_args(["run"]).device == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert evaluation.parse_args(["run"]).device == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert evaluation.parse_args(["run"]).device == "cuda"
    assert evaluation.parse_args(["run", "--device", "cpu"]).device == "cpu"


@pytest.mark.slow
def test_eval_errors_are_one_line(tiny_run, tmp_path):
    assert_one_line_error(run_script("eval.py", str(tmp_path / "nothing")), "not found")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert_one_line_error(run_script("eval.py", str(empty_dir)), "no checkpoint")
    other = tmp_path / "other.txt"
    other.write_text("x" * 1000)
    assert_one_line_error(run_script("eval.py", tiny_run, "--data", str(other)), "not the text")


@pytest.mark.slow
def test_parts_scores_another_division_of_the_held_out_text_and_never_trained_text(tiny_run):
    # the run trained on the first 90% (--split 0.9,0.1); --parts 0.9,0.05,0.05 cuts its held-out
    # tenth into a validation and a test half, scored apart (the test half's first windows take
    # their context from the end of the training split, as every split's do)
    def scored(*flags):
        result = run_script("eval.py", tiny_run, "--checkpoint", "last", "--json", "--no-references", *flags)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["runs"][0]
    whole, val, test = scored(), scored("--parts", "0.9,0.05,0.05"), scored("--parts", "0.9,0.05,0.05", "--split", "test")
    assert (val["val_chars"], test["val_chars"], whole["val_chars"]) == (1833, 1834, 3667)
    assert val["split_spec"] == test["split_spec"] == "0.9,0.05,0.05" and val["val_bpc"] != test["val_bpc"]
    halves = (val["val_bpc"] * 1833 + test["val_bpc"] * 1834) / 3667
    assert halves == pytest.approx(whole["val_bpc"], abs=0.02)


@pytest.mark.slow
def test_parts_refuses_a_training_part_that_is_not_the_runs_or_a_checkpoint_chosen_on_its_validation(tiny_run):
    assert_one_line_error(run_script("eval.py", tiny_run, "--checkpoint", "last", "--parts", "0.8,0.1,0.1"),
                          "its training part has")
    assert_one_line_error(run_script("eval.py", tiny_run, "--parts", "0.9,0.05,0.05"), "chosen by its score")
    assert_one_line_error(run_script("eval.py", tiny_run, "--parts", "0.9"), "--split must be 2 or 3")


@pytest.mark.slow
def test_attention_maps_are_plotted_for_every_head_of_every_layer(tiny_run, tmp_path):
    result = run_script("eval.py", tiny_run, "--no-references", "--attention", "tokenization is",
                        "--attention-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "attention_tiny.png").read_bytes()[:4] == b"\x89PNG"
    assert_one_line_error(run_script("eval.py", tiny_run, "--attention", "naïve"), "'ï'")


def brute_force_bpc(model, train_ids, val_ids, window):
    """Each validation character scored alone, from its own forward pass over the window that the
    protocol assigns it: windows of `window` characters start every window // 2 (at least 1)
    characters, the first so that its last target is the first validation character, the last
    one clamped to the end; a character is scored by the first window that reaches it."""
    n_context = min(max(1, window // 2), len(train_ids))
    stream = torch.cat([train_ids[len(train_ids) - n_context:], val_ids])
    stride, first_start = max(1, window // 2), max(0, n_context - 1 - (window - max(1, window // 2)))
    total_bits = 0.0
    for p in range(n_context, len(stream)):                        # p: the stream index of a target
        k = max(0, -(-(p - window - first_start) // stride))       # the first window with start + window >= p
        start = min(first_start + k * stride, len(stream) - 1 - window)
        with torch.no_grad():
            logits, _ = model(stream[None, start:start + window])
        log_probs = torch.log_softmax(logits[0, p - start - 1].double(), dim=-1)
        total_bits -= log_probs[stream[p]].item() / math.log(2)
    return total_bits / len(val_ids)


@pytest.mark.parametrize("pos_encoding,window", [("sinusoidal", 16), ("rope", 16), ("rope", 24), ("none", 7),
                                                 ("alibi", 3), ("sinusoidal", 2), ("rope", 1)])
@pytest.mark.slow
def test_full_pass_equals_scoring_each_character_alone_from_its_own_window(pos_encoding, window):
    torch.manual_seed(0)
    model = CharTransformer(ModelConfig(vocab_size=11, seq_len=16, d_model=32, n_heads=4, pos_encoding=pos_encoding))
    with torch.no_grad():   # random, context-dependent predictions: a wrong window or target shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.eval()
    train_ids, val_ids = torch.randint(0, 11, (300,)), torch.randint(0, 11, (157,))
    bpc, n = scoring.full_pass_bpc(model, train_ids, val_ids, batch_size=5, context=window)
    assert n == 157
    assert bpc == pytest.approx(brute_force_bpc(model, train_ids, val_ids, window), abs=1e-5)


def test_the_last_block_makes_only_the_rows_a_window_scores():
    model = CharTransformer(ModelConfig(vocab_size=11, seq_len=16, d_model=32, n_heads=4, n_layers=2)).eval()
    rows = {0: [], 1: []}   # the rows each block's feed-forward is given, per call
    for i, block in enumerate(model.blocks):
        block.ff.register_forward_hook(lambda module, args, out, i=i: rows[i].append(args[0].size(1)))
    scoring.full_pass_bpc(model, torch.randint(0, 11, (300,)), torch.randint(0, 11, (157,)), batch_size=5)
    assert set(rows[0]) == {16}                 # the first block makes every row: the last one's keys need them
    assert max(rows[1]) <= 16 // 2 + 1          # the last: the scored half (the first window scores one more)
    # the scored rows reach the projection as one matrix: rows with gaps between windows would make
    # it a batched product with its weight copied for every window (aten::bmm), several times slower
    for autocast in (nullcontext(), torch.autocast("cpu", dtype=torch.bfloat16)):   # bf16's kernel: the case
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            scoring.full_pass_bpc(model, torch.randint(0, 11, (300,)), torch.randint(0, 11, (157,)), batch_size=5,
                                     autocast=autocast)
        assert "aten::bmm" not in {event.key for event in profile.key_averages()}


@pytest.mark.slow
def test_context_gives_one_row_per_length_and_says_where_sinusoids_were_never_trained(tiny_run):
    result = run_script("eval.py", tiny_run, "--context", "8", "16", "64", "--json", "--no-references")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["runs"]
    assert [r["context"] for r in rows] == [8, 16, 64]
    default = json.loads(run_script("eval.py", tiny_run, "--json", "--no-references").stdout)["runs"][0]
    assert rows[1]["val_bpc"] == pytest.approx(default["val_bpc"], abs=1e-9) and rows[1]["note"] == ""
    assert "never trained" in rows[2]["note"] and rows[0]["note"] == ""
    table = run_script("eval.py", tiny_run, "--context", "8", "64", "--no-references").stdout
    assert "never trained" in table and "windows of --context N" in table


@pytest.mark.slow
def test_context_mistakes_are_one_line_errors(tiny_run, tmp_path):
    for value in ("0", "-4"):
        assert_one_line_error(run_script("eval.py", tiny_run, "--context", value), "--context must be positive")
    assert_one_line_error(run_script("eval.py", tiny_run, "--context", "4000"), "longer than the validation split")
    from train import main
    learned = str(tmp_path / "learned")
    main(["--out", learned, "--steps", "2", "--pos", "learned", *TINY_FLAGS])
    assert_one_line_error(run_script("eval.py", learned, "--context", "17"), "learned positions")
    assert run_script("eval.py", learned, "--context", "16", "--no-references").returncode == 0


@pytest.mark.slow
def test_a_run_trained_in_bf16_is_scored_in_bf16_close_to_fp32(tmp_path):
    from train import main
    out = str(tmp_path / "bf16")
    main(["--out", out, "--steps", "20", *TINY_FLAGS, "--precision", "bf16"])
    rows = {p: json.loads(run_script("eval.py", out, "--json", "--no-references", *extra).stdout)["runs"][0]
            for p, extra in (("auto", []), ("fp32", ["--precision", "fp32"]))}
    assert rows["auto"]["precision"] == "bf16" and rows["fp32"]["precision"] == "fp32"
    assert rows["auto"]["val_bpc"] != rows["fp32"]["val_bpc"]                  # it did run in bf16
    assert abs(rows["auto"]["val_bpc"] - rows["fp32"]["val_bpc"]) < 0.01


@pytest.mark.slow
def test_surprisal_draws_the_text_coloured_by_bits_and_gives_its_bpc(tiny_run, tmp_path):
    picture = tmp_path / "s.png"
    result = run_script("eval.py", tiny_run, "--no-references", "--surprisal", "the model predicts the next",
                        "--surprisal-out", str(picture))
    assert result.returncode == 0, result.stderr
    assert picture.read_bytes()[:4] == b"\x89PNG" and "bits per character" in result.stdout
    model, vocab = evaluation.model_from_checkpoint(evaluation.load_checkpoint(tiny_run))
    chars, bits = evaluation.surprisal(model, vocab, "the model predicts the next")
    assert bits[0] is None and len(bits) == len(chars) == 27 and all(b > 0 for b in bits[1:])
    # the same bits as the full-pass machinery gives that text as a stream scored after its first character
    ids = vocab.encode("the model predicts the next").numpy()
    nats = scoring.stream_nats(model, ids, 1, 16)
    assert bits[1:] == pytest.approx((nats / math.log(2)).tolist())
    assert_one_line_error(run_script("eval.py", tiny_run, "--surprisal", "naïve"), "'ï'")


@pytest.mark.slow
def test_checkpoint_curve_scores_every_kept_checkpoint_once_and_only_the_new_ones_again(tiny_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    first = run_script("experiments/checkpoint_curve.py", str(run))
    assert first.returncode == 0, first.stderr
    curve = json.loads((run / "curve.json").read_text())
    assert curve["steps"] == [6, 12] and not list(run.glob("*.tmp"))
    for step, bpc in zip(curve["steps"], curve["val_bpc"]):
        alone = json.loads(run_script("eval.py", str(run / f"step_{step:06d}.pt"), "--precision", "fp32",
                                      "--json", "--no-references").stdout)["runs"][0]
        assert bpc == alone["val_bpc"]
    assert curve["val_bpc"][1] < curve["val_bpc"][0]    # different checkpoints, different scores
    assert "curve.json is complete" in run_script("experiments/checkpoint_curve.py", str(run)).stdout
    # a curve written while the run had only its first checkpoint: the second is scored, the first kept
    (run / "curve.json").write_text(json.dumps({"steps": [6], "val_bpc": [9.0]}))
    assert run_script("experiments/checkpoint_curve.py", str(run)).returncode == 0
    assert json.loads((run / "curve.json").read_text()) == {"steps": [6, 12], "val_bpc": [9.0, curve["val_bpc"][1]]}
    assert_one_line_error(run_script("experiments/checkpoint_curve.py", str(tmp_path / "nothing")), "no checkpoint")


def test_a_dropout_run_scores_the_same_every_time_as_its_model_with_dropout_off(dropout_run):
    first = scoring.evaluate_run(dropout_run)[0][0]["val_bpc"]
    assert scoring.evaluate_run(dropout_run)[0][0]["val_bpc"] == first
    ckpt = evaluation.load_checkpoint(dropout_run)
    model = CharTransformer(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    _, train_ids, val_ids, _ = load_corpus(PRIMER, 16)
    assert first == pytest.approx(scoring.full_pass_bpc(model.eval(), train_ids, val_ids)[0], rel=1e-9)


def test_byte_surprisal_gives_each_character_the_bits_of_its_own_utf8_bytes(byte_run):
    model, vocab = evaluation.model_from_checkpoint(evaluation.load_checkpoint(byte_run))
    text = "la café à"                                   # 9 characters, 11 bytes: one window of 16
    chars, bits = evaluation.surprisal(model, vocab, text)
    raw = text.encode("utf-8")
    owner = [i for i, c in enumerate(text) for _ in c.encode("utf-8")]   # the character each byte belongs to
    ids = torch.tensor([[vocab.chars.index(chr(b)) for b in raw]])
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    byte_bits = (F.cross_entropy(logits[0], ids[0, 1:], reduction="none") / math.log(2)).tolist()   # bytes 1..10
    expected = [None] + [sum(b for j, b in enumerate(byte_bits, start=1) if owner[j] == i) for i in range(1, len(text))]
    assert chars == list(text) and bits[0] is None
    assert bits[1:] == pytest.approx(expected[1:], rel=1e-5)
    assert sum(bits[1:]) == pytest.approx(sum(byte_bits), rel=1e-5)   # every byte after the first, once


def test_runs_scored_on_different_texts_are_not_put_in_one_table(tiny_run, byte_run):
    # one table has one header, footer and set of reference rows: the first run's would mislabel the other
    result = run_script("eval.py", tiny_run, byte_run, "--no-references")
    assert_one_line_error(result, "not scored on the same text", "lm_primer.txt", "text.txt")
