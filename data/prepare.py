"""Fetch or copy a benchmark corpus into data/, verifying its checksum.

    python data/prepare.py shakespeare                       # download Tiny Shakespeare
    python data/prepare.py shakespeare --from ~/input.txt    # or take a local copy
    python data/prepare.py enwik8                            # the Hutter prize's first 10^8 bytes of Wikipedia
    python data/prepare.py text8 --from ~/text8.zip          # its cleaned 10^8 characters, from a local zip

The file is written to data/ (git-ignored: we never commit a corpus) only if the sha256 of what
was downloaded or given matches the published file: Tiny Shakespeare's 1,115,394 characters, or
the enwik8 / text8 zip, which is then unzipped. The last lines printed are the commands to train
and evaluate on it, with the standard split for enwik8 and text8 (first 90M units train, next 5M
validation, last 5M test; enwik8 as bytes, scored in bits per byte).
"""
import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
STANDARD_SPLIT = "90000000,5000000,5000000"
CORPORA = {
    "shakespeare": dict(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", size=1_115_394,
        filename="tinyshakespeare.txt", member=None,
        train="python train.py --data {out} --preset baseline --out checkpoints/shakespeare",
        evaluate="python eval.py checkpoints/shakespeare"),
    "enwik8": dict(
        url="http://mattmahoney.net/dc/enwik8.zip",
        sha256="547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc", size=36_445_475,
        filename="enwik8", member="enwik8",
        train=f"python train.py --data {{out}} --bytes --split {STANDARD_SPLIT} --out checkpoints/enwik8",
        evaluate="python eval.py checkpoints/enwik8 --split test      # bits per byte"),
    "text8": dict(
        url="http://mattmahoney.net/dc/text8.zip",
        sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232", size=31_344_016,
        filename="text8", member="text8",
        train=f"python train.py --data {{out}} --split {STANDARD_SPLIT} --out checkpoints/text8",
        evaluate="python eval.py checkpoints/text8 --split test"),
}


class PrepareError(Exception):
    """One line for the user; nothing has been written."""


def copy_hashing(source, target, timeout=60):
    """Copy a local path or a URL into the open binary file target, 1 MB at a time; returns the
    sha256 hex of what was copied."""
    sha = hashlib.sha256()
    opened = open(source, "rb") if os.path.exists(source) else urllib.request.urlopen(source, timeout=timeout)
    with opened as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            target.write(block)
    return sha.hexdigest()


def prepare(name, source, out, expected_sha256):
    """Copy (or download) and verify, unzip where the corpus comes zipped, and write out atomically."""
    corpus = CORPORA[name]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as work:
        downloaded = os.path.join(work, "download")
        try:
            with open(downloaded, "wb") as f:
                digest = copy_hashing(source, f)
        except (OSError, ValueError) as e:   # missing file, no network, HTTP error; ValueError: not a URL
            reason = getattr(e, "reason", None) or e.strerror or e
            hint = "" if os.path.exists(source) or not source.startswith(("http:", "https:")) else \
                f"; without network, use: python data/prepare.py {name} --from FILE"
            raise PrepareError(f"could not read {source}: {reason}{hint}") from None
        if digest != expected_sha256:
            raise PrepareError(f"{source} is not the expected {name} {'zip' if corpus['member'] else 'text'} "
                               f"(sha256 {digest[:12]}..., expected {expected_sha256[:12]}...); nothing written")
        result = downloaded
        if corpus["member"]:
            try:
                with zipfile.ZipFile(downloaded) as archive, archive.open(corpus["member"]) as member, \
                        open(os.path.join(work, "unzipped"), "wb") as f:
                    shutil.copyfileobj(member, f, 1 << 20)
            except (zipfile.BadZipFile, KeyError) as e:
                raise PrepareError(f"{source} is not a zip holding {corpus['member']}: {e}") from None
            result = os.path.join(work, "unzipped")
        with open(result, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(result, out)
    return os.path.getsize(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=sorted(CORPORA), help="which corpus")
    parser.add_argument("--from", dest="source", metavar="FILE",
                        help="use this local copy (the text, or for enwik8 / text8 the zip) instead of downloading")
    parser.add_argument("--url", help="download from this address instead of the canonical one")
    parser.add_argument("--out", help="where to write it (default data/<name> beside this script)")
    parser.add_argument("--sha256", metavar="HEX",
                        help="expect this sha256 of the download or the --from file instead of the published one "
                             "(a mirror's copy that differs; the tests' small zips)")
    parser.error = lambda message: (print(f"error: {message}", file=sys.stderr), sys.exit(2))   # one line
    args = parser.parse_args(argv)
    corpus = CORPORA[args.corpus]
    out = args.out or os.path.join(HERE, corpus["filename"])
    source = args.source or args.url or corpus["url"]
    try:
        if args.source and not os.path.isfile(args.source):
            raise PrepareError(f"could not read {args.source}: no such file")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        size = prepare(args.corpus, source, out, (args.sha256 or corpus["sha256"]).lower())
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {out}: {size:,} bytes, sha256 of {'the zip' if corpus['member'] else 'the text'} verified")
    print("train and evaluate with:")
    shown = os.path.relpath(out) if not os.path.relpath(out).startswith("..") else os.path.abspath(out)
    print("  " + corpus["train"].format(out=shown))
    print("  " + corpus["evaluate"])


if __name__ == "__main__":
    main()
