"""The clock of a training run and, with --time-budget, its ceiling.

A timed run fixes its number of steps from a probe of its costs (train.fit_steps_to_budget), and
once more at the end of its warmup from the pace of its own steps (train.PlanFromPace), while no
step's learning rate has yet depended on the number, and again whenever the clock later says
the run would end past its budget or well before it (a machine that slowed down or sped up), the
rest of the schedule then laid over the steps left (train.lr_at). Each decision is saved, so
--resume is exact. A pace is still an estimate, so the budget is also a ceiling: the run stops early, validated and saved like a last
step, once going on to the next read of the loss and then validating and saving would pass the
budget. The clock starts when training starts (reading the corpus, compiling and the probe count)
and goes on across resumed sessions (elapsed_s is saved in every checkpoint).
"""
import statistics
import time
from collections import deque

# The steps are planned for this share of the budget: the probe's pace misjudged a run's by up
# to a few percent (experiments/recipe/README.md), and a stop before the end costs less than
# overrunning. The ceiling catches the rest.
BUDGET_PLANNED = 0.97
PACE_WINDOWS = 16   # the pace is the slowest of this many recent windows between reads of the loss


# A timed run reads its clock every CHECK_EVERY steps after its warmup, and plans again when its
# steps, at the pace of the last 2 * CHECK_EVERY, would end past the budget or before
# BUDGET_PLANNED - REPLAN_EARLY of it (train.PlanFromPace).
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
