"""A training run's checkpoints: where it starts from (a resumed checkpoint, or --init-from's
weights), what each checkpoint saves, which is best.pt, which are pruned, and --early-stop.
"""
import os
import sys

import torch

from tinychar import runtime
from tinychar.checkpoint import BEST_NAME, checkpoint_path, list_checkpoints, save_checkpoint
from tinychar.files import replace_with_link
from tinychar.metrics import read_metrics


class RunCheckpoints:
    """A run's checkpoints: step_NNNNNN.pt at each --ckpt-every and at the end, each scored by the
    full pass (first BEST_SCORED units of the validation split); best.pt, the lowest score so far;
    --keep-last's pruning; --early-stop's count. Rank 0 scores and writes; the decision to stop
    early is shared with every rank. The record (best) is saved in every checkpoint, so --resume
    continues it."""

    def __init__(self, cfg, resumed, main_process):
        self.cfg, self.main_process = cfg, main_process
        self.best = dict(resumed["best"]) if resumed else dict(step=None, bpc=None, scored=0, since=0)
        best_path = self.best["step"] is not None and checkpoint_path(cfg.out, self.best["step"])
        if main_process and best_path and os.path.exists(best_path):
            # a run killed between writing a new best checkpoint and linking it left best.pt behind
            replace_with_link(best_path, os.path.join(cfg.out, BEST_NAME))

    def judge(self, step, bpc, device, world_size):
        """Record rank 0's score of step's checkpoint; True (on every rank) if the run stops early."""
        if self.main_process:
            self.best["scored"] += 1
            if self.best["bpc"] is None or bpc < self.best["bpc"]:
                self.best.update(step=step, bpc=bpc, since=0)
            else:
                self.best["since"] += 1
        stop = torch.tensor([float(self.cfg.early_stop > 0 and self.best["since"] >= self.cfg.early_stop)],
                            device=device)
        if world_size > 1:
            torch.distributed.broadcast(stop, 0)
        return bool(stop.item())

    def save(self, step, payload):
        """Write step's checkpoint (rank 0), make it best.pt if it is the best, prune; returns its path."""
        path = checkpoint_path(self.cfg.out, step)
        if self.main_process:
            save_checkpoint(payload, path)
            if self.best["step"] == step:
                replace_with_link(path, os.path.join(self.cfg.out, BEST_NAME))
            if self.cfg.keep_last:
                for _, old in list_checkpoints(self.cfg.out)[:-self.cfg.keep_last]:
                    os.remove(old)
        return path


def restore(resumed, model, average, optimizer, batch_rng, seed, device, rank, world_size, metrics_path):
    """Load a checkpoint's weights (and their average: --ema), optimizer and random streams;
    returns (step, pending_losses, metrics rows up to that step)."""
    model.load_state_dict(resumed.get("trained", resumed["model"]))
    if average:
        average.model.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    batch_rng.set_state(resumed["rng"]["batches"])
    step = resumed["step"]
    saved_states = resumed["rng"]["ranks"]
    if len(saved_states) == world_size:
        runtime.set_rng_state(saved_states[rank], device)
    else:   # another number of processes: fresh dropout streams, and say so
        torch.manual_seed(seed + rank + step)
        if rank == 0 and model.cfg.dropout > 0:
            print(f"note: this run was saved by {len(saved_states)} process(es) and resumes with {world_size}: "
                  f"its dropout masks will differ from an uninterrupted run's", file=sys.stderr)
    rows = []
    if os.path.exists(metrics_path):  # rows logged after the checkpoint will be logged again
        rows = [r for r in read_metrics(metrics_path) if r["step"] <= step]
    if rank == 0:
        print(f"resumed from {resumed['path']} at step {step:,}")
    return step, list(resumed["pending_losses"]), rows


def start_from(model, weights):
    """Copy a trained model's weights into a fresh one whose vocabulary extends the source's: the
    rows of the symbols the source knew are its own, the new symbols' keep their initialisation."""
    state = model.state_dict()   # the model's own tensors: writing them writes the model
    with torch.no_grad():
        for name, value in weights.items():
            if name in ("tok_emb.weight", "head.weight"):
                state[name][:value.size(0)] = value
            else:
                state[name].copy_(value)


def checkpoint_rng(batch_rng, device, world_size):
    """The random streams a checkpoint saves: rank 0's, the batch stream's, every rank's (a collective)."""
    rank_states = runtime.gather_rng_states(device, world_size)
    return {"torch": rank_states[0]["torch"], "batches": batch_rng.get_state(), "ranks": rank_states}
