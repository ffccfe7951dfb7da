"""Full-pass validation BPC at every checkpoint a run kept: the curve train.py's 20-batch estimate
only approximates. Writes RUN/curve.json ({"steps": [...], "val_bpc": [...]}); checkpoints it
already holds are not scored again (a run still training can be brought up to date).

    python experiments/checkpoint_curve.py experiments/study/runs/long_baseline_s1 experiments/study/runs/long_heads4_nopos_s1

fp32 scoring (eval.py --precision fp32), the study's protocol; one eval.py process per run.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from tinychar.checkpoint import list_checkpoints  # noqa: E402
from tinychar.files import AtomicFile  # noqa: E402


def main(run_dirs):
    for run_dir in run_dirs:
        kept = list_checkpoints(run_dir) if os.path.isdir(run_dir) else []
        if not kept:
            print(f"error: no checkpoint in {run_dir}", file=sys.stderr)
            sys.exit(2)
        path = os.path.join(run_dir, "curve.json")
        scored = {}
        if os.path.exists(path):
            with open(path) as f:
                curve = json.load(f)
            scored = dict(zip(curve["steps"], curve["val_bpc"]))
        missing = [(step, ckpt) for step, ckpt in kept if step not in scored]
        if not missing:
            print(f"{run_dir}: curve.json is complete")
            continue
        out = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *[ckpt for _, ckpt in missing],
                              "--precision", "fp32", "--json", "--no-references"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        runs = json.loads(out)["runs"]
        assert [r["steps"] for r in runs] == [step for step, _ in missing]
        scored.update((r["steps"], r["val_bpc"]) for r in runs)
        steps = sorted(scored)
        with AtomicFile(path) as f:
            json.dump({"steps": steps, "val_bpc": [scored[s] for s in steps]}, f, indent=1)
        print(f"{run_dir}: " + ", ".join(f"{s}: {scored[s]:.4f}" for s in steps))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    main(sys.argv[1:])
