"""One training step and what steers it: the optimizer (AdamW, or Muon for the blocks' matrices),
the learning rate's schedule (warmup, then cosine or WSD), --dropout-from's late dropout, and
--ema's weight average.
"""
import copy
import math
from contextlib import nullcontext

import torch


def make_optimizer(model, cfg):
    """AdamW; weight decay only on the matrices of linear layers. Decaying LayerNorm gains, biases
    or the (tied) embedding would pull them towards zero for no benefit.

    cfg.optimizer "muon": the matrices inside the blocks (attention and feed-forward weights) go to
    torch.optim.Muon instead, which orthogonalises each matrix's momentum before the step (Jordan
    et al. 2024; Muon is for 2-D hidden weights only). Its "match_rms_adamw" learning-rate
    adjustment (Liu et al. 2025) scales the update to AdamW's typical size, so one --lr and one
    --weight-decay serve both; --muon-lr gives Muon a peak rate of its own (follow_schedule scales
    the scheduled rate by muon-lr / lr for Muon's matrices)."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    hidden = [p for name, p in model.named_parameters() if cfg.optimizer == "muon" and name.startswith("blocks.") and p.dim() == 2]
    in_muon = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in in_muon]
    decay = [p for p in rest if p.dim() >= 2 and id(p) not in embeddings]
    no_decay = [p for p in rest if p.dim() < 2 or id(p) in embeddings]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kernel = {"foreach": dict(foreach=True), "fused": dict(fused=True)}.get(cfg.adamw_kernel, {})
    adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), **kernel)
    if not hidden:
        return adamw
    muon = torch.optim.Muon(hidden, lr=cfg.muon_lr or cfg.lr, weight_decay=cfg.weight_decay,
                            adjust_lr_fn="match_rms_adamw")
    return MuonWithAdamW(muon, adamw)


class MuonWithAdamW:
    """Two optimizers stepped as one: what the training loop, the checkpoint and the time-budget
    probe need of an optimizer (param_groups for the learning rate, step, zero_grad, state_dict)."""

    def __init__(self, muon, adamw):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self):
        return self.muon.param_groups + self.adamw.param_groups

    def step(self):
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none=True):
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state):
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def train_step(model, optimizer, x, y, grad_clip, autocast=nullcontext(), micro_batches=1):
    """One optimizer step on a batch; returns the mean loss (a tensor: .item() syncs a GPU). With
    micro_batches N the batch goes through in N equal parts, each loss scaled by 1/N, so the summed
    gradients are the whole batch's up to rounding; a DistributedDataParallel model all-reduces them
    once, on the last part (no_sync before it)."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (x_part, y_part) in enumerate(zip(x.chunk(micro_batches), y.chunk(micro_batches))):
        last = i == micro_batches - 1
        with model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext():
            with autocast:
                _, loss = model(x_part, y_part)
            (loss / micro_batches).backward()
        total = total + loss.detach()
    loss = total / micro_batches
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss


class WeightAverage:
    """--ema: an exponential moving average of a model's weights, updated after each optimizer step
    (in fp32, like the weights), held in a copy of the model that validations and checkpoints score.
    Its decay after step u (1, 2, ...) is min(decay, u / (9 + u)), so that a short run's average is
    not dominated by the initial weights."""

    def __init__(self, model, decay):
        self.decay, self.model = decay, copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.averaged, self.trained = list(self.model.parameters()), list(model.parameters())

    @torch.no_grad()
    def update(self, step):
        """Move the average toward the weights as they are after `step` (1, 2, ...)."""
        decay = min(self.decay, step / (9 + step))
        torch._foreach_lerp_(self.averaged, self.trained, 1 - decay)


def lr_at(step, cfg, plan):
    """Linear warmup over warmup_steps, then cosine decay from lr to min_lr at the last step; or
    (wsd) lr held until the last decay_fraction of the steps, then a linear decay to min_lr. The
    steps are those of plan.schedule_position (a timed run may plan again as it goes)."""
    step, total = plan.schedule_position(step)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":
        decay_steps = max(1, round(cfg.decay_fraction * total))
        into_decay = step - (total - decay_steps)
        if into_decay <= 0:
            return cfg.lr
        return cfg.lr + (cfg.min_lr - cfg.lr) * min(1.0, into_decay / decay_steps)
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_at(step, cfg, plan, unit):
    """The global batch of `step`: --batch-size, but during --batch-warmup's fraction of the schedule
    (plan.schedule_position: where a timed run's plans have moved it) one growing linearly from a
    quarter of it, rounded down to whole multiples of `unit` (processes x --grad-accum, so that every
    process's micro-batches stay equal), never below one unit."""
    if not cfg.batch_warmup:
        return cfg.batch_size
    position, total = plan.schedule_position(step)
    end = cfg.batch_warmup * total
    if position >= end:
        return cfg.batch_size
    start = cfg.batch_size / 4
    return max(unit, int(start + (cfg.batch_size - start) * position / end) // unit * unit)


def warmup_warning(cfg, steps):
    """The warning for a run of `steps` steps that ends inside its warmup, else None. Its steps 0 ..
    steps - 1 then all take lr_at's rising branch: the last trains at steps / warmup_steps of --lr,
    and the decay after the warmup (cosine or wsd) never starts, so --min-lr is never reached."""
    if steps >= cfg.warmup_steps:
        return None
    ends = (f"--time-budget {cfg.time_budget:g} plans {steps:,} steps, which end" if cfg.time_budget
            else f"--steps {steps:,} ends")
    return (f"{ends} inside the {cfg.warmup_steps:,} warmup steps: the learning rate rises to "
            f"{100 * steps / cfg.warmup_steps:.3g}% of --lr and the run ends there, with no decay; pass "
            f"--warmup-steps N to shorten the warmup" + (", or give it more time" if cfg.time_budget else ""))


def follow_schedule(model, optimizer, step, cfg, plan):
    """The learning rate of `step` (returned), and its dropout: --dropout-from's fraction of the
    schedule (plan.schedule_position: where a timed run's plans have moved it) without, then the model's."""
    lr = lr_at(step, cfg, plan)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if cfg.muon_lr and isinstance(optimizer, MuonWithAdamW):   # from the settings, so that --resume may change it
        for group in optimizer.muon.param_groups:
            group["lr"] = lr * cfg.muon_lr / cfg.lr
    if cfg.dropout_from:
        position, total = plan.schedule_position(step)
        model.set_dropout(model.cfg.dropout if position >= cfg.dropout_from * total else 0.0)
    return lr
