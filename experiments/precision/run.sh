#!/usr/bin/env bash
# fp32 vs bf16 autocast on this CPU: same seed, baseline shape, 1500 steps of Tiny Shakespeare.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f data/tinyshakespeare.txt ] || python data/prepare.py shakespeare --from ../shared/data/tinyshakespeare.txt
for p in fp32 bf16; do
  out=checkpoints/precision_$p
  [ -f "$out/step_001500.pt" ] || python train.py --data data/tinyshakespeare.txt --out "$out" --steps 1500 \
      --preset baseline --precision "$p" --eval-every 250 > "experiments/precision/train_$p.log" 2>&1
  cp "$out/metrics.csv" "experiments/precision/metrics_$p.csv"
done
python eval.py checkpoints/precision_fp32 checkpoints/precision_bf16 > experiments/precision/eval.txt
