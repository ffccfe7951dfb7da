"""Write tinychar/candidates.json, the table train.py --preset auto predicts from
(tinychar/choose.py): for each candidate shape of the recipe's timed comparisons (the 5-, 7- and
15-minute candidates: the baseline, dropout 0.1, dropout 0.1 with 4 layers; and that last with the
30-minute preset's WSD and Muon), the steps and full-pass BPC of every committed run of that shape
(eval.py, last checkpoint, fp32, Tiny Shakespeare's validation split), whether it ran to a fixed
number of steps or a time budget: a run's BPC depends on how many steps it got (its schedule is
laid over them), not on how long they took.

    python experiments/recipe/candidates.py            # after new runs of these shapes
"""
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, ROOT)
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402

BASELINE = dict(n_heads=4, pos_encoding="sinusoidal")
# name -> (what it is, train.py fields, the run folders' arm names with these fields)
CANDIDATES = {
    "baseline": ("2 layers x 256, no dropout", BASELINE, ("baseline", "cpu5", "cpu7")),
    "dropout0.1": ("2 layers x 256, dropout 0.1", dict(BASELINE, dropout=0.1), ("dropout0.1",)),
    "dropout0.1+layers4": ("4 layers x 256, dropout 0.1", dict(BASELINE, dropout=0.1, n_layers=4),
                           ("dropout0.1+layers4", "cpu15", "cpu30")),
    "layers4+wsd+muon": ("4 layers, dropout 0.1, WSD, Muon", dict(BASELINE, dropout=0.1, n_layers=4,
                         schedule="wsd", optimizer="muon", muon_lr=3e-3), ("cpu30_stack",)),
}
# candidates with too few step counts for a curve of their own: the shape whose curve each follows,
# shifted to its runs (choose.py predict_candidate)
CURVE_FROM = {"layers4+wsd+muon": "dropout0.1+layers4"}
RUN = re.compile(r"^(?P<arm>.+)_s(?P<seed>\d+)$")


def points(arms, runs_root):
    """[(steps, BPC, run folder)] of every scored run of these arms, by steps."""
    found = []
    for path in sorted(glob.glob(os.path.join(runs_root, "*", "*_s*", "eval.json"))):
        run_dir = os.path.dirname(path)
        match = RUN.match(os.path.basename(run_dir))
        if not match or match.group("arm") not in arms:
            continue
        with open(path, encoding="utf-8") as f:
            row = json.load(f)["runs"][0]
        found.append([row["steps"], round(row["val_bpc"], 4), os.path.relpath(run_dir, ROOT).replace(os.sep, "/")])
    return sorted(found)


def table(runs_root):
    candidates = {}
    for name, (shape, fields, arms) in CANDIDATES.items():
        found = points(arms, runs_root)
        if not found:
            continue   # a shape with no runs yet has nothing to predict from
        candidates[name] = dict(shape=shape, fields=fields, points=found,
                                **({"curve_from": CURVE_FROM[name]} if name in CURVE_FROM else {}))
    return {
        "corpus": "Tiny Shakespeare, validation split, full pass (characters)",
        "rule": "choose.py predict: a parabola in log(steps) fitted to each shape's points; outside their range a "
                "straight line with its slope at the nearer end, never falling past the largest count",
        "candidates": candidates,
    }


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=os.path.join(HERE, "runs"),
                        help="the recipe's run folders (default experiments/recipe/runs)")
    parser.add_argument("--out", default=os.path.join(ROOT, "tinychar", "candidates.json"),
                        help="default tinychar/candidates.json")
    args = parser.parse_args(argv)
    written = table(args.runs)
    with AtomicFile(args.out) as f:
        json.dump(written, f, indent=1)
        f.write("\n")
    for name, row in written["candidates"].items():
        print(f"{name}: {len(row['points'])} runs, {row['points'][0][0]:,}-{row['points'][-1][0]:,} steps")


if __name__ == "__main__":
    main()
