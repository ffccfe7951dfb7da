#!/usr/bin/env bash
# The time budget is a ceiling (train.py over_budget): a 1-minute cpu5-shaped run whose machine
# gets slower after the probe has fixed its steps. 20 s in, two busy loops start beside it on the
# two cores, so the planned steps would take far longer than the budget; the run must stop early,
# validated and saved, with elapsed_s at or under 60 s.
#     bash experiments/recipe/ceiling_demo.sh     # alone on the machine; writes experiments/recipe/runs/ceiling/
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/recipe/runs/ceiling/run
rm -rf "$out"
mkdir -p experiments/recipe/runs/ceiling
python train.py --data data/tinyshakespeare.txt --preset cpu5 --time-budget 1 --out "$out" \
    --eval-every 100 --ckpt-every 100 > experiments/recipe/runs/ceiling/train.log 2>&1 &
trainer=$!
sleep 20
python -c "while True: pass" & hog1=$!
python -c "while True: pass" & hog2=$!
trap 'kill $hog1 $hog2' EXIT   # the busy loops end with the script, whatever happens
wait $trainer
python - "$out" <<'PY' | tee experiments/recipe/runs/ceiling/result.txt
import sys
sys.path.insert(0, ".")
from tinychar.checkpoint import load_checkpoint
ckpt = load_checkpoint(sys.argv[1])
print(f"planned {ckpt['train_config']['steps']} steps, stopped at step {ckpt['step']}, "
      f"elapsed_s {ckpt['elapsed_s']:.1f} of {ckpt['train_config']['time_budget'] * 60:g}")
PY
cp "$out/metrics.csv" experiments/recipe/runs/ceiling/metrics.csv
