"""What stops a run, and what every process of it agrees on: Ctrl-C, SIGTERM and SIGUSR1
(StopRequest), the losses read back from the device, the decisions every rank must take alike
(read_back), and a loss that is no longer finite (check_finite).
"""
import math
import signal
from typing import NamedTuple

import torch

from tinychar import cli
from tinychar.cli import UserError


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM (a scheduler, `timeout`, `docker stop`, torchrun's
    agent) into a flag the loop checks between steps, so the checkpoint we save is of a finished
    step (never a half-applied optimizer update). A second signal stops at once. requested: the
    signal's number, or None. SIGUSR1 (which schedulers such as Slurm can send ahead of the
    time limit) asks for a checkpoint after the current step and training goes on."""
    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    SAVE_SIGNAL = getattr(signal, "SIGUSR1", None)   # None on Windows

    def __init__(self):
        self.requested, self.checkpoint_asked = None, False

    def __enter__(self):
        # a signal the process was started with ignored (`nohup`, a shell's background job for
        # SIGINT) stays ignored, as Python itself leaves it
        handlers = {s: self._handle for s in self.SIGNALS}
        if self.SAVE_SIGNAL:
            handlers[self.SAVE_SIGNAL] = self._ask_checkpoint
        self.previous = {s: signal.signal(s, handler) for s, handler in handlers.items()
                         if signal.getsignal(s) is not signal.SIG_IGN}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise self.stop(signum)
        self.requested = signum

    def _ask_checkpoint(self, signum, frame):
        self.checkpoint_asked = True

    def take_checkpoint_request(self):
        asked, self.checkpoint_asked = self.checkpoint_asked, False
        return asked

    @staticmethod
    def say_saved(step, path, out, signum, world_size):
        by = " by SIGTERM" if signum == signal.SIGTERM else ""
        launcher = f" (under torchrun with {world_size} processes, as before)" if world_size > 1 else ""
        print(f"interrupted{by}: checkpoint saved at step {step} to {path}; "
              f"continue with: python train.py --out {out} --resume{launcher}")

    @staticmethod
    def stop(signum):
        """What ends the process for this signal: exit 130 for Ctrl-C, 143 for SIGTERM (cli.run)."""
        return cli.Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class News(NamedTuple):
    """What one read back to the host tells every rank alike."""
    losses: list          # the steps' mean losses over all ranks, since the last read
    stop: int | None      # the signal that stops the run (SIGTERM if any rank got one, else SIGINT if any did)
    save_asked: bool      # whether any rank was asked for a checkpoint (SIGUSR1)
    over_budget: bool     # whether rank 0 finds the time budget spent


def read_back(unread, stop_signal, checkpoint_asked, budget_over, device, world_size):
    """One read back to the host for the steps since the last (News). Every rank must take the
    same decisions, or the others would wait forever."""
    flags = torch.tensor([float(stop_signal == signal.SIGTERM), float(stop_signal == signal.SIGINT),
                          float(checkpoint_asked), float(budget_over)], device=device)
    losses_and_flags = torch.cat([torch.stack(unread), flags])
    if world_size > 1:
        torch.distributed.all_reduce(losses_and_flags)
        losses_and_flags[:-4] /= world_size
    *losses, sigterm, sigint, asked, budget_flag = losses_and_flags.tolist()
    stop = signal.SIGTERM if sigterm > 0 else signal.SIGINT if sigint > 0 else None
    return News(losses, stop, asked > 0, budget_flag > 0)


def check_finite(losses, first_step, last_good):
    """A loss that is NaN or infinite stops the run before its updates are saved."""
    bad = next((i for i, value in enumerate(losses) if not math.isfinite(value)), None)
    if bad is not None:
        kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written"
        raise UserError(f"loss became {losses[bad]} at step {first_step + bad}: training stopped, {kept} "
                        f"(try a lower --lr)")
