#!/usr/bin/env bash
# The fine-tuning example's source model: README's 30-minute command on Tiny Shakespeare,
# seed 1337 (the default). Resumable: run it again. Its metrics and log are copied to
# experiments/finetune/source/ (the checkpoints stay in checkpoints/finetune/source, not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=checkpoints/finetune/source
mkdir -p "$out" experiments/finetune/source
if ls "$out"/step_*.pt >/dev/null 2>&1; then resume=--resume; else resume=; fi
python train.py --data ../shared/data/tinyshakespeare.txt --preset cpu30 --out "$out" $resume 2>&1 \
    | tee -a experiments/finetune/source/train.log
cp "$out/metrics.csv" "$out/config.toml" experiments/finetune/source/
python eval.py "$out" > experiments/finetune/source/eval.txt 2>&1
