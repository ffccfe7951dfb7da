"""The recipe's results table, from the committed runs: every arm of every budget against the
baseline of the same budget, full-pass validation BPC, difference with a 95% Welch interval where
both sides have 2 or more seeds (report.py's rule: a verdict only when the interval excludes 0).

    python experiments/recipe/summarize.py     # rewrites the generated block of experiments/recipe/README.md
"""
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
from report import fill, welch_interval  # noqa: E402

from arms import ARMS  # noqa: E402


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


def table(budget, runs):
    lines = [f"Budget: the baseline's {budget} steps (equal wall-clock: each arm's steps from step_cost.json).", "",
             "| arm | change | steps | seeds | val BPC | vs baseline | 95% interval (Welch) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    base = [bpc for _, bpc, _ in runs.get("baseline", [])]
    order = [a for a in ARMS if a in runs]
    for arm in order:
        values = [bpc for _, bpc, _ in runs[arm]]
        seeds = ",".join(str(s) for s, _, _ in runs[arm])
        steps = sorted({n for _, _, n in runs[arm]})
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        change = ARMS[arm].replace(ARMS["baseline"], "").strip() or "(the study's baseline)"
        cells = [arm, f"`{change}`", ",".join(f"{n:,}" for n in steps), seeds, f"{statistics.mean(values):.4f}{spread}"]
        if arm == "baseline" or not base:
            cells += ["-", "-", "-"]
        elif min(len(values), len(base)) < 2:
            cells += [f"{statistics.mean(values) - statistics.mean(base):+.4f}", "-", "one seed on a side: a hint"]
        else:
            w = welch_interval(values, base)
            few = " (fewer than 3 seeds)" if min(len(values), len(base)) < 3 else ""
            verdict = (("better" if w["diff"] < 0 else "worse") if w["low"] > 0 or w["high"] < 0
                       else "no difference shown") + few
            cells += [f"{w['diff']:+.4f}", f"[{w['low']:+.4f}, {w['high']:+.4f}] (df {w['df']:.1f})", verdict]
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
