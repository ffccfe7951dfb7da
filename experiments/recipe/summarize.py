"""The recipe's results table, from the committed runs: every arm of every budget against the
baseline of the same budget, full-pass validation BPC. Stage A (seed 1) is a hint; stage B (seeds
2-4, arm and baseline) gives the verdict by report.py's rule: a 95% Welch interval that excludes 0.

    python experiments/recipe/summarize.py     # rewrites the generated block of experiments/recipe/README.md
"""
import json
import math
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
from report import fill, student_t_quantile, welch_interval  # noqa: E402

from arms import ARMS  # noqa: E402

STAGE_A_BASELINE = (1, 2, 3)   # the baseline seeds an arm's stage-A seed 1 is compared with (their mean)
STAGE_B = (2, 3, 4)            # the seeds of stage B, for the arm and the baseline alike


def load(budget_dir):
    """{arm: [(seed, val_bpc, steps)]} of the finished runs in checkpoints/recipe/b<N>/."""
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


def paired_interval(pairs, level=0.95):
    """(mean, low, high) of the per-seed differences a - b: pairs [(a, b)] on the same seeds."""
    diffs = [a - b for a, b in pairs]
    half = student_t_quantile(1 - (1 - level) / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return statistics.mean(diffs), statistics.mean(diffs) - half, statistics.mean(diffs) + half


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
            values = [base[s] for s in sorted(base)]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            cells += [f"seeds {','.join(map(str, sorted(base)))}: {statistics.mean(values):.4f}{spread}"] + ["-"] * 6
            lines.append("| " + " | ".join(cells) + " |")
            continue
        if 1 in by_seed:
            hint = f"{by_seed[1] - statistics.mean(base_a):+.4f}" if len(base_a) == len(STAGE_A_BASELINE) else "baseline not run"
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
            w = welch_interval(values, base_b)
            paired = paired_interval(list(zip(values, base_b)))
            verdict = (("better" if w["diff"] < 0 else "worse") if w["low"] > 0 or w["high"] < 0
                       else "no difference shown")
            cells += [f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}", f"{w['diff']:+.4f}",
                      f"[{w['low']:+.4f}, {w['high']:+.4f}] (df {w['df']:.1f})",
                      f"[{paired[1]:+.4f}, {paired[2]:+.4f}]", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    root = os.path.join(ROOT, "checkpoints", "recipe")
    budgets = sorted(int(d[1:]) for d in os.listdir(root) if re.fullmatch(r"b\d+", d)) if os.path.isdir(root) else []
    content = "\n\n".join(table(b, load(os.path.join(root, f"b{b}"))) for b in budgets) or "No finished runs yet."
    path = os.path.join(HERE, "README.md")
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(fill(readme, "levers", content))
    print(content)


if __name__ == "__main__":
    main()
