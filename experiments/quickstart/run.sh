#!/usr/bin/env bash
# A quick start as its document gives it, run from the repository's root: README's (chars, the
# default) into checkpoints/quickstart, or docs/data.md's byte-level one (bytes) into
# checkpoints/quickstart_bytes. Its transcript (each command, what it printed and its wall time,
# after the machine it ran on), metrics, curve and run record go to experiments/quickstart/<which>/;
# tests/test_readme.py holds the commands equal to the document's.
# Usage: bash experiments/quickstart/run.sh [chars|bytes]   (~1 minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-chars}
case "$which" in
  chars) run=checkpoints/quickstart
         commands=(
           "python train.py --out $run --steps 1000 --d-model 128 --seq-len 64 --dropout 0.1 --lr 2e-3 --eval-every 200"
           "python eval.py $run"
           "python generate.py $run --prompt \"tokenization is\"") ;;
  bytes) run=checkpoints/quickstart_bytes
         commands=(
           "python train.py --out $run --bytes --split 0.8,0.1,0.1 --steps 1000 --d-model 128 --seq-len 64 --dropout 0.1 --lr 2e-3 --eval-every 200"
           "python eval.py $run --split test"
           "python generate.py $run --prompt \"tokenization is\"") ;;
  *) echo "error: which quick start: chars or bytes, not '$which'" >&2; exit 2 ;;
esac
out=experiments/quickstart/$which
rm -rf "$run"
mkdir -p "$out"
log="$out/quickstart.log.tmp"
source experiments/transcript.sh
transcript "$log" "${commands[@]}"
mv "$log" "$out/quickstart.log"
cp "$run/metrics.csv" "$run/loss_curve.png" "$run/run.json" "$out/"
cat "$out/quickstart.log"
