"""The clock of a training run and, with --time-budget, its ceiling.

A timed run fixes its number of steps from a probe of its costs (plan_steps), and once more at
the end of its warmup from the pace of its own steps (PlanFromPace), while no step's learning
rate has yet depended on the number, and again whenever the clock later says the run would end
past its budget or well before it (a machine that slowed down or sped up), the rest of the
schedule then laid over the steps left (plan.RunPlan.replan). Each decision is saved in the
run's plan, so --resume is exact. A pace is still an estimate, so the budget is also a ceiling:
the run stops early, validated and saved like a last step, once going on to the next read of the
loss and then validating and saving would pass the budget. The clock starts when training starts
(reading the corpus, compiling and the probe count) and goes on across resumed sessions
(elapsed_s is saved in every checkpoint).

The training loop asks the Budget at one place, each time it reads the loss back from the device
(read_due, then after_read and over).
"""
import copy
import io
import os
import statistics
import tempfile
import time
from collections import deque

import torch
from tqdm import tqdm

from tinychar import runtime
from tinychar.corpus import get_batch
from tinychar.metrics import plot_curves, write_metrics
from tinychar.scoring import score_checkpoint, validation_loss
from tinychar.step import make_optimizer, train_step

# The steps are planned for this share of the budget: the probe's pace misjudged a run's by up
# to a few percent (experiments/recipe/README.md), and a stop before the end costs less than
# overrunning. The ceiling catches the rest.
BUDGET_PLANNED = 0.97
PACE_WINDOWS = 16   # the pace is the slowest of this many recent windows between reads of the loss


# A timed run reads its clock every CHECK_EVERY steps after its warmup, and plans again when its
# steps, at the pace of the last 2 * CHECK_EVERY, would end past the budget or before
# BUDGET_PLANNED - REPLAN_EARLY of it (PlanFromPace).
CHECK_EVERY = 100
REPLAN_EARLY = 0.02


def seconds_per_step(timing, eval_every, ckpt_every):
    """A step's seconds with its share of a validation every eval_every steps and a checkpoint
    every ckpt_every. timing: step_s, validation_s and checkpoint_s."""
    return timing["step_s"] + timing["validation_s"] / eval_every + timing["checkpoint_s"] / ckpt_every


def steps_that_fit(minutes, timing, eval_every, ckpt_every, spent_s):
    """How many steps (seconds_per_step each) fit BUDGET_PLANNED of `minutes` after the spent_s
    seconds already gone (setting up, probing, training) and before the last step's validation and
    checkpoint. At least 1."""
    left_s = minutes * 60 * BUDGET_PLANNED - spent_s - timing["validation_s"] - timing["checkpoint_s"]
    return max(1, int(left_s / seconds_per_step(timing, eval_every, ckpt_every)))


class Budget:
    """Wall-clock seconds of a run (elapsed), its measured costs, and whether it must stop (over).

    minutes: the budget, 0 for an untimed run (which still keeps the clock); sync_every: steps
    between reads of the loss (runtime.host_sync_interval); elapsed_s and costs: what a resumed
    run's checkpoint saved. costs are the seconds of a step (the pace), a validation and a
    checkpoint: the probe's until the run has measured its own."""

    def __init__(self, minutes, sync_every, elapsed_s=0.0, costs=None):
        self.minutes, self.sync_every = minutes, sync_every
        self.costs = {"step_s": 0.0, "validation_s": 0.0, "checkpoint_s": 0.0, **(costs or {})}
        self.elapsed_before = elapsed_s
        self.started = self.window_started = time.perf_counter()
        self.paces = deque(maxlen=PACE_WINDOWS)
        self.trained_s = 0.0   # seconds of steps alone (no validations or checkpoints) this session
        self.in_steps = {}     # a validation's and a checkpoint's seconds over the pace of steps when timed
        self.replans = None    # the plans made from the run's own pace (follow)

    def follow(self, cfg, step):
        """From `step` on, the run's steps are timed: the clock is read at every read of the loss,
        and the plan revised from the pace (PlanFromPace)."""
        self.replans = PlanFromPace(cfg, step)
        self.start_window()

    def read_due(self, step):
        """Whether the loss is read back after this step: every sync_every steps, and when the plan
        reads the clock."""
        return step % self.sync_every == 0 or self.replans.due(step)

    def after_read(self, step, steps_read, cfg, plan, device, world_size, main_process):
        """The loss was read back after `steps_read` steps: their pace is measured, the plan revised."""
        self.end_window(steps_read)
        self.replans.revise(step, cfg, plan, self, device, world_size, main_process)

    def elapsed(self):
        """Seconds of training so far, summed over resumed sessions."""
        return self.elapsed_before + time.perf_counter() - self.started

    def over(self, own_s=0.0, elapsed_s=None):
        """True once the steps up to the read of the loss after the coming one (two sync intervals:
        a GPU's clock runs ahead of its queue), then a final validation and checkpoint, would pass
        the budget. own_s: what the current step will spend on its own validation and checkpoint;
        elapsed_s: the time spent (default: elapsed()). Always False for an untimed run."""
        if not self.minutes:
            return False
        step_s = self.costs["step_s"]
        reserve = 2 * self.sync_every * step_s + self.cost("validation_s", step_s) + self.cost("checkpoint_s", step_s)
        return (self.elapsed() if elapsed_s is None else elapsed_s) + own_s + reserve > self.minutes * 60

    def measured(self, name, seconds):
        """A validation's or a checkpoint's seconds (name: validation_s or checkpoint_s), as just
        timed; kept also as a multiple of the steps' recent (median) pace."""
        self.costs[name] = seconds
        if self.paces:
            self.in_steps[name] = seconds / statistics.median(self.paces)

    def cost(self, name, step_s):
        """A validation's or a checkpoint's seconds when a step takes step_s: as timed, or more if the
        steps have slowed down since (the machine is busier: they slow down alike)."""
        return max(self.costs[name], self.in_steps.get(name, 0.0) * step_s)

    def due_costs(self, validation, checkpoint):
        """The seconds of a validation and/or a checkpoint due now, at the current pace."""
        step_s = self.costs["step_s"]
        return validation * self.cost("validation_s", step_s) + checkpoint * self.cost("checkpoint_s", step_s)

    def start_window(self):
        """The steps from here to the next read of the loss make one window of the pace."""
        self.window_started = time.perf_counter()

    def end_window(self, steps):
        """A read of the loss after `steps` steps: the pace becomes the slowest of the last
        PACE_WINDOWS windows' seconds per step, so a slowdown counts at once and errs long."""
        seconds = time.perf_counter() - self.window_started
        self.trained_s += seconds
        self.paces.append(seconds / steps)
        self.costs["step_s"] = max(self.paces)


def fit_steps_to_budget(model, optimizer, cfg, batches, val_batches, autocast, spent_s=0.0, probe_steps=16,
                        wrap=None, score=None):
    """The number of steps whose training, validations and checkpoints fit BUDGET_PLANNED (97%) of
    cfg.time_budget minutes.

    Times a few steps (after one untimed), a validation and a checkpoint's serialisation on copies
    of the model and optimizer, under a forked RNG, so the real run is exactly a run with
    --steps N (up to an early stop, see Budget.over): the budget decides N once, and N is
    saved. The time already spent (spent_s: setting up) and the probe's own count against the
    budget. batches: a function giving a fresh (x, y) on the device. wrap: what the run wraps its
    model in (DistributedDataParallel under torchrun), so that the probe's steps pay its all-reduce
    too. score: a function scoring a model as a checkpoint is (scoring.score_checkpoint), timed with the
    checkpoint's cost. (A compiled run is timed eager: its estimate errs on the short side.)"""
    start = time.perf_counter()
    shadow = copy.deepcopy(model)
    shadow_optimizer = make_optimizer(shadow, cfg)
    shadow_optimizer.load_state_dict(optimizer.state_dict())
    runner = wrap(shadow) if wrap else shadow
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        times = []
        for _ in range(probe_steps + 1):
            x, y = batches()
            t = time.perf_counter()
            train_step(runner, shadow_optimizer, x, y, cfg.grad_clip, autocast, cfg.grad_accum).item()
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        val_loss = validation_loss(shadow, val_batches, autocast)
        with tempfile.TemporaryDirectory() as scratch:   # a validation also rewrites the curve
            row = dict(step=1, train_loss=val_loss, train_bpc=val_loss, val_loss=val_loss, val_bpc=val_loss, lr=cfg.lr,
                       tokens_per_s=1.0, elapsed_s=1.0)
            write_metrics(os.path.join(scratch, "metrics.csv"), [row, {**row, "step": 2}])
            plot_curves({"probe": [row, {**row, "step": 2}]}, os.path.join(scratch, "curve.png"))
        validation_s = time.perf_counter() - t
        t = time.perf_counter()
        torch.save({"model": shadow.state_dict(), "optimizer": shadow_optimizer.state_dict()}, io.BytesIO())
        checkpoint_s = time.perf_counter() - t + (score(shadow)[1] if score else 0.0)
    # the mean, the first (warm-up) step left out: a run's pace is its mean step, slow ones included
    # (the median of 8 steps ran 3-4% short of a run's pace here, and the budget overran by as much)
    timing = dict(step_s=sum(times[1:]) / probe_steps, validation_s=validation_s, checkpoint_s=checkpoint_s,
                  probe_s=time.perf_counter() - start)
    return steps_that_fit(cfg.time_budget, timing, cfg.eval_every, cfg.ckpt_every, spent_s + timing["probe_s"]), timing


def plan_steps(model, optimizer, cfg, train_ids, val_ids, val_batches, autocast, budget, device, rank, world_size):
    """cfg.time_budget's number of steps (see fit_steps_to_budget), the same on every rank: the
    slowest rank's. The probe's costs stand in for the run's own until it has measured them."""
    probe_rng = torch.Generator().manual_seed(cfg.seed + 1)   # not the run's batch stream
    local = cfg.batch_size // world_size
    steps, timing = fit_steps_to_budget(
        model, optimizer, cfg, lambda: tuple(runtime.to_device(t, device) for t in get_batch(
            train_ids, local, model.cfg.seq_len, probe_rng)), val_batches, autocast, budget.elapsed(),
        wrap=torch.nn.parallel.DistributedDataParallel if world_size > 1 else None,
        score=lambda m: score_checkpoint(m, train_ids, val_ids, autocast))
    if world_size > 1:
        agreed = torch.tensor([steps], device=device)
        torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MIN)
        steps = int(agreed.item())
    budget.costs.update((k, timing[k]) for k in budget.costs)
    if rank == 0:
        print(f"time budget {cfg.time_budget:g} min: a step takes {1000 * timing['step_s']:.1f} ms, a validation "
              f"{timing['validation_s']:.2f} s, a checkpoint {timing['checkpoint_s']:.2f} s: {steps:,} steps")
    return steps


class PlanFromPace:
    """--time-budget's plans made during the run. The probe times 16 cold steps on a copy of the
    model, and its pace can be several percent off the run's real one (docs/flags.md). So at the
    end of the warmup, while the learning rate of every step so far is still the same whatever the
    number of steps, the steps are fitted again to the pace of this run's own steps since a
    quarter of the warmup (off for a warmup under 8 steps). From then on, every CHECK_EVERY steps,
    the clock is read again: if the planned steps, at the pace of the last 2 * CHECK_EVERY, would
    end the run past its budget or before BUDGET_PLANNED - REPLAN_EARLY of it (the machine slowed
    down or sped up), they are fitted to that pace and the rest of the schedule is laid over them
    (plan.RunPlan.replan), so the learning rate still decays fully by the end. Each decision is
    saved in the checkpoints (the run's plan), so --resume is exact; a run that never planned again
    is the `--steps N` run. The ceiling (Budget.over) stays in force."""

    def __init__(self, cfg, step):
        self.timed = bool(cfg.time_budget)
        self.start, self.end = cfg.warmup_steps // 4, cfg.warmup_steps
        self.warmup_plan = self.timed and cfg.warmup_steps >= 8 and step < self.end
        self.marks = deque([(0.0, step)], maxlen=2)   # (seconds trained this session, step) at the last checks

    def due(self, step):
        """Whether the loss must be read back at this step (the plan reads the clock then)."""
        if self.warmup_plan:
            return step in (self.start, self.end)
        return self.timed and step > self.end and step % CHECK_EVERY == 0

    def revise(self, step, cfg, plan, budget, device, world_size, main_process):
        """plan.steps fitted to the pace since the oldest mark, when due (every rank takes the slowest's)."""
        if not self.due(step):
            return
        if self.warmup_plan and step == self.start:
            self.marks = deque([(budget.trained_s, step)], maxlen=2)
            return
        then_s, then_step = self.marks[0]
        pace = (budget.trained_s - then_s) / (step - then_step)
        self.marks.append((budget.trained_s, step))
        costs = dict(step_s=pace, validation_s=budget.cost("validation_s", pace),
                     checkpoint_s=budget.cost("checkpoint_s", pace))
        fitted = step + steps_that_fit(cfg.time_budget, costs, cfg.eval_every, cfg.ckpt_every, budget.elapsed())
        agreed = torch.tensor([-fitted, seconds_per_step(costs, cfg.eval_every, cfg.ckpt_every)], device=device)
        if world_size > 1:
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        fitted, per_step = -int(agreed[0].item()), agreed[1].item()
        fitted = max(step + 1, fitted)
        if self.warmup_plan:
            self.warmup_plan, planned, plan.steps = False, plan.steps, fitted
            self.marks = deque([(budget.trained_s, step)], maxlen=2)
            if main_process:
                tqdm.write(f"time budget planned again at the end of the warmup (step {step}) from this run's pace, "
                           f"{1000 * pace:.1f} ms a step: {plan.steps:,} steps (the probe's plan: {planned:,})")
            return
        budget_s = cfg.time_budget * 60
        end_s = BUDGET_PLANNED * budget_s + (plan.steps - fitted) * per_step   # when the planned steps would end
        if (BUDGET_PLANNED - REPLAN_EARLY) * budget_s <= end_s <= budget_s:
            return
        planned = plan.steps
        plan.replan(step, fitted)
        if main_process:
            tqdm.write(f"time budget planned again at step {step}: the last {step - then_step} steps took "
                       f"{1000 * pace:.1f} ms each, so the {planned:,} steps planned would end at "
                       f"{100 * end_s / budget_s:.0f}% of the budget: {fitted:,} steps, the rest of the learning "
                       f"rate's schedule laid over them")
