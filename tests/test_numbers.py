"""Numbers in the prose come from files: each figure below is recomputed from the committed file
that holds it and must appear, so written, in the document that states it. A rerun that changes
a file, or an edit that changes a number, fails here until the two agree again. (REPORT.md's
tables and the recipe's tables are generated from the files by their scripts; these are the
figures quoted in sentences.)"""
import csv
import glob
import json
import os
import re
import statistics
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "experiments"))
import report  # noqa: E402


def text(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return " ".join(f.read().split())   # sentences wrap: compare with single spaces


def rows(path):
    with open(os.path.join(ROOT, path), newline="") as f:
        return list(csv.DictReader(f))


def eval_bpc(run):
    with open(os.path.join(ROOT, "checkpoints", run, "eval.json")) as f:
        return json.load(f)["runs"][0]["val_bpc"]


def bench(pattern):
    found = re.search(pattern, text("experiments/bench_default.txt"))
    assert found, pattern
    return found.groups()


def span(values, digits):
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def plain_segments():
    """(seed, step, seconds for the 1000 steps before it, full-pass BPC) of the plain bf16 runs."""
    found = []
    for seed in (1, 2, 3):
        previous = 0.0
        for row in rows(f"experiments/plain_baseline/bf16_s{seed}/metrics.csv"):
            found.append((seed, int(row["step"]), float(row["train_s"]) - previous, float(row["val_bpc_full_pass"])))
            previous = float(row["train_s"])
    return found


def claim_matmul_rates():
    fp32, bf16 = (float(x) for x in bench(r"fp32 ([\d.]+) GFLOP/s, bf16 ([\d.]+) GFLOP/s"))
    return "docs/performance.md", f"{bf16 / fp32:.1f}x the fp32 rate here ({bf16:,.1f} vs {fp32:,.1f} GFLOP/s"


def claim_matmul_share():
    share, = bench(r"breakdown of tinychar bf16 \(self CPU time\): matmuls ([\d.]+%)")
    return "docs/performance.md", f"matmuls {share} of the bf16 step's CPU time"


def claim_compiled_generation():
    eager, = bench(r"generation, 1000 characters: ([\d,]+) chars/s with the KV cache")
    compiled, = bench(r"compiled decoding step .*?: ([\d,]+) chars/s")
    ratio = float(compiled.replace(",", "")) / float(eager.replace(",", ""))
    return "docs/flags.md", f"{ratio:.1f}x the characters/s on the 2-core Intel Xeon with AMX ({compiled} vs {eager}"


def claim_plain_undisturbed_segments():
    undisturbed = [s for _, step, s, _ in plain_segments() if s < 150]   # two first segments shared the machine
    return "docs/performance.md", (f"{statistics.mean(undisturbed):.1f} s per 1000 steps, the mean of the "
                                   f"{len(undisturbed)} undisturbed segments")


def claim_plain_against_tinychar():
    tinychar = statistics.mean(eval_bpc(f"study/rerun/baseline_s{seed}") for seed in (1, 2, 3))
    last = [bpc for _, step, _, bpc in plain_segments() if step == 5000]
    best = [min(bpc for seed_, _, _, bpc in plain_segments() if seed_ == seed) for seed in (1, 2, 3)]
    return "docs/performance.md", (f"{tinychar:.4f} ± 0.0051, {span([b - tinychar for b in last], 3)} below the plain "
                                   f"model's 5000-step figures ({span(last, 4)}) and {span([b - tinychar for b in best], 3)} "
                                   f"below its best ({span(best, 4)})")


def claim_position_effect():
    runs = report.load_runs(os.path.join(ROOT, "checkpoints", "study"))
    mean = lambda config, machine: statistics.mean(report.on(runs, config, machine))  # noqa: E731
    xeon, epyc = "Intel Xeon AMX", "AMD EPYC"
    return "REPORT.md", (f"loses {mean('heads4_nopos', xeon) - mean('baseline', xeon):.4f} BPC (heads4_nopos against the "
                         f"baseline, 4 heads each, on the Xeon; the classic ablation, which also drops to one head, "
                         f"loses {mean('ablation', epyc) - mean('baseline', epyc):.2f} on the EPYC)")


def claim_long_baseline_minutes():
    elapsed = float(rows("checkpoints/study/long_baseline_s1/metrics.csv")[-1]["elapsed_s"])
    return "experiments/recipe/README.md", f"{elapsed / 60:.1f} minutes of training by its `elapsed_s`, {elapsed:.0f} s)"


def claim_c2_elapsed():
    elapsed = {os.path.basename(os.path.dirname(path)): float(rows(os.path.relpath(path, ROOT))[-1]["elapsed_s"])
               for path in glob.glob(os.path.join(ROOT, "checkpoints/recipe/b18000/dropout0.[12]*_s1/metrics.csv"))
               + [os.path.join(ROOT, "checkpoints/recipe/b18000/wd0.3_s1/metrics.csv")]
               if "+" not in path}
    others = [v for k, v in elapsed.items() if k != "wd0.3_s1"]
    return "experiments/recipe/README.md", (f"`elapsed_s` was {min(others):.0f}-{max(others):.0f} s (25-26 minutes), not 30 "
                                            f"(wd0.3_s1's {elapsed['wd0.3_s1']:.0f} s excepted")


def claim_minutes_curves():
    def at_five_minutes(pattern):
        found = []
        for run in glob.glob(os.path.join(ROOT, "checkpoints/recipe", pattern)):
            with open(os.path.join(run, "curve.json")) as f:
                curve = json.load(f)
            minutes = {int(r["step"]): float(r["elapsed_s"]) / 60 for r in rows(os.path.relpath(run, ROOT) + "/metrics.csv")}
            found += [(minutes[s], b) for s, b in zip(curve["steps"], curve["val_bpc"]) if 4.4 <= minutes.get(s, 0) <= 5.0]
        return found
    deep, shallow = at_five_minutes("m30/cpu30_s1[123]"), at_five_minutes("m[57]/cpu[57]_s1[123]")
    return "experiments/recipe/README.md", (
        f"far behind the 2-layer one early ({span([b for _, b in deep], 3)} against the 2-layer cpu5 and cpu7 runs' "
        f"{span([b for _, b in shallow], 3)} at {span([m for m, _ in shallow + deep], 1)} minutes)")


def claim_recipe_budgets():
    minutes = sorted(int(os.path.basename(p)[1:]) for p in glob.glob(os.path.join(ROOT, "checkpoints/recipe/m*"))
                     if re.fullmatch(r"m\d+", os.path.basename(p)))   # m30_clock: later code, the same budget
    listed = ", ".join(str(m) for m in minutes[:-1]) + f" and {minutes[-1]}"
    return "experiments/recipe/README.md", f"Tiny Shakespeare in {listed} minutes"


def claim_multiplicity():
    runs = report.load_runs(os.path.join(ROOT, "checkpoints", "study"))
    xeon = "Intel Xeon AMX"

    def p_value(a, b):
        w = report.welch_interval(report.on(runs, a, xeon), report.on(runs, b, xeon))
        return 2 * (1 - report.student_t_cdf(abs(w["diff"]) / w["se"], w["df"]))
    rows = [(a, b, m) for _, a, b in report.EFFECTS for m in report.machines_of(runs, [a, b])]
    intervals = sum(min(len(report.on(runs, a, m)), len(report.on(runs, b, m))) >= 2 for a, b, m in rows)
    return "REPORT.md", (
        f"The table holds {intervals} intervals at 95% each ({len(rows)} rows; {len(rows) - intervals} are one-seed hints)"
        f", with no correction for multiplicity: where no factor had any effect, about one interval in twenty would "
        f"still exclude 0. Read with Bonferroni's correction instead (two-sided Welch p below 0.05 / {intervals} = "
        f"{0.05 / intervals:.4f}), the verdicts that stand are the positions (with 1 or 4 heads, and the classic "
        f"ablation), RoPE and ALiBi against none, ALiBi worse than sinusoidal (p = {p_value('heads4_alibi', 'baseline'):.4f}"
        f"), learned positions from N(0, 0.02) worse than sinusoidal (p = {p_value('heads4_learned', 'baseline'):.4f}) "
        f"and 4 layers against 2 without positions (p = {p_value('layers4_nopos', 'heads4_nopos'):.4f}); two do not: "
        f"RoPE better than ALiBi (p = {p_value('heads4_rope', 'heads4_alibi'):.3f}) and the sinusoidal start better "
        f"than N(0, 0.02) for learned positions (p = {p_value('heads4_learnedsin', 'heads4_learned'):.3f})")


def shares_of_budget(pattern, minutes):
    return [float(rows(os.path.relpath(path, ROOT))[-1]["elapsed_s"]) / (60 * minutes)
            for path in sorted(glob.glob(os.path.join(ROOT, pattern, "metrics.csv")))]


def claim_clock_rows():
    ends = shares_of_budget("checkpoints/recipe/m30_clock/cpu30_s1[123]", 30)
    clock = [eval_bpc(f"recipe/m30_clock/cpu30_s{seed}") for seed in (11, 12, 13)]
    first = [eval_bpc(f"recipe/m30/cpu30_s{seed}") for seed in (11, 12, 13)]
    mean = statistics.mean(clock)
    high = mean + report.student_t_quantile(0.975, 2) * statistics.stdev(clock) / 3 ** 0.5
    welch = report.welch_interval(clock, first)
    return "README.md", (f"Today's three cpu30 runs ended at {100 * ends[0]:.1f}%, {100 * ends[1]:.1f}% and "
                         f"{100 * ends[2]:.1f}% of their 30 minutes, each at `--min-lr`"), (
        f"Their mean, {mean:.4f}, meets the 30-minute target, but not with confidence: the interval reaches {high:.4f}"
        f" (the first runs' margin was 0.0008; today's rows minus the first: {welch['diff']:+.4f} BPC, Welch 95% "
        f"interval [{welch['low']:+.3f}, {welch['high']:+.3f}], no difference)")


def claim_loaded_runs():
    once, = shares_of_budget("experiments/budget/cpu7_s1_load120", 7)
    clock, = shares_of_budget("experiments/budget/cpu7_s1_load120_replan2", 7)
    return "README.md", (f"ended at {100 * clock:.1f}% of its budget with its schedule complete; the plan made once "
                         f"let the ceiling cut the schedule short, at {100 * once:.1f}%")


CLAIMS = [claim_matmul_rates, claim_matmul_share, claim_compiled_generation, claim_plain_undisturbed_segments,
          claim_plain_against_tinychar, claim_position_effect, claim_long_baseline_minutes, claim_c2_elapsed,
          claim_minutes_curves, claim_recipe_budgets, claim_multiplicity, claim_clock_rows, claim_loaded_runs]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.__name__[6:] for c in CLAIMS])
def test_a_figure_quoted_in_prose_is_the_one_its_file_gives(claim):
    document, *sentences = claim()
    for sentence in sentences:
        assert sentence in text(document), f"{document} should say: {sentence}"

