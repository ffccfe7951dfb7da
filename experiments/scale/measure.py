"""How long train.py takes to its first step on a big corpus, and its peak memory, cold and warm.

    python experiments/scale/measure.py                # 100 MB and 1 GB synthetic corpora in /tmp
    python experiments/scale/measure.py --sizes-mb 100

For each size: writes a synthetic UTF-8 corpus (once; 6,200 distinct characters, like the source
code corpus of issue #11: mostly ASCII words, some accented Latin, Greek and CJK), deletes its
token cache, then runs train.py twice with a tiny model (--steps 2 --eval-every 1): the first run
builds the cache (cold), the second finds it (warm). Reports the seconds from launch to the first
step's log line and the peak RSS of the train.py process (getrusage of the child). The page
cache is not dropped between runs (that needs root on the host): "cold" means no token cache, not
a cold disk. Writes experiments/scale/results.json (or --results), with the machine, and prints a
table, the machine first (`# machine: ...`, tinychar/record.py).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALPHABET_SIZE = 6200


def write_corpus(path, size_mb, seed=0):
    """size_mb MB of UTF-8: a 16 MB block of random words over a 6,200-character alphabet, repeated."""
    if os.path.exists(path) and os.path.getsize(path) >= size_mb * 10 ** 6:
        return
    rng = np.random.default_rng(seed)
    ascii_part = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    extra = [chr(c) for c in list(range(0xC0, 0x250)) + list(range(0x391, 0x3CA)) + list(range(0x4E00, 0x9FFF))]
    alphabet = ascii_part + extra[:ALPHABET_SIZE - len(ascii_part)]
    weights = np.where(np.arange(len(alphabet)) < len(ascii_part), 200.0, 1.0)
    block_chars = rng.choice(len(alphabet), size=8_000_000, p=weights / weights.sum())
    block = "".join(alphabet[i] for i in block_chars).encode("utf-8")
    block = block[:len(block.decode("utf-8", errors="ignore").encode("utf-8"))]
    with open(path + ".tmp", "wb") as f:
        written = 0
        while written < size_mb * 10 ** 6:
            f.write(block)
            written += len(block)
    os.replace(path + ".tmp", path)


def first_step(corpus, out):
    """(seconds to the 'step 1:' line, peak RSS MB) of one train.py run."""
    cmd = [sys.executable, "train.py", "--data", corpus, "--out", out, "--steps", "2", "--eval-every", "1",
           "--eval-batches", "1", "--d-model", "64", "--n-heads", "4", "--n-layers", "1", "--seq-len", "64",
           "--batch-size", "8"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = None
    for line in proc.stdout:
        if line.startswith("step 1:") and seconds is None:
            seconds = time.perf_counter() - start
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"train.py failed: {proc.stderr.read()[-2000:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # max over children so far
    return seconds, peak_mb


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000], help="corpus sizes (default 100 1000)")
    parser.add_argument("--dir", default="/tmp/tinychar_scale", help="where the corpora and runs go")
    parser.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json"),
                        help="where the results go (default: results.json beside this file)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from tinychar import record   # here, not at the top: each measurement's child imports this file
    here = record.session("cpu", "fp32")
    print(record.machine_line(here), flush=True)   # first: the output names the machine it was timed on
    os.makedirs(args.dir, exist_ok=True)
    results = []
    for size in sorted(args.sizes_mb):
        corpus = os.path.join(args.dir, f"corpus_{size}mb.txt")
        write_corpus(corpus, size)
        cache = corpus + ".tinychar-chars.ids"
        if os.path.exists(cache):
            os.remove(cache)
        row = dict(size_mb=size, bytes=os.path.getsize(corpus))
        for kind in ("cold", "warm"):
            out = os.path.join(args.dir, f"run_{size}mb_{kind}")
            subprocess.run(["rm", "-rf", out])
            # each measurement in its own child process tree, so that getrusage's maximum is its own
            code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import measure; "
                    f"print(measure.first_step({corpus!r}, {out!r}))")
            seconds, peak_mb = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                   check=True).stdout.strip().splitlines()[-1])
            row[f"{kind}_first_step_s"], row[f"{kind}_peak_rss_mb"] = seconds, peak_mb
        row["cache_bytes"] = os.path.getsize(cache)
        results.append(row)
        print(f"{size:>6} MB: first step {row['cold_first_step_s']:.1f} s cold, {row['warm_first_step_s']:.1f} s warm; "
              f"peak RSS {row['cold_peak_rss_mb']:,.0f} MB cold, {row['warm_peak_rss_mb']:,.0f} MB warm; "
              f"cache {row['cache_bytes'] / 1e6:,.0f} MB", flush=True)
    with open(args.results, "w") as f:
        json.dump(dict(machine=record.machine(here), results=results, cpu_count=os.cpu_count()), f, indent=2)


if __name__ == "__main__":
    main()
