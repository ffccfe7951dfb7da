#!/usr/bin/env bash
# README's quick start as README gives it (tests/test_readme.py holds the two equal), run from the
# repository's root into checkpoints/quickstart; its transcript (each command, what it printed and
# its wall time, after the machine it ran on), metrics, curve and run record go to
# experiments/quickstart/chars/.  Usage: bash experiments/quickstart/run.sh   (~1-2 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/quickstart/chars
commands=(
  "python train.py --out checkpoints/quickstart --steps 1000 --d-model 128 --seq-len 64 --dropout 0.1 --lr 2e-3 --eval-every 200"
  "python eval.py checkpoints/quickstart"
  "python generate.py checkpoints/quickstart --prompt \"tokenization is\""
)
rm -rf checkpoints/quickstart
mkdir -p "$out"
log="$out/quickstart.log.tmp"
python -c "from tinychar import record; r = record.session('cpu', 'auto'); print('# machine:', record.machine(r) + '; torch', r['torch'])" > "$log"
for command in "${commands[@]}"; do
  echo "\$ $command" >> "$log"
  start=$(date +%s.%N)
  eval "$command" >> "$log" 2>&1
  echo "# $(python -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" >> "$log"
done
mv "$log" "$out/quickstart.log"
cp checkpoints/quickstart/metrics.csv checkpoints/quickstart/loss_curve.png checkpoints/quickstart/run.json "$out/"
cat "$out/quickstart.log"
