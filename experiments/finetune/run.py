"""The fine-tuning example: Tiny Shakespeare's cpu30 model (source.sh) continued on
another text for a few minutes, against the same model shape trained on that text from scratch for
the same minutes. Fixed before the runs: the text (data/lm_primer.txt, split 0.8,0.1,0.1), the
budget (3 minutes of training each, --time-budget 3), the shape and settings (cpu30's: 4 layers x
256, 4 heads, sinusoidal, dropout 0.1, lr 1e-3), seeds 1, 2, 3 for both arms, the score (eval.py's
full-pass BPC of each run's best.pt on the test split, which nothing chose), and the rule (the mean
difference's 95% t interval over the 3 seed pairs: a verdict only if it excludes 0).

    bash experiments/finetune/source.sh          # once: the source model (30 minutes)
    python experiments/finetune/run.py           # 6 runs of 3 minutes; resumable: finished runs are kept
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
from tinychar.stats import student_t_quantile  # noqa: E402

SOURCE = os.path.join(ROOT, "checkpoints", "finetune", "source")
SEEDS = (1, 2, 3)
MINUTES = 3
FLAGS = ["--data", os.path.join(ROOT, "data", "lm_primer.txt"), "--split", "0.8,0.1,0.1", "--n-layers", "4",
         "--dropout", "0.1", "--time-budget", str(MINUTES), "--eval-every", "100", "--ckpt-every", "100",
         "--keep-last", "1"]
ARMS = {"finetuned": ["--init-from", SOURCE], "scratch": []}


def run_arm(arm, seed):
    """Train (unless finished) and score one run; its record, also written beside this file."""
    name = f"{arm}_s{seed}"
    record_path = os.path.join(HERE, name, "result.json")
    if os.path.exists(record_path):
        with open(record_path) as f:
            return json.load(f)
    out = os.path.join(ROOT, "checkpoints", "finetune", name)
    os.makedirs(os.path.join(HERE, name), exist_ok=True)
    done = subprocess.run([sys.executable, "train.py", "--out", out, "--seed", str(seed), *FLAGS, *ARMS[arm]],
                          cwd=ROOT, capture_output=True, text=True)
    with open(os.path.join(HERE, name, "train.log"), "w") as f:
        f.write(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"error: {name} failed:\n{done.stderr[-2000:]}")
    scores = {}
    for part in ("test", "val"):
        report = subprocess.run([sys.executable, "eval.py", out, "--split", part, "--json", "--no-references"],
                                cwd=ROOT, capture_output=True, text=True, check=True)
        scores[part] = json.loads(report.stdout)["runs"][0]
    for name_ in ("metrics.csv", "config.toml"):
        with open(os.path.join(out, name_)) as src, open(os.path.join(HERE, name, name_), "w") as dst:
            dst.write(src.read())
    with open(os.path.join(out, "metrics.csv")) as f:
        elapsed = float(f.read().strip().splitlines()[-1].split(",")[7])
    record = dict(arm=arm, seed=seed, test_bpc=scores["test"]["val_bpc"], val_bpc=scores["val"]["val_bpc"],
                  best_step=scores["test"]["steps"], elapsed_s=elapsed)
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2)
    return record


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    if not os.path.exists(os.path.join(SOURCE, "best.pt")):
        sys.exit(f"error: no source model in {SOURCE}: run experiments/finetune/source.sh first")
    records = [run_arm(arm, seed) for seed in SEEDS for arm in ARMS]
    lines = [f"# fine-tuning: {MINUTES} minutes on data/lm_primer.txt, test-split full-pass BPC of best.pt", "",
             "| seed | from cpu30 (Tiny Shakespeare) | from scratch | difference |", "|---|---|---|---|"]
    by = {(r["arm"], r["seed"]): r for r in records}
    diffs = []
    for seed in SEEDS:
        a, b = by["finetuned", seed], by["scratch", seed]
        diffs.append(a["test_bpc"] - b["test_bpc"])
        lines.append(f"| {seed} | {a['test_bpc']:.4f} (best step {a['best_step']:,}) | {b['test_bpc']:.4f} "
                     f"(best step {b['best_step']:,}) | {diffs[-1]:+.4f} |")
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = student_t_quantile(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    verdict = ("lower" if mean + half < 0 else "higher" if mean - half > 0 else "no difference shown")
    for arm in ARMS:
        values = [by[arm, s]["test_bpc"] for s in SEEDS]
        lines.append(f"\n{arm}: {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} (n = {len(values)})")
    lines.append(f"\npaired difference (fine-tuned - scratch): {mean:+.4f}, 95% t interval [{mean - half:+.4f}, "
                 f"{mean + half:+.4f}] (n = {len(diffs)} seed pairs, df {len(diffs) - 1}): {verdict}")
    print("\n".join(lines))
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
