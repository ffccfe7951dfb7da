"""Corpora: a file's vocabulary, its token ids in a memory-mapped cache, the splits, batches.

Shared by train.py, eval.py and generate.py. A corpus is read a few MB at a time, never whole:
one pass for its sha256 (which names a valid cache); without a cache, one more for the vocabulary
(the sorted set of its characters, or of its bytes with unit="bytes") and one that encodes it with
NumPy into the smallest integer type that holds the vocabulary. The ids go to a cache file next to the corpus
(`<corpus>.tinychar-<unit>.ids`; where that folder is not writable, in the user's cache folder,
$XDG_CACHE_HOME/tinychar or ~/.cache/tinychar, else in the run directory: cache_paths), written
atomically and memory-mapped: later runs, eval.py and every torchrun rank
share one copy in the page cache, and batches become int64 only when drawn. A cache whose
header names another sha256, or whose size is wrong, is rebuilt.
"""
import codecs
import hashlib
import json
import os
import sys

import numpy as np
import torch

from tinychar.cli import UserError
from tinychar.files import AtomicFile

DEFAULT_SPLIT = "0.9,0.1"   # first 90% train, last 10% validation, as nanoGPT and most Tiny Shakespeare results
UNITS = ("chars", "bytes")
CHUNK = 1 << 24             # bytes read at a time: memory stays flat whatever the corpus's size
CACHE_MAGIC = b"TINYCHAR-IDS\n"
CACHE_VERSION = 2   # 2: a byte corpus's ids are its byte values (the fixed 256-byte vocabulary)
BYTES = "".join(chr(b) for b in range(256))   # a byte model's vocabulary: every byte, so it continues on any file


class Vocab:
    """A model's symbols; id = position. unit "chars": characters (a str), a corpus's own sorted
    set; unit "bytes": byte values, kept as the str of chr(b) so that a checkpoint stores a plain
    string: all 256 (byte models trained before that have their file's bytes). present: the
    symbols that occur in the corpus (all of them where not known)."""

    def __init__(self, symbols, unit="chars", present=None):
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        self.chars = "".join(symbols)
        self.unit = unit
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.present = self.chars if present is None else "".join(present)

    def extended(self, symbols):
        """This vocabulary with the symbols it lacks appended (sorted): ids it had keep their meaning."""
        return Vocab(self.chars + "".join(sorted(set(symbols) - set(self.chars))), self.unit)

    def __len__(self):
        return len(self.chars)

    def codes(self):
        """The symbols as code points (chars) or byte values (bytes), ascending."""
        return np.array([ord(c) for c in self.chars], dtype=np.int64)

    def encode(self, text):
        """A prompt (str) as int64 ids; a byte model takes its UTF-8 bytes."""
        symbols = text if self.unit == "chars" else text.encode("utf-8").decode("latin-1")
        unknown = sorted(set(symbols) - self.index.keys())
        if unknown:
            what = (" ".join(repr(c) for c in unknown) if self.unit == "chars"
                    else " ".join(f"0x{ord(c):02x}" for c in unknown))
            raise UserError(f"{'characters' if self.unit == 'chars' else 'bytes'} not in the model's vocabulary: {what}")
        return torch.tensor([self.index[c] for c in symbols], dtype=torch.long)

    def decode(self, ids):
        """ids -> str (chars) or bytes (bytes)."""
        symbols = "".join(self.chars[i] for i in ids)
        return symbols if self.unit == "chars" else symbols.encode("latin-1")


def check_file(path):
    if not os.path.exists(path):
        raise UserError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"data path is a directory, not a text file: {path}")
    if os.path.getsize(path) == 0:
        raise UserError(f"data file is empty: {path}")


def code_chunks(path, unit):
    """Yield the corpus as arrays of code points (chars: UTF-8 decoded incrementally, so a chunk
    may end mid-character) or byte values (bytes), CHUNK bytes at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if unit == "bytes":
                if not raw:
                    return
                yield np.frombuffer(raw, dtype=np.uint8)
                continue
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                pending = len(decoder.getstate()[0]) if e.start >= 0 else 0
                raise UserError(f"data file is not UTF-8 text: {path} (invalid byte at offset "
                                f"{offset - pending + e.start}; --bytes trains on any file's bytes)") from None
            offset += len(raw)
            if text:
                yield np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            if not raw:
                return


def scan(path, unit):
    """(sorted codes present, count): the vocabulary pass, counting with bincount."""
    counts = np.zeros(256 if unit == "bytes" else 0x110000, dtype=np.int64)
    for codes in code_chunks(path, unit):
        counts += np.bincount(codes, minlength=len(counts))
    return np.flatnonzero(counts), int(counts.sum())


def file_sha256(path):
    """The corpus's fingerprint, in one streaming pass (done first: it names a valid cache)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def ids_dtype(vocab_size):
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.int32


def user_cache_folder():
    """The user's own cache folder for token caches: $XDG_CACHE_HOME/tinychar, else ~/.cache/tinychar
    (a relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinychar")


def cache_paths(path, unit, run_dir=None):
    """Where a corpus's id cache may live, in order of preference: beside the corpus; where that
    folder is not writable, the user's cache folder, shared by every run of the corpus (its name
    keyed by the corpus's real path, so that two corpora named alike in two folders do not take
    each other's place); where that fails too, the run's folder."""
    name = os.path.basename(path) + f".tinychar-{unit}.ids"
    key = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:16]
    places = [os.path.join(os.path.dirname(os.path.abspath(path)), name),
              os.path.join(user_cache_folder(), f"{os.path.basename(path)}.{key}.tinychar-{unit}.ids")]
    if run_dir:
        places.append(os.path.join(os.path.abspath(run_dir), name))
    return places


def read_cache(cache, sha256):
    """(header, ids memmap) of a valid cache for this sha256, else None (absent, stale, truncated,
    or not a cache at all)."""
    try:
        with open(cache, "rb") as f:
            if f.read(len(CACHE_MAGIC)) != CACHE_MAGIC:
                return None
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
        if header.get("version") != CACHE_VERSION or header.get("sha256") != sha256:
            return None
        offset = len(CACHE_MAGIC) + 8 + header_len
        dtype = np.dtype(header["dtype"])
        if os.path.getsize(cache) != offset + header["count"] * dtype.itemsize:
            return None
        return header, np.memmap(cache, dtype=dtype, mode="r", offset=offset, shape=(header["count"],))
    except (OSError, ValueError, KeyError):
        return None


def write_cache(path, unit, cache_candidates, present, count, sha256, log):
    """The second pass: encode the corpus into the first writable cache path, atomically. The ids
    are positions in the vocabulary: the present characters, or all 256 byte values."""
    codes = np.arange(256) if unit == "bytes" else present
    lookup = np.zeros(codes.max() + 1, dtype=np.int64)
    lookup[codes] = np.arange(len(codes))
    dtype = ids_dtype(len(codes))
    header = json.dumps(dict(version=CACHE_VERSION, sha256=sha256, unit=unit, count=count, dtype=np.dtype(dtype).name,
                             vocab=codes.tolist(), present=present.tolist())).encode()
    failures = []
    for cache in cache_candidates:
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with AtomicFile(cache, "wb") as f:
                f.write(CACHE_MAGIC + len(header).to_bytes(8, "little") + header)
                for chunk in code_chunks(path, unit):
                    f.write(lookup[chunk].astype(dtype).tobytes())
        except OSError as error:   # a read-only folder, a full disk: try the next place
            failures.append(f"{cache}: {error.strerror or error}")
            continue
        # said once, when written: later runs find it there without trying the corpus's folder again
        log(f"token cache written: {cache}" + (f" (not beside the corpus: {failures[0]})" if failures else ""))
        return cache
    raise UserError(f"cannot write a token cache for {path} anywhere ({'; '.join(failures)})")


def encoded_corpus(path, unit="chars", run_dir=None, log=None, expected_sha256=None):
    """(Vocab, ids memmap, sha256 hex) of a corpus, through its cache (built if missing or stale).
    With expected_sha256 (a checkpoint's fingerprint), any other file is refused before encoding."""
    log = log or (lambda message: print(message, file=sys.stderr))
    check_file(path)
    candidates = cache_paths(path, unit, run_dir)
    sha256 = file_sha256(path)
    if expected_sha256 and sha256 != expected_sha256:
        raise UserError(f"{path} is not the text this run was trained on (its sha256 differs)")
    for cache in candidates:
        found = read_cache(cache, sha256)
        if found and found[0]["unit"] == unit:
            break
    else:
        present, count = scan(path, unit)
        found = read_cache(write_cache(path, unit, candidates, present, count, sha256, log), sha256)
        if not found:
            raise UserError(f"the token cache of {path} could not be read back")
    header, ids = found
    return Vocab([chr(c) for c in header["vocab"]], unit, [chr(c) for c in header["present"]]), ids, sha256


def parse_split(spec):
    """'0.9,0.1' (fractions) or '90000000,5000000,5000000' (counts): train, validation[, test]."""
    try:
        parts = [float(p) if "." in p else int(p) for p in spec.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (2, 3) or any(p <= 0 for p in parts) or len({type(p) for p in parts}) != 1:
        raise UserError(f"--split must be 2 or 3 positive fractions (0.9,0.1) or counts (90000000,5000000,5000000), got {spec!r}")
    if isinstance(parts[0], float) and sum(parts) > 1 + 1e-9:
        raise UserError(f"--split fractions add up to more than 1: {spec}")
    return parts


def split(ids, spec=DEFAULT_SPLIT):
    """{"train", "val"[, "test"]}: consecutive slices of ids in that order. Fractions that add up to
    1 give the last part the remainder (so 0.9,0.1 is the first int(0.9 n) and the rest)."""
    parts, n = parse_split(spec), len(ids)
    if isinstance(parts[0], float):
        sizes = [int(n * p) for p in parts]
        if abs(sum(parts) - 1) < 1e-9:
            sizes[-1] = n - sum(sizes[:-1])
    else:
        sizes = parts
        if sum(sizes) > n:
            raise UserError(f"--split {spec} asks for {sum(sizes):,} units but the corpus has {n:,}")
    bounds = np.cumsum([0] + sizes)
    return {name: ids[bounds[i]:bounds[i + 1]] for i, name in enumerate(("train", "val", "test")[:len(sizes)])}


def load_corpus(path, seq_len, vocab=None, expected_fingerprint=None, unit="chars", split_spec=DEFAULT_SPLIT,
                part="val", run_dir=None, log=None):
    """Read (through the cache), split and check a corpus. Returns (vocab, train_ids, ids of `part`
    ("val" or "test"), fingerprint); the ids are read-only NumPy arrays. Each of those splits must
    hold at least one full window (seq_len + 1 units). With expected_fingerprint (a checkpoint's),
    the file must be the very data the run was trained on; with vocab (a model's), the ids are that
    vocabulary's, which must hold every symbol present in the file."""
    corpus_vocab, ids, fingerprint = encoded_corpus(path, unit, run_dir, log, expected_fingerprint)
    splits = split(ids, split_spec)
    if vocab is not None and vocab.chars != corpus_vocab.chars:
        unknown = sorted(set(corpus_vocab.present) - set(vocab.chars))
        if unknown:
            shown = " ".join(repr(c) if unit == "chars" else f"0x{ord(c):02x}" for c in unknown[:10])
            raise UserError(f"{path} has {len(unknown)} {'characters' if unit == 'chars' else 'bytes'} the model "
                            f"does not know ({shown}{' ...' if len(unknown) > 10 else ''})")
        table = np.array([vocab.index.get(c, 0) for c in corpus_vocab.chars], dtype=ids_dtype(len(vocab)))
        splits = {name: MappedIds(part, table) for name, part in splits.items()}
    if part not in splits:
        raise UserError(f"--split {part}: the run was trained with --split {split_spec}, which has no {part} part")
    unit_name = "characters" if unit == "chars" else "bytes"
    for name, ids_part in (("training", splits["train"]), ({"val": "validation"}.get(part, part), splits[part])):
        if len(ids_part) < seq_len + 1:
            raise UserError(f"{path} is too short: its {name} split has {len(ids_part)} {unit_name}, "
                            f"needs at least seq_len + 1 = {seq_len + 1} (use a longer text or a smaller --seq-len)")
    return vocab or corpus_vocab, splits["train"], splits[part], fingerprint


class MappedIds:
    """A corpus's ids read as another vocabulary's (table[id]), a slice at a time: the corpus stays
    memory-mapped, never copied. Indexing and len as the ids array; np.asarray gives the ids."""

    def __init__(self, ids, table):
        self.ids, self.table = ids, table

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        part = self.ids[index]
        return MappedIds(part, self.table) if isinstance(index, slice) else self.table[part]

    def __array__(self, dtype=None, copy=None):
        ids = self.table[np.asarray(self.ids)]
        return ids if dtype is None else ids.astype(dtype)


def symbol_counts(ids, vocab_size):
    """How often each id occurs (np.bincount), without a mapped copy of a corpus's ids."""
    if isinstance(ids, MappedIds):
        raw = np.bincount(np.asarray(ids.ids), minlength=len(ids.table))
        return np.bincount(ids.table, weights=raw, minlength=vocab_size).astype(np.int64)
    return np.bincount(np.asarray(ids), minlength=vocab_size)


def get_batch(ids, batch_size, seq_len, generator):
    """Random windows: inputs x and next-symbol targets y, both (batch_size, seq_len) int64.
    ids: a 1-D NumPy array (or memmap) of any integer type."""
    starts = torch.randint(len(ids) - seq_len, (batch_size,), generator=generator)
    windows = ids[starts.numpy()[:, None] + np.arange(seq_len + 1)]               # (B, T + 1)
    windows = torch.from_numpy(windows.astype(np.int64))
    return windows[:, :-1], windows[:, 1:]
