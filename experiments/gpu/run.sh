#!/usr/bin/env bash
# The CUDA path on a lent GPU, in one sitting: tests/test_cuda.py, README's quick start with
# --device auto (which picks the GPU), a --preset auto run with a 90 s budget on Tiny Shakespeare, then the whole suite
# on that machine. Every command, what it printed, its exit status and wall time go to $OUT/gpu.log
# after the machine's name; the runs' records and metrics beside it.
# Usage: OUT=folder bash experiments/gpu/run.sh    (needs data/tinyshakespeare.txt; ~7 minutes)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT=${OUT:?set OUT to a folder}
log="$OUT/gpu.log"
runs=$(mktemp -d)
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(nvidia-smi -L 2>&1 | head -1)  $(nproc) CPU cores"
  python3 -c "import sys, torch; print('# python', sys.version.split()[0], ' torch', torch.__version__, ' cuda', torch.version.cuda)"
} > "$log" 2>&1
step() {   # step SECONDS COMMAND...: run one command under a time limit, logged with its status and time
  local limit=$1; shift
  echo "\$ $*" >> "$log"
  local start; start=$(date +%s.%N)
  timeout "$limit" bash -c "$*" >> "$log" 2>&1
  local rc=$?
  echo "# rc=$rc  $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" >> "$log"
}
step 180 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
step 100 python3 train.py --out "$runs/quickstart" --steps 1000 --d-model 128 --seq-len 64 --dropout 0.1 --lr 2e-3 --eval-every 200
step 40 python3 eval.py "$runs/quickstart"
step 40 python3 generate.py "$runs/quickstart" --prompt "'tokenization is'"
step 150 python3 train.py --data data/tinyshakespeare.txt --out "$runs/auto" --preset auto --time-budget 1.5
step 30 python3 eval.py "$runs/auto" --no-references
for run in quickstart auto; do
  cp "$runs/$run/run.json" "$OUT/${run}_run.json" 2>/dev/null
  cp "$runs/$run/metrics.csv" "$OUT/${run}_metrics.csv" 2>/dev/null
done
[ -n "${SKIP_SUITE:-}" ] || step 170 "python3 -m pytest -q -p no:cacheprovider -n 12 -x 2>&1 | tail -40"
cat "$log"
