"""Fetch or copy a benchmark corpus into data/, verifying its checksum.

    python data/prepare.py shakespeare                       # download Tiny Shakespeare
    python data/prepare.py shakespeare --from ~/input.txt    # or take a local copy

The text is written to data/tinyshakespeare.txt (git-ignored: we never commit it) only if its
sha256 matches the standard 1,115,394-character file; then train with
python train.py --data data/tinyshakespeare.txt.
"""
import argparse
import hashlib
import os
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CORPORA = {
    "shakespeare": dict(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
    ),
}


def fetch(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=sorted(CORPORA), help="which corpus")
    parser.add_argument("--from", dest="source", metavar="FILE", help="use this local copy instead of downloading")
    parser.add_argument("--url", help="download from this address instead of the canonical one")
    parser.add_argument("--out", help="where to write it (default data/<name>.txt beside this script)")
    args = parser.parse_args(argv)
    corpus = CORPORA[args.corpus]
    out = args.out or os.path.join(HERE, corpus["filename"])
    origin = args.source or args.url or corpus["url"]
    try:
        if args.source:
            with open(args.source, "rb") as f:
                raw = f.read()
        else:
            raw = fetch(origin)
    except OSError as e:  # missing file, no network, HTTP error: all OSError subclasses
        reason = getattr(e, "reason", None) or e.strerror or e
        hint = "" if args.source else f"; without network, use: python data/prepare.py {args.corpus} --from FILE"
        print(f"error: could not read {origin}: {reason}{hint}", file=sys.stderr)
        sys.exit(2)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != corpus["sha256"]:
        print(f"error: {origin} is not the expected {args.corpus} text (sha256 {digest[:12]}..., "
              f"expected {corpus['sha256'][:12]}...); nothing written", file=sys.stderr)
        sys.exit(2)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(raw):,} bytes, sha256 verified")


if __name__ == "__main__":
    main()
