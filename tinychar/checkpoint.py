"""Self-contained, versioned checkpoints, written atomically and loaded safely.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
torch.load(weights_only=True); make_checkpoint says what is in it. load_checkpoint is the one
place that reads one: it fills in what checkpoints written before a setting existed lack (with
what the code did then), so no other file guesses a default.
"""
import json
import os
import re
from dataclasses import dataclass, fields

import torch

from tinychar.cli import UserError
from tinychar.corpus import DEFAULT_SPLIT, Vocab
from tinychar.files import AtomicFile
from tinychar.metrics import read_metrics
from tinychar.plan import RunPlan, plan_from_checkpoint
from model import CharTransformer, ModelConfig

FORMAT_VERSION = 1
EXPORT_FORMAT = "tinychar-export-1"
CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")
BEST_NAME = "best.pt"   # the run's checkpoint with the lowest full-pass validation BPC so far
EXPORT_WEIGHTS, EXPORT_CONFIG = "model.safetensors", "config.json"   # an exported model's folder (export.py)
REQUIRED_KEYS = ("format_version", "step", "model_config", "vocab", "model")
# training settings added after format 1, as the code ran before each existed
TRAIN_CONFIG_BEFORE = dict(unit="chars", optimizer="adamw", split=DEFAULT_SPLIT, precision="fp32", ema=0.0,
                           adamw_kernel="default")


@dataclass
class TrainingState:
    """What a training run's checkpoint at `step` saves: what --resume needs to continue exactly.

    model_config, train_config: the settings as given (dataclasses.asdict); plan: what the run
    decided (plan.RunPlan, as a dict); vocab: a Vocab (saved as its string of symbols: for unit
    "bytes" the bytes as chr(b)); model: the uncompiled module, so saved keys never gain a
    compiler's prefix; rng: {"torch": rank 0's CPU generator, "batches": the batch stream's
    generator, "ranks": every rank's dropout generators}; elapsed_s: seconds of training so far;
    pending_losses: the losses since the last validation; budget_costs: the time budget's measured
    costs (budget.Budget); best: {"step", "bpc", "scored", "since"} of the best checkpoint so far
    (bpc None before the first), how many were scored, and how many in a row since the best did
    not improve on it (run_checkpoints.RunCheckpoints); run_record: the run's sessions so far
    (record.py: machine, software, code, command), this one last; trained: with --ema, model is
    the weights' average (what eval.py, generate.py and export.py use) and trained the weights as
    the optimizer left them (what --resume continues), saved as "trained". The checkpoint also
    saves data_from_run: where the corpus is from the run's folder (run_corpus)."""
    step: int
    model_config: dict
    train_config: dict
    plan: dict
    vocab: Vocab
    data_fingerprint: str
    model: torch.nn.Module
    optimizer: object
    rng: dict
    elapsed_s: float
    pending_losses: list
    budget_costs: dict
    best: dict
    run_record: list
    trained: torch.nn.Module | None = None


def make_checkpoint(state):
    """The checkpoint of a TrainingState: a plain dict that torch.load(weights_only=True) reads."""
    return {
        "format_version": FORMAT_VERSION, "step": state.step, "model_config": state.model_config,
        "train_config": state.train_config, "plan": dict(state.plan), "vocab": state.vocab.chars,
        "data_fingerprint": state.data_fingerprint, "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(), "rng": state.rng, "elapsed_s": state.elapsed_s,
        "pending_losses": list(state.pending_losses), "budget_costs": dict(state.budget_costs),
        "best": dict(state.best), "run_record": list(state.run_record),
        # the folder it is saved in is out
        "data_from_run": relative_to_run(state.train_config["data"], state.train_config["out"]),
    } | ({"trained": state.trained.state_dict()} if state.trained else {})


def relative_to_run(data, run_dir):
    """The corpus's path from the run's folder, or None where there is none (another drive, on
    Windows). Both paths as given: relative ones are both the current folder's."""
    try:
        return os.path.relpath(os.path.abspath(data), os.path.abspath(run_dir))
    except ValueError:
        return None


def run_corpus(ckpt, data=None):
    """The corpus a saved run was trained on, for scoring it (scoring.score_run) or resuming it
    (settings.resumed_settings): `data` (--data) where given; else the path in its settings
    (absolute; an older run's as given, from the current folder); else, where no file is there
    any more, the corpus where it was from the run's folder when the run last saved (a run moved
    with its corpus), if one is there. The checkpoint's data_fingerprint refuses any other text
    (corpus.load_corpus); where neither is found, the saved path, which the caller's
    corpus.check_file names in its error."""
    if data:
        return data
    saved = ckpt["train_config"]["data"]
    if os.path.exists(saved) or not ckpt["data_from_run"]:
        return saved
    beside = os.path.normpath(os.path.join(os.path.dirname(ckpt["path"]), ckpt["data_from_run"]))
    return beside if os.path.exists(beside) else saved


def checkpoint_path(run_dir, step):
    return os.path.join(run_dir, f"step_{step:06d}.pt")


def save_checkpoint(payload, path):
    """Atomically: a crash leaves either the old file or the new one, never half of one. A failed
    write (a full disk) raises its OSError, naming path, rather than the serializer's RuntimeError."""
    with AtomicFile(path, "wb") as f:
        writer = RecordingWriter(f)
        try:
            torch.save(payload, writer)
        except RuntimeError:
            if writer.error:   # torch reports a failed write as "unexpected pos ...": raise the cause
                raise writer.error from None
            raise


class RecordingWriter:
    """A file's write() and flush(), keeping the OSError either raised (if any)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        return self._recording(self.file.write, data)

    def flush(self):
        return self._recording(self.file.flush)

    def _recording(self, call, *args):
        try:
            return call(*args)
        except OSError as error:
            self.error = error
            raise


def list_checkpoints(run_dir):
    """[(step, path)] of a run directory, by step."""
    found = []
    for name in os.listdir(run_dir):
        match = CHECKPOINT_NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(run_dir, name)))
    return sorted(found)


def find_checkpoint(path, which="last"):
    """A checkpoint file as given, or one of a run directory's: which = "last" (the latest step),
    "best" (best.pt; the latest where the run has none: trained before best.pt existed) or a step."""
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise UserError(f"checkpoint not found: {path}")
        return path
    found = list_checkpoints(path)
    if which == "best" and os.path.exists(os.path.join(path, BEST_NAME)):
        return os.path.join(path, BEST_NAME)
    if which not in ("best", "last"):
        steps = dict(found)
        if int(which) not in steps:
            kept = ", ".join(f"{s:,}" for s in steps) or "none"
            raise UserError(f"{path} has no checkpoint of step {int(which):,} (kept: {kept})")
        return steps[int(which)]
    if not found:
        raise UserError(f"no checkpoint (step_*.pt) in {path}")
    return found[-1][1]


def checkpoint_choice(which):
    """--checkpoint's value: best, last or a step number."""
    if which in ("best", "last") or which.isdigit():
        return which
    raise UserError(f"--checkpoint must be best, last or a step number, got {which!r}")


def describe_choice(ckpt):
    """Which checkpoint of its run ckpt is, in words: "step 5,000, best of 15 by validation BPC", and
    which of its weights where it has two (--ema)."""
    choice = describe_checkpoint(ckpt)
    return choice if ckpt.get("weights", "as trained") == "as trained" else f"{choice}, weights {ckpt['weights']}"


def describe_checkpoint(ckpt):
    run_dir = os.path.dirname(ckpt["path"])
    if "exported_from" in ckpt:
        return f"step {ckpt['step']:,}, exported from {ckpt['exported_from']}"
    if os.path.basename(ckpt["path"]) != BEST_NAME:
        steps = [s for s, _ in list_checkpoints(run_dir)]
        last = " (the last)" if steps and steps[-1] == ckpt["step"] else ""
        return f"step {ckpt['step']:,}{last}"
    metrics_path = os.path.join(run_dir, "metrics.csv")
    scored = sum(r.get("checkpoint_bpc") is not None for r in read_metrics(metrics_path)) if os.path.exists(
        metrics_path) else ckpt["best"]["scored"]
    return f"step {ckpt['step']:,}, best of {scored} by validation BPC (best.pt)"


def as_trained(ckpt):
    """The checkpoint with the weights as trained in place of their average (a run with --ema), so
    that both can be scored; a checkpoint without an average is returned as it is."""
    if "trained" not in ckpt:
        return ckpt
    return dict(ckpt, model=ckpt["trained"], weights="as trained (not the --ema average)")


def is_export(path):
    return os.path.isdir(path) and os.path.exists(os.path.join(path, EXPORT_WEIGHTS))


def load_export(path):
    """A folder written by export.py, read without pickle (safetensors and JSON), as a checkpoint:
    what eval.py and generate.py need of one (no optimizer or random state: it cannot be resumed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        with open(os.path.join(path, EXPORT_CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        weights = load_file(os.path.join(path, EXPORT_WEIGHTS))
    except (OSError, ValueError, SafetensorError) as e:
        raise UserError(f"cannot read the exported model in {path}: {str(e).splitlines()[0][:200]}") from None
    if config.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path} is not a tinychar export ({EXPORT_CONFIG} has no format {EXPORT_FORMAT!r})")
    complete_model_config(config["model_config"])
    if config["model_config"]["tie_weights"]:   # saved once: the head is the token embedding
        weights["head.weight"] = weights["tok_emb.weight"]
    if "plan" not in config:   # exported when the run's decisions were saved in its train_config
        config["plan"] = plan_from_checkpoint(config["train_config"])
    # data_from_run: an export's folder is not the run's, and the corpus's place from it unknown
    return dict(dict(run_record=[], data_from_run=None), **config, model=weights,
                path=os.path.join(path, EXPORT_WEIGHTS))


def load_checkpoint(path, which="last"):
    """Load a checkpoint file, or a run directory's (find_checkpoint's `which`), or a folder written
    by export.py, onto the CPU."""
    ckpt = load_export(path) if is_export(path) else read_checkpoint(find_checkpoint(path, which))
    ema = ckpt["train_config"].get("ema", 0.0)
    ckpt["weights"] = f"the --ema {ema:g} average" if ema else "as trained"
    return ckpt


def complete_model_config(model_config):
    """A checkpoint's or an export's model settings, completed in place with the fields added since it
    was written: each field's default, which is what the code did then."""
    if "learned_init" not in model_config:
        # written before the field existed, when a learned table started as N(0, 0.02)
        model_config["learned_init"] = "normal" if model_config["pos_encoding"] == "learned" else "sinusoidal"
    for field in fields(ModelConfig):
        model_config.setdefault(field.name, field.default)


def read_checkpoint(path):
    """A checkpoint file, checked and completed for what older versions did not save."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or not a torch file at all
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason.split('. ')[0][:200]}") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in REQUIRED_KEYS):
        raise UserError(f"{path} is not a tinychar checkpoint")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format {ckpt['format_version']}, this code reads {FORMAT_VERSION}")
    unknown = sorted(set(ckpt["model_config"]) - {field.name for field in fields(ModelConfig)})
    if unknown:
        raise UserError(f"{path} was written by another version of tinychar: its model has settings this code "
                        f"does not know ({', '.join(unknown)})")
    complete_model_config(ckpt["model_config"])
    for name, value in TRAIN_CONFIG_BEFORE.items():
        ckpt.setdefault("train_config", {}).setdefault(name, value)
    if "plan" not in ckpt:   # written when the run's decisions were saved in its train_config
        ckpt["plan"] = plan_from_checkpoint(ckpt["train_config"])
    unplanned = sorted(set(ckpt["plan"]) - {field.name for field in fields(RunPlan)})
    if unplanned:
        raise UserError(f"{path} was written by another version of tinychar: its plan has fields this code does "
                        f"not know ({', '.join(unplanned)})")
    if "rng" in ckpt:   # written by one process before every rank's generators were saved
        ckpt["rng"].setdefault("ranks", [{"torch": ckpt["rng"]["torch"]}])
    ckpt.setdefault("budget_costs", {})
    ckpt.setdefault("best", dict(step=None, bpc=None, scored=0, since=0))   # before best.pt existed
    ckpt.setdefault("run_record", [])   # before run records: where it ran is not known
    if "data_from_run" not in ckpt:   # before it was saved: the corpus's and the run's paths as given
        data, out = ckpt["train_config"]["data"], ckpt["train_config"].get("out", "")
        # one from the other where both were relative (to the folder the run started in) or both absolute
        ckpt["data_from_run"] = relative_to_run(data, out) if os.path.isabs(data) == os.path.isabs(out) else None
    ckpt["path"] = path
    ckpt["chosen_by_validation"] = os.path.basename(path) == BEST_NAME
    return ckpt


def model_from_checkpoint(ckpt, device="cpu"):
    """(model in eval mode, vocab) rebuilt from a loaded checkpoint."""
    model = CharTransformer(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), Vocab(ckpt["vocab"], ckpt["train_config"]["unit"])
