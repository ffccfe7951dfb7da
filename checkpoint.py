"""Self-contained, versioned checkpoints, written atomically and loaded safely.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
torch.load(weights_only=True): format_version, step, model_config and train_config (dicts),
vocab (a string: the characters, or for unit "bytes" the bytes as chr(b)), data_fingerprint, model (state_dict of the uncompiled module), optimizer,
rng states, and the training bookkeeping that makes --resume exact.
"""
import os
import re
from dataclasses import fields

import torch

from corpus import UserError, Vocab
from metrics import AtomicFile
from model import CharTransformer, ModelConfig

FORMAT_VERSION = 1
CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")
REQUIRED_KEYS = ("format_version", "step", "model_config", "vocab", "model")


def checkpoint_path(run_dir, step):
    return os.path.join(run_dir, f"step_{step:06d}.pt")


def save_checkpoint(payload, path):
    """Atomically: a crash leaves either the old file or the new one, never half of one."""
    with AtomicFile(path, "wb") as f:
        torch.save(payload, f)


def list_checkpoints(run_dir):
    """[(step, path)] of a run directory, by step."""
    found = []
    for name in os.listdir(run_dir):
        match = CHECKPOINT_NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(run_dir, name)))
    return sorted(found)


def find_checkpoint(path):
    """A checkpoint file as given, or the latest one in a run directory."""
    if os.path.isdir(path):
        found = list_checkpoints(path)
        if not found:
            raise UserError(f"no checkpoint (step_*.pt) in {path}")
        return found[-1][1]
    if not os.path.exists(path):
        raise UserError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path):
    """Load a checkpoint file or a run directory's latest checkpoint, onto the CPU."""
    path = find_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or not a torch file at all
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason.split('. ')[0][:200]}") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in REQUIRED_KEYS):
        raise UserError(f"{path} is not a tinychar checkpoint")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format {ckpt['format_version']}, this code reads {FORMAT_VERSION}")
    if "learned_init" not in ckpt["model_config"]:
        # written before the field existed, when a learned table started as N(0, 0.02)
        ckpt["model_config"]["learned_init"] = "normal" if ckpt["model_config"]["pos_encoding"] == "learned" else "sinusoidal"
    for field in fields(ModelConfig):   # the other fields added since: their defaults are what the code did then
        ckpt["model_config"].setdefault(field.name, field.default)
    ckpt["path"] = path
    return ckpt


def model_from_checkpoint(ckpt, device="cpu"):
    """(model in eval mode, vocab) rebuilt from a loaded checkpoint."""
    model = CharTransformer(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), Vocab(ckpt["vocab"], ckpt.get("train_config", {}).get("unit", "chars"))
