#!/usr/bin/env bash
# README's "Comparing runs" as it gives it: two groups of three seeds on the bundled corpus (the
# quick start's shape, 500 steps; one group without positional encoding), then eval.py comparing
# them with a plot. The transcript (the machine, each command, what it printed, its wall time) goes
# to experiments/groups/compare.log, the plot to experiments/groups/compare.png;
# tests/test_readme.py holds the commands equal to README's.
# Usage: bash experiments/groups/run.sh   (~3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/groups
shape="--steps 500 --d-model 128 --seq-len 64 --dropout 0.1 --lr 2e-3 --eval-every 100"
commands=(
  "python train.py --seeds 1 2 3 --out checkpoints/sinusoidal $shape"
  "python train.py --seeds 1 2 3 --out checkpoints/no_positions $shape --pos none"
  "python eval.py checkpoints/sinusoidal checkpoints/no_positions --plot checkpoints/compare.png"
)
rm -rf checkpoints/sinusoidal checkpoints/no_positions experiments/groups/compare.log.tmp
source experiments/transcript.sh
transcript "$out/compare.log.tmp" "${commands[@]}"
grep -v "^step [0-9]*/" "$out/compare.log.tmp" > "$out/compare.log"   # the progress lines: kept out
rm "$out/compare.log.tmp"
cp checkpoints/compare.png "$out/compare.png"
cat "$out/compare.log"
