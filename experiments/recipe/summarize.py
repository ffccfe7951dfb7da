"""The recipe's results, from the committed runs, full-pass validation BPC. Stage A (seed 1) is a
hint; stage B (seeds 2-4, arm and baseline) gives the verdict by report.py's rule: a 95% Welch
interval that excludes 0. Stage C (the 30-minute budget, b18000) shows seed-1 hints against the
baseline's stage-A mean. The timed rows (experiments/recipe/runs/m<MINUTES>/, train.py --time-budget) give README's
table "The best model in N minutes": seeds 11-13 of each preset, mean, std and the 95% t interval
of the mean, against the targets (today's code: m<MINUTES>_clock/; every timed row, older code's and
the levers' too, in experiments/recipe/README.md); and figures/recipe_minutes.png, BPC against
minutes of training.

    python experiments/recipe/summarize.py     # rewrites the generated blocks of both READMEs
"""
from argparse import RawDescriptionHelpFormatter
import csv
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "experiments"))
from tinychar.files import AtomicFile, save_figure  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from report import fill, machine_of  # noqa: E402
from tinychar.compare import describe, difference, side  # noqa: E402
from tinychar.stats import paired_interval  # noqa: E402

from arms import ARMS, timed_flags  # noqa: E402

STAGE_A_BASELINE = (1, 2, 3)   # the baseline seeds an arm's stage-A seed 1 is compared with (their mean)
STAGE_B = (2, 3, 4)            # the seeds of stage B, for the arm and the baseline alike
STAGE_B_WORDS = {-1: "better", 1: "worse", 0: "no difference shown"}   # the verdict: its Welch interval's side of 0
STAGE_A_BUDGET = 5000          # b5000: stages A and B; any other b<N> is a stage C budget
FINAL_SEEDS = (11, 12, 13)     # the timed rows' seeds, never used in a choice
FRESH_SEEDS = (21, 22, 23)     # a lever's confirmation, after seeds 11-13 chose it (experiments/recipe/README.md)
ALTERNATED_SEEDS = (31, 32, 33)   # WSD at 7 minutes again, each seed run with both schedules in turn
ROW_SEEDS = (FINAL_SEEDS, FRESH_SEEDS, ALTERNATED_SEEDS)   # the seed sets a table row can stand for
# The targets: full-pass BPC within that many minutes of training. 7: the baseline's own figure after
# its 5000 steps (487-512 s) on the machine of every timed row, the Intel Xeon: the mean of
# runs/b5000/baseline_s1-s3 (tests/test_numbers.py holds the two equal). 30: a round figure.
TARGETS = {7: 2.1554, 30: 2.10}


def load(budget_dir):
    """{arm: [(seed, val_bpc, steps)]} of the finished runs in experiments/recipe/runs/b<N>/."""
    runs = {}
    for name in sorted(os.listdir(budget_dir)):
        path = os.path.join(budget_dir, name, "eval.json")
        match = re.fullmatch(r"(.+)_s(\d+)", name)
        if not match or not os.path.exists(path):
            continue
        with open(path) as f:
            run = json.load(f)["runs"][0]
        runs.setdefault(match[1], []).append((int(match[2]), run["val_bpc"], run["steps"]))
    return runs


def table(budget, runs):
    """Stage A: an arm's seed 1 against the mean of the baseline's seeds 1-3 (a hint). Stage B:
    its seeds 2-4 against the baseline's seeds 2-4 (the seed that selected it left out): the
    verdict follows the Welch interval; the paired one (same seeds: same batches and, for most
    arms, the same initial weights) is shown beside it, not used for the verdict."""
    lines = [f"Budget: the baseline's {budget:,} steps (equal wall-clock: each arm's steps from step_cost.json).", "",
             "| arm | change | steps | A: seed 1 | A: vs baseline s1-3 | B: seeds 2-4 | B: vs baseline s2-4 "
             "| B: 95% Welch interval | B: paired interval | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = {seed: bpc for seed, bpc, _ in runs.get("baseline", [])}
    base_a = [base[s] for s in STAGE_A_BASELINE if s in base]
    for arm in [a for a in ARMS if a in runs]:
        by_seed = {seed: bpc for seed, bpc, _ in runs[arm]}
        steps = ",".join(f"{n:,}" for n in sorted({n for _, _, n in runs[arm]}))
        change = ARMS[arm].replace(ARMS["baseline"], "").strip() or "(the study's baseline)"
        cells = [arm, f"`{change}`", steps]
        if arm == "baseline":
            found = describe([base[s] for s in sorted(base)])
            spread = f" ± {found['std']:.4f}" if found["std"] is not None else ""
            cells += [f"seeds {','.join(map(str, sorted(base)))}: {found['mean']:.4f}{spread}"] + ["-"] * 6
            lines.append("| " + " | ".join(cells) + " |")
            continue
        if 1 in by_seed:
            hint = (f"{difference([by_seed[1]], base_a)['diff']:+.4f}" if len(base_a) == len(STAGE_A_BASELINE)
                    else "baseline not run")
            cells += [f"{by_seed[1]:.4f}", hint]
        else:
            cells += ["-", "-"]
        b_seeds = [s for s in STAGE_B if s in by_seed]
        if not b_seeds:
            cells += ["-", "-", "-", "-", "stage A only: a hint" if 1 in by_seed else "-"]
        elif len(b_seeds) < len(STAGE_B) or any(s not in base for s in STAGE_B):
            cells += [", ".join(f"{by_seed[s]:.4f}" for s in b_seeds), "-", "-", "-", "stage B under way"]
        else:
            values, base_b = [by_seed[s] for s in STAGE_B], [base[s] for s in STAGE_B]
            arm_b, w = describe(values), difference(values, base_b)["welch"]
            paired = paired_interval(list(zip(values, base_b)))
            cells += [f"{arm_b['mean']:.4f} ± {arm_b['std']:.4f}", f"{w['diff']:+.4f}",
                      f"[{w['low']:+.4f}, {w['high']:+.4f}] (df {w['df']:.1f})",
                      f"[{paired['low']:+.4f}, {paired['high']:+.4f}]", STAGE_B_WORDS[side(w)]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_c_table(budget, runs, baseline):
    """Seed 1 of every stage C arm (hints, one seed each), against the baseline's stage-A mean
    (seeds 1-3 at 5000 steps, ~7 minutes): what 30 minutes buy over the study's configuration. No
    stage C arm is read against another: the stack (C1) is the baseline, not run at 30 minutes."""
    lines = [f"Stage C, budget: the baseline's {budget:,} steps ({budget * 0.1 / 60:.0f} minutes here at ~0.1 s a "
             f"step); seed 1 only: hints.", "",
             "| arm | flags | steps | seed 1 | vs baseline at 5,000 steps (s1-3) |", "|---|---|---|---|---|"]
    first = {arm: next(((bpc, n) for seed, bpc, n in found if seed == 1), None) for arm, found in runs.items()}
    for arm in [a for a in ARMS if first.get(a)]:
        bpc, steps = first[arm]
        versus = f"{bpc - baseline:+.4f}" if baseline is not None else "-"
        lines.append(f"| {arm} | `{ARMS[arm]}` | {steps:,} | {bpc:.4f} | {versus} |")
    return "\n".join(lines)


def target_verdict(values, target):
    """The rule fixed before the runs: met when the mean is at or below the target, met with
    confidence when the upper end of the mean's 95% t interval is too."""
    mean, high = (describe(values)[k] for k in ("mean", "high"))
    shown = f"{target:.2f}" if round(target, 2) == target else f"{target:.4f}"
    if high <= target:
        return f"met with confidence (<= {shown})"
    if mean <= target:
        return f"met by the mean, {target - mean:.4f} under {shown} (the interval reaches {high:.4f})"
    return f"not met (> {shown})"


def elapsed_minutes(run_dir):
    """Minutes of training (metrics.csv's last elapsed_s: validations and checkpoints included)."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["elapsed_s"]) / 60


# How each folder's runs planned their steps: m<M>/ (the first runs) and m<M>_<tag>/ (runs of later code)
PLANS = {"": "the probe's, once", "clock": "the run's own pace, every 100 steps",
         "amd": "the run's own pace, every 100 steps"}
CURRENT = ("clock", "amd")   # the folders of today's budget code (amd: the slower machine's runs): README's
                             # table shows their presets' rows only
# README's row of each preset as train.py now defines it: the arm whose runs are that preset, at its
# seeds (a lever made part of a preset by the rule: its fresh seeds, experiments/recipe/README.md)
PRESET_ROWS = {"cpu5_wsd": FRESH_SEEDS, "cpu7": FINAL_SEEDS, "cpu15": FINAL_SEEDS, "cpu30_stack": FINAL_SEEDS}


def current_presets(timed):
    """README's rows: the presets run with today's code (m<M>_clock/, m<M>_amd/), no other arm, seed or older code."""
    return {key: {arm: [run for run in runs if run[0] in PRESET_ROWS[arm]]
                  for arm, runs in arms.items() if arm in PRESET_ROWS}
            for key, arms in timed.items() if key[1] in CURRENT}


def timed_rows(root):
    """{(minutes, tag): {arm: [(seed, val_bpc, steps, elapsed minutes, machine, commit)]}} of
    experiments/recipe/runs/m<M>[_<tag>]/; commit: the run's (run.json), "" before run records."""
    found = {}
    for name in os.listdir(root) if os.path.isdir(root) else []:
        match = re.fullmatch(r"m(\d+(?:\.\d+)?)(?:_(\w+))?", name)
        if match:
            runs = load(os.path.join(root, name))
            found[float(match[1]), match[2] or ""] = {
                arm: [(seed, bpc, steps, elapsed_minutes(os.path.join(root, name, f"{arm}_s{seed}")),
                       machine_of(os.path.join(root, name, f"{arm}_s{seed}"), os.path.dirname(os.path.dirname(root))),
                       run_commit(os.path.join(root, name, f"{arm}_s{seed}")))
                      for seed, bpc, steps in values] for arm, values in runs.items()}
    return dict(sorted(found.items()))


def run_commit(run_dir):
    """The commit a run's first session ran (run.json), or "" for runs from before run records."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        session = json.load(f)["sessions"][0]
    return session["commit"][:7] + (" + changes" if session.get("dirty") else "")


def train_command(arm, minutes):
    """The command a row stands for: the flags its runs were given, less run.py's --seed."""
    return f"python train.py --data data/tinyshakespeare.txt {' '.join(timed_flags(arm, minutes))} --out checkpoints/{arm}"


def minutes_table(timed, hints=True):
    """Each budget's arms at each of ROW_SEEDS where all three ran (README's table: current_presets);
    the candidates' seed-1 hints below."""
    lines = ["| minutes | preset | full-pass val BPC, seeds 11-13 unless named | 95% interval of the mean | target | "
             "training minutes (elapsed_s) | steps | steps planned from | machine | command |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    found_hints = []
    for (minutes, tag), arms in timed.items():
        for arm, values in arms.items():
            by_seed = {seed: rest for seed, *rest in values}
            for seeds in ROW_SEEDS:
                if not all(s in by_seed for s in seeds):
                    continue
                bpcs = [by_seed[s][0] for s in seeds]
                found = describe(bpcs)
                target = target_verdict(bpcs, TARGETS[minutes]) if minutes in TARGETS else "-"
                spent = [by_seed[s][2] for s in seeds]
                steps = sorted({by_seed[s][1] for s in seeds})
                machine = " / ".join(sorted({by_seed[s][3] for s in seeds}))
                commits = " / ".join(sorted({by_seed[s][4] for s in seeds} - {""}))
                plan = PLANS.get(tag, tag) + (f" (commit {commits})" if commits else "")
                command = f"`{train_command(arm, minutes)}`"
                name = arm if seeds == FINAL_SEEDS else f"{arm}, seeds {seeds[0]}-{seeds[-1]}"
                lines.append(f"| {minutes:g} | {name} | **{found['mean']:.4f}** ± {found['std']:.4f} "
                             f"({', '.join(f'{b:.4f}' for b in bpcs)}) | [{found['low']:.4f}, {found['high']:.4f}] "
                             f"| {target} | {min(spent):.1f}-{max(spent):.1f} "
                             f"| {steps[0]:,}-{steps[-1]:,} | {plan} | {machine} | {command} |")
            if 1 in by_seed and hints:
                bpc, steps, spent, *_ = by_seed[1]
                found_hints.append(f"{minutes:g} min, {arm} (`{ARMS[arm]}`): {bpc:.4f} ({steps:,} steps, {spent:.1f} min)")
    if len(lines) == 2:   # the header alone
        lines = ["No preset has its three timed seeds yet."]
    if hints and found_hints:
        lines += ["", "Candidates, seed 1 (hints, the choice of each preset): " + "; ".join(found_hints) + "."]
    return "\n".join(lines)


def drawn_seeds(tag, arm):
    """The runs recipe_minutes.png draws: in today's folders README's rows (PRESET_ROWS), in the
    first code's seeds 11-13."""
    return PRESET_ROWS.get(arm, ()) if tag in CURRENT else FINAL_SEEDS


def plot_minutes(timed, root, path):
    """Full-pass BPC against minutes of training, every checkpoint of the runs drawn_seeds names
    that have a curve.json (experiments/checkpoint_curve.py), one colour per budget and preset."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0

    def folder(minutes, tag):
        return os.path.join(root, f"m{minutes:g}" + (f"_{tag}" if tag else ""))
    # one colour per series that has a curve (a lever's runs without curve.json take none)
    pairs = [(key, arm) for key, arms in timed.items() for arm in arms
             if any(os.path.exists(os.path.join(folder(*key), f"{arm}_s{seed}", "curve.json"))
                    for seed in drawn_seeds(key[1], arm))]
    for i, ((minutes, tag), arm) in enumerate(pairs):
        seeds = drawn_seeds(tag, arm)
        for seed, *_ in timed[minutes, tag][arm]:
            run_dir = os.path.join(folder(minutes, tag), f"{arm}_s{seed}")
            if seed not in seeds or not os.path.exists(os.path.join(run_dir, "curve.json")):
                continue
            with open(os.path.join(run_dir, "curve.json")) as f:
                curve = json.load(f)
            with open(os.path.join(run_dir, "metrics.csv")) as f:
                at = {int(r["step"]): float(r["elapsed_s"]) / 60 for r in csv.DictReader(f)}
            # a checkpoint saved by Ctrl-C has no metrics row (no elapsed_s): it is left out
            points = [(at[s], bpc) for s, bpc in zip(curve["steps"], curve["val_bpc"]) if s in at]
            ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{i % 10}", linestyle="-" if tag else "--",
                    label=f"{arm}, {minutes:g} min ({tag or 'first code'})" if seed == seeds[0] else None)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    for minutes, target in TARGETS.items():
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.text(0, target, f"target for {minutes} min: {target}", fontsize=7, va="bottom", color="grey")
    ax.set_xlabel("minutes of training (elapsed_s)")
    ax.set_ylabel("validation BPC (full pass)")
    ax.set_title("Tiny Shakespeare, 2-core CPU: BPC against minutes (README's rows; dashed: the first code's)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True


# The presets' no-cost levers, as fixed before their runs (experiments/recipe/README.md): (budget folder, arm,
# the preset rows it is judged against). AVERAGED: runs with --ema, scored twice (run.py)
AVERAGED = [("m7_clock", "cpu7_ema", "cpu7"), ("m30_clock", "cpu30_late_ema", "cpu30")]
# PLAIN_LEVERS: (budget folder, arm, its seeds, the preset it is judged against, the preset's seeds); one seed is a hint
PLAIN_LEVERS = [("m7_clock", "cpu7_wsd", FINAL_SEEDS, "cpu7", FINAL_SEEDS),
                ("m7_clock", "cpu7_wsd", FRESH_SEEDS, "cpu7", FINAL_SEEDS),
                ("m5_clock", "cpu5_wsd", FINAL_SEEDS, "cpu5", FINAL_SEEDS),
                ("m5_clock", "cpu5_wsd", FRESH_SEEDS, "cpu5", FRESH_SEEDS),
                ("m7_clock", "cpu7_wsd", ALTERNATED_SEEDS, "cpu7", ALTERNATED_SEEDS),
                ("m30_clock", "cpu30_wsd", (11,), "cpu30", FINAL_SEEDS),
                ("m30_clock", "cpu30_masks", (11,), "cpu30", FINAL_SEEDS)]


def scored_twice(run_dir):
    """(BPC of the average, of the weights as trained, steps, elapsed_s) of a run with --ema."""
    bpcs = []
    for name in ("eval.json", "eval_trained.json"):
        with open(os.path.join(run_dir, name)) as f:
            bpcs.append(json.load(f)["runs"][0]["val_bpc"])
    with open(os.path.join(run_dir, "eval.json")) as f:
        steps = json.load(f)["runs"][0]["steps"]
    return bpcs[0], bpcs[1], steps, elapsed_minutes(run_dir) * 60


LEVER_WORDS = {-1: "kept: better", 1: "worse", 0: "no difference"}   # the levers' rule: the Welch interval's side of 0


def runs_at_seeds(root, folder, arm, seeds=FINAL_SEEDS):
    """{seed: BPC} of an arm's scored runs at the given seeds (default the final ones) in root/folder."""
    found = load(os.path.join(root, folder)) if os.path.isdir(os.path.join(root, folder)) else {}
    return {seed: bpc for seed, bpc, _ in found.get(arm, []) if seed in seeds}


def averaged_rows(root, folder, arm, preset):
    """(table rows, verdict line) of a lever run with --ema, each run scored as the average and as trained."""
    rows = {seed: scored_twice(os.path.join(root, folder, f"{arm}_s{seed}")) for seed in runs_at_seeds(root, folder, arm)}
    lines = [f"| {arm} | {seed} | {steps:,} | {elapsed:.1f} s | {trained:.4f} | {average:.4f} | {average - trained:+.4f} |"
             for seed, (average, trained, steps, elapsed) in sorted(rows.items())]
    baseline = list(runs_at_seeds(root, folder, preset).values())
    averages, trained = [r[0] for r in rows.values()], [r[1] for r in rows.values()]
    if len(averages) == 3 and len(baseline) == 3:
        welch, paired = difference(averages, baseline)["welch"], paired_interval(list(zip(averages, trained)))
        return lines, (f"{arm}: the average minus {preset}'s rows (today's code, seeds 11-13): {welch['diff']:+.4f} BPC, "
                       f"Welch 95% interval [{welch['low']:+.4f}, {welch['high']:+.4f}] (n = 3 a side): "
                       f"**{LEVER_WORDS[side(welch)]}**. Paired, the average minus the same runs' trained weights: "
                       f"{paired['diff']:+.4f} [{paired['low']:+.4f}, {paired['high']:+.4f}] (shown, not the rule).")
    if averages and baseline:
        return lines, (f"{arm} (seed {', '.join(str(s) for s in sorted(rows))}: a hint): trained weights minus "
                       f"{preset}'s rows' mean ({describe(baseline)['mean']:.4f}): "
                       f"{difference(trained, baseline)['diff']:+.4f}; the average minus that mean: "
                       f"{difference(averages, baseline)['diff']:+.4f}.")
    return lines, None


def levers_table(root):
    """The presets' no-cost levers against the preset rows they change, by the rules fixed before the runs
    (Welch with 3 seeds a side, else a hint): the averaged arms' runs as the average and as trained,
    then the other levers' verdicts (their seeds are in the table of every timed row)."""
    lines = ["| arm | seed | steps | `elapsed_s` | trained weights | the average (`--ema 0.999`) | average - trained |",
             "|---|---|---|---|---|---|---|"]
    verdicts = []
    for lever in AVERAGED:
        rows, said = averaged_rows(root, *lever)
        lines += rows
        verdicts += [said] if said else []
    for folder, arm, seeds, preset, preset_seeds in PLAIN_LEVERS:
        runs, baseline = runs_at_seeds(root, folder, arm, seeds), runs_at_seeds(root, folder, preset, preset_seeds)
        named = f"{arm}, seeds {seeds[0]}-{seeds[-1]}," if seeds != FINAL_SEEDS else arm
        if len(runs) == 3 and len(baseline) == 3:
            welch = difference(list(runs.values()), list(baseline.values()))["welch"]
            verdicts.append(f"{named} minus {preset}'s rows (today's code, seeds {preset_seeds[0]}-{preset_seeds[-1]}): "
                            f"{welch['diff']:+.4f} BPC, Welch 95% interval [{welch['low']:+.4f}, {welch['high']:+.4f}] "
                            f"(n = 3 a side): **{LEVER_WORDS[side(welch)]}**.")
        elif len(seeds) == 1 and runs and len(baseline) == 3:
            base = list(baseline.values())
            verdicts.append(f"{arm} (seed {seeds[0]}: a hint): {runs[seeds[0]]:.4f}, minus {preset}'s rows' mean "
                            f"({describe(base)['mean']:.4f}): {difference([runs[seeds[0]]], base)['diff']:+.4f}.")
    if len(lines) == 2 and not verdicts:
        return "No lever run has finished yet."
    return "\n".join(lines + [""]) + "\n\n".join(verdicts)


def rewrite(path, name, content):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with AtomicFile(path) as f:
        f.write(fill(text, name, content))


RECIPE_README = "experiments/recipe/README.md"


def blocks(root=ROOT):
    """{(document, block name): text} of the blocks this script writes (README.md's and
    experiments/recipe/README.md's, paths from root), from the committed runs under root.
    Writes nothing: main writes these, tests/test_generated.py compares them with the documents."""
    runs_dir = os.path.join(root, "experiments", "recipe", "runs")
    budgets = sorted(int(d[1:]) for d in os.listdir(runs_dir) if re.fullmatch(r"b\d+", d)) if os.path.isdir(runs_dir) else []
    runs = {b: load(os.path.join(runs_dir, f"b{b}")) for b in budgets}
    stage_a = [bpc for seed, bpc, _ in runs.get(STAGE_A_BUDGET, {}).get("baseline", []) if seed in STAGE_A_BASELINE]
    baseline = describe(stage_a)["mean"] if len(stage_a) == len(STAGE_A_BASELINE) else None
    levers = "\n\n".join(table(b, runs[b]) if b == STAGE_A_BUDGET else stage_c_table(b, runs[b], baseline)
                          for b in budgets) or "No finished runs yet."
    found = {(RECIPE_README, "levers"): levers}
    timed = timed_rows(runs_dir)
    if timed:
        found["README.md", "minutes"] = minutes_table(current_presets(timed), hints=False)
        found[RECIPE_README, "presets"] = minutes_table(timed)
        found[RECIPE_README, "averaging"] = levers_table(runs_dir)
    return found


def main():
    # no flags: --help says what it does, a stray argument is an error
    ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                   epilog=__doc__.split("\n\n", 1)[1]).parse_args()
    found = blocks(ROOT)
    for (document, name), text in found.items():
        rewrite(os.path.join(ROOT, document), name, text)
    print(found[RECIPE_README, "levers"])
    runs_dir = os.path.join(HERE, "runs")
    timed = timed_rows(runs_dir)
    if timed:
        plot_minutes(timed, runs_dir, os.path.join(ROOT, "figures", "recipe_minutes.png"))
        print(found["README.md", "minutes"])


if __name__ == "__main__":
    main()
