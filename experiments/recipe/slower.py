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
STACK = "cpu30_stack"         # stage 3: the kept levers together, at fresh seeds beside cpu30's
SEED_GROUPS = ((11, 12, 13), (21, 22, 23))   # stages 1-2 (a hint at 11, a verdict at 11-13); stage 3
STRETCH = 2.05                # the stretch target at 30 minutes, read on the stack's runs either way


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
    """Every arm's stand-in runs (seed, steps, BPC), then cpu30's reading against 2.10 at each group
    of seeds, each arm's hint (seed 11) or verdict (three seeds a side, against cpu30 at the same
    seeds) and the stack's reading against 2.10 and the stretch, 2.05 (stage 3)."""
    folder = os.path.join(root, "experiments", "recipe", "runs", STAND_IN)
    runs = load(folder) if os.path.isdir(folder) else {}
    lines = ["| arm | seed | steps | BPC |", "|---|---|---|---|"]
    lines += [f"| {arm} | {seed} | {steps:,} | {bpc:.4f} |" for arm in sorted(runs, key=lambda a: (a != REFERENCE, a))
              for seed, bpc, steps in sorted(runs[arm])]
    said = [f"{arm} at the stand-in, seeds {group[0]}-{group[-1]}: {reading(values)}"
            + (f"; the stretch {target_verdict(values, STRETCH)}" if arm == STACK else "") + "."
            for arm in (REFERENCE, STACK) for group, values in groups(runs.get(arm, [])).items()]
    for arm in sorted(set(runs) - {REFERENCE}):
        said += judged(arm, runs[arm], runs.get(REFERENCE, []))
    return "\n".join(lines) + ("\n\n" + "\n\n".join(said) if said else "")


def groups(arm_runs):
    """{seed group: BPC at its seeds} of the groups (SEED_GROUPS) an arm has every seed of."""
    bpc = {seed: value for seed, value, _ in arm_runs}
    return {group: [bpc[s] for s in group] for group in SEED_GROUPS if set(group) <= set(bpc)}


def reading(values):
    """A group's mean and 95% t interval against the 30-minute target, by README's rule."""
    d = describe(values)
    return (f"mean {d['mean']:.4f}, 95% t interval [{d['low']:.4f}, {d['high']:.4f}]: the 30-minute target "
            f"{target_verdict(values, TARGETS[30])}")


def judged(arm, arm_runs, reference_runs):
    """An arm's lines: its verdict at each seed group it shares with cpu30 (stages 2 and 3), or, below
    three seeds, its difference from cpu30's mean of seeds 11-13 (a hint: stage 2 follows if below)."""
    mine, base = groups(arm_runs), groups(reference_runs)
    lines = []
    for group in [g for g in SEED_GROUPS if g in mine and g in base]:
        welch = difference(mine[group], base[group])["welch"]
        lines.append(f"{arm} minus {REFERENCE} (seeds {group[0]}-{group[-1]} each): {welch['diff']:+.4f} BPC, Welch "
                     f"95% interval [{welch['low']:+.4f}, {welch['high']:+.4f}] (n = 3 a side): "
                     f"**{LEVER_WORDS[side(welch)]}**.")
    first = base.get(SEED_GROUPS[0])
    if mine or not first:
        return lines
    values = [bpc for _, bpc, _ in arm_runs]
    diff = difference(values, first)["diff"]
    shown = f"{diff:+.4f}" if abs(diff) >= 5e-5 else f"{diff:+.6f}"   # its sign decides stage 2
    stage_1 = [seed for seed, _, _ in arm_runs] == [SEED_GROUPS[0][0]]
    then = ("" if not stage_1 else ": below it, so seeds 12 and 13 follow (stage 2)" if diff < 0
            else ": not below it, so no more seeds")
    seeds = f"seed{'s' * (len(arm_runs) > 1)} {', '.join(str(seed) for seed, _, _ in sorted(arm_runs))}"
    return [f"{arm} ({seeds}: a hint): minus {REFERENCE}'s mean at seeds 11-13 ({describe(first)['mean']:.4f}): "
            f"{shown}{then}."]


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
