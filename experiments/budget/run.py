"""Where does a --time-budget run end? One preset run, timed, optionally with a busy loop started
part-way through (a machine that slows down after the plan), and one line of result.

    python experiments/budget/run.py --preset cpu7 --seed 1
    python experiments/budget/run.py --preset cpu7 --seed 1 --load-after 120   # a busy loop from 120 s on
    python experiments/budget/run.py --preset cpu7 --seed 1 --load-after 120 --tag replan   # named ..._replan

Trains `python train.py --data ../shared/data/tinyshakespeare.txt --preset P --seed S` into
checkpoints/budget/<P>_s<S>[_load<T>][_<tag>] (a run already finished there is only summarised), keeps its
log, metrics.csv and run.json beside this file, and appends to results.md: the steps the probe
planned, the steps planned again at the end of the warmup, the plans made later (step: steps, from
the pace of the last 200 steps; "none" before they existed, commit 1a1a035 and older), the steps run, the training time as a
share of the budget (metrics.csv's last elapsed_s; the target is 95-100%), whether the ceiling
stopped it, the last step's learning rate (--min-lr, 1e-4, when the schedule ran to its end), the
last checkpoint's full-pass validation BPC as the run scored it (bf16), and the machine. One run is a hint, not a measurement of the spread.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
sys.path.insert(0, ROOT)
from tinychar import record  # noqa: E402
from tinychar.settings import PRESETS  # noqa: E402

BUSY = "while True: pass"
HEADER = ("| run | probe's plan (its pace) | planned again (the run's pace) | later plans (pace) | steps run "
          "| training time | ceiling stopped it | last learning rate | last checkpoint's BPC | load | machine |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n")


def summarise(name, log, out, preset, load_after):
    with open(os.path.join(out, "metrics.csv")) as f:
        last = f.read().strip().splitlines()[-1].split(",")
    with open(os.path.join(out, "run.json")) as f:
        session = json.load(f)["sessions"][-1]
    budget_s = PRESETS[preset]["time_budget"] * 60
    probe = re.search(r"time budget [\d.]+ min: a step takes ([\d.]+) ms.*?: ([\d,]+) steps", log)
    again = re.search(r"planned again .*?pace, ([\d.]+) ms a step: ([\d,]+) steps", log)
    ceiling = re.search(r"stopped at step ([\d,]+) of the ([\d,]+) planned", log)
    later = re.findall(r"planned again at step ([\d,]+): the last [\d,]+ steps took ([\d.]+) ms .*?: ([\d,]+) steps", log)
    return (f"| {name} | {probe[2]} ({probe[1]} ms) | " + (f"{again[2]} ({again[1]} ms)" if again else "-")
            + " | " + ("; ".join(f"at {s}: {n} ({ms} ms)" for s, ms, n in later) or "none")
            + f" | {int(last[0]):,} | {float(last[7]):.1f} s = {100 * float(last[7]) / budget_s:.1f}% "
            + f"| {'yes' if ceiling else 'no'} | {float(last[5]):.2e} | {float(last[8]):.4f} "
            + f"| {f'busy loop from {load_after:g} s' if load_after else 'none'} "
            + f"| {record.describe(session)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(p for p in PRESETS if PRESETS[p].get("time_budget")))
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--load-after", type=float, default=0.0, help="start a busy loop this many seconds in")
    parser.add_argument("--tag", default="", help="a word added to the run's name (a run with new code)")
    args = parser.parse_args()
    name = (f"{args.preset}_s{args.seed}" + (f"_load{args.load_after:g}" if args.load_after else "")
            + (f"_{args.tag}" if args.tag else ""))
    out = os.path.join(ROOT, "checkpoints", "budget", name)
    log_path = os.path.join(HERE, name, "train.log")
    if not os.path.exists(log_path):
        if not os.path.exists(DATA):
            sys.exit(f"error: {DATA} not found: these runs need Tiny Shakespeare")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        command = [sys.executable, "train.py", "--data", DATA, "--preset", args.preset, "--seed", str(args.seed),
                   "--out", out]
        with open(log_path + ".part", "w") as log:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            busy = None
            if args.load_after:
                try:
                    proc.wait(timeout=args.load_after)
                except subprocess.TimeoutExpired:
                    busy = subprocess.Popen([sys.executable, "-c", BUSY])
            proc.wait()
            if busy:
                busy.kill()
        if proc.returncode:
            sys.exit(f"error: the run failed, see {log_path}.part")
        os.replace(log_path + ".part", log_path)
        for file in ("metrics.csv", "run.json"):
            shutil.copy(os.path.join(out, file), os.path.join(HERE, name, file))
    with open(log_path) as f:
        line = summarise(name, f.read(), os.path.join(HERE, name), args.preset, args.load_after)
    results = os.path.join(HERE, "results.md")
    if not os.path.exists(results):
        with open(results, "w") as f:
            f.write(HEADER)
    with open(results) as f:
        known = f.read()
    if f"| {name} |" not in known:   # summarised once
        with open(results, "a") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
