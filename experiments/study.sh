#!/usr/bin/env bash
# The REPORT.md study: every configuration x seed, 5000 steps each on Tiny Shakespeare, then the
# baseline on the small bundled corpus to show memorisation. Resumable: a finished run is
# skipped, an interrupted one continues with --resume, so the study can span sessions.
# Usage: bash experiments/study.sh [RUN_NAME ...]   (default: all, in order)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data/tinyshakespeare.txt
[ -f "$DATA" ] || python data/prepare.py shakespeare --from ../shared/data/tinyshakespeare.txt
declare -A FLAGS=(
  [baseline]="--n-heads 4 --pos sinusoidal"
  [ablation]="--n-heads 1 --pos none"
  [heads4_nopos]="--n-heads 4 --pos none"
  [heads1_sinusoidal]="--n-heads 1 --pos sinusoidal"
  [heads4_learned]="--n-heads 4 --pos learned"
  [memorise_primer]="--n-heads 4 --pos sinusoidal --data data/lm_primer.txt"
)
mkdir -p checkpoints/study
ALL="baseline_s1 ablation_s1 baseline_s2 ablation_s2 baseline_s3 ablation_s3 heads4_nopos_s1 heads1_sinusoidal_s1 heads4_learned_s1 memorise_primer_s1 heads1_sinusoidal_s2 heads1_sinusoidal_s3"
for run in ${@:-$ALL}; do
  config=${run%_s*}; seed=${run##*_s}; out=checkpoints/study/$run
  if [ -f "$out/eval.json" ]; then echo "$run: done"; continue; fi
  resume=""; ls "$out"/step_*.pt >/dev/null 2>&1 && resume="--resume"
  echo "$run: training $resume"
  [ -f "$out/step_005000.pt" ] || python train.py --data "$DATA" --out "$out" --steps 5000 --seed "$seed" \
      ${FLAGS[$config]} $resume >> "$out.log" 2>&1
  python eval.py "$out" --json --no-references > "$out/eval.json.tmp" && mv "$out/eval.json.tmp" "$out/eval.json"
done
# the memorisation run: the full-pass validation BPC of every checkpoint, and the primer's references
mem=checkpoints/study/memorise_primer_s1
if [ -f $mem/eval.json ] && [ ! -f $mem/eval_checkpoints.json ]; then
  python eval.py $mem/step_*.pt --json > $mem/eval_checkpoints.json.tmp && mv $mem/eval_checkpoints.json.tmp $mem/eval_checkpoints.json
fi
# the reference rows (uniform, unigram, bz2, lzma) of Tiny Shakespeare's validation split
refs=checkpoints/study/references.json
if [ ! -f $refs ] && [ -f checkpoints/study/baseline_s1/eval.json ]; then
  python eval.py checkpoints/study/baseline_s1 --json > $refs.tmp && mv $refs.tmp $refs
fi
