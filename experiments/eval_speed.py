"""The full pass with the last block's context rows skipped (model.py's outputs_from, which
eval.py uses), against the same pass making every row, in one process; and the committed
figures scored again with it.

    python experiments/eval_speed.py                                     # alone on the machine
    python experiments/eval_speed.py --figures "experiments/recipe/runs/m*_clock/*/"
    python experiments/eval_speed.py --dynamic
    python experiments/eval_speed.py --cheaper                           # alone on the machine
(their outputs, two speed runs and one of each other: experiments/eval_speed.txt; --cheaper's, with
the stand-in's figure scored again, on the slower machine: experiments/eval_speed_cheaper.txt)

A scoring window's first half is context: no logits are read there, so the last block need not
make those rows (its keys and values come from the rows of the block before, which are all made).
Speed: scoring.full_pass_bpc on the same 20,000 random characters as bench.py, the two ways taking
turns, the median of --rounds rounds; "every row" is the model wrapped so that it makes every
row's logits and hands back the scored ones, as the pass did before. Figures: each run's
eval.json against its checkpoint scored again now, in the precision eval.json names. Dynamic:
experiments/dynamic/results.json's test figures (static and dynamic, whose gradient steps take
the same scored rows) against their checkpoints scored again now. Cheaper: the full pass of cpu30's
shape with each cheaper-step flag of the model (experiments/recipe/README.md, "Cheaper steps")
against cpu30's, all taking turns in one process, fp32 and bf16.
"""
import argparse
import glob
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinychar import record                                               # noqa: E402
from bench import BF16, interleaved                        # noqa: E402
from tinychar.cli import ArgumentParser                              # noqa: E402
from tinychar.checkpoint import load_checkpoint, model_from_checkpoint   # noqa: E402
from tinychar.scoring import evaluate_run, full_pass_bpc, score_run    # noqa: E402
from model import CharTransformer, ModelConfig             # noqa: E402

SHAPES = {"baseline (2 layers x 256)": dict(n_layers=2), "cpu30 (4 layers x 256)": dict(n_layers=4)}
CHEAPER = {"cpu30": {}, "--no-bias": dict(bias=False), "--norm rmsnorm": dict(norm="rmsnorm"),
           "--activation gelu_tanh": dict(activation="gelu_tanh"),
           "all three": dict(bias=False, norm="rmsnorm", activation="gelu_tanh")}


class EveryRow(torch.nn.Module):
    """The model as the full pass used it before: every row's logits made, the scored ones returned."""

    def __init__(self, model):
        super().__init__()
        self.model, self.cfg = model, model.cfg

    def forward(self, idx, outputs_from=0):
        return self.model(idx)[0][:, outputs_from:], None


def speed(rounds):
    print(f"# {record.describe(record.session('cpu', 'fp32 and bf16'))}")
    print(f"full pass, 20,000 random characters, windows of 128 (stride 64), median of {rounds} rounds, "
          f"the two ways taking turns; chars/s")
    print(f"{'shape':28} {'precision':9} {'every row':>10} {'scored rows':>12} {'ratio':>6}  BPC, scored rows - every row")
    for name, fields in SHAPES.items():
        torch.manual_seed(0)
        model = CharTransformer(ModelConfig(vocab_size=65, **fields)).eval()
        val_ids, train_ids = torch.randint(0, 65, (20_000,)), torch.randint(0, 65, (128,))
        for precision, autocast in (("fp32", None), ("bf16", BF16)):
            extra = {} if autocast is None else {"autocast": autocast}
            ways = {"every": lambda: full_pass_bpc(EveryRow(model), train_ids, val_ids, **extra)[0],
                    "scored": lambda: full_pass_bpc(model, train_ids, val_ids, **extra)[0]}
            difference = ways["scored"]() - ways["every"]()
            times = interleaved(ways, rounds, 1)
            rate = {k: len(val_ids) / statistics.median(t) for k, t in times.items()}
            print(f"{name:28} {precision:9} {rate['every']:>10,.0f} {rate['scored']:>12,.0f} "
                  f"{rate['scored'] / rate['every']:>5.2f}x  {difference:+.1e}", flush=True)


def cheaper(rounds):
    print(f"# {record.describe(record.session('cpu', 'fp32 and bf16'))}")
    print(f"full pass of cpu30's shape (4 layers x 256), 20,000 random characters, windows of 128 (stride 64), "
          f"median of {rounds} rounds, the models taking turns; chars/s, and the ratio to cpu30's")
    val_ids, train_ids = torch.randint(0, 65, (20_000,)), torch.randint(0, 65, (128,))
    models = {}
    for name, fields in CHEAPER.items():
        torch.manual_seed(0)
        models[name] = CharTransformer(ModelConfig(vocab_size=65, n_layers=4, **fields)).eval()
    for precision, autocast in (("fp32", None), ("bf16", BF16)):
        extra = {} if autocast is None else {"autocast": autocast}
        ways = {name: (lambda m=model: full_pass_bpc(m, train_ids, val_ids, **extra)) for name, model in models.items()}
        rate = {name: len(val_ids) / statistics.median(t) for name, t in interleaved(ways, rounds, 1).items()}
        for name in models:
            print(f"{name:24} {precision:5} {rate[name]:>9,.0f} chars/s  {rate[name] / rate['cpu30']:.3f}x", flush=True)


def figures(run_dirs):
    print(f"# {record.describe(record.session('cpu', 'as each eval.json'))}")
    print("each run's eval.json figure against its checkpoint scored again by today's eval.py")
    diffs = []
    for run_dir in run_dirs:
        path = os.path.join(run_dir, "eval.json")
        if not os.path.exists(path):
            continue
        row = json.load(open(path))["runs"][0]
        if not os.path.exists(row["checkpoint"]):
            print(f"{row['checkpoint']}: no checkpoint file here, skipped")
            continue
        now = evaluate_run(row["checkpoint"], precision=row["precision"])[0][0]["val_bpc"]
        diffs.append(now - row["val_bpc"])
        print(f"{row['checkpoint']:60} {row['precision']:5} committed {row['val_bpc']:.6f} now {now:.6f} "
              f"difference {diffs[-1]:+.1e}", flush=True)
    if diffs:
        print(f"{len(diffs)} figures; largest difference {max(abs(d) for d in diffs):.1e} BPC")


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def dynamic_figures():
    print(f"# {record.describe(record.session('cpu', 'fp32'))}")
    print("experiments/dynamic/results.json's test figures against their checkpoints scored again by today's eval.py")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "dynamic", "results.json")) as f:
        results = json.load(f)
    for run_dir, committed in sorted(results["test"].items()):
        if not os.path.isdir(run_dir):
            print(f"{run_dir}: not here, skipped")
            continue
        ckpt = load_checkpoint(run_dir, "last")
        model, vocab = model_from_checkpoint(ckpt)
        rows, _ = score_run(ckpt, model, vocab, part="test", precision="fp32", dynamic=tuple(committed["pair"]),
                            parts="0.9,0.05,0.05")
        for row, kind in zip(rows, ("static", "dynamic")):
            print(f"{run_dir:40} {kind:8} committed {committed[kind]:.10f} now {row['val_bpc']:.10f} "
                  f"difference {row['val_bpc'] - committed[kind]:+.1e}", flush=True)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rounds", type=positive, default=7, help="rounds of the speed comparison (default 7)")
    parser.add_argument("--figures", nargs="+", metavar="RUN_DIR",
                        help="score these runs again and compare with their eval.json (no speed comparison)")
    parser.add_argument("--cheaper", action="store_true",
                        help="the full pass of cpu30's shape with each cheaper-step flag against cpu30's")
    parser.add_argument("--dynamic", action="store_true",
                        help="score experiments/dynamic/results.json's test figures again (no speed comparison)")
    args = parser.parse_args(argv)
    if args.cheaper:
        cheaper(args.rounds)
    elif args.dynamic:
        dynamic_figures()
    elif args.figures:
        run_dirs = sorted(d for pattern in args.figures for d in glob.glob(pattern))
        if not run_dirs:
            parser.error(f"--figures: nothing matches {' '.join(args.figures)}")
        figures(run_dirs)
    else:
        speed(args.rounds)


if __name__ == "__main__":
    main()
