"""What each cheaper-step flag saves on cpu30's training step: its step time over cpu30's, the arms
interleaved in one process (a machine slowing down slows all of them alike), at torch's default
threads and again at one thread (a second, slower machine), and a profile of the step before and
after.

    python experiments/recipe/cheaper_steps.py > experiments/recipe/cheaper_steps.txt   # alone on the machine
    python experiments/recipe/cheaper_steps.py --profile experiments/recipe/profiles   # the profiles too
    python experiments/recipe/cheaper_steps.py ARM ... >> experiments/recipe/cheaper_steps.txt   # arms added later

Each arm (arms.py's cpu30_*): the model and optimizer train.py builds from its flags (bf16
autocast, the training split's batches; step_cost.py's build; compiled for --compile), 3 untimed
steps, then REPEATS rounds of STEPS timed steps; the median per step, and the fastest and slowest
round. Two better-step levers (Muon, QK-norm) are timed beside them, for their steps at equal
time. The first line is the machine. Arms named on the command line are timed beside cpu30 alone
and added to cheaper_steps.json, each with its ratio to that run's cpu30 and the run's cpu30 ms; an
arm already there keeps the ratio its runs were given (a second timing is printed, not stored).
"""
from argparse import RawDescriptionHelpFormatter
import json
import os
import statistics
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from tinychar import record  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.corpus import load_corpus  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402

from arms import ARMS  # noqa: E402
from step_cost import ROOT, build, take_steps, time_arms  # noqa: E402

REFERENCE = "cpu30"
CHEAPER = ["cpu30_no_bias", "cpu30_rmsnorm", "cpu30_gelu_tanh", "cpu30_resid_dropout", "cpu30_foreach",
           "cpu30_fused", "cpu30_cheap", "cpu30_compile"]
LEVERS = ["cpu30_muon", "cpu30_qk_norm"]   # better steps, not cheaper ones: timed for their stand-in steps
REPEATS = 9
BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def build_arm(name, train_ids):
    """step_cost.py's build, and torch.compile for an arm with --compile (compiled by its first steps)."""
    model, *rest = build(ARMS[name], train_ids)
    return (torch.compile(model) if "--compile" in ARMS[name] else model), *rest


def timed_at(arms, threads):
    """{arm: (median, min, max) seconds a step} at this many threads (step_cost.py's time_arms)."""
    torch.set_num_threads(threads)
    return {name: (statistics.median(t), min(t), max(t)) for name, t in time_arms(arms, REPEATS).items()}


def write_ratios(by_threads, default_threads, added):
    """cheaper_steps.json: each arm's median ms and ratio at both thread counts; run.py --steps gives
    an arm round(N / its ratio at the default threads) steps, the steps its cost buys on this machine.
    Arms `added` later go in beside the ones there, with their own run's cpu30 ms and machine."""
    table = {name: dict(flags=ARMS[name], **{f"{key}_{threads}_threads": value for threads, by in by_threads.items()
                                              for key, value in (("ms", 1000 * by[name][0]),
                                                                 ("ratio", by[name][0] / by[REFERENCE][0]))})
             for name in by_threads[default_threads]}
    path = os.path.join(HERE, "cheaper_steps.json")
    if added:
        with open(path) as f:
            timed = json.load(f)
        for name in added:
            if name not in timed["arms"]:   # an arm timed before keeps its ratio: its runs' steps were counted with it
                timed["arms"][name] = dict(table[name], later_run=dict(
                    machine=record.machine_line(), **{k: v for k, v in table[REFERENCE].items() if k.startswith("ms_")}))
    else:
        timed = dict(machine=record.machine_line(), default_threads=default_threads, arms=table)
    with AtomicFile(path) as f:
        json.dump(timed, f, indent=1)


def profile(arm):
    """torch.profiler's table of the arm's operators over 6 steps, by their own CPU time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            take_steps(arm, BF16)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=48)


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("arms", nargs="*", help="arms of arms.py timed later, beside cpu30 alone, and added to "
                                                "cheaper_steps.json (default: cpu30's flags and levers)")
    parser.add_argument("--profile", metavar="FOLDER", help="also write FOLDER/<arm>.txt, the profile of cpu30 and "
                                                            "of cpu30_cheap")
    args = parser.parse_args()
    unknown = [name for name in args.arms if name not in ARMS or name == REFERENCE]
    if unknown:
        parser.error(f"no arm named {', '.join(unknown)} in arms.py besides {REFERENCE}")
    if args.arms and args.profile:
        parser.error("--profile profiles cpu30 and cpu30_cheap: time the arms added later without it")
    if args.arms and not os.path.exists(os.path.join(HERE, "cheaper_steps.json")):
        parser.error("arms are added to cheaper_steps.json: time cpu30's flags first (no arms named)")
    print(record.machine_line(), flush=True)
    _, train_ids, _, _ = load_corpus(os.path.join(ROOT, "data", "tinyshakespeare.txt"), 512)
    names = [REFERENCE] + (args.arms or CHEAPER + LEVERS)
    arms = {name: build_arm(name, train_ids) for name in names}
    default_threads = torch.get_num_threads()
    print(f"bf16 autocast, torch {torch.__version__}, median of {REPEATS} rounds of {len(arms[REFERENCE][2])} steps, "
          f"arms interleaved; ratio = the arm's step over {REFERENCE}'s at the same threads; ms: median [min-max]")
    # one thread as a second, slower machine (once only, where torch's default is already one)
    by_threads = {threads: timed_at(arms, threads) for threads in dict.fromkeys((default_threads, 1))}
    print(f"{'arm':<20}" + "".join(f"{f'{t} thread(s)':>32}" for t in by_threads) + "   flags")
    for name in names:
        cells = "".join(f"{1000 * by[name][0]:7.1f} [{1000 * by[name][1]:.0f}-{1000 * by[name][2]:.0f}] ms "
                        f"{by[name][0] / by[REFERENCE][0]:6.3f}x" for by in by_threads.values())
        print(f"{name:<20}{cells}   {ARMS[name]}", flush=True)
    write_ratios(by_threads, default_threads, args.arms)
    if args.profile:
        torch.set_num_threads(default_threads)
        os.makedirs(args.profile, exist_ok=True)
        for name in (REFERENCE, "cpu30_cheap"):
            with AtomicFile(os.path.join(args.profile, f"{name}.txt")) as f:
                f.write(f"{record.machine_line()}\n{default_threads} threads, bf16 autocast, {ARMS[name]}: "
                        f"6 training steps\n{profile(arms[name])}\n")


if __name__ == "__main__":
    main()
