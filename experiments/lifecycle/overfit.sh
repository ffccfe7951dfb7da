#!/usr/bin/env bash
# The best checkpoint and --early-stop on a run that overfits: the quick start's model
# without dropout, on the bundled 36 KB primer, for up to 4000 steps, a checkpoint every 200.
# Writes the run to experiments/lifecycle/overfit/ (metrics.csv, train.log, loss_curve.png,
# eval.txt, eval_last.txt; the .pt files are not committed). Resumable: run it again.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/lifecycle/overfit
if [ -d "$out" ] && ls "$out"/step_*.pt >/dev/null 2>&1; then resume=--resume; else resume=; fi
python train.py --out "$out" --steps 4000 --d-model 128 --seq-len 64 --lr 2e-3 --eval-every 100 \
    --ckpt-every 200 --early-stop 3 --keep-last 2 $resume 2>&1 | tee -a "$out.train.log"
mv "$out.train.log" "$out/train.log"
python eval.py "$out" > "$out/eval.txt" 2>&1                       # best.pt, the default
python eval.py "$out" --checkpoint last > "$out/eval_last.txt" 2>&1  # the run's last checkpoint
