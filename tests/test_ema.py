"""train.py --ema D: an exponential moving average of the weights is the run's model. It does not
change training (the weights as trained are those of the run without it), it is what the run
validates, scores and saves as its model, the weights as trained are saved beside it, --resume
continues both exactly, and eval.py --trained-weights scores the weights as trained."""
import json
import os

import pytest
import torch

from conftest import TINY_FLAGS, assert_one_line_error, run_script
import train
from eval import main as eval_main
from tinychar.checkpoint import load_checkpoint
from tinychar.metrics import read_metrics
from tinychar.scoring import evaluate_run
from tinychar.settings import parse_args, resolve_configs
from tinychar.step import WeightAverage


def run(out, *extra, steps=8):
    model_cfg, cfg, resumed, _ = resolve_configs(parse_args(
        ["--out", str(out), "--steps", str(steps), "--eval-every", "2", "--ckpt-every", "4", *TINY_FLAGS, *extra]))
    return train.train(model_cfg, cfg, resumed, progress=False)


def losses(rows):
    return [(r["step"], r["train_loss"], r["val_loss"], r["checkpoint_bpc"]) for r in rows]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_follows_its_decay_with_a_faster_start():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    expected = 0.0
    for step, value in enumerate([10.0, 20.0, 30.0, 40.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(step)
        decay = min(0.5, step / (9 + step))   # 0.1, 0.18.., 0.25, 0.3..: below 0.5, the start's faster rule
        expected = decay * expected + (1 - decay) * value
        assert average.model.weight.item() == pytest.approx(expected, rel=1e-6)
    assert model.weight.item() == 40.0   # the model itself is untouched


@pytest.mark.slow
def test_a_run_with_ema_trains_exactly_as_without_and_saves_both_weights(tmp_path):
    plain = run(tmp_path / "plain", "--dropout", "0.1")
    averaged = run(tmp_path / "ema", "--dropout", "0.1", "--ema", "0.9")
    assert [r["train_loss"] for r in averaged] == [r["train_loss"] for r in plain]
    without, ckpt = load_checkpoint(str(tmp_path / "plain")), load_checkpoint(str(tmp_path / "ema"))
    assert "trained" not in without and same_weights(ckpt["trained"], without["model"])
    assert not same_weights(ckpt["model"], ckpt["trained"])
    assert ckpt["weights"] == "the --ema 0.9 average" and without["weights"] == "as trained"


@pytest.mark.slow
def test_validations_scores_and_eval_are_the_averages(tmp_path):
    run(tmp_path / "plain")
    rows = run(tmp_path / "ema", "--ema", "0.9")
    plain_rows = read_metrics(tmp_path / "plain" / "metrics.csv")
    assert all(a["val_loss"] != b["val_loss"] for a, b in zip(rows, plain_rows))
    scored = evaluate_run(str(tmp_path / "ema"))[0][0]
    assert scored["val_bpc"] == pytest.approx(rows[-1]["checkpoint_bpc"], abs=1e-6)
    assert scored["weights"] == "the --ema 0.9 average"


def test_eval_trained_weights_scores_the_weights_as_trained(tmp_path, capsys):
    run(tmp_path / "plain")
    run(tmp_path / "ema", "--ema", "0.9")
    capsys.readouterr()   # the runs' own output
    eval_main([str(tmp_path / "ema"), str(tmp_path / "plain"), "--trained-weights", "--checkpoint", "last",
               "--json", "--no-references"])
    ema_row, plain_row = json.loads(capsys.readouterr().out)["runs"]
    assert ema_row["val_bpc"] == plain_row["val_bpc"]
    assert ema_row["weights"] == "as trained (not the --ema average)" and plain_row["weights"] == "as trained"


@pytest.mark.slow
def test_a_run_with_ema_resumes_exactly(tmp_path):
    uninterrupted = run(tmp_path / "whole", "--dropout", "0.1", "--ema", "0.8", steps=12)
    crashed = tmp_path / "crashed"
    run(crashed, "--dropout", "0.1", "--ema", "0.8", steps=12)
    os.remove(crashed / "step_000012.pt")   # as if it died after step 11: the last checkpoint is step 8's
    resumed = run(crashed, "--resume", steps=12)
    assert losses(resumed) == losses(uninterrupted)
    whole, again = load_checkpoint(str(tmp_path / "whole")), load_checkpoint(str(crashed))
    assert same_weights(whole["model"], again["model"]) and same_weights(whole["trained"], again["trained"])


@pytest.mark.slow
def test_ema_mistakes_are_one_line_errors(tmp_path):
    for value in ("1", "-0.1"):
        assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "bad"), "--ema", value, *TINY_FLAGS),
                              "--ema must be a decay in [0, 1)")
    run(tmp_path / "r", "--ema", "0.9", steps=4)
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "r"), "--resume", "--ema", "0.99"),
                          "trained with --ema 0.9", "keeps its ema")
