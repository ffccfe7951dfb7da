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
sys.path.insert(0, os.path.join(ROOT, "experiments", "recipe"))
import report  # noqa: E402
from summarize import TARGETS  # noqa: E402
from tinychar import stats  # noqa: E402


def text(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return " ".join(f.read().split())   # sentences wrap: compare with single spaces


def rows(path):
    with open(os.path.join(ROOT, path), newline="") as f:
        return list(csv.DictReader(f))


def eval_bpc(run):
    with open(os.path.join(ROOT, "experiments", run, "eval.json")) as f:
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
    tinychar = statistics.mean(eval_bpc(f"study/runs/rerun/baseline_s{seed}") for seed in (1, 2, 3))
    last = [bpc for _, step, _, bpc in plain_segments() if step == 5000]
    best = [min(bpc for seed_, _, _, bpc in plain_segments() if seed_ == seed) for seed in (1, 2, 3)]
    return "docs/performance.md", (f"{tinychar:.4f} ± 0.0051, {span([b - tinychar for b in last], 3)} below the plain "
                                   f"model's 5000-step figures ({span(last, 4)}) and {span([b - tinychar for b in best], 3)} "
                                   f"below its best ({span(best, 4)})")


def claim_position_effect():
    runs = report.load_runs(os.path.join(ROOT, "experiments", "study", "runs"))
    mean = lambda config, machine: statistics.mean(report.on(runs, config, machine))  # noqa: E731
    xeon, epyc = "Intel Xeon AMX", "AMD EPYC"
    return "REPORT.md", (f"loses {mean('heads4_nopos', xeon) - mean('baseline', xeon):.4f} BPC (heads4_nopos against the "
                         f"baseline, 4 heads each, on the Xeon; the classic ablation, which also drops to one head, "
                         f"loses {mean('ablation', epyc) - mean('baseline', epyc):.2f} on the EPYC)")


def claim_long_baseline_minutes():
    elapsed = float(rows("experiments/study/runs/long_baseline_s1/metrics.csv")[-1]["elapsed_s"])
    return "experiments/recipe/README.md", f"{elapsed / 60:.1f} minutes of training by its `elapsed_s`, {elapsed:.0f} s)"


def claim_c2_elapsed():
    elapsed = {os.path.basename(os.path.dirname(path)): float(rows(os.path.relpath(path, ROOT))[-1]["elapsed_s"])
               for path in glob.glob(os.path.join(ROOT, "experiments/recipe/runs/b18000/dropout0.[12]*_s1/metrics.csv"))
               + [os.path.join(ROOT, "experiments/recipe/runs/b18000/wd0.3_s1/metrics.csv")]
               if "+" not in path}
    others = [v for k, v in elapsed.items() if k != "wd0.3_s1"]
    return "experiments/recipe/README.md", (f"`elapsed_s` was {min(others):.0f}-{max(others):.0f} s (25-26 minutes), not 30 "
                                            f"(wd0.3_s1's {elapsed['wd0.3_s1']:.0f} s excepted")


def claim_minutes_curves():
    def at_five_minutes(pattern):
        found = []
        for run in glob.glob(os.path.join(ROOT, "experiments/recipe/runs", pattern)):
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
    minutes = sorted(int(os.path.basename(p)[1:]) for p in glob.glob(os.path.join(ROOT, "experiments/recipe/runs/m*"))
                     if re.fullmatch(r"m\d+", os.path.basename(p)))   # m30_clock: later code, the same budget
    listed = ", ".join(str(m) for m in minutes[:-1]) + f" and {minutes[-1]}"
    return "experiments/recipe/README.md", f"Tiny Shakespeare in {listed} minutes"


def claim_multiplicity():
    runs = report.load_runs(os.path.join(ROOT, "experiments", "study", "runs"))
    xeon = "Intel Xeon AMX"

    def p_value(a, b):
        w = stats.welch_interval(report.on(runs, a, xeon), report.on(runs, b, xeon))
        return 2 * (1 - stats.student_t_cdf(abs(w["diff"]) / w["se"], w["df"]))
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
    ends = shares_of_budget("experiments/recipe/runs/m30_clock/cpu30_s1[123]", 30)
    clock = [eval_bpc(f"recipe/runs/m30_clock/cpu30_s{seed}") for seed in (11, 12, 13)]
    first = [eval_bpc(f"recipe/runs/m30/cpu30_s{seed}") for seed in (11, 12, 13)]
    mean = statistics.mean(clock)
    high = mean + stats.student_t_quantile(0.975, 2) * statistics.stdev(clock) / 3 ** 0.5
    welch = stats.welch_interval(clock, first)
    return "experiments/recipe/README.md", (f"Today's three cpu30 runs ended at {100 * ends[0]:.1f}%, {100 * ends[1]:.1f}% and "
                         f"{100 * ends[2]:.1f}% of their 30 minutes, each at `--min-lr`"), (
        f"Their mean, {mean:.4f}, meets the 30-minute target, but not with confidence: the interval reaches {high:.4f}"
        f" (the first runs' margin was 0.0008; today's rows minus the first: {welch['diff']:+.4f} BPC, Welch 95% "
        f"interval [{welch['low']:+.3f}, {welch['high']:+.3f}], no difference)")


def claim_loaded_runs():
    once, = shares_of_budget("experiments/budget/cpu7_s1_load120", 7)
    clock, = shares_of_budget("experiments/budget/cpu7_s1_load120_replan2", 7)
    return "experiments/recipe/README.md", (f"ended at {100 * clock:.1f}% of its budget with its schedule complete; the plan made once "
                         f"let the ceiling cut the schedule short, at {100 * once:.1f}%")


def tokens_per_s(log):
    """The mean of a run's tokens/s over its validations (training steps alone), from its log."""
    found = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) tokens/s", text(log))]
    return statistics.mean(found)


def claim_short_clock_rows():
    """experiments/recipe/README.md's rows of today's cpu7 and cpu5 runs, and the machine's pace."""
    claims = []
    for minutes in (7, 5):
        bpcs = []
        for seed in (11, 12, 13):
            run = f"recipe/runs/m{minutes}_clock/cpu{minutes}_s{seed}"
            last = rows(f"experiments/{run}/metrics.csv")[-1]
            bpcs.append(eval_bpc(run))
            claims.append(f"| cpu{minutes}, {seed} |")
            claims.append(f"| {int(last['step']):,} | {float(last['elapsed_s']):.1f} s "
                          f"({100 * float(last['elapsed_s']) / (60 * minutes):.1f}%) | {bpcs[-1]:.4f} |")
        mean, half = statistics.mean(bpcs), stats.student_t_quantile(0.975, 2) * statistics.stdev(bpcs) / 3 ** 0.5
        claims.append(f"**{mean:.4f} ± {statistics.stdev(bpcs):.4f}**, 95% t interval [{mean - half:.4f}, "
                      f"{mean + half:.4f}]" if minutes == 7 else f"**{mean:.4f} ± {statistics.stdev(bpcs):.4f}**, "
                      f"[{mean - half:.4f}, {mean + half:.4f}]")

    for minutes, said in ((7, "Against the first rows ({first:.4f}): {diff:+.4f} BPC, Welch 95% interval "
                                "[{low:+.3f}, {high:+.3f}]"),
                          (5, "against the first rows ({first:.4f}): {diff:+.4f}, Welch 95% interval [{low:+.3f}, "
                              "{high:+.3f}]")):
        today, first = preset_rows(f"m{minutes}_clock", minutes)[0], preset_rows(f"m{minutes}", minutes)[0]
        claims.append(said.format(first=statistics.mean(first), **stats.welch_interval(today, first)))

    def pace(pattern):
        return [tokens_per_s(os.path.relpath(log, ROOT)) for log in glob.glob(os.path.join(ROOT, pattern))]
    for label, pattern in (("their training ran at", "experiments/recipe/runs/m5_clock/cpu5_s1?.log"),
                           ("the first cpu5 runs' at", "experiments/recipe/runs/m5/cpu5_s1?.log"),
                           ("just before them with the same code, at", "experiments/recipe/runs/m7_clock/cpu7_s1?.log"),
                           ("(the first cpu7 runs:", "experiments/recipe/runs/m7/cpu7_s1?.log")):
        found = pace(pattern)
        claims.append(f"{label} {round(min(found), -2):,.0f}-{round(max(found), -2):,.0f}")
    return ("experiments/recipe/README.md", *claims)


def preset_rows(folder, minutes):
    """(BPCs, shares of the budget) of a preset's seeds 11-13 in experiments/recipe/runs/<folder>/."""
    runs = [f"recipe/runs/{folder}/cpu{minutes}_s{seed}" for seed in (11, 12, 13)]
    return [eval_bpc(run) for run in runs], shares_of_budget(f"experiments/recipe/runs/{folder}/cpu{minutes}_s1[123]", minutes)


def claim_readme_short_rows():
    (today7, ends7), (first7, _) = preset_rows("m7_clock", 7), preset_rows("m7", 7)
    (today5, _), (first5, _) = preset_rows("m5_clock", 5), preset_rows("m5", 5)
    mean, half = statistics.mean(today7), stats.student_t_quantile(0.975, 2) * statistics.stdev(today7) / 3 ** 0.5
    w7, w5 = stats.welch_interval(today7, first7), stats.welch_interval(today5, first5)
    pace = [[tokens_per_s(os.path.relpath(log, ROOT)) for log in glob.glob(os.path.join(ROOT, pattern))]
            for pattern in ("experiments/recipe/runs/m5_clock/cpu5_s1?.log", "experiments/recipe/runs/m5/cpu5_s1?.log")]
    rows5 = shares_of_budget("experiments/recipe/runs/m5_clock/cpu5_wsd_s2[123]", 5)   # README's 5-minute row
    return "experiments/recipe/README.md", (
        f"Today's cpu7 runs ended at {100 * min(ends7):.1f}-{100 * max(ends7):.1f}% of their 7 minutes, the cpu5 "
        f"rows' at {100 * min(rows5):.1f}-{100 * max(rows5):.1f}% of their 5"), (
        f"cpu7's mean is {mean:.4f}, its interval [{mean - half:.4f}, {mean + half:.4f}] wholly above {TARGETS[7]} (the first "
        f"rows: {statistics.mean(first7):.4f}; today's minus those: {w7['diff']:+.4f} BPC, Welch 95% interval "
        f"[{w7['low']:+.3f}, {w7['high']:+.3f}], no difference)"), (
        f"({round(min(pace[0]), -2):,.0f}-{round(max(pace[0]), -2):,.0f} training tokens/s against the first cpu5 runs' "
        f"{round(min(pace[1]), -2):,.0f}-{round(max(pace[1]), -2):,.0f})"), (
        f"and {statistics.mean(today5):.4f} against {statistics.mean(first5):.4f} ({w5['diff']:+.4f}, Welch 95% interval "
        f"[{w5['low']:+.3f}, {w5['high']:+.3f}])")


def claim_averaging():
    """experiments/recipe/README.md's reading of the cpu7_ema runs."""
    average, trained = scored_twice("m7_clock", "cpu7_ema", (11, 12, 13))
    preset = preset_rows("m7_clock", 7)[0]
    gaps = [a - t for a, t in zip(average, trained)]
    mean, half = statistics.mean(gaps), stats.student_t_quantile(0.975, 2) * statistics.stdev(gaps) / 3 ** 0.5
    welch, own = stats.welch_interval(average, preset), stats.welch_interval(trained, preset)

    def steps_and_pace(pattern):
        logs = sorted(glob.glob(os.path.join(ROOT, pattern)))
        steps = [int(rows(os.path.relpath(log[:-4], ROOT) + "/metrics.csv")[-1]["step"]) for log in logs]
        return steps, [tokens_per_s(os.path.relpath(log, ROOT)) for log in logs]
    (ema_steps, ema_pace), (steps, pace) = (steps_and_pace("experiments/recipe/runs/m7_clock/cpu7_ema_s1?.log"),
                                            steps_and_pace("experiments/recipe/runs/m7_clock/cpu7_s1?.log"))
    return "experiments/recipe/README.md", (
        f"by {-max(gaps):.4f}-{-min(gaps):.4f} BPC (paired mean {mean:+.4f}, 95% t interval [{mean - half:+.4f}, "
        f"{mean + half:+.4f}]), but against today's cpu7 rows the difference, {welch['diff']:+.4f} BPC, has a Welch 95% "
        f"interval of [{welch['low']:+.3f}, {welch['high']:+.3f}]"), (
        f"came out {own['diff']:+.4f} against the cpu7 rows, [{own['low']:+.3f}, {own['high']:+.3f}]"), (
        f"The average's mean, {statistics.mean(average):.4f}, misses the 7-minute target ({TARGETS[7]}) by "
        f"{statistics.mean(average) - TARGETS[7]:.4f}"), (
        f"these runs trained {min(ema_steps):,}-{max(ema_steps):,} steps at {round(min(ema_pace), -3):,.0f}-"
        f"{round(max(ema_pace), -3):,.0f} tokens/s, today's cpu7 runs {min(steps):,}-{max(steps):,} at "
        f"{round(min(pace), -2):,.0f}-{round(max(pace), -2):,.0f}")


def claim_best_is_the_last():
    """How often best.pt is the last checkpoint in today's timed runs (experiments/recipe/README.md)."""
    runs, exceptions = sorted(glob.glob(os.path.join(ROOT, "experiments/recipe/runs/m*_clock/*_s[123][123]", "eval.json"))), []
    for path in runs:
        scored = [r for r in rows(os.path.relpath(os.path.dirname(path), ROOT) + "/metrics.csv") if r["checkpoint_bpc"]]
        best = min(scored, key=lambda r: float(r["checkpoint_bpc"]))
        if best is not scored[-1]:
            arm, seed = re.fullmatch(r"(.+)_s(\d+)", os.path.basename(os.path.dirname(path))).groups()
            exceptions.append(f"{arm} seed {seed}: step {int(best['step']):,}'s, "
                              f"{float(scored[-1]['checkpoint_bpc']) - float(best['checkpoint_bpc']):.4f} BPC below the last")
    return "experiments/recipe/README.md", (f"in {len(runs) - len(exceptions)} of today's {len(runs)} timed runs"), *exceptions


def claim_best_in_summary():
    counted = claim_best_is_the_last()[1]
    return "experiments/recipe/README.md", f"best.pt is the last checkpoint {counted}"


def claim_late_dropout_hint():
    """experiments/recipe/README.md's reading of the one cpu30_late_ema run."""
    run = "recipe/runs/m30_clock/cpu30_late_ema_s11"
    (average,), (trained,) = scored_twice("m30_clock", "cpu30_late_ema", (11,))
    preset = statistics.mean(preset_rows("m30_clock", 30)[0])
    metrics = rows(f"experiments/{run}/metrics.csv")
    before = [float(r["tokens_per_s"]) for r in metrics if int(r["step"]) <= 4500]
    after = [float(r["tokens_per_s"]) for r in metrics if int(r["step"]) >= 5500]
    lowest = min((r for r in metrics if int(r["step"]) <= 5000), key=lambda r: float(r["val_bpc"]))
    at_5000 = next(r for r in metrics if r["step"] == "5000")
    return "experiments/recipe/README.md", (
        f"({round(min(before), -2):,.0f}-{round(max(before), -2):,.0f} tokens/s), 1.7x as fast as with it "
        f"({round(min(after), -2):,.0f}-{round(max(after), -2):,.0f} tokens/s after)"), (
        f"down to {int(metrics[-1]['step']):,} steps (it ended at {100 * float(metrics[-1]['elapsed_s']) / 1800:.1f}% of "
        f"its budget"), (
        f"lowest at step {int(lowest['step']):,} ({float(lowest['val_bpc']):.4f}) and rose to {float(at_5000['val_bpc']):.4f} "
        f"by step 5,000"), f"dropout it fell again, to {float(metrics[-1]['val_bpc']):.4f}", (
        f"Its trained weights scored {trained:.4f}, level with today's cpu30 rows (mean {preset:.4f})"), (
        f"Its average scored {average:.4f}, {trained - average:.4f} below its own trained weights")


def scored_twice(folder, arm, seeds):
    """([BPC of the average], [BPC of the weights as trained]) of runs with --ema (run.py scores both)."""
    average, trained = [], []
    for seed in seeds:
        run = f"recipe/runs/{folder}/{arm}_s{seed}"
        average.append(eval_bpc(run))
        with open(os.path.join(ROOT, "experiments", run, "eval_trained.json")) as f:
            trained.append(json.load(f)["runs"][0]["val_bpc"])
    return average, trained


def claim_levers_in_summary():
    """README's paragraph on the levers, from the same files as experiments/recipe/README.md's."""
    average, trained = scored_twice("m7_clock", "cpu7_ema", (11, 12, 13))
    gaps = [a - t for a, t in zip(average, trained)]
    mean, half = statistics.mean(gaps), stats.student_t_quantile(0.975, 2) * statistics.stdev(gaps) / 3 ** 0.5
    welch = stats.welch_interval(average, preset_rows("m7_clock", 7)[0])
    (late_average,), (late_trained,) = scored_twice("m30_clock", "cpu30_late_ema", (11,))
    late_steps = rows("experiments/recipe/runs/m30_clock/cpu30_late_ema_s11/metrics.csv")[-1]["step"]
    return "experiments/recipe/README.md", (
        f"(paired mean {mean:+.4f}, 95% t interval [{mean - half:+.4f}, {mean + half:+.4f}]), but against today's cpu7 "
        f"rows the difference, {welch['diff']:+.4f} BPC, has a Welch 95% interval of [{welch['low']:+.3f}, "
        f"{welch['high']:+.3f}]"), (
        f"its mean, {statistics.mean(average):.4f}, misses the 7-minute target by {statistics.mean(average) - TARGETS[7]:.4f}"), (
        f"the run got {int(late_steps):,} steps, but its trained weights scored {late_trained:.4f}, level with the cpu30 "
        f"rows (mean {statistics.mean(preset_rows('m30_clock', 30)[0]):.4f}); its average {late_average:.4f}")


def wsd_figures():
    """(BPCs of cpu7_wsd's seeds, their mean, the Welch interval against today's cpu7, the t interval's top)."""
    wsd = [eval_bpc(f"recipe/runs/m7_clock/cpu7_wsd_s{seed}") for seed in (11, 12, 13)]
    mean = statistics.mean(wsd)
    top = mean + stats.student_t_quantile(0.975, 2) * statistics.stdev(wsd) / 3 ** 0.5
    return wsd, mean, stats.welch_interval(wsd, preset_rows("m7_clock", 7)[0]), top


def claim_wsd():
    wsd, mean, welch, top = wsd_figures()
    return "experiments/recipe/README.md", (
        f"{wsd[0]:.4f}, {wsd[1]:.4f} and {wsd[2]:.4f} (mean {mean:.4f}), against today's cpu7 rows "
        f"{welch['diff']:+.4f} BPC, Welch 95% interval [{welch['low']:+.4f}, {welch['high']:+.4f}]"), (
        f"the interval reaches {top:.4f})")


def claim_wsd_in_summary():
    wsd, mean, welch, top = wsd_figures()
    return "experiments/recipe/README.md", (
        f"3 seeds: {welch['diff']:+.4f} BPC against today's cpu7 rows, Welch 95% interval [{welch['low']:+.4f}, "
        f"{welch['high']:+.4f}]"), f"its mean, {mean:.4f}, is at or below", f"the interval reaches {top:.4f})"


def wsd_confirmations():
    """(cpu7_wsd's fresh seeds' BPCs, their Welch interval against today's cpu7 rows; cpu5's and
    cpu5_wsd's fresh seeds' BPCs, the Welch interval of the second against the first)."""
    fresh7 = [eval_bpc(f"recipe/runs/m7_clock/cpu7_wsd_s{seed}") for seed in (21, 22, 23)]
    cosine5, wsd5 = ([eval_bpc(f"recipe/runs/m5_clock/{arm}_s{seed}") for seed in (21, 22, 23)] for arm in ("cpu5", "cpu5_wsd"))
    return (fresh7, stats.welch_interval(fresh7, preset_rows("m7_clock", 7)[0]),
            cosine5, wsd5, stats.welch_interval(wsd5, cosine5))


def steps_of(pattern):
    found = [int(rows(os.path.relpath(path, ROOT))[-1]["step"])
             for path in glob.glob(os.path.join(ROOT, "experiments/recipe/runs", pattern, "metrics.csv"))]
    return f"{min(found):,}-{max(found):,}"


def claim_wsd_confirmed():
    """experiments/recipe/README.md's reading of WSD's fresh seeds at 7 and 5 minutes and its 5-minute seeds 11-13."""
    fresh7, w7, cosine5, wsd5, w5 = wsd_confirmations()
    mean = statistics.mean(fresh7)
    half = stats.student_t_quantile(0.975, 2) * statistics.stdev(fresh7) / 3 ** 0.5
    chose5 = [eval_bpc(f"recipe/runs/m5_clock/cpu5_wsd_s{seed}") for seed in (11, 12, 13)]
    w5_chose = stats.welch_interval(chose5, preset_rows("m5_clock", 5)[0])
    return "experiments/recipe/README.md", (
        f"{fresh7[0]:.4f}, {fresh7[1]:.4f} and {fresh7[2]:.4f} (mean {mean:.4f}), against today's cpu7 rows "
        f"{w7['diff']:+.4f} BPC, Welch 95% interval [{w7['low']:+.4f}, {w7['high']:+.4f}]"), (
        f"({steps_of('m7_clock/cpu7_wsd_s2[123]')} steps against the cpu7 rows' {steps_of('m7_clock/cpu7_s1[123]')})"), (
        f"Their mean meets the 7-minute target by {TARGETS[7] - mean:.4f} ({mean:.4f} against {TARGETS[7]}), by the "
        f"mean alone: their t interval [{mean - half:.4f}, {mean + half:.4f}] is far from it"), (
        f"{chose5[0]:.4f}, {chose5[1]:.4f} and {chose5[2]:.4f} (mean {statistics.mean(chose5):.4f}), against today's "
        f"cpu5 rows {w5_chose['diff']:+.4f} BPC, Welch 95% interval [{w5_chose['low']:+.4f}, {w5_chose['high']:+.4f}]"), (
        f"These runs trained {steps_of('m5_clock/cpu5_wsd_s1[123]')} steps, the cpu5 rows {steps_of('m5_clock/cpu5_s1[123]')}"), (
        f"Cosine {cosine5[0]:.4f}, {cosine5[1]:.4f} and {cosine5[2]:.4f} ({steps_of('m5_clock/cpu5_s2[123]')} steps), "
        f"WSD {wsd5[0]:.4f}, {wsd5[1]:.4f} and {wsd5[2]:.4f} ({steps_of('m5_clock/cpu5_wsd_s2[123]')} steps): "
        f"{w5['diff']:+.4f} BPC, Welch 95% interval [{w5['low']:+.4f}, {w5['high']:+.4f}]")


def claim_wsd_confirmed_in_summary():
    fresh7, w7, cosine5, wsd5, w5 = wsd_confirmations()
    wsd30 = eval_bpc("recipe/runs/m30_clock/cpu30_wsd_s11")
    return "experiments/recipe/README.md", (f"alternately with cosine runs of the same seeds: {w5['diff']:+.4f} BPC, Welch 95% interval "
                         f"[{w5['low']:+.4f}, {w5['high']:+.4f}]: **kept**"), (
        f"did not confirm it ({w7['diff']:+.4f}, [{w7['low']:+.4f}, {w7['high']:+.4f}])"), f"WSD: {wsd30:.4f};"


def claim_wsd_30_hint():
    run = "recipe/runs/m30_clock/cpu30_wsd_s11"
    last = rows(f"experiments/{run}/metrics.csv")[-1]
    bpc, preset = eval_bpc(run), statistics.mean(preset_rows("m30_clock", 30)[0])
    return "experiments/recipe/README.md", (
        f"{bpc:.4f} after {int(last['step']):,} steps ({float(last['elapsed_s']):,.0f} s, "
        f"{100 * float(last['elapsed_s']) / 1800:.1f}% of the budget), {bpc - preset:+.4f} against today's cpu30 rows' "
        f"mean ({preset:.4f})")


def dropout_costs():
    """{(precision, mask): (ms, ratio)} as experiments/recipe/dropout_cost.txt printed them."""
    found = re.findall(r"(bf16|fp32), (?:dropout 0\.1, )?([\w. ]+?) +([\d.]+) ms/step \(min [\d.]+, max [\d.]+\) "
                       r"+([\d.]+)x", text("experiments/recipe/dropout_cost.txt"))
    return {(precision, mask): (ms, ratio) for precision, mask, ms, ratio in found}


def claim_dropout_masks():
    cost, masks = dropout_costs(), ("F.dropout", "fp32 uniforms", "model.dropout")
    (f_ms, f_x), (u_ms, u_x), (k_ms, k_x) = (cost["bf16", mask] for mask in masks)
    return "experiments/recipe/README.md", (
        f"costs {f_x}x the step without it with F.dropout's mask, {u_x}x with the fp32 uniforms model.py drew until "
        f"now and **{k_x}x** with keep_mask ({f_ms}, {u_ms} and {k_ms} ms against {cost['bf16', 'no dropout'][0]}); "
        f"in fp32 {cost['fp32', masks[0]][1]}x, {cost['fp32', masks[1]][1]}x and {cost['fp32', masks[2]][1]}x")


def claim_dropout_masks_in_summary():
    cost = dropout_costs()
    return "experiments/recipe/README.md", (f"dropout-0.1 step costs {cost['bf16', 'model.dropout'][1]}x the step without dropout, "
                         f"not {cost['bf16', 'fp32 uniforms'][1]}x")


def claim_masks_30_hint():
    """experiments/recipe/README.md's reading of the one cpu30_masks run."""
    run, pace = "recipe/runs/m30_clock/cpu30_masks_s11", []
    for name in ("cpu30_masks_s11", "cpu30_s1[123]"):
        pace.append([float(r["tokens_per_s"]) for path in glob.glob(os.path.join(ROOT, "experiments/recipe/runs/m30_clock", name))
                     for r in rows(os.path.relpath(path, ROOT) + "/metrics.csv")])
    last = rows(f"experiments/{run}/metrics.csv")[-1]
    bpc, preset = eval_bpc(run), preset_rows("m30_clock", 30)[0]
    return "experiments/recipe/README.md", (
        f"trained at {round(min(pace[0]), -2):,.0f}-{round(max(pace[0]), -2):,.0f} tokens/s (the cpu30 rows: "
        f"{round(min(pace[1]), -2):,.0f}-{round(max(pace[1]), -2):,.0f}) and got {int(last['step']):,} steps (the rows: "
        f"{steps_of('m30_clock/cpu30_s1[123]')}) in {float(last['elapsed_s']):,.0f} s; it scored {bpc:.4f}, "
        f"{bpc - statistics.mean(preset):+.4f} against the rows' mean ({statistics.mean(preset):.4f}), below all three rows "
        f"({min(preset):.4f}-{max(preset):.4f})")


def claim_masks_30_hint_in_summary():
    return "experiments/recipe/README.md", f"the cheaper masks: {eval_bpc('recipe/runs/m30_clock/cpu30_masks_s11'):.4f} in " \
        f"{int(rows('experiments/recipe/runs/m30_clock/cpu30_masks_s11/metrics.csv')[-1]['step']):,} steps"


def claim_auto_demo():
    """The choices of --preset auto, as experiments/recipe/auto_demo.txt printed them."""
    chosen = []
    for block in text("experiments/recipe/auto_demo.txt").split(" $ ")[1:]:
        found = re.search(r"(\S+) +\d+ layers[^~]*? +[\d.]+ ms a step, ~([\d,]+) steps[^:]*: ([\d.]+) BPC <- chosen",
                          block)
        chosen.append(f"{found[1]}, ~{found[2]} steps, {found[3]}")
    assert len(chosen) == 8
    return ("experiments/recipe/README.md", *chosen)


def alternated_7():
    """(cosine BPCs, WSD BPCs, Welch interval of WSD - cosine) of cpu7 and cpu7_wsd at seeds 31-33, run in turns."""
    cosine, wsd = ([eval_bpc(f"recipe/runs/m7_clock/{arm}_s{seed}") for seed in (31, 32, 33)] for arm in ("cpu7", "cpu7_wsd"))
    return cosine, wsd, stats.welch_interval(wsd, cosine)


def claim_wsd_alternated_7():
    """experiments/recipe/README.md's reading of the alternated 7-minute runs."""
    cosine, wsd, welch = alternated_7()
    return "experiments/recipe/README.md", (
        f"Cosine {cosine[0]:.4f}, {cosine[1]:.4f} and {cosine[2]:.4f} (mean {statistics.mean(cosine):.4f}; "
        f"{steps_of('m7_clock/cpu7_s3[123]')} steps), WSD {wsd[0]:.4f}, {wsd[1]:.4f} and {wsd[2]:.4f} (mean "
        f"{statistics.mean(wsd):.4f}; {steps_of('m7_clock/cpu7_wsd_s3[123]')} steps): {welch['diff']:+.4f} BPC, Welch 95% "
        f"interval [{welch['low']:+.4f}, {welch['high']:+.4f}]"), (
        f"fresh cosine runs scored {statistics.mean(preset_rows('m7_clock', 7)[0]) - statistics.mean(cosine):.3f} below "
        f"those rows with more steps in the same 7 minutes ({steps_of('m7_clock/cpu7_s3[123]')} against "
        f"{steps_of('m7_clock/cpu7_s1[123]')})")


def claim_wsd_alternated_7_in_summary():
    welch = alternated_7()[2]
    return "experiments/recipe/README.md", (f"nor did seeds 31-33 run alternately with cosine runs ({welch['diff']:+.4f}, "
                         f"[{welch['low']:+.4f}, {welch['high']:+.4f}]): cpu7 stays cosine")


def claim_eval_speed():
    """docs/performance.md's reading of experiments/eval_speed.txt, and the share of the work skipped."""
    from model import ModelConfig
    found = re.findall(r"(baseline|cpu30) \(\d layers x 256\) +(fp32|bf16) +([\d,]+) +([\d,]+) +([\d.]+)x(?: +([+-]\d\.\de[+-]\d+))?",
                       text("experiments/eval_speed.txt"))
    ratios = {}
    for shape, precision, _, _, ratio, _ in found:
        ratios.setdefault((shape, precision), []).append(ratio)
    assert all(float(difference) == 0 for *_, difference in found if difference)   # "the same to the last bit"

    def spread(key):
        low, high = min(ratios[key], key=float), max(ratios[key], key=float)
        return f"{low}x" if low == high else f"{low}-{high}x"

    second = {(shape, precision): scored for shape, precision, _, scored, _, difference in found if difference}
    skipped = []
    for layers in (2, 4):
        cfg = ModelConfig(vocab_size=65, n_layers=layers)
        d, ff, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
        skipped.append(round(100 * (d * d + 2 * d * ff + d * V) / 2 / (layers * (4 * d * d + 2 * d * ff) + d * V)))
    figures = re.search(r"(\d+) figures; largest difference (\S+) BPC", text("experiments/eval_speed.txt"))
    dynamic = max((float(d) for d in re.findall(r" dynamic +committed \S+ now \S+ difference (\S+)",
                                                  text("experiments/eval_speed.txt"))), key=abs)
    return "docs/performance.md", (
        f"{skipped[0]}% of a 2-layer pass's multiply-adds ({skipped[1]}% of a 4-layer one's)"), (
        f"the baseline shape {spread(('baseline', 'fp32'))} in fp32 and {spread(('baseline', 'bf16'))} in bf16 "
        f"({second['baseline', 'fp32']} and {second['baseline', 'bf16']} chars/s in the second run), the 4-layer cpu30 "
        f"shape {spread(('cpu30', 'fp32'))} and {spread(('cpu30', 'bf16'))}"), (
        f"the {figures[1]} committed figures of the timed recipe runs, scored again (`--figures`), moved by at most "
        f"{figures[2]} BPC"), f"its committed test figures (experiments/dynamic) moved by at most {abs(dynamic):.1e} BPC"


def claim_study_in_readme():
    """README's paragraph on the study: the Xeon's 5000-step groups, and ALiBi against the baseline."""
    runs = report.load_runs(os.path.join(ROOT, "experiments", "study", "runs"))
    xeon = "Intel Xeon AMX"
    group = {name: report.on(runs, name, xeon) for name in ("baseline", "heads4_nopos", "heads4_alibi")}
    shown = {name: "{:.4f} ± {:.4f}".format(*stats.mean_std(values)) for name, values in group.items()}
    alibi = stats.welch_interval(group["heads4_alibi"], group["baseline"])
    assert all(len(values) == 3 for values in group.values())
    return "README.md", (f"three seeds each on one 2-core Intel Xeon: the baseline (4 heads, sinusoidal positions) "
                         f"scores {shown['baseline']} BPC"), (
        f"the same model without positions {shown['heads4_nopos']}"), (
        f"({shown['heads4_alibi']}: {alibi['diff']:+.3f} BPC, 95% confidence interval [{alibi['low']:+.3f}, "
        f"{alibi['high']:+.3f}] by Welch's test)")


def claim_quick_start():
    """README's reading of the quick start's transcript (experiments/quickstart/run.sh)."""
    log = open(os.path.join(ROOT, "experiments", "quickstart", "chars", "quickstart.log"), encoding="utf-8").read()
    cpu, cores = re.search(r"^# machine: (.+?), (\d+) cores", log, re.M).groups()
    seconds = sum(float(x) for x in re.findall(r"^# ([\d.]+) s$", log, re.M))
    full_pass, = re.findall(r"^quickstart +[\d,]+ +\d+ +([\d.]+) +char", log, re.M)
    bz2, = re.findall(r"^bz2 -9 \| train +- +- +([\d.]+)", log, re.M)
    return "README.md", (f"The full pass gives {full_pass} BPC"), f"given the training text ({bz2})", (
        f"commands took {seconds:.0f} s on a {cores}-core {cpu}")


def claim_suite_time():
    """README's size and time of the suite, from experiments/suite_time.txt."""
    record = text("experiments/suite_time.txt")
    cpu = re.search(r"alone on a (2-core AMD EPYC|2-core Intel Xeon)", record).group(1)
    whole = re.search(r"bash \.ci/run .*?(\d+) passed, \d+ skipped, \d+ warnings in ([\d.]+)s", record)
    quick = re.search(r'-m "not slow" (\d+) passed, \d+ skipped, \d+ deselected in ([\d.]+)s', record)
    return "README.md", (f"(on a {cpu}, a clean clone: {whole[1]} passed in {float(whole[2]):.0f} s; {quick[1]} in "
                         f"{float(quick[2]):.0f} s: experiments/suite_time.txt)")


def claim_report_within_the_xeon():
    """REPORT.md's recommendation and its RoPE and learned-positions readings, every figure from the
    Xeon's runs (the audit found EPYC figures set against Xeon ones there)."""
    runs = report.load_runs(os.path.join(ROOT, "experiments", "study", "runs"))
    xeon = {name: report.on(runs, name, "Intel Xeon AMX") for name in ("baseline", "heads4_rope", "heads4_alibi")}
    base_mean, base_sd = stats.mean_std(xeon["baseline"])
    rope_sd = stats.mean_std(xeon["heads4_rope"])[1]
    alibi = stats.welch_interval(xeon["heads4_alibi"], xeon["baseline"])

    def at_1000(run):
        return next(float(r["val_bpc"]) for r in rows(f"experiments/study/runs/{run}/metrics.csv") if r["step"] == "1000")

    return "REPORT.md", f"({base_mean:.4f} ± {base_sd:.4f}, 3 seeds on the Xeon)", (
        f"(+{alibi['diff']:.3f} BPC, [{alibi['low']:+.3f}, {alibi['high']:+.3f}], the Xeon's seeds)"), (
        f"spread {rope_sd / base_sd:.1f} times as far as the baseline's ({rope_sd:.4f} vs {base_sd:.4f}, both on the "
        f"Xeon)"), (f"{at_1000('heads4_learnedsin_s1'):.2f} with the sinusoidal start, "
                    f"{at_1000('rerun/heads4_learned_s1'):.2f} with the old one, {at_1000('rerun/baseline_s1'):.2f} "
                    f"for the baseline")


def claim_amd_matmul_rates():
    record = text("experiments/bench_three_runs.txt")
    fp32 = [float(x) for x in re.findall(r"fp32 ([\d.]+) GFLOP/s, bf16", record)]
    bf16 = [float(x) for x in re.findall(r"bf16 ([\d.]+) GFLOP/s;", record)]
    assert len(fp32) == len(bf16) == 3
    return "docs/performance.md", (f"matmuls at {min(bf16):.0f}-{max(bf16):.0f} GFLOP/s against fp32's "
                                   f"{min(fp32):.0f}-{max(fp32):.0f} (three runs")


def claim_dropout_masks_from_uniforms():
    masks = re.search(r"dropout 0.1, fp32 uniforms .*?([\d.]+x) no dropout", text("experiments/recipe/dropout_cost.txt"))
    return "experiments/recipe/README.md", f"took the dropout-0.1 step from 1.76x to {masks[1]};"


def claim_gpu_run():
    """docs/performance.md's GPU figures, from the transcript of experiments/gpu/run.sh."""
    log = open(os.path.join(ROOT, "experiments", "gpu", "gpu.log"), encoding="utf-8").read()
    gpu = re.search(r"GPU 0: NVIDIA (\S+)", log)[1]
    torch_version = re.search(r"torch (\S+)", log)[1]
    quick_s = re.search(r"--steps 1000 .*?\n# rc=0  ([\d.]+) s", log, re.S)[1]
    quick_bpc = re.search(r"^quickstart +[\d,]+ +1000 +([\d.]+) +char", log, re.M)[1]
    steps, bpc = re.search(r"^auto +[\d,]+ +(\d+) +([\d.]+) +char", log, re.M).groups()
    return "docs/performance.md", f"one NVIDIA {gpu}, 16 CPU cores, torch {torch_version}", (
        f"command took {quick_s} s, compilation included, and the full pass gave {quick_bpc} BPC"), (
        f"ran {int(steps):,} steps in its 90 seconds and scored {bpc} BPC")


def claim_seven_minute_target():
    """The 7-minute target is the baseline's own 5000-step figure on the machine every timed row ran
    on (summarize.TARGETS[7]), and the stage-A rule's odds come from that machine's spread."""
    folder = "recipe/runs/b5000"
    bpcs = [eval_bpc(f"{folder}/baseline_s{seed}") for seed in (1, 2, 3)]
    seconds = [float(rows(f"experiments/{folder}/baseline_s{seed}/metrics.csv")[-1]["elapsed_s"]) for seed in (1, 2, 3)]
    machines = {report.machine_of(os.path.join(ROOT, "experiments", folder, f"baseline_s{seed}"),
                                  os.path.join(ROOT, "experiments")) for seed in (1, 2, 3)}
    timed = {report.machine_of(path, os.path.join(ROOT, "experiments"))
             for path in glob.glob(os.path.join(ROOT, "experiments", "recipe", "runs", "m*", "*_s*")) if os.path.isdir(path)}
    assert machines == timed == {"Intel Xeon AMX"}, (machines, timed)
    assert TARGETS[7] == round(statistics.mean(bpcs), 4)
    spread = statistics.stdev(bpcs)
    passes = statistics.NormalDist().cdf(-0.010 / (spread * (4 / 3) ** 0.5))
    smallest = stats.student_t_quantile(0.975, 4) * (2 / 3) ** 0.5 * spread
    return "experiments/recipe/README.md", (
        f"Intel Xeon, so the target is stated on that machine: **{TARGETS[7]}**, the mean of this recipe's 5000-step "
        f"baseline, seeds 1-3 (`runs/b5000/baseline_s1`-`s3`, {min(seconds):.0f}-{max(seconds):.0f} s of training here)"), (
        f"this about {100 * passes:.0f}% of the time at this machine's baseline spread, {spread:.4f}"), (
        f"about {smallest:.3f} BPC or more at this machine's spread (t(4) x sqrt(2/3) x {spread:.4f} = {smallest:.3f}")


def claim_seven_minute_target_in_readme():
    seconds = [float(rows(f"experiments/recipe/runs/b5000/baseline_s{seed}/metrics.csv")[-1]["elapsed_s"])
               for seed in (1, 2, 3)]
    machine, = {report.machine_of(os.path.join(ROOT, "experiments", "recipe", "runs", "b5000", f"baseline_s{seed}"),
                                  os.path.join(ROOT, "experiments")) for seed in (1, 2, 3)}
    return "README.md", (f"The 7-minute target is the baseline's BPC after its 5,000 steps on the {machine.split()[1]} "
                         f"({TARGETS[7]}, in {min(seconds) / 60:.1f}-{max(seconds) / 60:.1f} minutes)")


def bench_rows(record):
    """{name: [cells]} of a bench.py output's training-step table (names as bench.py prints them)."""
    found = re.findall(r"^((?:plain nanoGPT-style|tinychar)[\w -]*?) {2,}([\d.]+) \(([\d.-]+)\) +([\d,]+) +([\d.]+) +"
                       r"([\d.]+%) +([\d.]+%) +([\d.]+x)", record, re.M)
    return {name.strip(): cells for name, *cells in found}


def claim_performance_table_xeon():
    """docs/performance.md's first table, cell by cell from experiments/bench_default.txt."""
    record = open(os.path.join(ROOT, "experiments", "bench_default.txt"), encoding="utf-8").read()
    steps = bench_rows(record)
    ms = {name: float(cells[0]) for name, cells in steps.items()}
    fp32_eval, bf16_eval = bench(r"evaluation \(full pass, eval.py\): ([\d,]+) chars/s in fp32, ([\d,]+) chars/s")
    cached, slow = bench(r"generation, 1000 characters: ([\d,]+) chars/s with the KV cache; recomputing the same windows (\d+)")
    compiled, = bench(r"compiled decoding step .*?: ([\d,]+) chars/s")
    number = lambda x: float(x.replace(",", ""))   # noqa: E731
    return "docs/performance.md", "Intel Xeon with AMX (bf16 matrix tiles), torch 2.13.0 CPU build", (
        f"| training step, plain nanoGPT-style | {ms['plain nanoGPT-style']} ms | {ms['plain nanoGPT-style bf16']} ms | "
        f"bf16 {ms['plain nanoGPT-style'] / ms['plain nanoGPT-style bf16']:.2f}x fp32 |"), (
        f"| training step, tinychar | {ms['tinychar fp32']} ms | **{ms['tinychar bf16']} ms** "
        f"({ms['tinychar bf16 compiled']} ms `--compile`) | "
        f"**{ms['plain nanoGPT-style bf16'] / ms['tinychar bf16']:.2f}x the plain step in bf16**, "
        f"{ms['plain nanoGPT-style'] / ms['tinychar bf16']:.2f}x the plain step in fp32 |"), (
        f"| evaluation, eval.py's full pass | {fp32_eval} chars/s | **{bf16_eval} chars/s** | "
        f"{number(bf16_eval) / number(fp32_eval):.1f}x |"), (
        f"| generation, 1000 characters, KV cache | {cached} chars/s ({number(cached) / number(slow):.1f}x recomputing the "
        f"same windows, {slow}) | | compiled step (`--compile`): {compiled} chars/s, "
        f"{number(compiled) / number(slow):.1f}x |")


def claim_performance_table_amd():
    """docs/performance.md's AMD table, cell by cell from run 3 of experiments/bench_three_runs.txt."""
    record = open(os.path.join(ROOT, "experiments", "bench_three_runs.txt"), encoding="utf-8").read()
    assert "2-core AMD EPYC" in record.splitlines()[0]
    steps = bench_rows(record.split("## run 3")[1])
    bf16_rate = float(re.search(r"bf16 ([\d.]+) GFLOP/s", record.split("## run 3")[1])[1])
    rows = []
    for shown, name in (("plain nanoGPT-style, fp32", "plain nanoGPT-style"), ("tinychar, fp32", "tinychar fp32"),
                        ("**tinychar, bf16 autocast (the default here)**", "tinychar bf16"),
                        ("tinychar, bf16, `--compile`", "tinychar bf16 compiled")):
        ms, spread, tokens, gflops, of_fp32, of_own, ratio = steps[name]
        own = f" ({of_own} of the bf16 rate)" if "bf16" in name else ""
        ratio = f"**{ratio}**" if shown.startswith("**") else ratio
        rows.append(f"| {shown} | {ms} ({spread}) | {tokens} | {gflops} | {of_fp32}{own} | {ratio} |")
        assert "bf16" not in name or abs(float(gflops) / bf16_rate * 100 - float(of_own[:-1])) < 0.1
    return ("docs/performance.md", "The earlier measurements, on a 2-core AMD EPYC with AVX512-BF16", *rows)


def claim_finetune():
    """docs/checkpoints.md's fine-tuning result, from the six runs' result.json."""
    def results(arm):
        return [json.load(open(os.path.join(ROOT, "experiments", "finetune", f"{arm}_s{seed}", "result.json")))["test_bpc"]
                for seed in (1, 2, 3)]
    tuned, scratch = results("finetuned"), results("scratch")
    gaps = [a - b for a, b in zip(tuned, scratch)]
    mean, half = statistics.mean(gaps), stats.student_t_quantile(0.975, 2) * statistics.stdev(gaps) / 3 ** 0.5
    assert report.machine_of(os.path.join(ROOT, "experiments", "finetune", "finetuned_s1"),
                             os.path.join(ROOT, "experiments")) == "Intel Xeon AMX"
    return "docs/checkpoints.md", "2-core Intel Xeon with AMX, 3 seed pairs", (
        f"scores **{statistics.mean(tuned):.4f} ± {statistics.stdev(tuned):.4f}** test BPC there"), (
        f"from scratch for the same 3 minutes **{statistics.mean(scratch):.4f} ± {statistics.stdev(scratch):.4f}**: "
        f"lower by {-mean:.2f}, 95% t interval [{mean - half:.2f}, {mean + half:.2f}]")


def claim_groups_in_readme():
    """README's times of the two groups in its "Comparing runs", from their transcript."""
    log = open(os.path.join(ROOT, "experiments", "groups", "compare.log"), encoding="utf-8").read()
    cpu, cores = re.search(r"^# machine: (.+?), (\d+) cores", log, re.M).groups()
    first, second = re.findall(r"^# ([\d.]+) s$", log, re.M)[:2]
    return "README.md", f"The groups trained in {float(first):.0f} s and {float(second):.0f} s on a {cores}-core {cpu}"


def profile_shares(path):
    """{operator: its percentage of the profile's own CPU time} of a torch.profiler table (its lines as written)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return {m[1]: float(m[2]) for m in re.finditer(r"^\s*(\S+)\s+([\d.]+)%", f.read(), re.M)}


def claim_cheaper_steps():
    """The cheaper steps' prose: each ratio from cheaper_steps.json, each share from cpu30's profile."""
    with open(os.path.join(ROOT, "experiments", "recipe", "cheaper_steps.json")) as f:
        arms = json.load(f)["arms"]
    ratio = lambda arm, t: f"{arms[arm][f'ratio_{t}_threads']:.3f}x"   # noqa: E731
    share = profile_shares("experiments/recipe/profiles/cpu30.txt")
    with open(os.path.join(ROOT, "experiments", "recipe", "profiles", "cpu30_cheap.txt"), encoding="utf-8") as f:
        cheap = f.read()
    total = lambda *ops: f"{sum(share['aten::' + op] for op in ops):.1f}%"   # noqa: E731
    gelu_ms = re.search(r"aten::gelu\s+[\d.]+%\s+([\d.]+)ms", cheap)[1]
    return "experiments/recipe/README.md", (
        f"`mm`, `addmm` and `bmm` are {total('mm', 'addmm', 'bmm')} of cpu30's own CPU"), (
        f"LayerNorm forward and backward {total('native_layer_norm', 'native_layer_norm_backward')}, GELU forward "
        f"and backward {total('gelu', 'gelu_backward')}, softmax forward and backward "
        f"{total('_softmax', '_softmax_backward_data')}"), (
        f"(`random_`, `nonzero`, `eq`, `gt`) are {total('random_', 'nonzero', 'eq', 'gt')}"), (
        f"at two threads ({ratio('cpu30_resid_dropout', 2)}), but at one thread ({ratio('cpu30_resid_dropout', 1)})"), (
        f"took {float(gelu_ms):.0f} ms"), (
        f"the four flags cost {ratio('cpu30_cheap', 2)}, {ratio('cpu30_cheap', 1)} at one thread"), (
        f"{ratio('cpu30_no_bias', 2)} and {ratio('cpu30_no_bias', 1)}, the only model flag"), (
        f"cpu30's step {ratio('cpu30_compile', 2)} ({ratio('cpu30_compile', 1)} at one thread)")


def claim_cheaper_steps_in_flags():
    with open(os.path.join(ROOT, "experiments", "recipe", "cheaper_steps.json")) as f:
        arms = json.load(f)["arms"]
    ratio = lambda arm, t: f"{arms[arm][f'ratio_{t}_threads']:.3f}x"   # noqa: E731
    return "docs/flags.md", (
        f"`gelu_tanh` made cpu30's step slower, not faster: {ratio('cpu30_gelu_tanh', 2)} at two threads, "
        f"{ratio('cpu30_gelu_tanh', 1)} at one"), (
        f"without them took {ratio('cpu30_no_bias', 2)} at two threads, {ratio('cpu30_no_bias', 1)} at one"), (
        f"cpu30's step with it took {ratio('cpu30_rmsnorm', 2)}")


def claim_stand_in_steps():
    """The better steps' registered step counts: run.py's stand_in_steps, from cheaper_steps.json's ratios."""
    from run import stand_in_steps
    with open(os.path.join(ROOT, "experiments", "recipe", "cheaper_steps.json")) as f:
        arms = json.load(f)["arms"]
    row = lambda arm, ratio: f"| {stand_in_steps(arm, 4155):,} ({arms[ratio]['ratio_2_threads']:.3f}x) |"   # noqa: E731
    return "experiments/recipe/README.md", row("cpu30_no_bias", "cpu30_no_bias"), (
        row("cpu30_muon_lr3e-3", "cpu30_muon").replace("(", "(Muon's ")), row("cpu30_qk_norm", "cpu30_qk_norm"), (
        row("cpu30_ema", "cpu30_ema")), row("cpu30_resid_dropout", "cpu30_resid_dropout"), row("cpu30_dropout0", "cpu30_dropout0"), (
        f"| {stand_in_steps('cpu30_late_dropout', 4155):,} (half at {arms['cpu30_dropout0']['ratio_2_threads']:.3f}x, "
        "half at 1x) |"), (
        f"run.py charges the mean, {(1 + arms['cpu30_dropout0']['ratio_2_threads']) / 2:.3f}x"), (
        f"| {stand_in_steps('cpu30_batch_warmup', 4155):,} (half at {arms['cpu30_batch20']['ratio_2_threads']:.3f}x, "
        "half at 1x) |"), (
        f"8 windows {arms['cpu30_batch8']['ratio_2_threads']:.3f}x, 20 windows "
        f"{arms['cpu30_batch20']['ratio_2_threads']:.3f}x"), (
        f"measured {arms['cpu30_ema']['ratio_2_threads']:.3f}x at two threads and "
        f"{arms['cpu30_ema']['ratio_1_threads']:.3f}x at one")


def claim_cheaper_full_pass():
    """The full pass's ratios for the cheaper flags: eval_speed.txt's --cheaper block, fp32 then bf16."""
    block = text("experiments/eval_speed_cheaper.txt").split("$ python experiments/eval_speed.py --cheaper")[1].split("$ ")[0]
    ratio = {(m[1].strip(), m[2]): m[3] for m in re.finditer(r"(--no-bias|--norm rmsnorm|--activation gelu_tanh|all three)"
                                                             r" (fp32|bf16) [\d,]+ chars/s ([\d.]+x)", block)}
    pair = lambda name: f"{ratio[name, 'fp32']} and {ratio[name, 'bf16']}"   # noqa: E731
    return "experiments/recipe/README.md", (
        f"without biases {ratio['--no-bias', 'fp32']} cpu30's characters/s in fp32 and {ratio['--no-bias', 'bf16']} in bf16, "
        f"RMSNorm {pair('--norm rmsnorm')}, tanh-GELU {pair('--activation gelu_tanh')}, all three {pair('all three')}")


def claim_stack_timed():
    """The rows of --preset cpu30 (the stack) at 30 minutes, their reading, and their difference from
    cpu30's rows before the stack (experiments/recipe/README.md's last section)."""
    stack = [f"recipe/runs/m30_clock/cpu30_stack_s{seed}" for seed in (11, 12, 13)]
    bpcs = [eval_bpc(run) for run in stack]
    mean, sd = statistics.mean(bpcs), statistics.stdev(bpcs)
    half = stats.student_t_quantile(0.975, 2) * sd / 3 ** 0.5
    before = [eval_bpc(f"recipe/runs/m30_clock/cpu30_s{seed}") for seed in (11, 12, 13)]
    welch = stats.welch_interval(bpcs, before)
    table = []
    for seed, run, bpc in zip((11, 12, 13), stack, bpcs):
        last = rows(f"experiments/{run}/metrics.csv")[-1]
        elapsed = float(last["elapsed_s"])
        table.append(f"| {int(last['step']):,} | {elapsed:.1f} s ({100 * elapsed / 1800:.1f}%) | {bpc:.4f} |")
    return "experiments/recipe/README.md", *table, (
        f"Mean **{mean:.4f} ± {sd:.4f}**, 95% t interval [{mean - half:.4f}, {mean + half:.4f}] (n = 3)"), (
        f"{welch['diff']:+.4f} BPC, Welch 95% interval [{welch['low']:+.4f}, {welch['high']:+.4f}] (n = 3 a side)")


CLAIMS = [claim_matmul_rates, claim_matmul_share, claim_compiled_generation, claim_plain_undisturbed_segments,
          claim_plain_against_tinychar, claim_position_effect, claim_long_baseline_minutes, claim_c2_elapsed,
          claim_minutes_curves, claim_recipe_budgets, claim_multiplicity, claim_clock_rows, claim_loaded_runs,
          claim_auto_demo, claim_short_clock_rows, claim_readme_short_rows,
          claim_averaging, claim_best_is_the_last, claim_late_dropout_hint,
          claim_levers_in_summary, claim_wsd, claim_wsd_in_summary,
          claim_best_in_summary, claim_wsd_confirmed, claim_wsd_confirmed_in_summary, claim_wsd_30_hint,
          claim_dropout_masks, claim_dropout_masks_in_summary, claim_masks_30_hint, claim_masks_30_hint_in_summary,
          claim_wsd_alternated_7, claim_wsd_alternated_7_in_summary, claim_eval_speed, claim_study_in_readme, claim_quick_start, claim_suite_time,
          claim_report_within_the_xeon, claim_amd_matmul_rates, claim_dropout_masks_from_uniforms,
          claim_gpu_run, claim_seven_minute_target,
          claim_seven_minute_target_in_readme, claim_performance_table_xeon, claim_performance_table_amd,
          claim_finetune, claim_groups_in_readme, claim_cheaper_steps,
          claim_cheaper_steps_in_flags, claim_cheaper_full_pass, claim_stand_in_steps,
          claim_stack_timed]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.__name__[6:] for c in CLAIMS])
def test_a_figure_quoted_in_prose_is_the_one_its_file_gives(claim):
    document, *sentences = claim()
    for sentence in sentences:
        assert sentence in text(document), f"{document} should say: {sentence}"

