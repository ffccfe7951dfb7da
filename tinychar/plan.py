"""What a run decided, as against what it was asked (settings.TrainConfig, saved as given).

A run's plan: the steps it trains (--steps, or what --time-budget planned, and planned again as
the run went: budget.py), where the learning rate's schedule was when it last planned (its
knot), the precision and the device "auto" resolved to on the machine, and the preset's choice
(--preset auto: the candidate and the seconds spent choosing). It is saved beside the settings in every
checkpoint and restored on --resume, so a resumed run goes on with the same decisions.
"""
from dataclasses import dataclass


@dataclass
class RunPlan:
    steps: int                 # the steps the run trains in all
    precision: str             # fp32 or bf16: --precision as resolved where the run started
    device: str = ""           # --device as resolved in the latest session ("cpu", "cuda:0", ...)
    preset: str = ""           # --preset as given ("auto: NAME" for the candidate auto chose)
    chosen_in_s: float = 0.0   # seconds --preset auto spent timing its candidates: the budget's clock counts them
    # A plan made during a timed run (replan): the step it was made at (0: none), where the
    # schedule was then, in steps of the schedule it had, and that schedule's length.
    knot_step: int = 0
    knot_at: float = 0.0
    schedule_steps: int = 0

    def schedule_position(self, step):
        """Where `step` is in the learning rate's schedule, and that schedule's length: (step,
        steps), but after a plan made during the run (knot_step) the rest of the schedule it had
        (schedule_steps long, at knot_at of them) is laid over the steps now left, so the learning
        rate goes on from where it was and the last step trains at that schedule's last rate."""
        if not self.knot_step or step < self.knot_step:
            return step, self.steps
        last, planned_last = self.steps - 1, self.schedule_steps - 1   # the last steps trained: step N-1 of N
        stretch = (planned_last - self.knot_at) / max(1, last - self.knot_step)
        return self.knot_at + (step - self.knot_step) * stretch, self.schedule_steps

    def replan(self, step, steps):
        """The run trains `steps` in all from step `step` on; the learning rate is continuous there."""
        self.knot_at, self.schedule_steps = self.schedule_position(step)
        self.knot_step, self.steps = step, steps


def plan_from_checkpoint(train_config):
    """The plan a checkpoint written before plans were saved apart held in its train_config: its
    steps and precision, which were the run's own, resolved (and stay there, as that run's
    settings), and the fields no flag sets (taken out of it)."""
    return dict(steps=train_config["steps"], precision=train_config["precision"],
                chosen_in_s=train_config.pop("chosen_in_s", 0.0), knot_step=train_config.pop("knot_step", 0),
                knot_at=train_config.pop("knot_at", 0.0), schedule_steps=train_config.pop("schedule_steps", 0))
