"""Seeds as groups: train.py --seeds trains one run per seed into OUT/s<N>/ and resumes the group
where it stopped; eval.py reads folders of seeds (or --group NAME=GLOB) as groups and prints each
group's mean with its 95% interval, each group against the first with Welch's interval, the paired
one over shared seeds, and a verdict by the rule it prints; one run is a hint, never a verdict."""
import csv
import io
import json
import os

import pytest

from conftest import TINY_FLAGS, assert_one_line_error, run_script
import eval as evaluation
import train
from tinychar import compare
from tinychar.checkpoint import load_checkpoint
from tinychar.metrics import read_metrics
from tinychar.stats import welch_interval

GROUP_FLAGS = ["--steps", "8", "--eval-every", "4", "--ckpt-every", "4", *TINY_FLAGS]


def evaluate(capsys, *args):
    """eval.py's printed output, run in this process (the one-line errors are checked as a user meets them)."""
    capsys.readouterr()
    evaluation.main([*args, "--no-references"])
    return capsys.readouterr().out


def losses(run_dir):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_metrics(os.path.join(run_dir, "metrics.csv"))]


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory):
    """runs/low (a higher learning rate: lower BPC after 8 steps) and runs/high, seeds 1-3 each (~40 s on
    2 cores: the tests that train are marked slow)."""
    root = tmp_path_factory.mktemp("runs")
    train.main(["--seeds", "1", "2", "3", "--out", str(root / "high"), *GROUP_FLAGS])
    train.main(["--seeds", "1", "2", "3", "--out", str(root / "low"), *GROUP_FLAGS, "--lr", "1e-2"])
    return root


@pytest.mark.slow
def test_seeds_train_one_run_per_seed_into_the_groups_folder(two_groups):
    for seed in (1, 2, 3):
        ckpt = load_checkpoint(str(two_groups / "high" / f"s{seed}"))
        assert ckpt["step"] == 8 and ckpt["train_config"]["seed"] == seed
        assert ckpt["train_config"]["out"] == str(two_groups / "high" / f"s{seed}")
    assert losses(two_groups / "high" / "s1") != losses(two_groups / "high" / "s2")
    assert json.loads((two_groups / "high" / "group.json").read_text())["seeds"] == [1, 2, 3]


@pytest.mark.slow
def test_an_interrupted_group_resumes_where_it_stopped(tmp_path, two_groups):
    out = tmp_path / "g"
    train.main(["--seeds", "1", "2", "--out", str(out), *GROUP_FLAGS])
    os.remove(out / "s2" / "step_000008.pt")   # seed 2 stopped at step 4
    train.main(["--out", str(out), "--resume", "--seeds", "3"])   # and one seed more
    sessions = lambda seed: json.loads((out / f"s{seed}" / "run.json").read_text())["sessions"]   # noqa: E731
    assert len(sessions(1)) == 1 and len(sessions(2)) == 2   # the finished run is left alone
    for seed in (2, 3):
        assert losses(out / f"s{seed}") == losses(two_groups / "high" / f"s{seed}")
    assert json.loads((out / "group.json").read_text())["seeds"] == [1, 2, 3]


@pytest.mark.parametrize("flags,message", [
    (["--seeds", "1", "--seed", "2"], "not both"),
    (["--seeds", "1", "1"], "a seed is given twice"),
])
def test_a_group_mistake_is_a_one_line_error(tmp_path, flags, message):
    assert_one_line_error(run_script("train.py", "--out", str(tmp_path / "g"), *flags, *GROUP_FLAGS), message)


@pytest.mark.slow
def test_a_group_is_not_started_twice_nor_resumed_with_other_settings(two_groups):
    out = str(two_groups / "high")
    assert_one_line_error(run_script("train.py", "--seeds", "1", "--out", out, *GROUP_FLAGS), "--resume")
    assert_one_line_error(run_script("train.py", "--out", out, "--resume", "--lr", "1e-3"), "drop --lr")


@pytest.mark.slow
def test_eval_compares_groups_with_intervals_and_a_verdict(two_groups, capsys):
    printed = evaluate(capsys, str(two_groups / "high"), str(two_groups / "low"))
    lines = printed.splitlines()
    high = next(line for line in lines if line.startswith("high ")).split()
    low = next(line for line in lines if line.startswith("low ")).split()
    assert high[3] == "3" and "(the reference)" in " ".join(high)
    assert low[3] == "3" and "lower (better)" in " ".join(low) and "(3 pairs)" in " ".join(low)
    assert any(line.startswith("differences: each group minus high; rule:") for line in lines)
    assert "high/s2" in printed


@pytest.mark.slow
def test_eval_output_as_json_csv_and_markdown_agree(two_groups, capsys):
    runs = [str(two_groups / "high"), str(two_groups / "low")]
    as_json = json.loads(evaluate(capsys, *runs, "--json"))
    as_csv = list(csv.DictReader(io.StringIO(evaluate(capsys, *runs, "--csv"))))
    markdown = evaluate(capsys, *runs, "--markdown")
    low = next(g for g in as_json["groups"] if g["group"] == "low")
    assert low["n"] == 3 and low["low"] < low["mean"] < low["high"]
    assert float(as_csv[1]["mean"]) == pytest.approx(low["mean"]) and as_csv[1]["verdict"] == "lower (better)"
    assert as_json["comparisons"][0]["verdict"] == "lower (better)"
    assert f"| low | full pass | 3 | {low['mean']:.4f} |" in markdown


@pytest.mark.slow
def test_eval_groups_by_glob_against_a_chosen_group_and_plots_bands(two_groups, tmp_path, capsys):
    printed = evaluate(capsys, "--group", f"first={two_groups}/high/s[12]", f"all={two_groups}/low/s*",
                       "--against", "all", "--plot", str(tmp_path / "cmp.png"))
    first = next(line for line in printed.splitlines() if line.startswith("first "))
    assert first.split()[3] == "2" and "higher (worse)" in first and "(2 pairs)" in first
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    assert_one_line_error(run_script("eval.py", str(two_groups / "high"), "--against", "nobody"), "no group")
    assert_one_line_error(run_script("eval.py", "--group", f"x={tmp_path}/none*"), "no run matches")


def rows(group, values, seeds=None):
    return [dict(group=group, label="full pass", val_bpc=v, name=f"{group}/s{s}", seed=s)
            for v, s in zip(values, seeds or range(1, len(values) + 1))]


def test_the_verdict_follows_the_welch_interval_and_one_run_is_a_hint():
    summaries = compare.summarize(rows("base", [2.00, 2.01, 2.02]) + rows("better", [1.90, 1.91, 1.92])
                                  + rows("same", [1.98, 2.02, 2.04]) + rows("one", [1.5]))
    verdicts = {c["group"]: c["verdict"] for c in compare.compare(summaries, "base")}
    assert verdicts == {"better": "lower (better)", "same": "no difference shown at n = 3 vs 3",
                        "one": "a hint (n = 1 vs 3): one run is no verdict"}
    one = summaries[("one", "full pass")]
    assert (one["n"], one["std"], one["low"]) == (1, None, None)


def test_a_groups_description_is_its_mean_std_and_t_interval_and_one_value_has_no_spread():
    described = compare.describe([2.0, 2.1, 2.2])
    # t(2, 0.975) = 4.3027; std 0.1; half width 4.3027 * 0.1 / sqrt(3) = 0.2484
    assert (described["n"], described["mean"], described["std"]) == pytest.approx((3, 2.1, 0.1))
    assert (described["low"], described["high"]) == pytest.approx((2.1 - 0.24841, 2.1 + 0.24841), abs=1e-4)
    assert compare.describe([2.5]) == dict(n=1, mean=2.5, std=None, low=None, high=None)


def test_a_difference_has_a_welch_interval_only_with_two_values_a_side_and_its_side_of_zero_decides():
    found = compare.difference([1.90, 1.91, 1.92], [2.00, 2.01, 2.02])
    assert found["diff"] == pytest.approx(-0.10) and found["welch"] == welch_interval([1.90, 1.91, 1.92], [2.00, 2.01, 2.02])
    assert compare.difference([2.5], [2.0, 2.1]) == dict(diff=pytest.approx(0.45), welch=None)
    # wholly below 0, wholly above, holding 0, and touching it (which holds it)
    intervals = [(-0.2, -0.1), (0.1, 0.2), (-0.1, 0.1), (0.0, 0.1), (-0.1, 0.0)]
    assert [compare.side(dict(low=low, high=high)) for low, high in intervals] == [-1, 1, 0, 0, 0]


def test_the_paired_interval_uses_only_the_seeds_both_groups_share():
    summaries = compare.summarize(rows("base", [2.0, 2.1, 2.3], [1, 2, 3]) + rows("other", [1.5, 1.7, 9.9], [1, 2, 7]))
    paired = compare.compare(summaries, "base")[0]["paired"]
    # seeds 1 and 2: differences -0.5 and -0.4, mean -0.45, sd 0.0707, t(1) 12.706
    assert paired["n"] == 2 and paired["diff"] == pytest.approx(-0.45)
    assert paired["high"] - paired["diff"] == pytest.approx(12.7062 * 0.070711 / 2 ** 0.5, rel=1e-4)


@pytest.mark.slow
def test_groups_with_several_contexts_get_a_row_each_and_other_texts_are_refused(two_groups, tmp_path, capsys):
    printed = evaluate(capsys, str(two_groups / "high"), str(two_groups / "low"), "--context", "8", "16",
                       "--checkpoint", "last", "--csv")
    table = list(csv.DictReader(io.StringIO(printed)))
    assert [(r["group"], r["scored"], r["n"]) for r in table] == [
        ("high", "context 8", "3"), ("high", "context 16", "3"), ("low", "context 8", "3"), ("low", "context 16", "3")]
    assert all(r["verdict"] == "lower (better)" for r in table if r["group"] == "low")
    other = tmp_path / "other.txt"
    other.write_text("another text entirely, " * 400)
    train.main(["--data", str(other), "--out", str(tmp_path / "elsewhere"), "--steps", "2", *TINY_FLAGS])
    assert_one_line_error(run_script("eval.py", str(two_groups / "high"), str(tmp_path / "elsewhere")),
                          "elsewhere", "not scored on the same text")


def test_the_band_is_the_mean_and_t_interval_at_the_steps_all_runs_share():
    curves = {"a": [dict(step=1, val_bpc=2.0), dict(step=2, val_bpc=1.8), dict(step=3, val_bpc=1.0)],
              "b": [dict(step=1, val_bpc=2.2), dict(step=2, val_bpc=2.0)]}
    steps, means, lows, highs = compare.band(curves)
    assert steps == [1, 2] and means == pytest.approx([2.1, 1.9])
    # sd 0.1414 of two runs, t(1) = 12.706: half width 12.706 * 0.1414 / sqrt(2) = 1.2706
    assert [h - m for h, m in zip(highs, means)] == pytest.approx([1.27062] * 2, rel=1e-4)
    assert [m - lo for m, lo in zip(means, lows)] == pytest.approx([1.27062] * 2, rel=1e-4)


def test_the_paired_interval_is_shown_but_welchs_decides():
    # each seed 0.03 lower, seeds far apart: the paired interval excludes 0, Welch's does not
    summaries = compare.summarize(rows("base", [2.00, 2.10, 2.20]) + rows("shifted", [1.97, 2.071, 2.169]))
    found = compare.compare(summaries, "base")[0]
    assert found["paired"]["high"] < 0 < found["welch"]["high"]
    assert found["verdict"] == "no difference shown at n = 3 vs 3"
