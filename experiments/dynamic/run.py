"""Dynamic evaluation of the 30-minute preset's models: chosen on a validation half, reported on a test half.

    python experiments/dynamic/run.py experiments/recipe/runs/m30_clock/cpu30_s11 \
        experiments/recipe/runs/m30_clock/cpu30_s12 experiments/recipe/runs/m30_clock/cpu30_s13

The runs trained on the first 90% of Tiny Shakespeare (--split 0.9,0.1). Their held-out tenth is
cut in two (eval.py --parts 0.9,0.05,0.05): on the validation half every (learning rate, decay) of
GRID is scored for every run, and the pair with the lowest mean validation BPC over the runs is
chosen (one pair for all, the rule fixed before any figure; a pair that diverged on a run, nan,
is never chosen); the test half is then scored once per
run, static and dynamic with that pair, side by side, with the mean of the per-run differences and
its 95% t interval. Each run's last checkpoint is scored: best.pt was chosen on the whole held-out
tenth, the test half included. fp32 scoring, as README's table. Every figure goes to results.json
as it is made (a second call skips what is there); results.md and experiments/recipe/README.md's
generated block "dynamic" are written from it.
"""
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "recipe"))
from tinychar import record  # noqa: E402
from tinychar.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.scoring import score_run  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402
from tinychar.stats import paired_interval  # noqa: E402
from summarize import rewrite  # noqa: E402

PARTS = "0.9,0.05,0.05"
GRID = [(lr, decay) for lr in (0.003, 0.01, 0.03, 0.1, 0.3) for decay in (0.0, 0.02)]
RESULTS = os.path.join(HERE, "results.json")


def scored(run, part, lr, decay):
    """(static BPC, dynamic BPC, units scored, the rows' run record) of a run's last checkpoint on a part."""
    ckpt = load_checkpoint(run, "last")
    model, vocab = model_from_checkpoint(ckpt)
    rows, _ = score_run(ckpt, model, vocab, part=part, precision="fp32", dynamic=(lr, decay), parts=PARTS)
    return dict(static=rows[0]["val_bpc"], dynamic=rows[1]["val_bpc"], units=rows[0]["val_chars"],
                step=ckpt["step"], run_record=rows[0]["run_record"], evaluated_on=rows[0]["evaluated_on"])


def save(results):
    with AtomicFile(RESULTS) as f:
        json.dump(results, f, indent=1)


def table(results, runs):
    lr, decay = results["chosen"]
    lines = [f"Dynamic evaluation (SGD, learning rate {lr:g}, decay {decay:g}: the lowest mean validation-half BPC "
             f"of the {len(GRID)} pairs), eval.py --parts {PARTS}, the last checkpoint of each run, fp32; "
             "test half (the last 5% of Tiny Shakespeare, characters):", "",
             "| run | steps | test chars | static test BPC | dynamic test BPC | dynamic - static |", "|---|---|---|---|---|---|"]
    for run in runs:
        r = results["test"][run]
        lines.append(f"| {os.path.basename(run)} | {r['step']:,} | {r['units']:,} | {r['static']:.4f} | "
                     f"{r['dynamic']:.4f} | {r['dynamic'] - r['static']:+.4f} |")
    if len(runs) >= 2:
        paired = paired_interval([(results["test"][run]["dynamic"], results["test"][run]["static"]) for run in runs])
        lines += ["", f"Mean difference over the {len(runs)} runs: {paired['diff']:+.4f} BPC, 95% t interval "
                  f"[{paired['low']:+.4f}, {paired['high']:+.4f}] (n = {len(runs)}, paired: the same model scored "
                  "both ways)."]
    grid = {key: statistics.mean(results["val"][run][key]["dynamic"] for run in runs)
            for key in results["val"][runs[0]]}
    static = statistics.mean(results["val"][run][next(iter(grid))]["static"] for run in runs)
    lines += ["", f"Validation half, mean over the runs (static {static:.4f}): "
              + "; ".join(f"lr {k.split(',')[0]} decay {k.split(',')[1]}: "
                          + ("diverged (nan on a run)" if math.isnan(v) else f"{v:.4f}") for k, v in grid.items()) + ".",
              "", f"Machine: {record.describe(results['test'][runs[0]]['evaluated_on'])} (scoring); the runs: "
              f"{record.describe(results['test'][runs[0]]['run_record'][0])}."]
    return "\n".join(lines)


def blocks(root=ROOT):
    """{("experiments/recipe/README.md", "dynamic"): text}: the block main writes, from the committed
    results.json under root alone (no model scored, nothing written), for every run it has test
    figures for, in their order; tests/test_generated.py compares it with the README."""
    with open(os.path.join(root, "experiments", "dynamic", "results.json")) as f:
        results = json.load(f)
    return {("experiments/recipe/README.md", "dynamic"): table(results, list(results["test"]))}


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories trained with --split 0.9,0.1")
    args = parser.parse_args()
    runs = [os.path.relpath(os.path.abspath(r), ROOT) for r in args.runs]
    results = {"val": {}, "test": {}}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            results = json.load(f)
    os.chdir(ROOT)
    for run in runs:
        for lr, decay in GRID:
            key = f"{lr:g},{decay:g}"
            if key not in results["val"].setdefault(run, {}):
                results["val"][run][key] = scored(run, "val", lr, decay)
                save(results)
                print(f"{run} val lr {lr:g} decay {decay:g}: {results['val'][run][key]['dynamic']:.4f} "
                      f"(static {results['val'][run][key]['static']:.4f})", flush=True)
    means = {key: statistics.mean(results["val"][run][key]["dynamic"] for run in runs) for key in results["val"][runs[0]]}
    chosen = min(means, key=lambda key: math.inf if math.isnan(means[key]) else means[key])   # nan: diverged
    results["chosen"] = [float(v) for v in chosen.split(",")]
    for run in runs:
        if run not in results["test"] or results["test"][run].get("pair") != results["chosen"]:
            results["test"][run] = dict(scored(run, "test", *results["chosen"]), pair=results["chosen"])
            save(results)
    text = table(results, runs)
    with AtomicFile(os.path.join(HERE, "results.md")) as f:
        f.write(text + "\n")
    rewrite(os.path.join(ROOT, "experiments", "recipe", "README.md"), "dynamic", text)
    print(text)


if __name__ == "__main__":
    main()
