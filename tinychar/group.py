"""train.py --seeds: a group of runs, the same settings once per seed, one after another, into
OUT/s<seed>/. Each is a normal run (its lock, its record, its checkpoints); OUT/group.json keeps the
seeds and the settings, so that `train.py --out OUT --resume` continues the group where it
stopped: a finished run is skipped, an interrupted one resumed, the others started. eval.py reads
OUT as one group (tinychar/compare.py).
"""
import argparse
import json
import os

from tinychar.checkpoint import list_checkpoints, load_checkpoint
from tinychar.cli import UserError
from tinychar.files import AtomicFile

GROUP_FILE = "group.json"
KEPT_ON_RESUME = ("--out", "--resume", "--seeds")   # the flags a group's --resume takes: the rest are saved


def is_group(out):
    return os.path.isfile(os.path.join(out, GROUP_FILE))


def seed_folder(out, seed):
    return os.path.join(out, f"s{seed}")


def group_settings(args, argv, out):
    """(seeds, the settings every run of the group shares) of a new group, or of a saved one on
    --resume (with --seeds there: the group's seeds and these, e.g. more of them)."""
    if args.resume:
        if not is_group(out):
            raise UserError(f"--resume --seeds: {out} holds no group of seeds ({GROUP_FILE}) to continue")
        given = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in KEPT_ON_RESUME]
        if given:
            raise UserError(f"--resume continues the group in {out} with its saved settings: drop {given[0]}")
        with open(os.path.join(out, GROUP_FILE)) as f:
            saved = json.load(f)
        return saved["seeds"] + [s for s in args.seeds or [] if s not in saved["seeds"]], saved["settings"]
    if args.seed is not None:
        raise UserError("--seed and --seeds: give one seed or a group of them, not both")
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is given twice")
    if is_group(out):
        raise UserError(f"{out} already holds a group of seeds: pass --resume to continue it, or a new --out")
    if os.path.isdir(out) and list_checkpoints(out):
        raise UserError(f"{out} holds a run's checkpoints: a group needs a folder of its own (a new --out)")
    return args.seeds, {k: v for k, v in vars(args).items() if k not in ("seeds", "resume", "out", "seed")}


def finished(folder):
    """Whether a run's latest checkpoint is its planned last step."""
    ckpt = load_checkpoint(folder)
    return ckpt["step"] >= ckpt["plan"]["steps"]


def train_group(args, argv, out, train_one):
    """Each seed's run in turn, through train_one(its parsed flags)."""
    seeds, settings = group_settings(args, argv, out)
    os.makedirs(out, exist_ok=True)
    with AtomicFile(os.path.join(out, GROUP_FILE)) as f:
        f.write(json.dumps({"seeds": seeds, "settings": settings}, indent=2) + "\n")
    print(f"a group of {len(seeds)} runs, seeds {' '.join(map(str, seeds))}, in {out} (stopped? continue it with: "
          f"python train.py --out {out} --resume)", flush=True)
    for i, seed in enumerate(seeds, 1):
        folder = seed_folder(out, seed)
        started = os.path.isdir(folder) and bool(list_checkpoints(folder))
        if started and finished(folder):
            print(f"seed {seed} ({i} of {len(seeds)}): {folder} is finished", flush=True)
            continue
        print(f"seed {seed} ({i} of {len(seeds)}): {folder}{' (resumed)' if started else ''}", flush=True)
        # a resumed run keeps the shape --preset auto chose for it: the saved settings hold it
        preset = None if started and settings.get("preset") == "auto" else settings.get("preset")
        train_one(argparse.Namespace(**{**settings, "preset": preset, "out": folder, "seed": seed, "seeds": None,
                                        "resume": started}))
    print(f"group done: {len(seeds)} runs in {out}; compare groups with: python eval.py {out} OTHER_GROUP")
