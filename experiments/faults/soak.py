"""The fault soak: a small training run interrupted at random moments by SIGKILL,
SIGTERM and SIGINT, resumed after each, must end exactly where the same run never interrupted
ends; then the same again with its folder on a small file system that fills up and is enlarged
each time a write fails for want of room (as a user frees space and resumes).

    python experiments/faults/soak.py                          # ~5 minutes on 2 cores
    python experiments/faults/soak.py --interruptions 50 --seed 1
    python experiments/faults/soak.py --out experiments/faults/results.txt

Fixed before the runs: the run (data/lm_primer.txt, 2 layers x 32, seq 32, batch 8, dropout 0.1,
fp32, 1 thread per process, a checkpoint every 50 steps, a validation every 25), the signals
(each drawn at random among the three), the moments (uniform in [0.3, 4] s after the process
starts, start-up included) and --seed. "Exactly": every metrics.csv column but the two timings
(tokens_per_s, elapsed_s) equal as numbers, and every tensor of the last checkpoint and of best.pt
(weights, optimizer state, random streams) equal bit for bit. Also checked after each
interruption: no temporary file (*.PID.tmp) in the run's folder, every checkpoint loads.

The full-disk part needs `mount -t tmpfs` (root, or a user namespace: `unshare -rm python ...`);
where mounting is not allowed it is skipped with a line saying so.
"""
import argparse
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
import torch  # noqa: E402

from tinychar import record  # noqa: E402
from tinychar.checkpoint import list_checkpoints  # noqa: E402
from tinychar.files import TEMPORARY_NAME  # noqa: E402
from tinychar.metrics import read_metrics  # noqa: E402

FLAGS = ["--steps", "1500", "--eval-every", "25", "--ckpt-every", "50", "--dropout", "0.1", "--precision", "fp32",
         "--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--seq-len", "32", "--batch-size", "8",
         "--eval-batches", "2", "--warmup-steps", "20", "--seed", "7"]
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
TIMINGS = ("tokens_per_s", "elapsed_s")   # wall-clock columns: the only ones allowed to differ
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}   # one thread: the same sums in the same order every time
FULL_DISK_MB = 1.5   # the small file system's first size; each time it fills up it grows by GROW_MB
GROW_MB = 1.0


def train(out, data, *extra, wait=True):
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--out", out, "--data", data, *FLAGS, *extra]
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    if wait:
        proc.stdout_text, proc.stderr_text = proc.communicate()
    return proc


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if TEMPORARY_NAME.search(name))


def compare(out, reference):
    """The differences between a run's final state and the reference's (an empty list: none)."""
    problems = []
    rows, expected = read_metrics(os.path.join(out, "metrics.csv")), read_metrics(os.path.join(reference, "metrics.csv"))
    strip = lambda table: [{k: v for k, v in row.items() if k not in TIMINGS} for row in table]  # noqa: E731
    if strip(rows) != strip(expected):
        problems.append(f"metrics.csv differs ({len(rows)} rows, {len(expected)} expected)")
    for name in (os.path.basename(list_checkpoints(reference)[-1][1]), "best.pt"):
        mine, theirs = (torch.load(os.path.join(folder, name), weights_only=True) for folder in (out, reference))
        for key in ("step", "model", "optimizer", "rng", "pending_losses", "best"):
            if not same(mine[key], theirs[key]):
                problems.append(f"{name}: {key} differs")
    return problems


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def every_checkpoint_loads(out):
    for _, path in list_checkpoints(out):
        torch.load(path, weights_only=True)   # raises on a half-written file
    if os.path.exists(os.path.join(out, "best.pt")):
        torch.load(os.path.join(out, "best.pt"), weights_only=True)


def soak(out, data, reference, rng, interruptions, log, disk=None):
    """Interrupt, resume, repeat until `interruptions` were sent; then let the run finish. With
    disk (a tmpfs mount point), a run that stops for want of room gets GROW_MB more and resumes.
    Returns the tallies."""
    tally = dict(interruptions=0, by_signal={name: 0 for name in SIGNALS}, exit_status={}, tracebacks=0,
                 full_disk=0, leftovers=0, starts=0)
    size_mb = FULL_DISK_MB
    while True:
        resume = ["--resume"] if os.path.isdir(out) and list_checkpoints(out) else []
        proc = train(out, data, *resume, wait=False)
        tally["starts"] += 1
        name = None
        if tally["interruptions"] < interruptions:
            name, delay = rng.choice(sorted(SIGNALS)), rng.uniform(0.3, 4.0)
            try:
                proc.wait(timeout=delay)
                name = None   # it ended before its moment came
            except subprocess.TimeoutExpired:
                proc.send_signal(SIGNALS[name])
        stdout, stderr = proc.communicate()
        status = proc.returncode
        if name:
            tally["interruptions"] += 1
            tally["by_signal"][name] += 1
            key = f"{name} -> {status}"
            tally["exit_status"][key] = tally["exit_status"].get(key, 0) + 1
            tally["tracebacks"] += "Traceback" in stderr
            started = "set up" if "parameters, vocabulary" in stdout or "resumed from" in stdout else "starting"
            log(f"  {tally['interruptions']:3d}. {name:7s} after {delay:4.2f} s ({started}): exit {status:4d}, "
                f"last checkpoint {list_checkpoints(out)[-1][0] if os.path.isdir(out) and list_checkpoints(out) else '-'}"
                + (f" (traceback: {stderr.strip().splitlines()[-1]})" if "Traceback" in stderr else ""))
        if os.path.isdir(out):
            tally["leftovers"] += len(leftovers(out))
            if leftovers(out):
                log(f"  temporary files left: {leftovers(out)}")
            every_checkpoint_loads(out)
        if disk and status == 2 and "No space left on device" in stderr:
            tally["full_disk"] += 1
            lines = stderr.strip().replace(out, "<run>").splitlines()
            log(f"  full disk, its stderr ({len(lines)} line{'s' * (len(lines) > 1)}):"
                + "".join(f"\n      {line}" for line in lines))
            size_mb += GROW_MB
            subprocess.run(["mount", "-o", f"remount,size={int(size_mb * 1024)}k", disk], check=True)
            continue
        if status == 0 and not name:
            return tally
        if not name:
            raise SystemExit(f"error: the run failed on its own (exit {status}):\n{stderr[-2000:]}")


def mount_small_disk(folder):
    os.makedirs(folder, exist_ok=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(FULL_DISK_MB * 1024)}k", "tmpfs", folder],
                       check=True, capture_output=True, text=True)
        return True
    except (OSError, subprocess.CalledProcessError) as error:
        return str(getattr(error, "stderr", "") or error).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interruptions", type=int, default=30, help="signals to send in each part (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the signals and moments (default 0)")
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--no-full-disk", action="store_true", help="skip the part on a small file system")
    args = parser.parse_args()
    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    log(record.machine_line())   # first: the report names the machine its timings come from
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))   # unmount and clean up on the way out
    # a soak started in the background (`cmd &`) has SIGINT ignored, and so would its runs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = tempfile.mkdtemp(prefix="tinychar-soak-")
    disk = os.path.join(work, "small")
    mounted = False
    try:
        data = os.path.join(work, "corpus.txt")
        shutil.copy(os.path.join(ROOT, "data", "lm_primer.txt"), data)
        reference = os.path.join(work, "reference")
        start = time.perf_counter()
        done = train(reference, data)
        if done.returncode:
            raise SystemExit(f"error: the reference run failed:\n{done.stderr_text[-2000:]}")
        log(f"fault soak, seed {args.seed}: train.py {' '.join(FLAGS)} (data/lm_primer.txt, OMP_NUM_THREADS=1)")
        log(f"reference run, never interrupted: {time.perf_counter() - start:.1f} s")
        parts = [("part 1: interrupted and resumed", os.path.join(work, "interrupted"), None)]
        if args.no_full_disk:
            log("part 2 skipped (--no-full-disk)")
        else:
            mounted = mount_small_disk(disk)
            if mounted is True:
                parts.append((f"part 2: the same, its folder on a {FULL_DISK_MB:g} MB tmpfs grown by {GROW_MB:g} MB "
                              f"whenever it fills up", os.path.join(disk, "run"), disk))
            else:
                log(f"part 2 skipped: cannot mount a small tmpfs here ({mounted})")
        failed = False
        for index, (title, out, small) in enumerate(parts):
            log(title)
            tally = soak(out, data, reference, random.Random(f"{args.seed}-{index}"), args.interruptions, log, small)
            problems = compare(out, reference)
            leftover_count = tally["leftovers"] + len(leftovers(out)) + len(leftovers(work))
            log(f"  {tally['interruptions']} interruptions ({', '.join(f'{n} {k}' for k, n in tally['by_signal'].items())})"
                f", {tally['starts']} starts, exit statuses: "
                + ", ".join(f"{k}: {n}" for k, n in sorted(tally["exit_status"].items())))
            if small:
                log(f"  full disk: {tally['full_disk']} times the run stopped for want of room and was resumed")
            log(f"  tracebacks: {tally['tracebacks']}; temporary files left: {leftover_count}; "
                f"mismatches with the reference: {len(problems)}" + "".join(f"\n    {p}" for p in problems))
            failed |= bool(problems) or leftover_count > 0 or tally["interruptions"] < args.interruptions
        log("result: " + ("FAILED" if failed else "PASSED"))
    finally:
        if mounted is True:
            subprocess.run(["umount", disk], check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
