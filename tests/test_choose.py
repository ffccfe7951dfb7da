"""train.py --preset auto (choose.py): each candidate shape's step is timed on this machine, turned
into the steps the budget affords, and the shape whose committed runs predict the lowest BPC at
that many steps is chosen and printed. A faster machine (or a longer budget) favours the shape
that pays off only with more steps; the prediction never assumes more steps than any run help."""
import json
import os
import sys
import time

import pytest

from conftest import PRIMER, ROOT, TINY_FLAGS, assert_one_line_error, run_script
import train
from tinychar import choose
from tinychar.budget import steps_that_fit
from tinychar.checkpoint import load_checkpoint
from tinychar.settings import parse_args, resolve_configs

# two shapes, as the recipe's: a small one that learns fast and then overfits, a big one that
# starts slower and ends lower
TABLE = {"corpus": "test", "candidates": {
    "small": dict(shape="small", fields=dict(n_layers=1), points=[[1000, 2.4], [2000, 2.2], [4000, 2.15], [8000, 2.3]]),
    "big": dict(shape="big", fields=dict(n_layers=2), points=[[500, 2.9], [1000, 2.5], [2000, 2.2], [4000, 2.05]]),
}}


def test_prediction_fits_the_points_and_extends_them_with_care():
    points = [[1000, 2.5], [2000, 2.2], [4000, 2.05]]
    # a parabola in log(steps) through three points is exact at them
    assert [round(choose.predict(points, s), 6) for s in (1000, 2000, 4000)] == [2.5, 2.2, 2.05]
    assert 2.05 < choose.predict(points, 3000) < 2.2
    # more steps than any run: still falling at the end, so no further gain is assumed
    assert choose.predict(points, 64000) == pytest.approx(2.05)
    # fewer steps than any run: worse, along the fit's slope at its first point
    assert choose.predict(points, 500) > 2.5
    # a curve that rises at its end (overfitting) goes on rising
    rising = [[1000, 2.4], [2000, 2.2], [4000, 2.15], [8000, 2.3]]
    assert choose.predict(rising, 16000) > choose.predict(rising, 8000) > 2.2


def choice(monkeypatch, minutes, step_s):
    """choose.choose's pick with the two shapes' steps timed at step_s = {n_layers: seconds}."""
    monkeypatch.setattr(choose, "load_candidates", lambda: TABLE)
    monkeypatch.setattr(choose, "time_candidate", lambda model_cfg, cfg, device, autocast: (
        step_s[model_cfg.n_layers], step_s[model_cfg.n_layers] / 3))
    lines = []

    def configs(fields):
        model_cfg, cfg, _, _ = resolve_configs(parse_args(["--data", PRIMER, "--time-budget",
                                                                     f"{minutes}"]))
        model_cfg.n_layers = fields["n_layers"]
        return model_cfg, cfg

    name, fields, seconds = choose.choose(configs, minutes, 250_000, log=lines.append)
    return name, lines


def test_the_shape_predicted_best_for_the_steps_this_machine_affords_is_chosen(monkeypatch):
    # 5 minutes at 0.1 s and 0.2 s a step: ~2,800 and ~1,400 steps, where the small shape is lower
    assert choice(monkeypatch, 5, {1: 0.1, 2: 0.2})[0] == "small"
    # 30 minutes on the same machine: ~17,000 and ~8,500 steps: the small one overfits, the big wins
    assert choice(monkeypatch, 30, {1: 0.1, 2: 0.2})[0] == "big"
    # 30 minutes on a machine 4 times slower: back to the small one
    name, lines = choice(monkeypatch, 30, {1: 0.4, 2: 0.8})
    assert name == "small"
    assert "preset auto for 30 minutes" in lines[0]
    assert any("small" in line and "<- chosen" in line for line in lines)
    assert any("big" in line and "800.0 ms a step" in line and "<- chosen" not in line for line in lines)


def test_the_steps_afforded_are_planned_as_a_timed_run_plans_them():
    model_cfg, cfg, _, _ = resolve_configs(parse_args(["--data", PRIMER, "--time-budget", "5"]))
    steps = choose.affordable_steps(5, 0.1, 0.03, model_cfg, cfg, 10.0, 250_000)
    # a validation: --eval-batches forward passes; a checkpoint's score: the validation tenth of the
    # file (at most 250,000 units) in windows of seq_len / 2 new units, --batch-size windows a pass
    score_passes = min(0.1 * os.path.getsize(PRIMER), 250_000) / 64 / 32
    assert steps == steps_that_fit(5, dict(step_s=0.1, validation_s=20 * 0.03, checkpoint_s=score_passes * 0.03),
                                   500, 1000, 10.0)


@pytest.mark.slow
def test_a_run_with_preset_auto_trains_the_chosen_shape_and_counts_the_choice_against_its_budget(tmp_path):
    done = run_script("train.py", "--out", str(tmp_path / "auto"), "--preset", "auto", "--time-budget", "0.15",
                      *TINY_FLAGS, "--eval-every", "5", "--ckpt-every", "10", timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    timed = len(choose.load_candidates()["candidates"])
    assert f"preset auto for 0.15 minutes: {timed} candidates timed here" in done.stdout
    chosen = [line.split()[0] for line in done.stdout.splitlines() if line.endswith("<- chosen")]
    assert len(chosen) == 1
    ckpt = load_checkpoint(str(tmp_path / "auto"))
    fields = choose.load_candidates()["candidates"][chosen[0]]["fields"]
    assert ckpt["model_config"]["dropout"] == fields.get("dropout", 0.0)   # the explicit flags' shape otherwise
    assert 0 < ckpt["plan"]["chosen_in_s"] < ckpt["elapsed_s"] < 0.15 * 60


@pytest.mark.parametrize("flags,message", [
    (["--preset", "auto"], "--preset auto needs --time-budget MINUTES"),
    (["--preset", "auto", "--steps", "10"], "--preset auto needs --time-budget MINUTES"),
    (["--threads", "-1"], "--threads must not be negative"),
])
@pytest.mark.slow
def test_preset_auto_and_threads_mistakes_are_one_line_errors(tmp_path, flags, message):
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "bad"), *TINY_FLAGS, *flags), message)


@pytest.mark.slow
def test_a_resumed_run_keeps_its_shape_so_preset_auto_is_refused(tmp_path):
    assert run_script("train.py", "--out", str(tmp_path / "r"), *TINY_FLAGS, "--steps", "2").returncode == 0
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "r"), "--resume", "--preset", "auto",
                                     "--time-budget", "1"), "a resumed run keeps its own")


def test_the_seconds_spent_choosing_count_against_the_budget(tmp_path):
    model_cfg, cfg, _, _ = resolve_configs(parse_args(
        ["--out", str(tmp_path / "r"), "--time-budget", "0.6", *TINY_FLAGS, "--eval-every", "50", "--ckpt-every", "100"]))
    asked = dict(preset="auto: as if", chosen_in_s=30.0)   # as if choosing had taken 30 of the budget's 36 seconds
    start = time.perf_counter()
    train.train(model_cfg, cfg, choice=asked, progress=False)
    trained_s = time.perf_counter() - start
    elapsed_s = load_checkpoint(str(tmp_path / "r"))["elapsed_s"]
    assert 30.0 < elapsed_s <= 36.0 and trained_s < 6.0


def test_a_lever_measured_at_one_step_count_follows_its_shapes_curve_up_to_its_longest_run():
    # "tuned": the "big" shape with a lever, its runs all at 2,000 steps, 0.1 below big's there (big:
    # three points, a parabola exact at them)
    big = dict(shape="big", fields=dict(n_layers=2), points=[[1000, 2.5], [2000, 2.2], [4000, 2.05]])
    tuned = dict(shape="big, tuned", fields=dict(n_layers=2), curve_from="big", points=[[2000, 2.08], [2000, 2.12]])
    candidates = dict(big=big, tuned=tuned)
    assert choose.predict_candidate(candidates, "tuned", 2000) == pytest.approx(2.1)
    # fewer steps: big's curve, shifted by the lever's gain where it was measured
    assert choose.predict_candidate(candidates, "tuned", 1000) == pytest.approx(2.4)
    assert choose.predict_candidate(candidates, "tuned", 500) == pytest.approx(choose.predict(big["points"], 500) - 0.1)
    # more steps than its runs: no gain assumed past them, though big goes on improving
    assert choose.predict_candidate(candidates, "tuned", 4000) == pytest.approx(2.1)
    assert choose.predict_candidate(candidates, "big", 4000) == pytest.approx(2.05)


def test_the_committed_candidates_are_every_committed_run_of_their_shapes():
    # candidates.json is candidates.py's output over experiments/recipe/runs: a run added without
    # regenerating it would leave auto predicting from fewer runs than the repository holds
    sys.path.insert(0, os.path.join(ROOT, "experiments", "recipe"))
    import candidates
    assert choose.load_candidates() == json.loads(json.dumps(candidates.table(os.path.join(candidates.HERE, "runs"))))
