#!/usr/bin/env bash
# tests/test_cuda.py, then the whole suite, on a machine with a GPU: their output, exit status and
# the machine's name go to $OUT/cuda_tests.log and $OUT/suite.log.
# Usage: OUT=folder bash experiments/gpu/tests.sh   (WORKERS=14 pytest-xdist workers; ~5 minutes)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT=${OUT:?set OUT to a folder}
machine="# $(date -u '+%Y-%m-%d %H:%M UTC')  $(nvidia-smi -L 2>&1 | head -1)  $(nproc) CPU cores  $(python3 -c "import sys, torch; print('python', sys.version.split()[0], ' torch', torch.__version__)")"
echo "$machine" > "$OUT/cuda_tests.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py >> "$OUT/cuda_tests.log" 2>&1
echo "# rc=$?" >> "$OUT/cuda_tests.log"
echo "$machine" > "$OUT/suite.log"
start=$(date +%s)
timeout "${SUITE_S:-240}" python3 -m pytest -q -p no:cacheprovider -n "${WORKERS:-14}" --durations 25 >> "$OUT/suite.log" 2>&1
echo "# rc=$?  $(( $(date +%s) - start )) s" >> "$OUT/suite.log"
tail -4 "$OUT/cuda_tests.log"; grep -E "passed|failed|^FAILED|^ERROR|# rc" "$OUT/suite.log" | tail -30
