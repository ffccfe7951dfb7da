"""Text corpora: reading a UTF-8 file, its character vocabulary, the 90/10 split, batches.

Shared by train.py, eval.py and generate.py. UserError marks mistakes in what the user gave
us (a missing file, a bad flag): the scripts print it as one line and exit with status 2.
"""
import argparse
import hashlib
import os
import sys

import torch

TRAIN_FRACTION = 0.9   # first 90% train, last 10% validation, as nanoGPT and most Tiny Shakespeare results


class UserError(Exception):
    """Bad input from the user; reported as a single line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one 'error: ...' line and exit status 2, like every other
    mistake (argparse's own adds a usage block; --help still shows it)."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def read_text(path):
    """Return (text, sha256 hex of the file's bytes)."""
    if not os.path.exists(path):
        raise UserError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"data path is a directory, not a text file: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:
        raise UserError(f"data file is empty: {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"data file is not UTF-8 text: {path} (invalid byte at offset {e.start})") from None
    return text, hashlib.sha256(raw).hexdigest()


class Vocab:
    """The sorted set of a corpus's characters; id = position in that string."""

    def __init__(self, chars):
        self.chars = "".join(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise UserError(f"characters not in the model's vocabulary: {' '.join(repr(c) for c in unknown)}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def split(ids):
    """(train, validation): the first 90% and the last 10%."""
    n_train = int(len(ids) * TRAIN_FRACTION)
    return ids[:n_train], ids[n_train:]


def load_corpus(path, seq_len, vocab=None, expected_fingerprint=None):
    """Read, encode and split a corpus. Returns (vocab, train_ids, val_ids, fingerprint).
    Each split must hold at least one full window (seq_len + 1 characters). With
    expected_fingerprint (a checkpoint's), the file must be the very text the run was trained on."""
    text, fingerprint = read_text(path)
    if expected_fingerprint and fingerprint != expected_fingerprint:
        raise UserError(f"{path} is not the text this run was trained on (its sha256 differs)")
    vocab = vocab or Vocab.from_text(text)
    train_ids, val_ids = split(vocab.encode(text))
    for name, part in (("training", train_ids), ("validation", val_ids)):
        if len(part) < seq_len + 1:
            raise UserError(f"{path} is too short: its {name} split has {len(part)} characters, "
                            f"needs at least seq_len + 1 = {seq_len + 1} (use a longer text or a smaller --seq-len)")
    return vocab, train_ids, val_ids, fingerprint


def get_batch(ids, batch_size, seq_len, generator):
    """Random windows: inputs x and next-character targets y, both (batch_size, seq_len)."""
    starts = torch.randint(len(ids) - seq_len, (batch_size,), generator=generator)
    windows = ids[starts[:, None] + torch.arange(seq_len + 1)]               # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]
