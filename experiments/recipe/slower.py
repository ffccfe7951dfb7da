"""The 30-minute target on a slower CPU, from the committed files: what each cheaper-step flag costs
there (cheaper_steps.json, written by cheaper_steps.py) and the stand-in's runs (runs/s4155/:
cpu30's 4,155 steps, each arm the steps its cost buys; run.py --steps 4155), each arm against
cpu30's stand-in runs by the rules of experiments/recipe/README.md: one seed a hint, three a
verdict by the 95% Welch interval, cpu30's mean against 2.10 by README's rule.

    python experiments/recipe/slower.py     # rewrites its two blocks of experiments/recipe/README.md
"""
from argparse import RawDescriptionHelpFormatter
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "experiments"))
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.compare import describe, difference, side  # noqa: E402

from summarize import LEVER_WORDS, RECIPE_README, TARGETS, load, rewrite, target_verdict  # noqa: E402

STAND_IN = "s4155"            # cpu30's steps on the slower machine: the folder of its stand-in runs
REFERENCE = "cpu30"


def costs_table(root):
    """Each timed arm's median step, and its ratio to cpu30's, at both thread counts of one run."""
    with open(os.path.join(root, "experiments", "recipe", "cheaper_steps.json")) as f:
        timed = json.load(f)
    threads = list(dict.fromkeys((timed["default_threads"], 1)))
    lines = [f"Timed on the {timed['machine'].removeprefix('# machine: ')} (bf16 autocast), `cheaper_steps.txt`:", "",
             "| arm | flags | " + " | ".join(f"{t} thread{'s' * (t > 1)}: ms a step | ratio" for t in threads) + " |",
             "|---|---|" + "---|---|" * len(threads)]
    later = {}   # (machine, cpu30's ms) of a later run: its arms
    for name, arm in timed["arms"].items():
        cells = " | ".join(f"{arm[f'ms_{t}_threads']:.1f} | {arm[f'ratio_{t}_threads']:.3f}x" for t in threads)
        lines.append(f"| {name}{' *' * ('later_run' in arm)} | `{arm['flags']}` | {cells} |")
        if "later_run" in arm:
            run = arm["later_run"]
            later.setdefault((run["machine"], tuple(run[f"ms_{t}_threads"] for t in threads)), []).append(name)
    if later:
        runs = [f"{' and '.join(names)} (cpu30 {' / '.join(f'{ms:.1f}' for ms in cpu30_ms)} ms, on the "
                f"{machine.removeprefix('# machine: ').split(';')[0]})" for (machine, cpu30_ms), names in later.items()]
        lines += ["", f"\\* timed later, in runs of their own beside cpu30, each ratio to its run's cpu30 (ms at "
                      f"{' / '.join(str(t) for t in threads)} thread(s)): {'; '.join(runs)}; the runs are appended to "
                      "`cheaper_steps.txt`."]
    return "\n".join(lines)


def stand_in_table(root):
    """Every arm's stand-in runs (seed, steps, BPC), then cpu30's reading against 2.10 and each
    arm's hint (one seed) or verdict (three seeds a side) against cpu30's runs."""
    folder = os.path.join(root, "experiments", "recipe", "runs", STAND_IN)
    runs = load(folder) if os.path.isdir(folder) else {}
    lines = ["| arm | seed | steps | BPC |", "|---|---|---|---|"]
    lines += [f"| {arm} | {seed} | {steps:,} | {bpc:.4f} |" for arm in sorted(runs, key=lambda a: (a != REFERENCE, a))
              for seed, bpc, steps in sorted(runs[arm])]
    base = [bpc for _, bpc, _ in runs.get(REFERENCE, [])]
    said = []
    if len(base) == 3:
        d = describe(base)
        said.append(f"{REFERENCE} at the stand-in, seeds 11-13: mean {d['mean']:.4f}, 95% t interval "
                    f"[{d['low']:.4f}, {d['high']:.4f}]: the 30-minute target {target_verdict(base, TARGETS[30])}.")
    for arm in sorted(set(runs) - {REFERENCE}):
        values = [bpc for _, bpc, _ in runs[arm]]
        if len(values) == 3 and len(base) == 3:
            welch = difference(values, base)["welch"]
            said.append(f"{arm} minus {REFERENCE} (seeds 11-13 each): {welch['diff']:+.4f} BPC, Welch 95% interval "
                        f"[{welch['low']:+.4f}, {welch['high']:+.4f}] (n = 3 a side): **{LEVER_WORDS[side(welch)]}**.")
        elif base:
            diff = difference(values, base)["diff"]
            shown = f"{diff:+.4f}" if abs(diff) >= 5e-5 else f"{diff:+.6f}"   # its sign decides stage 2
            then = ("" if len(values) > 1 or len(base) < 3 else ": below it, so seeds 12 and 13 follow (stage 2)"
                    if diff < 0 else ": not below it, so no more seeds")
            said.append(f"{arm} (seed {', '.join(str(s) for s, _, _ in runs[arm])}: a hint): minus {REFERENCE}'s "
                        f"mean of {len(base)} seed{'s' * (len(base) > 1)} ({describe(base)['mean']:.4f}): "
                        f"{shown}{then}.")
    return "\n".join(lines) + ("\n\n" + "\n\n".join(said) if said else "")


def blocks(root=ROOT):
    """{(document, block name): text} of the blocks this script writes; writes nothing."""
    return {(RECIPE_README, "cheaper_steps"): costs_table(root), (RECIPE_README, "stand_in"): stand_in_table(root)}


def main():
    ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                   epilog=__doc__.split("\n\n", 1)[1]).parse_args()
    for (document, name), text in blocks(ROOT).items():
        rewrite(os.path.join(ROOT, document), name, text)
        print(text + "\n")


if __name__ == "__main__":
    main()
