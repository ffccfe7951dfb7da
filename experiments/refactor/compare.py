"""A refactor changes no number: train, evaluate and sample with the code of an earlier commit and
with the working tree, on this machine, and compare what they wrote.

    python experiments/refactor/compare.py BEFORE_COMMIT --out experiments/refactor/comparison.txt
    python experiments/refactor/compare.py BEFORE_COMMIT --after AFTER_COMMIT   # keep editing meanwhile

The commands, each run once per tree in a scratch folder:
  a) train.py --data <Tiny Shakespeare> --preset baseline --steps 300 --eval-every 100 --ckpt-every 100
  b) the same with --dropout 0.1 --n-layers 4 --pos rope
  c) (a) as 2 processes: python -m torch.distributed.run --standalone --nproc_per_node=2 train.py ...
  d) (a) resumed: a copy of its folder without the checkpoints after step 100, then --resume
  e) (a) with --ema 0.99 --grad-accum 2 --dropout 0.1
  f) --init-from (a)'s run: 100 steps on the same corpus
  g) --time-budget 0.1 (6 s) on a clock that only the optimizer's steps move (FAKE_CLOCK: 10 ms a
     step, 20 ms from the 300th, the probe's included), so the probe's plan, the plan at the end of
     the warmup, the plans made from the pace (the schedule's knots) and the ceiling fall alike in
     both trees: the time budget's code with its plan fixed
and for each run: eval.py RUN --json --no-references (the full-pass BPC) and generate.py --ckpt RUN
--seed 7 --max-new-tokens 300 --prompt "ROMEO:". Compared exactly: metrics.csv's columns that do
not measure time (step, train_loss, train_bpc, val_loss, val_bpc, lr), the final checkpoint's
weights, eval.py's BPC and the sample's text. The precision is this machine's default ("auto"), so
both trees run the same arithmetic only on one machine: run the two here, never against a file
from another machine. Every process runs one thread (OMP_NUM_THREADS=1, as torchrun sets for its
ranks): with two threads the same command on the same code does not always repeat its last digits.
"""
import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
DETERMINISTIC = ("step", "train_loss", "train_bpc", "val_loss", "val_bpc", "lr")
TRAIN = ["--preset", "baseline", "--steps", "300", "--eval-every", "100", "--ckpt-every", "100"]
RUNS = {   # name: (train.py's flags, processes, the run whose folder it starts from, on the fake clock)
    "a": (TRAIN, 1, None, False),
    "b": (TRAIN + ["--dropout", "0.1", "--n-layers", "4", "--pos", "rope"], 1, None, False),
    "c": (TRAIN, 2, None, False),
    "d": (TRAIN + ["--resume"], 1, "a", False),
    "e": (TRAIN + ["--ema", "0.99", "--grad-accum", "2", "--dropout", "0.1"], 1, None, False),
    "f": (["--steps", "100", "--eval-every", "50", "--init-from", "{a}"], 1, None, False),
    "g": (["--preset", "baseline", "--time-budget", "0.1", "--eval-every", "100"], 1, None, True),
}
# g's clock: time.perf_counter reads the seconds of the optimizer steps taken so far, nothing else
FAKE_CLOCK = """
import runpy, sys, time
from torch.optim.optimizer import register_optimizer_step_post_hook
steps = [0]
register_optimizer_step_post_hook(lambda *args: steps.__setitem__(0, steps[0] + 1))
time.perf_counter = lambda: 0.01 * min(steps[0], 300) + 0.02 * max(0, steps[0] - 300)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(tree, *args):
    # one thread per process: with two, this machine's CPU kernels (fp32 and bf16 alike) gave
    # another 8th digit in one run of three of the same command, so only one thread is a fair test
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], cwd=tree, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(args[:3])} failed in {tree}:\n{done.stderr[-2000:]}")
    return done.stdout


def outcomes(tree, data, scratch):
    """{run: {what: value}} of the runs made with the code in tree."""
    import torch
    results = {}
    for name, (flags, processes, start_from, fake_clock) in RUNS.items():
        out = os.path.join(scratch, name)
        if start_from:   # its checkpoints after step 100 removed: --resume continues from there
            shutil.copytree(os.path.join(scratch, start_from), out)
            for path in glob.glob(os.path.join(out, "step_*.pt")):
                if int(os.path.basename(path)[5:11]) > 100:
                    os.remove(path)
        launcher = (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                    if processes > 1 else ["-c", FAKE_CLOCK] if fake_clock else [])
        flags = [flag.format(a=os.path.join(scratch, "a")) for flag in flags]
        start = time.perf_counter()
        run(tree, *launcher, "train.py", "--data", data, "--out", out, *flags)
        with open(os.path.join(out, "metrics.csv"), newline="") as f:
            rows = [[row[k] for k in DETERMINISTIC] for row in csv.DictReader(f)]
        last = sorted(n for n in os.listdir(out) if n.startswith("step_") and n.endswith(".pt"))[-1]
        weights = torch.load(os.path.join(out, last), map_location="cpu", weights_only=True)["model"]
        bpc = json.loads(run(tree, "eval.py", out, "--json", "--no-references"))["runs"][0]["val_bpc"]
        sample = run(tree, "generate.py", "--ckpt", out, "--seed", "7", "--max-new-tokens", "300", "--prompt", "ROMEO:")
        results[name] = dict(metrics=rows, weights=weights, bpc=bpc, sample=sample,
                             seconds=time.perf_counter() - start)
    return results


def extract(commit, tree):
    """The files of commit, written into the folder tree."""
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)


def same(a, b):
    import torch
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return a == b


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="the commit whose code is the reference (e.g. the last one before the refactor)")
    parser.add_argument("--data", default=SHAKESPEARE, help="Tiny Shakespeare (default ../shared/data/tinyshakespeare.txt)")
    parser.add_argument("--after", metavar="COMMIT", help="compare this commit's code instead of the working tree (the "
                                                          "working tree may then change while the runs go on)")
    parser.add_argument("--out", metavar="PATH", help="also write the report to this file")
    args = parser.parse_args(argv)
    data = os.path.abspath(args.data)
    if not os.path.exists(data):
        sys.exit(f"error: no corpus at {data} (--data)")
    with tempfile.TemporaryDirectory(prefix="tinychar-compare-") as scratch:
        before_tree = os.path.join(scratch, "before")
        os.makedirs(before_tree)
        extract(args.before, before_tree)
        after_tree = ROOT
        if args.after:
            after_tree = os.path.join(scratch, "after")
            os.makedirs(after_tree)
            extract(args.after, after_tree)
        before = outcomes(before_tree, data, os.path.join(scratch, "runs_before"))
        after = outcomes(after_tree, data, os.path.join(scratch, "runs_after"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    against = f"the code of {args.after}" if args.after else f"the working tree (HEAD {commit.strip()})"
    lines = [f"# refactor check, {time.strftime('%Y-%m-%d %H:%M')}: code of {args.before} against {against}, "
             f"precision auto, corpus {os.path.basename(data)}", ""]
    identical = True
    for name in RUNS:
        checks = {what: same(before[name][what], after[name][what]) for what in ("metrics", "weights", "bpc", "sample")}
        identical &= all(checks.values())
        verdicts = ", ".join(f"{what} {'identical' if ok else 'DIFFERENT'}" for what, ok in checks.items())
        flags, processes, start_from, fake_clock = RUNS[name]
        lines.append(f"{name}) {' '.join(flags)}{' x2 processes' if processes > 1 else ''}"
                     f"{f' from {start_from} at step 100' if start_from else ''}{' on the fake clock' if fake_clock else ''}: "
                     f"{len(before[name]['metrics'])} rows, {verdicts}")
        lines.append(f"   full-pass BPC {before[name]['bpc']:.6f} -> {after[name]['bpc']:.6f}; last row "
                     f"{before[name]['metrics'][-1]} -> {after[name]['metrics'][-1]}; "
                     f"{before[name]['seconds']:.0f} s -> {after[name]['seconds']:.0f} s")
    lines += ["", "IDENTICAL" if identical else "DIFFERENT"]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
