"""Dynamic evaluation (eval.py --dynamic, tinychar/scoring.py): the model learns from each window after
scoring it. With learning rate 0 it is the static pass; a character's score never depends on
itself or on what follows; a text seen once is cheaper the second time; the trained model is
never changed; its figure is a row of its own."""
import json

import numpy as np
import pytest
import torch

from conftest import TINY_FLAGS, tiny_model
import eval as eval_script
import train
from tinychar.scoring import dynamic_bpc, dynamic_nats, full_pass_bpc, scoring_stream, scoring_windows
from tinychar.settings import parse_args, resolve_configs


def text(n, seed=0, vocab=13):
    return np.random.default_rng(seed).integers(0, vocab, n)


def nats_of(model, stream, lr, decay=0.0, window=16):
    n_context = window // 2
    windows = scoring_windows(n_context, len(stream) - n_context, window)
    return dynamic_nats(model, stream, n_context, windows, window, lr, decay)


def test_with_learning_rate_0_it_is_the_static_pass_exactly():
    model = tiny_model()
    train_ids, val_ids = text(100, seed=1), text(300, seed=2)
    static, n = full_pass_bpc(model, train_ids, val_ids, batch_size=1)
    assert dynamic_bpc(model, train_ids, val_ids, lr=0.0, decay=0.3) == (static, n)
    assert dynamic_bpc(model, train_ids, val_ids, lr=0.05)[0] != static


def test_with_decay_1_every_step_is_undone_and_it_is_the_static_pass_again():
    model = tiny_model()
    train_ids, val_ids = text(100, seed=1), text(300, seed=2)
    assert dynamic_bpc(model, train_ids, val_ids, lr=0.5, decay=1.0) == full_pass_bpc(model, train_ids, val_ids,
                                                                                       batch_size=1)


@pytest.mark.slow
def test_a_characters_score_never_depends_on_itself_or_on_what_follows():
    model, stream = tiny_model(), text(200, seed=3)
    base = nats_of(model, stream, lr=0.1, decay=0.01)
    for position in (8, 9, 31, 40, 100, 199):   # stream positions; target i is stream[8 + i]
        changed = stream.copy()
        changed[position] = (changed[position] + 1) % 13
        after = nats_of(model, changed, lr=0.1, decay=0.01)
        target = position - 8
        assert np.array_equal(after[:target], base[:target])      # everything before it: bit for bit
        assert after[target] != base[target]                      # its own score is of the new character


@pytest.mark.slow
def test_a_text_seen_once_costs_fewer_bits_the_second_time():
    model = tiny_model()
    once = text(400, seed=4)
    stream = np.concatenate([once, once])
    for lr, expect_drop in ((0.0, False), (0.5, True)):
        nats = nats_of(model, stream, lr=lr)
        first, second = nats[:392].mean(), nats[400:].mean()   # the first copy's scored part, the second copy
        assert (second < first - 0.2) == expect_drop, (lr, first, second)


def test_the_trained_model_is_not_changed():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    nats_of(model, text(120, seed=5), lr=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_eval_py_gives_dynamic_evaluation_a_row_of_its_own(tmp_path, capsys):
    out = tmp_path / "run"
    model_cfg, cfg, _, _ = resolve_configs(parse_args(["--out", str(out), "--steps", "4", "--eval-every", "2",
                                                                "--ckpt-every", "2", *TINY_FLAGS]))
    train.train(model_cfg, cfg, progress=False)
    capsys.readouterr()
    eval_script.main([str(out), "--json", "--no-references", "--dynamic", "0.01", "--dynamic-decay", "0.02"])
    static, dynamic = json.loads(capsys.readouterr().out)["runs"]
    assert "dynamic" not in static and dynamic["dynamic"] == dict(lr=0.01, decay=0.02)
    assert dynamic["name"] == "run (dynamic)" and dynamic["val_bpc"] != static["val_bpc"]
    assert "not a static figure" in dynamic["note"]


@pytest.mark.parametrize("flags, message", [(["--dynamic", "-1"], "--dynamic must be a learning rate"),
                                            (["--dynamic-decay", "0.1"], "--dynamic-decay needs --dynamic"),
                                            (["--dynamic", "0.1", "--dynamic-decay", "2"], "between 0 and 1")])
def test_bad_dynamic_settings_are_one_line_errors(tmp_path, flags, message):
    with pytest.raises(eval_script.UserError, match=message):
        eval_script.parse_args([str(tmp_path), *flags])


def test_the_stream_is_the_full_passs():
    stream, n_context = scoring_stream(np.arange(10), np.arange(10, 30), 8)
    assert n_context == 4 and stream.tolist() == list(range(6, 30))
