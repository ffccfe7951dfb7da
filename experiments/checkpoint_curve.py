"""Full-pass validation BPC at every checkpoint a run kept: the curve train.py's 20-batch estimate
only approximates. Writes RUN/curve.json ({"steps": [...], "val_bpc": [...]}); a run whose
curve.json already covers all its checkpoints is skipped.

    python experiments/checkpoint_curve.py checkpoints/study/long_baseline_s1 checkpoints/study/long_heads4_nopos_s1

fp32 scoring (eval.py --precision fp32), the study's protocol; one eval.py process per run.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def checkpoints(run_dir):
    return sorted(name for name in os.listdir(run_dir) if name.startswith("step_") and name.endswith(".pt"))


def main(run_dirs):
    for run_dir in run_dirs:
        names = checkpoints(run_dir)
        if not names:
            sys.exit(f"error: no checkpoint in {run_dir}")
        path = os.path.join(run_dir, "curve.json")
        steps = [int(name[5:-3]) for name in names]
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f)["steps"] == steps:
                    print(f"{run_dir}: curve.json is complete")
                    continue
        scored = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *[os.path.join(run_dir, n) for n in names],
                                 "--precision", "fp32", "--json", "--no-references"],
                                stdout=subprocess.PIPE, text=True, check=True).stdout
        runs = json.loads(scored)["runs"]
        curve = {"steps": [r["steps"] for r in runs], "val_bpc": [r["val_bpc"] for r in runs]}
        assert curve["steps"] == steps, (curve["steps"], steps)
        with open(path + ".tmp", "w") as f:
            json.dump(curve, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        print(f"{run_dir}: " + ", ".join(f"{s}: {b:.4f}" for s, b in zip(curve["steps"], curve["val_bpc"])))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    main(sys.argv[1:])
