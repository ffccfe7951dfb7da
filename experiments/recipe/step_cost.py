"""Training-step time of each recipe arm, relative to the baseline's, measured in one process with
the arms interleaved (so that a machine slowing down slows all of them alike): a lever is judged
at equal wall-clock by giving each arm the steps the baseline's budget buys at its own step cost.

    python experiments/recipe/step_cost.py > experiments/recipe/step_cost.txt   # alone on the machine
    python experiments/recipe/step_cost.py baseline NEW_ARM ... >> experiments/recipe/step_cost.txt   # arms added later

Each arm: the model and optimizer train.py builds from its flags (bf16 autocast, the training
split's batches), 3 untimed steps, then REPEATS rounds of STEPS timed steps; median per step. The
output's first line is the machine (`# machine: ...`, tinychar/record.py).
A validation (20 batches) every 500 steps and a checkpoint every 1000 add the same ~1-2% to
every arm and are left out. Adds the arms timed to step_cost.json beside this file (ratios to the
baseline of the same run: name the baseline among the arms); an arm already there keeps the ratio
its runs were given (a second timing is printed, not stored).
"""
from argparse import RawDescriptionHelpFormatter
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)
from tinychar import record  # noqa: E402
from tinychar.corpus import get_batch, load_corpus  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from model import CharTransformer  # noqa: E402
from tinychar.settings import parse_args, resolve_configs  # noqa: E402
from tinychar.step import WeightAverage, make_optimizer, train_step  # noqa: E402

from arms import ARMS  # noqa: E402

STEPS, REPEATS = 3, 7


def build(flags, train_ids):
    model_cfg, cfg, _, _ = resolve_configs(parse_args(flags.split() + ["--precision", "bf16"]))
    model_cfg.vocab_size = 65
    torch.manual_seed(0)
    model = CharTransformer(model_cfg)
    optimizer = make_optimizer(model, cfg)
    rng = torch.Generator().manual_seed(0)
    batches = [get_batch(train_ids, cfg.batch_size, model_cfg.seq_len, rng) for _ in range(STEPS)]
    average = WeightAverage(model, cfg.ema) if cfg.ema else None   # --ema: its update is part of the step
    return model, optimizer, batches, cfg.grad_clip, average


def take_steps(arm, autocast):
    """One step on each of build()'s batches, as train.py takes it (the weight average's update too)."""
    model, optimizer, batches, clip, average = arm
    for x, y in batches:
        train_step(model, optimizer, x, y, clip, autocast).item()
        if average:
            average.update(1000)   # the decay does not change the update's cost


def time_arms(arms, repeats=REPEATS):
    """{arm: [seconds a step, one per round]} of build()'s arms under bf16 autocast: each arm's
    batches once untimed, then `repeats` rounds of them, the arms taking turns."""
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    for arm in arms.values():
        take_steps(arm, bf16)
    times = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            start = time.perf_counter()
            take_steps(arm, bf16)
            times[name].append((time.perf_counter() - start) / len(arm[2]))
    return times


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("arms", nargs="*", help="arms of arms.py to time (default: all of them)")
    names = parser.parse_args().arms or list(ARMS)
    unknown = [name for name in names if name not in ARMS]
    if unknown:
        sys.exit(f"error: no arm named {', '.join(unknown)} in arms.py")
    print(record.machine_line(), flush=True)   # first, so that every block of step_cost.txt names its machine
    _, train_ids, _, _ = load_corpus(os.path.join(ROOT, "data", "tinyshakespeare.txt"), 512)
    times = time_arms({name: build(ARMS[name], train_ids) for name in names})
    if "baseline" not in times:
        sys.exit("error: time the baseline with the other arms: the ratios are to its step in the same run")
    base = statistics.median(times["baseline"])
    print(f"bf16 autocast, {torch.get_num_threads()} threads, torch {torch.__version__}, median of {REPEATS} rounds "
          f"of {STEPS} steps, arms interleaved")
    result = {}
    for name, t in times.items():
        ms = 1000 * statistics.median(t)
        result[name] = dict(ms_per_step=ms, ratio=ms / (1000 * base), flags=ARMS[name])
        print(f"{name:<24} {ms:7.1f} ms/step (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})"
              f"  {ms / (1000 * base):.2f}x baseline   {ARMS[name]}")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step_cost.json")
    if os.path.exists(path):   # an arm timed before keeps its ratio: its runs' steps were counted with it
        with open(path) as f:
            result = {**result, **json.load(f)}
    with AtomicFile(path) as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
