"""train.py --preset auto: of the recipe's candidate shapes, the one predicted best for a time
budget on this machine.

Each candidate's training step is timed here (a few steps on random tokens: a step's time does
not depend on the text), its pace turned into the steps the budget affords (budget.steps_that_fit,
with a validation's and a checkpoint score's seconds estimated from a forward pass's), and its
full-pass BPC at that many steps predicted from the recipe's committed runs of that shape
(tinychar/candidates.json, written by experiments/recipe/candidates.py: each run's steps
and BPC, Tiny Shakespeare, validation split). A faster machine affords more steps and may favour
a bigger shape; a slower one a smaller. The choice and its reasons are printed.
"""
import json
import math
import os
import time

import numpy as np
import torch

from tinychar import runtime
from tinychar.budget import steps_that_fit
from tinychar.corpus import parse_split
from tinychar.step import make_optimizer, train_step
from model import CharTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CANDIDATES = os.path.join(HERE, "candidates.json")
TIMED_STEPS = 8    # after one untimed: enough to tell shapes 1.5x apart, not a run's exact pace
VOCAB = 96         # the probe's vocabulary: printable ASCII and a few more; the step's time barely depends on it


def load_candidates(path=CANDIDATES):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def predict(points, steps):
    """BPC at `steps` from a shape's committed (steps, BPC) points: a parabola in log(steps) fitted
    by least squares (a shape improves with steps, then may overfit), read inside the points'
    range; outside it, a straight line with the parabola's slope at the nearer end, never falling
    past the largest count (more steps than any run are not assumed to help)."""
    x = np.log([p[0] for p in points])
    coef = np.polyfit(x, [p[1] for p in points], 2 if len(set(x)) >= 3 else 1)
    slope = np.polyder(coef)
    at = math.log(steps)
    edge = min(max(at, x.min()), x.max())
    rise = np.polyval(slope, edge)
    if at > x.max():
        rise = max(0.0, rise)
    return float(np.polyval(coef, edge) + rise * (at - edge))


def predict_candidate(candidates, name, steps):
    """A candidate's BPC at `steps` (predict over its points). A candidate whose runs all sit at one
    step count (a lever measured only there) names in "curve_from" the shape whose curve it follows:
    that curve shifted to pass through its runs' mean, and flat past its own longest run, whose
    steps are the most it is known to make good use of."""
    row = candidates[name]
    if "curve_from" not in row:
        return predict(row["points"], steps)
    base = candidates[row["curve_from"]]["points"]
    shift = float(np.mean([bpc - predict(base, at) for at, bpc, *_ in row["points"]]))
    return predict(base, min(steps, max(at for at, *_ in row["points"]))) + shift


def time_candidate(model_cfg, cfg, device, autocast):
    """(seconds of a training step, of a forward pass without gradients) of a fresh model of this
    shape at cfg's batch size: train.py's step (step.train_step, its optimizer); own random streams."""
    model = CharTransformer(model_cfg).to(device).train()
    optimizer = make_optimizer(model, cfg)
    rng = torch.Generator().manual_seed(0)
    x, y = (torch.randint(model_cfg.vocab_size, (cfg.batch_size, model_cfg.seq_len), generator=rng).to(device)
            for _ in range(2))
    times = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for _ in range(TIMED_STEPS + 1):
            start = time.perf_counter()
            train_step(model, optimizer, x, y, cfg.grad_clip, autocast, cfg.grad_accum).item()
            times.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad(), autocast:
            model(x, y)[1].item()
            start = time.perf_counter()
            model(x, y)[1].item()
            forward_s = time.perf_counter() - start
    return sum(times[1:]) / TIMED_STEPS, forward_s


def affordable_steps(minutes, step_s, forward_s, model_cfg, cfg, spent_s, scored_units):
    """The steps a run of this pace fits in the budget, as train.py plans them (a checkpoint's score
    reads at most scored_units of the validation split)."""
    split = parse_split(cfg.split)
    size = os.path.getsize(cfg.data)   # bytes: characters of ASCII text, at most
    val_units = split[1] if isinstance(split[1], int) else size * split[1]
    windows = min(val_units, scored_units) / max(1, model_cfg.seq_len // 2)
    timing = dict(step_s=step_s, validation_s=cfg.eval_batches * forward_s,
                  checkpoint_s=windows / cfg.batch_size * forward_s)
    return steps_that_fit(minutes, timing, cfg.eval_every, cfg.ckpt_every, spent_s)


def choose(configs, minutes, scored_units, log=print):
    """(the chosen candidate's name, its fields, seconds spent choosing). configs(fields): the
    (ModelConfig, TrainConfig) a run with these preset fields would have (the user's flags applied)."""
    start = time.perf_counter()
    table = load_candidates()
    predictions = []
    for name, candidate in table["candidates"].items():
        model_cfg, cfg = configs(candidate["fields"])
        model_cfg.vocab_size = VOCAB
        device = runtime.resolve_device(cfg.device)
        autocast = runtime.autocast(runtime.resolve_precision(cfg.precision, device), device)
        step_s, forward_s = time_candidate(model_cfg, cfg, device, autocast)
        predictions.append((name, candidate, step_s, forward_s, model_cfg, cfg))
    spent_s = time.perf_counter() - start
    rows = []
    for name, candidate, step_s, forward_s, model_cfg, cfg in predictions:
        steps = affordable_steps(minutes, step_s, forward_s, model_cfg, cfg, spent_s, scored_units)
        rows.append((predict_candidate(table["candidates"], name, steps), name, candidate, step_s, steps))
    bpc, name, candidate, _, _ = min(rows, key=lambda r: r[0])
    threads = torch.get_num_threads()
    log(f"preset auto for {minutes:g} minutes: {len(rows)} candidates timed here "
        f"({threads} thread{'s' * (threads != 1)}); BPC predicted from the recipe's runs of each ({os.path.relpath(CANDIDATES, ROOT)}, {table['corpus']})")
    for predicted, row_name, row, step_s, steps in rows:
        ranges = [p[0] for p in row["points"]]
        outside = "" if min(ranges) <= steps <= max(ranges) else f" (outside its runs' {min(ranges):,}-{max(ranges):,})"
        if "curve_from" in row:
            outside += f" ({row['curve_from']}'s curve, shifted to its runs)"
        log(f"  {row_name:<20} {row['shape']:<34} {1000 * step_s:7.1f} ms a step, ~{steps:,} steps{outside}: "
            f"{predicted:.3f} BPC{'  <- chosen' if row_name == name else ''}")
    return name, candidate["fields"], time.perf_counter() - start
