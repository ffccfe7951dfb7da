"""Train a character-level transformer on a text file.

    python train.py --out checkpoints/quickstart                      # bundled corpus, defaults
    python train.py --data data/tinyshakespeare.txt --out checkpoints/baseline --preset baseline
    python train.py --out checkpoints/baseline --resume               # continue where it stopped
    torchrun --standalone --nproc_per_node=2 train.py --out checkpoints/ddp   # DistributedDataParallel
    python train.py --data data/tinyshakespeare.txt --preset cpu30 --out checkpoints/cpu30   # 30 minutes

Random windows of the training split; AdamW with linear warmup then cosine decay; gradient
clipping; validation every --eval-every steps on a fixed set of validation batches (a quick
estimate: eval.py gives the full-pass BPC); a checkpoint every --ckpt-every steps and at the
end. The run directory gets metrics.csv and loss_curve.png, rewritten at every validation.
Ctrl-C or SIGTERM saves a checkpoint and exits (status 130 or 143); SIGUSR1 saves one and goes
on; --resume continues it exactly (same losses as a run that was never interrupted). A run holds
a lock on its folder (train.lock) while it trains: a second run there is refused. A file that
cannot be written (a full disk) stops the run with one line naming it and the last good checkpoint.
See docs/checkpoints.md.
"""
import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace

import torch
from tqdm import tqdm

from tinychar import choose
from tinychar import cli
from tinychar import record
from tinychar import runtime
from tinychar.budget import BUDGET_PLANNED, CHECK_EVERY, REPLAN_EARLY, Budget, seconds_per_step, steps_that_fit
from tinychar.checkpoint import BEST_NAME, checkpoint_path, describe_choice, list_checkpoints, load_checkpoint, make_checkpoint, save_checkpoint
from tinychar.cli import ArgumentParser, UserError, add_config_flags, config_file_flags, setting, toml_value
from tinychar.corpus import DEFAULT_SPLIT, Vocab, check_file, encoded_corpus, get_batch, load_corpus, parse_split
from eval import full_pass_bpc
from tinychar.files import AtomicFile, RunLock, replace_with_link
from tinychar.metrics import plot_curves, read_metrics, write_metrics
from model import RECIPE, CharTransformer, ModelConfig, count_params

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lm_primer.txt")
VAL_BATCH_SEED = 1234   # the same validation batches for every run and seed, so curves compare
BEST_SCORED = 250_000   # units of the validation split each checkpoint is scored on: all of Tiny Shakespeare's
OPTIMIZERS = ("adamw", "muon")


@dataclass
class TrainConfig:
    data: str = setting(DEFAULT_DATA, "UTF-8 text file to train on", shown="the bundled data/lm_primer.txt")
    out: str = setting("checkpoints/run", "run directory for checkpoints, metrics.csv and loss_curve.png")
    steps: int = setting(5000, "optimizer steps in total")
    batch_size: int = setting(32, "windows per step, over all processes")
    grad_accum: int = setting(1, "micro-batches per step: each process's share of --batch-size in N parts whose "
                                 "gradients add up before the step (the same step, in 1/N of the memory); under "
                                 "torchrun the gradients are all-reduced once, after the last")
    lr: float = setting(1e-3, "peak learning rate", shown="1e-3")
    min_lr: float = setting(1e-4, "learning rate at the end of the cosine decay", shown="1e-4")
    warmup_steps: int = setting(100, "steps of linear warmup from 0 to --lr")
    weight_decay: float = setting(0.1, "weight decay on matrices; none on LayerNorm, biases, embeddings")
    grad_clip: float = setting(1.0, "clip the gradients' global norm to this; 0 disables")
    eval_every: int = setting(500, "validate every N steps")
    eval_batches: int = setting(20, "fixed validation batches per validation")
    ckpt_every: int = setting(1000, "write a checkpoint every N steps, and always at the end; each is validated and "
                                    "scored by eval.py's full pass over the first "
                                    f"{BEST_SCORED:,} units of the validation split, and the lowest is kept as best.pt")
    early_stop: int = setting(0, "stop (validated and saved) when N checkpoints in a row have not improved on "
                                 "best.pt's score; 0 = off")
    init_from: str = setting(None, "start from a trained model's weights (a run directory's best.pt, a checkpoint "
                                   "file or an export) on any corpus, with a new optimizer, schedule and budget: "
                                   "the model's shape is the source's; characters new to it get new rows",
                             shown="none")
    keep_last: int = setting(None, "keep only the last K step checkpoints (and best.pt); at least 1, the one "
                                   "--resume needs", shown="all")
    seed: int = setting(1337, "seed for initialisation, batches and dropout")
    threads: int = setting(0, "CPU threads for torch's operations (torch.set_num_threads); 0 = torch's default, "
                              "one per core", shown="0: one per core")
    device: str = setting("auto", "where to train", choices=("auto", "cpu", "cuda", "mps"),
                          shown="auto: cuda, then mps, then cpu")
    compile: bool = setting(None, "torch.compile the training step", shown="on for CUDA, off on CPU, where it measured "
                                                                         "no gain")
    precision: str = setting("auto", "matmul precision of training: bf16 (autocast; weights and optimizer stay fp32) "
                                     "or fp32; auto = bf16 on GPUs that support it (torch.cuda.is_bf16_supported) and "
                                     "on CPUs with native bf16 (AVX512-BF16, AMX), else fp32; a run saves the one it "
                                     "resolved to", choices=("auto", "fp32", "bf16"))
    schedule: str = setting("cosine", "after warmup: cosine (decay to --min-lr over the rest) or wsd "
                                      "(warmup-stable-decay: --lr until the last --decay-fraction of the steps, then "
                                      "linear to --min-lr)" + RECIPE, choices=("cosine", "wsd"))
    decay_fraction: float = setting(0.2, "wsd: the fraction of the steps spent decaying")
    time_budget: float = setting(0.0, "minutes of training (reading the corpus, compiling, validations and checkpoints "
                                      "included): the number of steps is chosen from the measured step time to fit "
                                      f"{BUDGET_PLANNED * 100:.0f}% of them, then fixed and saved, so the run is "
                                      "reproducible and --resume exact; the budget is a ceiling: a run slower than "
                                      "planned stops early, validated and saved; replaces --steps (--steps on "
                                      "--resume: the run goes on to --steps, untimed)", shown="off")
    # Set by a plan made during a timed run (PlanFromPace, lr_at): the step it was made at (0: none),
    # where the schedule was then, in steps of the schedule it had, and that schedule's length.
    knot_step: int = 0
    knot_at: float = 0.0
    schedule_steps: int = 0
    chosen_in_s: float = 0.0    # seconds --preset auto spent timing its candidates: the budget's clock counts them
    unit: str = "chars"         # what a token is: a character of UTF-8 text, or a byte of any file (flag --bytes)
    split: str = setting(DEFAULT_SPLIT, "train,validation[,test] parts of the corpus, in order: fractions (0.9,0.1) or "
                                        "counts of characters/bytes (enwik8: 90000000,5000000,5000000)")
    dropout_from: float = setting(0.0, "late dropout: no dropout for the first fraction F of the learning rate's "
                                       "schedule, then --dropout (Liu et al. 2023, \"Dropout Reduces Underfitting\"): "
                                       "the steps before it are as fast as without dropout", shown="0: from the start")
    ema: float = setting(0.0, "keep an exponential moving average of the weights with this decay (e.g. 0.999; 0 = off; "
                              "its first updates average faster: decay min(D, u / (9 + u)) at step u): the "
                              "average is the run's model, which validations, checkpoint scores, best.pt, eval.py, "
                              "generate.py and export.py use; the weights as trained are saved beside it for --resume "
                              "(eval.py --trained-weights scores them)", shown="0: off")
    optimizer: str = setting("adamw", "adamw, or muon: torch.optim.Muon for the blocks' matrices (its learning rate "
                                      "matched to AdamW's update size, so --lr and --weight-decay carry over), AdamW "
                                      "for embeddings, head, LayerNorms and biases" + RECIPE, choices=OPTIMIZERS)

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "ckpt_every", "grad_accum"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"--min-lr must be between 0 and --lr ({self.lr}), got {self.min_lr}")
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError(f"--keep-last must be at least 1 (the checkpoint --resume needs), got {self.keep_last}")
        for name in ("warmup_steps", "weight_decay", "grad_clip", "early_stop", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        parse_split(self.split)   # a UserError, with its own message
        if self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"--schedule must be cosine or wsd, got {self.schedule!r}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"--decay-fraction must be in (0, 1], got {self.decay_fraction}")
        if self.time_budget < 0:
            raise ValueError(f"--time-budget must not be negative, got {self.time_budget}")
        if not 0 <= self.dropout_from < 1:
            raise ValueError(f"--dropout-from must be a fraction in [0, 1), got {self.dropout_from}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema must be a decay in [0, 1), got {self.ema}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


# The report's two configurations (its study compares them: they stay as they are), and the
# recipe's best model for N minutes of training on two CPU cores, cpuN, carrying its --time-budget:
# each the lowest of the candidates timed for that budget (experiments/recipe/README.md, with the
# figures). In 7 minutes or less the baseline's shape has too few steps to overfit: no dropout;
# in 5, the WSD schedule (kept by the recipe's rule on fresh seeds; at 7 minutes not confirmed).
# Explicit flags override a preset.
BASELINE_FIELDS = dict(n_heads=4, pos_encoding="sinusoidal")
PRESETS = {
    "baseline": dict(BASELINE_FIELDS),
    "ablation": dict(n_heads=1, pos_encoding="none"),
    "cpu30": dict(BASELINE_FIELDS, dropout=0.1, n_layers=4, time_budget=30.0),
    "cpu15": dict(BASELINE_FIELDS, dropout=0.1, n_layers=4, time_budget=15.0),
    "cpu7": dict(BASELINE_FIELDS, time_budget=7.0),
    "cpu5": dict(BASELINE_FIELDS, schedule="wsd", time_budget=5.0),
}

def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, TrainConfig)
    add_config_flags(parser, ModelConfig)
    parser.add_argument("--bytes", action=argparse.BooleanOptionalAction, default=None,
                        help="a byte-level model: the vocabulary is the file's bytes (any file, UTF-8 or not) "
                             "and BPC means bits per byte (default --no-bytes: Unicode characters of a UTF-8 file)")
    parser.add_argument("--preset", choices=sorted(PRESETS) + ["auto"], default=None,
                        help="baseline = 4 heads + sinusoidal; ablation = 1 head + no positional encoding; "
                             "cpuN = the recipe's best model for N minutes of training on 2 CPU cores (sets "
                             "--time-budget N; README: The best model in N minutes); auto (with --time-budget) = "
                             "the recipe's candidate shape predicted best for the steps this machine affords in "
                             "that time, each timed here (docs/flags.md)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in --out, with its saved settings")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="read flags from a TOML file, each by its name (d_model = 512, pos = \"rope\", "
                             "dropout_attention = false); the command line wins over the file; every run "
                             "directory holds its own settings as config.toml, which repeats the run")
    args = parser.parse_args(argv)
    if args.config:
        from_file = vars(parser.parse_args(config_file_flags(parser, args.config)))
        given = {k: v for k, v in vars(args).items() if v is not None and not (k == "resume" and v is False)}
        args = argparse.Namespace(**{**from_file, **given})
    return args


def config_toml(model_cfg, cfg):
    """The run's settings as a TOML file that --config reads back: every flag with its value (those
    without one, such as --keep-last's "all", left out); under a time budget no --steps, so that a
    repeat plans its steps again."""
    lines = ["# this run's settings: python train.py --config THIS_FILE --out NEW_RUN repeats it"]
    for config in (cfg, model_cfg):
        for f in fields(config):
            value = getattr(config, f.name)
            if "help" not in f.metadata or value is None or (f.name == "steps" and cfg.time_budget):
                continue
            name = f.metadata.get("flag", "--" + f.name.replace("_", "-"))[2:]
            lines.append(f"{name} = {toml_value(value)}")
    lines.append(f"bytes = {toml_value(cfg.unit == 'bytes')}")
    return "\n".join(lines) + "\n"


SHAPE_FIELDS = ("seq_len", "d_model", "n_layers", "n_heads", "d_ff", "pos_encoding", "tie_weights", "activation",
                "qk_norm", "logit_softcap")   # what a model started from another keeps (dropout, init may differ)


def take_source_shape(source, model_fields, train_fields, given):
    """--init-from: the model's shape and unit are the source's; a flag (or preset) that sets them
    otherwise is an error."""
    for field in SHAPE_FIELDS:
        saved, value = source["model_config"][field], model_fields[field]
        if field == "d_ff" and value == 0:
            value = 4 * model_fields["d_model"]
        if field in given and value != saved:
            raise UserError(f"--init-from: {source['path']} has {field}={saved!r} but the flags give {value!r}; a "
                            f"model started from another keeps its shape")
        model_fields[field] = saved
    unit = source["train_config"]["unit"]
    if train_fields["unit"] != unit:
        flag = "--no-bytes" if unit == "chars" else "--bytes"
        raise UserError(f"--init-from: {source['path']} was trained on {unit} ({flag}): a model started from it "
                        f"reads the same unit")


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


def resolve_configs(args):
    """Settings, later ones winning: defaults, the resumed checkpoint's, the preset, explicit flags.
    Returns (ModelConfig, TrainConfig, checkpoint to resume or None)."""
    model_fields = {f.name: f.default for f in fields(ModelConfig)}
    train_fields = {f.name: f.default for f in fields(TrainConfig)}
    explicit = {k: v for k, v in vars(args).items() if v is not None and k not in ("preset", "resume", "config")}
    if explicit.get("time_budget") and "steps" in explicit and not args.resume:
        raise UserError("--time-budget chooses the number of steps: drop --steps")
    if "bytes" in explicit:
        explicit["unit"] = "bytes" if explicit.pop("bytes") else "chars"
    resumed = None
    if args.resume:
        out = explicit.get("out", train_fields["out"])
        if not os.path.isdir(out) or not list_checkpoints(out):
            raise UserError(f"--resume: no checkpoint in {out} to resume from")
        resumed = load_checkpoint(out)
        unknown = sorted(set(resumed["train_config"]) - set(train_fields))
        if unknown:
            raise UserError(f"{resumed['path']} was written by another version of tinychar: its training settings "
                            f"include some this code does not know ({', '.join(unknown)})")
        model_fields.update(resumed["model_config"])
        train_fields.update(resumed["train_config"])
    preset = auto_preset(model_fields, train_fields, explicit, resumed) if args.preset == "auto" else PRESETS.get(
        args.preset, {})
    for field, value in preset.items():   # a preset may set model and training fields alike
        (model_fields if field in model_fields else train_fields)[field] = value
    for field, value in explicit.items():
        (model_fields if field in model_fields else train_fields)[field] = value
    if "steps" in explicit and "time_budget" not in explicit:
        train_fields["time_budget"] = 0.0   # --steps given: a preset's (or a resumed run's) time budget gives way
    if train_fields["init_from"] and not resumed:
        given = set(explicit) | set(preset)
        take_source_shape(load_checkpoint(train_fields["init_from"], "best"), model_fields, train_fields, given)
    if resumed:
        for field, saved in resumed["model_config"].items():
            if field != "vocab_size" and model_fields[field] != saved:
                raise UserError(f"--resume: the checkpoint has {field}={saved!r} but the flags give "
                                f"{model_fields[field]!r}; a resumed run keeps its model shape")
        saved_unit = resumed["train_config"]["unit"]
        if train_fields["unit"] != saved_unit:
            raise UserError(f"--resume: this run was trained on {saved_unit} ({'--no-bytes' if saved_unit == 'chars' else '--bytes'}), "
                            f"and a resumed run keeps its unit")
        saved_optimizer = resumed["train_config"]["optimizer"]
        if train_fields["optimizer"] != saved_optimizer:
            raise UserError(f"--resume: this run was trained with --optimizer {saved_optimizer}, and a resumed run "
                            f"keeps its optimizer (its state is that optimizer's)")
        for name in ("split", "ema"):   # the run's data, and its average's decay
            if train_fields[name] != resumed["train_config"][name]:
                raise UserError(f"--resume: this run was trained with --{name} {resumed['train_config'][name]}, "
                                f"and a resumed run keeps its {name}")
    model_fields["vocab_size"] = 1  # a placeholder until the corpus is read
    try:
        model_cfg, cfg = ModelConfig(**model_fields), TrainConfig(**train_fields)
    except ValueError as e:
        raise UserError(f"invalid settings: {e}") from None
    if cfg.dropout_from and not model_cfg.dropout:
        raise UserError("--dropout-from says when dropout starts: it needs --dropout P")
    return model_cfg, cfg, resumed


def auto_preset(model_fields, train_fields, explicit, resumed):
    """--preset auto's fields: the candidate choose.py predicts best for --time-budget on this
    machine (each timed with the user's other flags), and the seconds spent choosing (chosen_in_s),
    which the run's clock counts."""
    if resumed:
        raise UserError("--preset auto chooses a new run's shape: a resumed run keeps its own (drop --preset)")
    if not explicit.get("time_budget"):
        raise UserError("--preset auto needs --time-budget MINUTES: it chooses the shape for the steps that time buys")

    def configs(fields):
        merged_model, merged_train = dict(model_fields, vocab_size=1), dict(train_fields)
        for field, value in {**fields, **explicit}.items():
            (merged_model if field in merged_model else merged_train)[field] = value
        try:
            return ModelConfig(**merged_model), TrainConfig(**merged_train)
        except ValueError as e:
            raise UserError(f"invalid settings: {e}") from None

    runtime.use_threads(configs({})[1].threads)
    _, fields, seconds = choose.choose(configs, explicit["time_budget"], BEST_SCORED)
    return dict(fields, chosen_in_s=seconds)


def schedule_position(step, cfg):
    """Where `step` is in the learning rate's schedule, and that schedule's length: (step,
    cfg.steps), but after a plan made during the run (PlanFromPace: cfg.knot_step) the rest of the
    schedule it had (schedule_steps long, at knot_at of them) is laid over the steps now left, so
    the learning rate goes on from where it was and the last step trains at that schedule's last rate."""
    if not cfg.knot_step or step < cfg.knot_step:
        return step, cfg.steps
    last, planned_last = cfg.steps - 1, cfg.schedule_steps - 1   # the last steps trained: step N-1 of N
    stretch = (planned_last - cfg.knot_at) / max(1, last - cfg.knot_step)
    return cfg.knot_at + (step - cfg.knot_step) * stretch, cfg.schedule_steps


def replan_schedule(cfg, step, steps):
    """cfg.steps becomes `steps` from step `step` on; the learning rate is continuous there."""
    cfg.knot_at, cfg.schedule_steps = schedule_position(step, cfg)
    cfg.knot_step, cfg.steps = step, steps


def lr_at(step, cfg):
    """Linear warmup over warmup_steps, then cosine decay from lr to min_lr at the last step; or
    (wsd) lr held until the last decay_fraction of the steps, then a linear decay to min_lr. The
    steps are those of schedule_position (a timed run may plan again as it goes)."""
    step, total = schedule_position(step, cfg)
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


def make_optimizer(model, cfg):
    """AdamW; weight decay only on the matrices of linear layers. Decaying LayerNorm gains, biases
    or the (tied) embedding would pull them towards zero for no benefit.

    cfg.optimizer "muon": the matrices inside the blocks (attention and feed-forward weights) go to
    torch.optim.Muon instead, which orthogonalises each matrix's momentum before the step (Jordan
    et al. 2024; Muon is for 2-D hidden weights only). Its "match_rms_adamw" learning-rate
    adjustment (Liu et al. 2025) scales the update to AdamW's typical size, so one --lr and one
    --weight-decay serve both."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    hidden = [p for name, p in model.named_parameters() if cfg.optimizer == "muon" and name.startswith("blocks.") and p.dim() == 2]
    in_muon = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in in_muon]
    decay = [p for p in rest if p.dim() >= 2 and id(p) not in embeddings]
    no_decay = [p for p in rest if p.dim() < 2 or id(p) in embeddings]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    if not hidden:
        return adamw
    muon = torch.optim.Muon(hidden, lr=cfg.lr, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw")
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
        import copy
        self.decay, self.model = decay, copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.averaged, self.trained = list(self.model.parameters()), list(model.parameters())

    @torch.no_grad()
    def update(self, step):
        """Move the average toward the weights as they are after `step` (1, 2, ...)."""
        decay = min(self.decay, step / (9 + step))
        torch._foreach_lerp_(self.averaged, self.trained, 1 - decay)


@torch.no_grad()
def validation_loss(model, batches, autocast):
    """Mean cross-entropy (nats) over the fixed validation batches."""
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast:
            total += model(x, y)[1].item()
    model.train()
    return total / len(batches)


def fit_steps_to_budget(model, optimizer, cfg, batches, val_batches, autocast, spent_s=0.0, probe_steps=16,
                        wrap=None, score=None):
    """The number of steps whose training, validations and checkpoints fit BUDGET_PLANNED (97%) of
    cfg.time_budget minutes.

    Times a few steps (after one untimed), a validation and a checkpoint's serialisation on copies
    of the model and optimizer, under a forked RNG, so the real run is exactly a run with
    --steps N (up to an early stop, see budget.Budget.over): the budget decides N once, and N is
    saved. The time already spent (spent_s: setting up) and the probe's own count against the
    budget. batches: a function giving a fresh (x, y) on the device. wrap: what the run wraps its
    model in (DistributedDataParallel under torchrun), so that the probe's steps pay its all-reduce
    too. score: a function scoring a model as a checkpoint is (score_checkpoint), timed with the
    checkpoint's cost. (A compiled run is timed eager: its estimate errs on the short side.)"""
    import copy
    import io
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


def score_checkpoint(model, train_ids, val_ids, autocast):
    """(Full-pass BPC of the model as it is, in eval mode and the run's precision, over the first
    BEST_SCORED units of the validation split; the seconds it took)."""
    start = time.perf_counter()
    model.eval()
    bpc, _ = full_pass_bpc(model, train_ids, val_ids[:BEST_SCORED], device=next(model.parameters()).device,
                           autocast=autocast)
    model.train()
    return bpc, time.perf_counter() - start


def validate(model, val_batches, train_ids, val_ids, autocast, log, budget, step, train_loss, lr, score):
    """Rank 0's validation at step: the quick estimate on the fixed batches and, with score, the
    checkpoint's full pass, logged with the training loss since the last validation. The budget
    learns what the validation cost (the full pass's seconds count to the checkpoint's). Returns
    (the full pass's BPC or None, its seconds)."""
    now, tokens_per_s = time.perf_counter(), log.tokens_per_s()
    val_loss = validation_loss(model, val_batches, autocast)
    bpc, score_s = score_checkpoint(model, train_ids, val_ids, autocast) if score else (None, 0.0)
    log.validation(step, train_loss, val_loss, lr, tokens_per_s, budget.elapsed(), bpc)
    budget.measured("validation_s", log.restart_clock() - now - score_s)
    return bpc, score_s


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


def start_processes(device, cfg, resumed):
    """The device of this process, its rank under torchrun and the number of processes."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not resumed and os.path.isdir(cfg.out) and list_checkpoints(cfg.out):
        raise UserError(f"{cfg.out} already holds checkpoints: pass --resume to continue it, or a new --out")
    rank, world_size = runtime.setup_distributed(device)
    if cfg.batch_size % world_size:
        raise UserError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world_size})")
    if (cfg.batch_size // world_size) % cfg.grad_accum:
        raise UserError(f"--grad-accum {cfg.grad_accum} must divide each process's batch ({cfg.batch_size // world_size}"
                        f" windows): micro-batches of one size are what make the step the whole batch's")
    return device, rank, world_size


def read_corpus(cfg, model_cfg, resumed, source, rank, world_size):
    """(vocab, train_ids, val_ids, fingerprint). Rank 0 encodes the corpus into its cache (if it is
    not there yet) while the others wait; then every rank memory-maps the same file. The vocabulary
    is the corpus's own, a resumed run's, or (--init-from) the source's with the corpus's new
    symbols appended."""
    def read():
        vocab = Vocab(resumed["vocab"], cfg.unit) if resumed else None
        if source:
            present = encoded_corpus(cfg.data, cfg.unit, cfg.out, log=print)[0].present
            vocab = Vocab(source["vocab"], cfg.unit).extended(present)
        return load_corpus(cfg.data, model_cfg.seq_len, vocab, expected_fingerprint=resumed and resumed["data_fingerprint"],
                           unit=cfg.unit, split_spec=cfg.split, run_dir=cfg.out,
                           log=print)   # the cache's path, on stdout with the rest of the run's log
    corpus = read() if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
    return corpus if rank == 0 else read()


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


def make_runner(model, cfg, train_ids, device, world_size, autocast):
    """What runs the step: the model, maybe compiled, maybe wrapped for DDP; checkpoints and
    validation always use the plain module, so saved keys never gain prefixes. Returns (runner,
    compiled)."""
    runner = model
    if cfg.compile if cfg.compile is not None else device.type == "cuda":
        # the trial batch has the real local batch's shape, device and precision (see compile_model)
        example = get_batch(train_ids, cfg.batch_size // world_size, model.cfg.seq_len, torch.Generator().manual_seed(0))
        runner = runtime.compile_model(model, tuple(t.to(device) for t in example), autocast)
    compiled = runner is not model
    if world_size > 1:
        runner = torch.nn.parallel.DistributedDataParallel(runner)
    return runner, compiled


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
    (lr_at), so the learning rate still decays fully by the end. Each decision is saved in the checkpoints (cfg),
    so --resume is exact; a run that never planned again is the `--steps N` run. The ceiling
    (budget.Budget.over) stays in force."""

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

    def revise(self, step, cfg, budget, device, world_size, main_process):
        """cfg.steps fitted to the pace since the oldest mark, when due (every rank takes the slowest's)."""
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
            self.warmup_plan, planned, cfg.steps = False, cfg.steps, fitted
            self.marks = deque([(budget.trained_s, step)], maxlen=2)
            if main_process:
                tqdm.write(f"time budget planned again at the end of the warmup (step {step}) from this run's pace, "
                           f"{1000 * pace:.1f} ms a step: {cfg.steps:,} steps (the probe's plan: {planned:,})")
            return
        budget_s = cfg.time_budget * 60
        end_s = BUDGET_PLANNED * budget_s + (cfg.steps - fitted) * per_step   # when the planned steps would end
        if (BUDGET_PLANNED - REPLAN_EARLY) * budget_s <= end_s <= budget_s:
            return
        planned = cfg.steps
        replan_schedule(cfg, step, fitted)
        if main_process:
            tqdm.write(f"time budget planned again at step {step}: the last {step - then_step} steps took "
                       f"{1000 * pace:.1f} ms each, so the {planned:,} steps planned would end at "
                       f"{100 * end_s / budget_s:.0f}% of the budget: {fitted:,} steps, the rest of the learning "
                       f"rate's schedule laid over them")


def checkpoint_rng(batch_rng, device, world_size):
    """The random streams a checkpoint saves: rank 0's, the batch stream's, every rank's (a collective)."""
    rank_states = runtime.gather_rng_states(device, world_size)
    return {"torch": rank_states[0]["torch"], "batches": batch_rng.get_state(), "ranks": rank_states}


def follow_schedule(model, optimizer, step, cfg):
    """The learning rate of `step` (returned), and its dropout: --dropout-from's fraction of the
    schedule (schedule_position: where a timed run's plans have moved it) without, then the model's."""
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if cfg.dropout_from:
        position, total = schedule_position(step, cfg)
        model.set_dropout(model.cfg.dropout if position >= cfg.dropout_from * total else 0.0)
    return lr


def read_back(unread, stop_signal, checkpoint_asked, budget_over, device, world_size):
    """One read back to the host for the steps since the last: their mean losses over all ranks,
    the signal that stops the run (SIGTERM if any rank got one, else SIGINT if any did, else None),
    whether any rank was asked for a checkpoint (SIGUSR1), and whether rank 0 finds the budget
    spent. Every rank must take the same decisions, or the others would wait forever."""
    flags = torch.tensor([float(stop_signal == signal.SIGTERM), float(stop_signal == signal.SIGINT),
                          float(checkpoint_asked), float(budget_over)], device=device)
    losses_and_flags = torch.cat([torch.stack(unread), flags])
    if world_size > 1:
        torch.distributed.all_reduce(losses_and_flags)
        losses_and_flags[:-4] /= world_size
    *losses, sigterm, sigint, asked, budget_flag = losses_and_flags.tolist()
    stop = signal.SIGTERM if sigterm > 0 else signal.SIGINT if sigint > 0 else None
    return losses, stop, asked > 0, budget_flag > 0


def check_finite(losses, first_step, last_good):
    """A loss that is NaN or infinite stops the run before its updates are saved."""
    bad = next((i for i, value in enumerate(losses) if not math.isfinite(value)), None)
    if bad is not None:
        kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written"
        raise UserError(f"loss became {losses[bad]} at step {first_step + bad}: training stopped, {kept} "
                        f"(try a lower --lr)")


class RunLog:
    """What a run shows and logs: the progress bar, metrics.csv and its curve, and tokens/s over the
    training since the last validation or checkpoint (validations and saves not counted)."""

    def __init__(self, cfg, model_cfg, rows, step, show):
        self.cfg, self.rows, self.curve_failed = cfg, rows, False
        self.path = os.path.join(cfg.out, "metrics.csv")
        self.tokens_per_step = cfg.batch_size * model_cfg.seq_len
        self.bar = tqdm(total=cfg.steps, initial=step, disable=not show, dynamic_ncols=True, file=sys.stderr)
        self.restart_clock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def restart_clock(self):
        self.interval_start, self.interval_steps = time.perf_counter(), 0
        return self.interval_start

    def step_done(self):
        self.interval_steps += 1
        self.bar.total = self.cfg.steps   # a timed run's plan may change at the end of its warmup
        self.bar.update(1)

    def tokens_per_s(self):
        return self.interval_steps * self.tokens_per_step / (time.perf_counter() - self.interval_start)

    def validation(self, step, train_loss, val_loss, lr, tokens_per_s, elapsed_s, checkpoint_bpc=None):
        self.rows.append(dict(step=step, train_loss=train_loss, train_bpc=train_loss / math.log(2), val_loss=val_loss,
                              val_bpc=val_loss / math.log(2), lr=lr, tokens_per_s=tokens_per_s, elapsed_s=elapsed_s,
                              checkpoint_bpc=checkpoint_bpc))
        write_metrics(self.path, self.rows)
        try:
            plot_curves({os.path.basename(os.path.normpath(self.cfg.out)): self.rows},
                        os.path.join(self.cfg.out, "loss_curve.png"))
        except Exception as error:   # the curve is a convenience: metrics.csv holds the numbers
            if not self.curve_failed:
                tqdm.write(f"warning: loss_curve.png not drawn ({cli.storage_error(error) or error}); training "
                           f"goes on (said once)", file=sys.stderr)
            self.curve_failed = True
        self.bar.set_postfix(loss=f"{train_loss:.3f}", val_bpc=f"{val_loss / math.log(2):.3f}", tok_s=f"{tokens_per_s:,.0f}")
        scored = f", checkpoint {checkpoint_bpc:.4f} BPC (full pass)" if checkpoint_bpc is not None else ""
        tqdm.write(f"step {step}: train loss {train_loss:.4f}, val loss {val_loss:.4f} (val BPC "
                   f"{val_loss / math.log(2):.4f}, {self.cfg.eval_batches} batches){scored}, lr {lr:.2e}, "
                   f"{tokens_per_s:,.0f} tokens/s")
        sys.stdout.flush()  # a log redirected to a file shows progress as it happens


def fixed_validation_batches(val_ids, cfg, seq_len, device):
    """The eval_batches batches every validation of every run scores (VAL_BATCH_SEED), on the device."""
    val_rng = torch.Generator().manual_seed(VAL_BATCH_SEED)
    return [tuple(t.to(device) for t in get_batch(val_ids, cfg.batch_size, seq_len, val_rng))
            for _ in range(cfg.eval_batches)]


def record_session(cfg, resumed, device, world_size, main_process):
    """The run's sessions (record.py), this one appended: written to RUN/run.json (rank 0) and
    saved in every checkpoint, so a run resumed elsewhere says where each part of it ran."""
    sessions = (list(resumed["run_record"]) if resumed else []) + [record.session(device, cfg.precision, world_size)]
    if main_process:
        with AtomicFile(os.path.join(cfg.out, "run.json")) as f:
            json.dump({"sessions": sessions}, f, indent=2)
            f.write("\n")
        print(f"machine: {record.describe(sessions[-1])}")
    return sessions


def build_model(model_cfg, cfg, source, device, rank, world_size):
    """(model, optimizer, its WeightAverage or None): the same initial weights on every rank, from
    --seed, or the source's (--init-from); then each rank draws its own dropout masks, as N
    processes' slices should."""
    torch.manual_seed(cfg.seed)
    model = CharTransformer(model_cfg).to(device)
    if source:
        start_from(model, source["model"])
    if world_size > 1:
        torch.manual_seed(cfg.seed + rank)
    return model, make_optimizer(model, cfg), WeightAverage(model, cfg.ema) if cfg.ema else None


def announce(model, cfg, vocab, train_ids, val_ids, source, device, world_size, compiled):
    """The new run's first line: its size, data, device and precision (and where it started from)."""
    print(f"{count_params(model):,} parameters, vocabulary {len(vocab)}, {len(train_ids):,} training / "
          f"{len(val_ids):,} validation {cfg.unit.replace('chars', 'characters')}, device {device}, {cfg.precision}"
          + (f", {world_size} processes" if world_size > 1 else "") + (", compiled" if compiled else ""))
    if source:
        print(f"started from {cfg.init_from}: {describe_choice(source)}; {len(source['vocab'])} symbols it knew, "
              f"{len(vocab) - len(source['vocab'])} new")


def say_done(cfg, step, last_good, best, stopped_early, budget_spent_s):
    """The run's last lines: why it stopped, where its checkpoints are."""
    if stopped_early:
        print(f"early stop: {cfg.early_stop} checkpoints in a row did not improve on step {best['step']:,}'s "
              f"{best['bpc']:.4f} BPC (best.pt)")
    if budget_spent_s:
        print(f"time budget spent: stopped at step {step:,} of the {cfg.steps:,} planned ({budget_spent_s:.1f} s of "
              f"{cfg.time_budget * 60:g})")
    kept = f", best.pt = step {best['step']:,} ({best['bpc']:.4f} BPC)" if best["step"] is not None else ""
    print(f"done: {step} steps, checkpoint {last_good}{kept}; full-pass BPC: python eval.py {cfg.out}")


def train(model_cfg, cfg, resumed=None, progress=True):
    """Run (or continue) training; returns the metrics rows. All state goes to cfg.out, whose lock
    (train.lock) the run holds until it ends; under torchrun rank 0 holds it for every rank."""
    check_file(cfg.data)   # before the run's folder is made
    with RunLock(cfg.out) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        return run_training(model_cfg, cfg, resumed, progress)


def run_training(model_cfg, cfg, resumed, progress):
    """train(), with the run's folder locked. Under torchrun each rank trains on its slice of the
    same global batch (DistributedDataParallel); only rank 0 validates, logs and writes checkpoints,
    which hold every rank's generators (docs/distributed.md)."""
    model_cfg, cfg = replace(model_cfg), replace(cfg)   # what is resolved below is this run's, not the caller's
    # the clock starts here: reading the corpus, compiling and the budget's probe count against it
    device = runtime.resolve_device(cfg.device)
    runtime.use_threads(cfg.threads)
    budget = Budget(cfg.time_budget, runtime.host_sync_interval(device),
                    resumed["elapsed_s"] if resumed else cfg.chosen_in_s, resumed["budget_costs"] if resumed else None)
    device, rank, world_size = start_processes(device, cfg, resumed)
    main_process = rank == 0
    source = load_checkpoint(cfg.init_from, "best") if cfg.init_from and not resumed else None
    vocab, train_ids, val_ids, fingerprint = read_corpus(cfg, model_cfg, resumed, source, rank, world_size)
    model_cfg.vocab_size = len(vocab)
    if main_process:   # its folder: made by train()'s RunLock
        with AtomicFile(os.path.join(cfg.out, "config.toml")) as f:
            f.write(config_toml(model_cfg, cfg))
    model, optimizer, average = build_model(model_cfg, cfg, source, device, rank, world_size)
    scored = average.model if average else model   # what validations, scores and checkpoints take as the model
    batch_rng = torch.Generator().manual_seed(cfg.seed)
    val_batches = fixed_validation_batches(val_ids, cfg, model_cfg.seq_len, device)
    cfg.precision = runtime.resolve_precision(cfg.precision, device)
    autocast = runtime.autocast(cfg.precision, device)
    sessions = record_session(cfg, resumed, device, world_size, main_process)
    step, pending_losses, rows = 0, [], []
    if resumed:
        step, pending_losses, rows = restore(resumed, model, average, optimizer, batch_rng, cfg.seed, device, rank, world_size,
                                             os.path.join(cfg.out, "metrics.csv"))
    runner, compiled = make_runner(model, cfg, train_ids, device, world_size, autocast)
    if cfg.time_budget and not resumed:
        cfg.steps = plan_steps(model, optimizer, cfg, train_ids, val_ids, val_batches, autocast, budget, device, rank,
                               world_size)
    if main_process and not resumed:
        announce(model, cfg, vocab, train_ids, val_ids, source, device, world_size, compiled)
    local_batch = slice(rank * cfg.batch_size // world_size, (rank + 1) * cfg.batch_size // world_size)
    last_good = list_checkpoints(cfg.out)[-1][1] if resumed else None
    checkpoints = RunCheckpoints(cfg, resumed, main_process)
    unread = []   # this rank's losses (device tensors) of the steps since the host last read them
    budget.start_window()
    model.train()
    # a resumed run whose budget is spent ends at once (judged on the saved elapsed_s, which the save
    # itself came after, and costs, so that every rank decides alike); a fresh run trains its first step
    budget_spent = (resumed is not None and step < cfg.steps
                    and budget.over(budget.costs["checkpoint_s"], elapsed_s=resumed["elapsed_s"]))
    plan = PlanFromPace(cfg, step)
    with StopRequest() as stop, RunLog(cfg, model_cfg, rows, step, show=progress and main_process) as log:
        stopped_early = False
        while step < cfg.steps and not budget_spent and not stopped_early:
            lr = follow_schedule(model, optimizer, step, cfg)
            x, y = (runtime.to_device(t[local_batch], device)
                    for t in get_batch(train_ids, cfg.batch_size, model_cfg.seq_len, batch_rng))
            unread.append(train_step(runner, optimizer, x, y, cfg.grad_clip, autocast, cfg.grad_accum).float())
            step += 1
            if average:
                average.update(step)
            log.step_done()
            at_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            at_eval = at_ckpt or step % cfg.eval_every == 0   # a checkpoint is always validated
            if not (at_eval or at_ckpt or step % budget.sync_every == 0 or plan.due(step)):
                continue
            own_costs = budget.due_costs(at_eval, at_ckpt)
            losses, stop_signal, checkpoint_asked, over = read_back(
                unread, stop.requested, stop.take_checkpoint_request(), main_process and budget.over(own_costs),
                device, world_size)
            check_finite(losses, step - len(losses) + 1, last_good)
            unread = []
            budget.end_window(len(losses))
            plan.revise(step, cfg, budget, device, world_size, main_process)
            if over and step < cfg.steps:   # this step is the last: validate and save it
                budget_spent = at_eval = at_ckpt = True
            pending_losses.extend(losses)
            bpc, score_s = None, 0.0
            if main_process and at_eval:
                bpc, score_s = validate(scored, val_batches, train_ids, val_ids, autocast, log, budget, step,
                                        sum(pending_losses) / len(pending_losses), lr, score=at_ckpt)
            if at_eval:
                pending_losses = []
            if at_ckpt or stop_signal or checkpoint_asked:
                save_start = time.perf_counter()
                stopped_early = at_ckpt and checkpoints.judge(step, bpc, device, world_size) and step < cfg.steps
                rng = checkpoint_rng(batch_rng, device, world_size)   # every rank takes part
                payload = make_checkpoint(step, asdict(model_cfg), asdict(cfg), vocab, fingerprint, scored, optimizer, rng,
                                          budget.elapsed(), pending_losses, budget.costs, checkpoints.best, sessions,
                                          trained=model if average else None) if main_process else None
                last_good = checkpoints.save(step, payload)   # on every rank: rank 0 wrote it
                # tokens/s counts training only; the checkpoint's cost includes scoring it
                budget.measured("checkpoint_s", log.restart_clock() - save_start + score_s)
            if stop_signal and not budget_spent:   # out of time anyway: the run is done, not paused
                log.bar.close()
                if main_process:
                    stop.say_saved(step, last_good, cfg.out, stop_signal, world_size)
                raise StopRequest.stop(stop_signal)
            if checkpoint_asked and main_process:
                tqdm.write(f"checkpoint saved at step {step} to {last_good} on SIGUSR1; training goes on")
            budget.start_window()
    if main_process:
        say_done(cfg, step, last_good, checkpoints.best, stopped_early, budget_spent and budget.elapsed())
    return rows


def main(argv=None):
    model_cfg, cfg, resumed = resolve_configs(parse_args(argv))
    try:
        train(model_cfg, cfg, resumed, progress=sys.stderr.isatty())
        if torch.distributed.is_initialized():
            # every rank is done before any tears its connections down: gloo could abort a rank
            # whose peer closed first ("terminate called without an active exception", exit -6)
            torch.distributed.barrier()
    except OSError as error:
        if not cli.storage_error(error):
            raise
        try:
            saved = list_checkpoints(cfg.out)
        except OSError:   # no folder, or one that cannot be read
            saved = []
        kept = (f"the last good checkpoint is {saved[-1][1]}: make room and continue with python train.py --out "
                f"{cfg.out} --resume") if saved else "no checkpoint was written"
        raise UserError(f"{cli.storage_error(error)}; training stopped, {kept}") from None
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    cli.run(main)
