"""What the user asked a training run for: TrainConfig, the presets, and how they settle.

A run's settings come in layers, each later one winning (resolve_configs): the dataclasses'
defaults; a resumed run's saved settings, with its plan's steps and precision (--resume); a preset (--preset NAME, or auto: the
candidate shape choose.py predicts best for --time-budget here); a TOML file (--config); the
flags given on the command line; and for --init-from, the source model's shape. The result is
saved as given in every checkpoint and never written to during the run: what the run itself
decides (its steps, the schedule's knots, the precision this machine resolves "auto" to) is its
plan (plan.py), saved beside it.
"""
import argparse
import os
from dataclasses import dataclass, fields
from typing import NamedTuple

from tinychar import choose, runtime
from tinychar.checkpoint import list_checkpoints, load_checkpoint, run_corpus
from tinychar.cli import ArgumentParser, UserError, add_config_flags, config_file_flags, setting, toml_value
from tinychar.corpus import DEFAULT_SPLIT, parse_split
from tinychar.budget import BUDGET_PLANNED
from tinychar.scoring import BEST_SCORED
from model import RECIPE, ModelConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "data", "lm_primer.txt")
OPTIMIZERS = ("adamw", "muon")
ADAMW_KERNELS = ("default", "foreach", "fused")


@dataclass
class TrainConfig:
    data: str = setting(DEFAULT_DATA, "UTF-8 text file to train on", shown="the bundled data/lm_primer.txt",
                        group="data")
    out: str = setting("checkpoints/run", "run directory for checkpoints, metrics.csv and loss_curve.png", group="run")
    steps: int = setting(5000, "optimizer steps in total", group="schedule")
    batch_size: int = setting(32, "windows per step, over all processes", group="optimisation")
    grad_accum: int = setting(1, "micro-batches per step: each process's share of --batch-size in N parts whose "
                                 "gradients add up before the step (the same step, in 1/N of the memory); under "
                                 "torchrun the gradients are all-reduced once, after the last", group="optimisation")
    lr: float = setting(1e-3, "peak learning rate", shown="1e-3", group="optimisation")
    min_lr: float = setting(1e-4, "learning rate at the end of the cosine decay", shown="1e-4", group="schedule")
    warmup_steps: int = setting(100, "steps of linear warmup from 0 to --lr", group="schedule")
    weight_decay: float = setting(0.1, "weight decay on matrices; none on LayerNorm, biases, embeddings",
                                  group="optimisation")
    grad_clip: float = setting(1.0, "clip the gradients' global norm to this; 0 disables", group="optimisation")
    eval_every: int = setting(500, "validate every N steps", group="checkpoints")
    eval_batches: int = setting(20, "fixed validation batches per validation", group="checkpoints")
    ckpt_every: int = setting(1000, "write a checkpoint every N steps, and always at the end; each is validated and "
                                    "scored by eval.py's full pass over the first "
                                    f"{BEST_SCORED:,} units of the validation split, and the lowest is kept as best.pt",
                                group="checkpoints")
    early_stop: int = setting(0, "stop (validated and saved) when N checkpoints in a row have not improved on "
                                 "best.pt's score; 0 = off", group="checkpoints")
    init_from: str = setting(None, "start from a trained model's weights (a run directory's best.pt, a checkpoint "
                                   "file or an export) on any corpus, with a new optimizer, schedule and budget: "
                                   "the model's shape is the source's; characters new to it get new rows",
                             shown="none", group="run")
    keep_last: int = setting(None, "keep only the last K step checkpoints (and best.pt); at least 1, the one "
                                   "--resume needs", shown="all", group="checkpoints")
    seed: int = setting(1337, "seed for initialisation, batches and dropout", group="run")
    threads: int = setting(0, "CPU threads for torch's operations (torch.set_num_threads); 0 = torch's default, "
                              "one per core", shown="0: one per core", group="runtime")
    device: str = setting("auto", "where to train", choices=runtime.DEVICES,
                          shown="auto: cuda, then mps, then cpu", group="runtime")
    compile: bool = setting(None, "torch.compile the training step", shown="on for CUDA, off on CPU, where it measured "
                                                                         "no gain", group="runtime")
    precision: str = setting("auto", "matmul precision of training: bf16 (autocast; weights and optimizer stay fp32) "
                                     "or fp32; auto = bf16 on GPUs that support it (torch.cuda.is_bf16_supported) and "
                                     "on CPUs with native bf16 (AVX512-BF16, AMX), else fp32; a run saves the one it "
                                     "resolved to", choices=("auto", "fp32", "bf16"), group="runtime")
    schedule: str = setting("cosine", "after warmup: cosine (decay to --min-lr over the rest) or wsd "
                                      "(warmup-stable-decay: --lr until the last --decay-fraction of the steps, then "
                                      "linear to --min-lr)" + RECIPE, choices=("cosine", "wsd"), group="schedule")
    decay_fraction: float = setting(0.2, "wsd: the fraction of the steps spent decaying", group="schedule")
    time_budget: float = setting(0.0, "minutes of training (reading the corpus, compiling, validations and checkpoints "
                                      "included): the number of steps is chosen from the measured step time to fit "
                                      f"{BUDGET_PLANNED * 100:.0f}% of them, then fixed and saved, so the run is "
                                      "reproducible and --resume exact; the budget is a ceiling: a run slower than "
                                      "planned stops early, validated and saved; replaces --steps (--steps on "
                                      "--resume: the run goes on to --steps, untimed)", shown="off",
                                 group="time budget")
    unit: str = "chars"         # what a token is: a character of UTF-8 text, or a byte of any file (flag --bytes)
    split: str = setting(DEFAULT_SPLIT, "train,validation[,test] parts of the corpus, in order: fractions (0.9,0.1) or "
                                        "counts of characters/bytes (enwik8: 90000000,5000000,5000000)", group="data")
    dropout_from: float = setting(0.0, "late dropout: no dropout for the first fraction F of the learning rate's "
                                       "schedule, then --dropout (Liu et al. 2023, \"Dropout Reduces Underfitting\"): "
                                       "the steps before it are as fast as without dropout", shown="0: from the start",
                                  group="schedule")
    batch_warmup: float = setting(0.0, "batch-size warmup: over the first fraction F of the learning rate's schedule "
                                       "the batch grows linearly from a quarter of --batch-size to all of it (in "
                                       "whole multiples of processes x --grad-accum): the early steps are cheaper",
                                  shown="0: off", group="schedule")
    ema: float = setting(0.0, "keep an exponential moving average of the weights with this decay (e.g. 0.999; 0 = off; "
                              "its first updates average faster: decay min(D, u / (9 + u)) at step u): the "
                              "average is the run's model, which validations, checkpoint scores, best.pt, eval.py, "
                              "generate.py and export.py use; the weights as trained are saved beside it for --resume "
                              "(eval.py --trained-weights scores them)", shown="0: off", group="optimisation")
    optimizer: str = setting("adamw", "adamw, or muon: torch.optim.Muon for the blocks' matrices (its learning rate "
                                      "matched to AdamW's update size, so --lr and --weight-decay carry over), AdamW "
                                      "for embeddings, head, LayerNorms and biases" + RECIPE, choices=OPTIMIZERS,
                             group="optimisation")
    muon_lr: float = setting(0.0, "--optimizer muon: the Muon matrices' peak learning rate, following the same "
                                  "schedule as --lr (scaled by muon-lr / lr at every step); 0 = --lr" + RECIPE,
                             shown="0: --lr", group="optimisation")
    adamw_kernel: str = setting("default", "how AdamW's update runs: default (torch's choice: a loop over the "
                                           "tensors on a CPU, foreach on a GPU), foreach (one multi-tensor op per "
                                           "stage) or fused (one kernel for the whole update); the same update up to "
                                           "rounding" + RECIPE, choices=ADAMW_KERNELS, group="optimisation")

    def __post_init__(self):
        # saved absolute, so that eval.py and export.py started in another folder find the corpus
        self.data = os.path.abspath(self.data)
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
        if not 0 <= self.batch_warmup < 1:
            raise ValueError(f"--batch-warmup must be a fraction in [0, 1), got {self.batch_warmup}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema must be a decay in [0, 1), got {self.ema}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.muon_lr < 0:
            raise ValueError(f"--muon-lr must not be negative, got {self.muon_lr}")
        if self.adamw_kernel not in ADAMW_KERNELS:
            raise ValueError(f"--adamw-kernel must be one of {', '.join(ADAMW_KERNELS)}, got {self.adamw_kernel!r}")


# The report's two configurations (its study compares them: they stay as they are), and the
# recipe's best model for N minutes of training on two CPU cores, cpuN, carrying its --time-budget:
# each the lowest of the candidates timed for that budget (experiments/recipe/README.md, with the
# figures). In 7 minutes or less the baseline's shape has too few steps to overfit: no dropout;
# in 5, the WSD schedule (kept by the recipe's rule on fresh seeds; at 7 minutes not confirmed);
# in 30, WSD with Muon at its own rate (kept together on a slower CPU's step count, at fresh seeds).
# Explicit flags override a preset.
BASELINE_FIELDS = dict(n_heads=4, pos_encoding="sinusoidal")
PRESETS = {
    "baseline": dict(BASELINE_FIELDS),
    "ablation": dict(n_heads=1, pos_encoding="none"),
    "cpu30": dict(BASELINE_FIELDS, dropout=0.1, n_layers=4, schedule="wsd", optimizer="muon", muon_lr=3e-3,
                  time_budget=30.0),
    "cpu15": dict(BASELINE_FIELDS, dropout=0.1, n_layers=4, time_budget=15.0),
    "cpu7": dict(BASELINE_FIELDS, time_budget=7.0),
    "cpu5": dict(BASELINE_FIELDS, schedule="wsd", time_budget=5.0),
}


# train.py --help's sections, in this order: each of TrainConfig's settings names its own (group=),
# ModelConfig's are "model", and parse_args puts its own flags in "run" and "data"
FLAG_GROUPS = ("run", "data", "model", "optimisation", "schedule", "time budget", "checkpoints", "runtime")


def parse_args(argv=None, description=None):
    """train.py's flags: every field of TrainConfig and ModelConfig, and those that choose between
    them (--bytes, --preset, --resume, --config); a --config file's values under the command line's."""
    # the usage line names the few flags a first run needs; argparse's own would list all of them
    usage = "%(prog)s [--data FILE] [--out RUN] [--preset NAME | --config FILE.toml] [--resume] [FLAG VALUE ...]"
    parser = ArgumentParser(description=description, usage=usage, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {name: parser.add_argument_group(name) for name in FLAG_GROUPS}
    add_config_flags(parser, TrainConfig, groups)
    add_config_flags(parser, ModelConfig, groups, group="model")
    run, data = groups["run"], groups["data"]
    data.add_argument("--bytes", action=argparse.BooleanOptionalAction, default=None,
                      help="a byte-level model: the vocabulary is the file's bytes (any file, UTF-8 or not) "
                           "and BPC means bits per byte (default --no-bytes: Unicode characters of a UTF-8 file)")
    run.add_argument("--preset", choices=sorted(PRESETS) + ["auto"], default=None,
                     help="baseline = 4 heads + sinusoidal; ablation = 1 head + no positional encoding; "
                          "cpuN = the recipe's best model for N minutes of training on 2 CPU cores (sets "
                          "--time-budget N; README: The best model in N minutes); auto (with --time-budget) = "
                          "the recipe's candidate shape predicted best for the steps this machine affords in "
                          "that time, each timed here (docs/flags.md)")
    run.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in --out, with its saved settings (a group of "
                          "--seeds: each run where it stopped, with the group's settings)")
    run.add_argument("--seeds", type=int, nargs="+", metavar="N",
                     help="a group: the same run once per seed, one after another, into --out's s<N>/ "
                          "folders (each a normal run); eval.py compares groups with intervals")
    run.add_argument("--config", metavar="FILE.toml",
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
                "qk_norm", "logit_softcap", "bias", "norm")   # what a model started from another keeps (dropout, init may differ)


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


class Settings(NamedTuple):
    """A run's settings as they settled: the model's, the training's, the checkpoint --resume
    continues (None for a new run), and the preset's choice for the run's plan (plan.RunPlan): its
    name, and the seconds --preset auto spent timing its candidates, which the run's clock counts."""
    model_cfg: ModelConfig
    cfg: "TrainConfig"
    resumed: dict | None
    choice: dict


def resolve_configs(args):
    """The layers of the module docstring, settled into a Settings."""
    model_fields = {f.name: f.default for f in fields(ModelConfig)}
    train_fields = {f.name: f.default for f in fields(TrainConfig)}
    explicit = {k: v for k, v in vars(args).items() if v is not None and k not in ("preset", "resume", "config", "seeds")}
    if explicit.get("time_budget") and "steps" in explicit and not args.resume:
        raise UserError("--time-budget chooses the number of steps: drop --steps")
    if "bytes" in explicit:
        explicit["unit"] = "bytes" if explicit.pop("bytes") else "chars"
    resumed = resumed_settings(explicit.get("out", train_fields["out"]), model_fields, train_fields) if args.resume else None
    choice = dict(preset=args.preset or "", chosen_in_s=0.0)
    preset = PRESETS.get(args.preset, {})
    if args.preset == "auto":
        preset, choice = auto_preset(model_fields, train_fields, explicit, resumed)
    for field, value in preset.items():   # a preset may set model and training fields alike
        (model_fields if field in model_fields else train_fields)[field] = value
    for field, value in explicit.items():
        (model_fields if field in model_fields else train_fields)[field] = value
    if train_fields["optimizer"] != "muon" and "muon_lr" not in explicit:
        train_fields["muon_lr"] = 0.0   # --optimizer adamw given: a preset's Muon rate gives way
    if "steps" in explicit and "time_budget" not in explicit:
        train_fields["time_budget"] = 0.0   # --steps given: a preset's (or a resumed run's) time budget gives way
    if train_fields["init_from"] and not resumed:
        given = set(explicit) | set(preset)
        take_source_shape(load_checkpoint(train_fields["init_from"], "best"), model_fields, train_fields, given)
    if resumed:
        check_resume(resumed, model_fields, train_fields)
    model_fields["vocab_size"] = 1  # a placeholder until the corpus is read
    try:
        model_cfg, cfg = ModelConfig(**model_fields), TrainConfig(**train_fields)
    except ValueError as e:
        raise UserError(f"invalid settings: {e}") from None
    if cfg.batch_warmup and cfg.time_budget:
        raise UserError("--batch-warmup needs --steps N: a timed run (--time-budget, a cpuN preset) plans its steps "
                        "from its own pace, which the warmup's smaller batches would make look faster than it is")
    if cfg.dropout_from and not model_cfg.dropout:
        raise UserError("--dropout-from says when dropout starts: it needs --dropout P")
    if cfg.muon_lr and cfg.optimizer != "muon":
        raise UserError("--muon-lr is the Muon matrices' learning rate: it needs --optimizer muon")
    return Settings(model_cfg, cfg, resumed, choice)


def resumed_settings(out, model_fields, train_fields):
    """--resume: the latest checkpoint in `out`, its settings laid over the defaults, with its plan's
    steps and precision: a resumed run goes on as it was planned, unless flags say otherwise."""
    if not os.path.isdir(out) or not list_checkpoints(out):
        raise UserError(f"--resume: no checkpoint in {out} to resume from")
    resumed = load_checkpoint(out)
    unknown = sorted(set(resumed["train_config"]) - set(train_fields))
    if unknown:
        raise UserError(f"{resumed['path']} was written by another version of tinychar: its training settings "
                        f"include some this code does not know ({', '.join(unknown)})")
    model_fields.update(resumed["model_config"])
    train_fields.update(resumed["train_config"], steps=resumed["plan"]["steps"], precision=resumed["plan"]["precision"],
                        data=run_corpus(resumed))   # where the corpus is now: a run moved with it finds it
    return resumed


def check_resume(resumed, model_fields, train_fields):
    """A resumed run keeps its model's shape, its unit, its optimizer, its data split and its --ema."""
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
    # the run's data, its average's decay, and its AdamW kernel (the optimizer's state carries it)
    for name in ("split", "ema", "adamw_kernel"):
        if train_fields[name] != resumed["train_config"][name]:
            flag = name.replace("_", "-")
            raise UserError(f"--resume: this run was trained with --{flag} {resumed['train_config'][name]}, "
                            f"and a resumed run keeps its {flag}")


def auto_preset(model_fields, train_fields, explicit, resumed):
    """--preset auto: (the fields of the candidate choose.py predicts best for --time-budget on this
    machine, each timed with the user's other flags; the choice: its name and the seconds spent
    choosing, which the run's clock counts)."""
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
    name, fields, seconds = choose.choose(configs, explicit["time_budget"], BEST_SCORED)
    return fields, dict(preset=f"auto: {name}", chosen_in_s=seconds)
