"""corpus.py: a corpus is encoded with NumPy in streaming chunks into a memory-mapped cache of the
smallest integer type, written once and re-used, rebuilt when stale or truncated; splits by
fraction or count; character and byte units; batches become int64 only when drawn."""
import os

import numpy as np
import pytest
import torch

from tinychar import corpus
from tinychar.cli import UserError
from tinychar.corpus import Vocab, encoded_corpus, get_batch, load_corpus, split, symbol_counts

TEXT = "naïve café — ☃ snow, übung!\n" * 40 + "the end.\n"


def python_reference(text):
    """The obvious slow encoding, to hold the streaming one to."""
    chars = sorted(set(text))
    return "".join(chars), [chars.index(c) for c in text]


@pytest.mark.parametrize("chunk", [3, 7, 1 << 24])   # tiny chunks cut multi-byte characters in two
def test_streaming_numpy_encoding_equals_the_obvious_python_one(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(corpus, "CHUNK", chunk)
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    vocab, ids, sha = encoded_corpus(str(path), log=lambda m: None)
    chars, expected = python_reference(TEXT)
    assert vocab.chars == chars and ids.tolist() == expected
    assert ids.dtype == np.uint8 and isinstance(ids, np.memmap)
    assert len(sha) == 64


def test_ids_take_the_smallest_integer_type_that_holds_the_vocabulary(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")   # 300 symbols
    vocab, ids, _ = encoded_corpus(str(path), log=lambda m: None)
    assert len(vocab) == 300 and ids.dtype == np.uint16 and ids[:300].tolist() == list(range(300))


@pytest.mark.parametrize("vocab_size,dtype", [(2, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16),
                                              (65537, np.int32), (0x110000, np.int32)])
def test_the_id_type_is_the_smallest_that_holds_every_id(vocab_size, dtype):
    assert corpus.ids_dtype(vocab_size) == dtype
    assert np.iinfo(dtype).max >= vocab_size - 1


def test_batches_draw_every_window_of_the_split_the_last_one_included():
    ids = np.arange(11, dtype=np.uint8)   # windows of 8 inputs + 1 target: starts 0, 1 and 2
    generator = torch.Generator().manual_seed(0)
    starts = {x[0].item() for _ in range(100) for x in get_batch(ids, 4, 8, generator)[0]}
    assert starts == {0, 1, 2}


def test_the_cache_is_written_once_next_to_the_corpus_and_reused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    messages = []
    encoded_corpus(str(path), log=messages.append)
    cache = tmp_path / "t.txt.tinychar-chars.ids"
    assert messages == [f"token cache written: {cache}"] and cache.exists()
    before = cache.stat().st_mtime_ns
    _, ids, _ = encoded_corpus(str(path), log=messages.append)
    assert len(messages) == 1 and cache.stat().st_mtime_ns == before and len(ids) == len(TEXT)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["stale", "truncated", "padded", "garbage"])
def test_a_stale_or_damaged_cache_is_rebuilt_not_trusted(tmp_path, damage):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    encoded_corpus(str(path), log=lambda m: None)
    cache = tmp_path / "t.txt.tinychar-chars.ids"
    if damage == "stale":         # the corpus changed after the cache was written
        path.write_text(TEXT.replace("snow", "rain"), encoding="utf-8")
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:-10])
    elif damage == "padded":      # longer than its header says: not the file that was written
        cache.write_bytes(cache.read_bytes() + bytes(10))
    else:
        cache.write_bytes(b"not a cache at all")
    messages = []
    vocab, ids, _ = encoded_corpus(str(path), log=messages.append)
    chars, expected = python_reference(path.read_text(encoding="utf-8"))
    assert messages and vocab.chars == chars and ids.tolist() == expected


def unwritable_beside(folder, name="t.txt"):
    """The cache's temporary file beside the corpus, its name taken by a folder: opening it fails as
    in a read-only folder (which root, who runs some test machines, could write all the same)."""
    (folder / f"{name}.tinychar-chars.ids.{os.getpid()}.tmp").mkdir()


def test_where_the_corpus_folder_is_not_writable_the_cache_goes_to_the_users_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    texts = {}
    for folder, text in (("one", TEXT), ("two", TEXT.upper())):   # two corpora named alike, in two folders
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "t.txt"
        path.write_text(text, encoding="utf-8")
        unwritable_beside(tmp_path / folder)
        messages = []
        _, ids, _ = encoded_corpus(str(path), run_dir=str(tmp_path / "run"), log=messages.append)
        assert len(messages) == 1 and messages[0].startswith(f"token cache written: {tmp_path / 'cache' / 'tinychar'}")
        assert "(not beside the corpus: " in messages[0] and len(ids) == len(text)
        texts[messages[0].split()[3]] = text
    assert len(texts) == 2 and sorted(os.listdir(tmp_path / "cache" / "tinychar")) == sorted(
        os.path.basename(cache) for cache in texts)
    for cache, text in texts.items():   # each its own corpus's, found again without a word
        messages = []
        vocab, ids, _ = encoded_corpus(str(tmp_path / ("one" if text == TEXT else "two") / "t.txt"),
                                       log=messages.append)
        assert messages == [] and vocab.decode(ids.tolist()) == text


def test_where_neither_the_corpus_folder_nor_the_users_cache_is_writable_the_cache_goes_to_the_run_directory(
        tmp_path, monkeypatch):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    path = data / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    unwritable_beside(data)
    (tmp_path / "a file").write_text("")   # the user's cache folder cannot be made under a file
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a file"))
    messages = []
    _, ids, _ = encoded_corpus(str(path), run_dir=str(run), log=messages.append)
    assert len(messages) == 1 and messages[0].startswith(f"token cache written: {run / 't.txt.tinychar-chars.ids'} ")
    assert len(ids) == len(TEXT)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into a read-only folder all the same; Windows has no chmod 0o555")
@pytest.mark.slow
def test_a_run_on_a_corpus_in_a_read_only_folder_trains_with_its_cache_in_the_users_cache_folder(tmp_path, monkeypatch,
                                                                                               capsys):
    import train
    from conftest import TINY_FLAGS
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.txt").write_text(TEXT * 5, encoding="utf-8")
    data.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        for out in ("run", "again"):   # the second run finds the cache: nothing more is said of it
            train.main(["--data", str(data / "t.txt"), "--out", str(tmp_path / out), "--steps", "2",
                        "--eval-every", "2", *TINY_FLAGS])
    finally:
        data.chmod(0o755)
    assert os.listdir(data) == ["t.txt"]
    assert [name.startswith("t.txt.") for name in os.listdir(tmp_path / "cache" / "tinychar")] == [True]
    out, err = capsys.readouterr()
    assert out.count("token cache written: ") == 1 and "not beside the corpus" in out and err == ""


def test_invalid_utf8_is_named_with_its_offset_even_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK", 5)
    path = tmp_path / "bad.txt"
    path.write_bytes("abcdefgh".encode() + b"\xff" + b"more text here")
    with pytest.raises(UserError, match=r"not UTF-8 text.*offset 8.*--bytes"):
        encoded_corpus(str(path), log=lambda m: None)


def test_bytes_unit_takes_any_file_and_its_vocabulary_is_every_byte_value(tmp_path):
    path = tmp_path / "bin"
    raw = bytes([0, 255, 128, 10, 65]) * 50
    path.write_bytes(raw)
    vocab, ids, _ = encoded_corpus(str(path), unit="bytes", log=lambda m: None)
    assert vocab.unit == "bytes" and [ord(c) for c in vocab.chars] == list(range(256))   # any file, any byte
    assert [ord(c) for c in vocab.present] == [0, 10, 65, 128, 255]
    assert ids.tolist() == list(raw) and vocab.decode(ids.tolist()) == raw                # an id is its byte
    assert vocab.encode("AB\n").tolist() == [65, 66, 10]
    older = Vocab([chr(b) for b in (0, 10, 65, 128, 255)], "bytes")   # a byte model from before: its file's bytes
    with pytest.raises(UserError, match="bytes not in the model's vocabulary: 0x42"):
        older.encode("B")


def test_a_model_vocabulary_that_holds_the_corpus_reads_its_ids_mapped_without_a_copy(tmp_path):
    path = tmp_path / "bin"
    path.write_bytes(bytes([0, 255, 128, 10, 65]) * 50)
    older = Vocab([chr(b) for b in (0, 10, 65, 128, 255)], "bytes")
    _, train_ids, val_ids, _ = load_corpus(str(path), 4, vocab=older, unit="bytes", log=lambda m: None)
    assert np.asarray(train_ids[:5]).tolist() == [0, 4, 3, 1, 2] and len(train_ids) == 225
    x, y = get_batch(train_ids, 2, 4, torch.Generator().manual_seed(0))
    assert set(x.flatten().tolist()) <= set(range(5))
    assert symbol_counts(val_ids, 5).tolist() == [5, 5, 5, 5, 5]
    with pytest.raises(UserError, match="has 2 bytes the model does not know"):
        load_corpus(str(path), 4, vocab=Vocab([chr(0), chr(10), chr(65)], "bytes"), unit="bytes", log=lambda m: None)


def test_splits_by_fraction_or_count_in_order():
    assert [len(p) for p in split(np.arange(1009), "0.9,0.1").values()] == [908, 101]   # the rest goes to the last
    assert [len(p) for p in split(np.arange(1009), "0.5,0.3").values()] == [504, 302]   # unless some is left out
    ids = np.arange(1000)
    parts = split(ids, "0.9,0.1")
    assert len(parts["train"]) == 900 and parts["val"].tolist() == list(range(900, 1000))
    parts = split(ids, "0.8,0.1,0.1")
    assert [len(parts[k]) for k in ("train", "val", "test")] == [800, 100, 100] and parts["test"][0] == 900
    parts = split(ids, "600,300,100")
    assert parts["val"][0] == 600 and parts["test"][-1] == 999
    parts = split(ids, "500,100")
    assert len(parts["train"]) == 500 and parts["val"][-1] == 599   # the rest unused
    for bad in ("0.9", "0.9,0.2", "a,b", "600,300,200", "0.5,100", "0.9,0.1,0.1,0.1", "0,1"):
        with pytest.raises(UserError, match="--split"):
            split(ids, bad)


def test_a_test_split_must_exist_to_be_asked_for(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    with pytest.raises(UserError, match="no test part"):
        load_corpus(str(path), 8, part="test", log=lambda m: None)
    _, train_ids, test_ids, _ = load_corpus(str(path), 8, split_spec="0.8,0.1,0.1", part="test", log=lambda m: None)
    assert len(test_ids) == len(TEXT) - int(0.8 * len(TEXT)) - int(0.1 * len(TEXT))


def test_batches_are_int64_windows_of_the_memory_mapped_ids(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    _, train_ids, _, _ = load_corpus(str(path), 8, log=lambda m: None)
    x, y = get_batch(train_ids, 5, 8, torch.Generator().manual_seed(0))
    assert x.dtype == torch.int64 and x.shape == y.shape == (5, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])
    _, ids = python_reference(TEXT)
    starts = torch.randint(len(train_ids) - 8, (5,), generator=torch.Generator().manual_seed(0))
    assert x.tolist() == [ids[s:s + 8] for s in starts.tolist()]


@pytest.mark.slow
def test_a_byte_model_on_a_file_that_is_not_utf8_trains_evaluates_on_test_and_generates(tmp_path):
    from conftest import TINY_FLAGS, assert_one_line_error, run_script
    data = tmp_path / "mixed.bin"
    data.write_bytes(("the quick brown fox jumps over the lazy dog. " * 4).encode() * 20
                     + b"\xff\xfe\x80 binary tail " * 30 + "é".encode() * 10)
    out = str(tmp_path / "bytes")
    result = run_script("train.py", "--data", str(data), "--bytes", "--split", "0.8,0.1,0.1", "--out", out,
                        "--steps", "6", "--eval-every", "3", *TINY_FLAGS)
    assert result.returncode == 0, result.stderr
    assert "validation bytes" in result.stdout and "token cache written" in result.stdout
    import json
    report = json.loads(run_script("eval.py", out, "--split", "test", "--json").stdout)
    row = report["runs"][0]
    assert row["unit"] == "bytes" and row["split"] == "test" and 0 < row["val_bpc"] < 8
    table = run_script("eval.py", out, "--split", "test", "--no-references").stdout
    assert "test BPC" in table and " byte" in table and "bits per byte" in table
    sample = run_script("generate.py", "--ckpt", out, "--prompt", "the", "--max-new-tokens", "200", "--seed", "1")
    assert sample.returncode == 0 and sample.stdout.startswith("the") and len(sample.stdout) > 3
    snowman = run_script("generate.py", "--ckpt", out, "--prompt", "☃", "--max-new-tokens", "5")   # every byte is known
    assert snowman.returncode == 0 and snowman.stdout.startswith("☃")
    assert_one_line_error(run_script("train.py", "--out", out, "--resume", "--no-bytes"), "trained on bytes")
    chars_run = str(tmp_path / "chars")
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    assert run_script("train.py", "--data", str(text), "--out", chars_run, "--steps", "2", *TINY_FLAGS).returncode == 0
    assert_one_line_error(run_script("train.py", "--out", chars_run, "--resume", "--bytes"), "trained on chars")
    assert_one_line_error(run_script("eval.py", chars_run, "--split", "test"), "no test part")


def test_generate_decodes_a_byte_sample_as_utf8_with_replacement(tmp_path):
    # a model that always predicts the first byte of "é" (0xc3) and never its second: the sample is
    # cut mid-character, printed as U+FFFD, not a crash
    from tinychar.corpus import Vocab
    vocab = Vocab([chr(b) for b in (0x61, 0xa9, 0xc3)], "bytes")
    assert vocab.decode([2, 1, 0]).decode("utf-8") == "éa"
    assert vocab.decode([0, 2]).decode("utf-8", errors="replace") == "a\ufffd"
