"""What dropout costs a CPU training step, with F.dropout's mask, with fp32 uniforms compared with p
(the CPU mask before keep_mask) and with tinychar/dropout.py's (keep_mask: a random byte an
element; the arm is still labelled model.dropout, where it lived when the figures were made), at
the baseline shape, bf16 autocast and fp32, arms interleaved in one process (median of 7 rounds
of 3 steps). The output's first line is the machine (`# machine: ...`, tinychar/record.py).

    python experiments/recipe/dropout_cost.py > experiments/recipe/dropout_cost.txt   # alone on the machine
"""
from argparse import RawDescriptionHelpFormatter
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import model as model_module  # noqa: E402
from model import CharTransformer, ModelConfig  # noqa: E402
from tinychar import dropout as dropout_module  # noqa: E402
from tinychar import record  # noqa: E402
from tinychar.cli import ArgumentParser  # noqa: E402
from tinychar.settings import TrainConfig  # noqa: E402
from tinychar.step import make_optimizer, train_step  # noqa: E402

OURS = dropout_module.dropout


def use_mask(mask):
    """Every dropout of the model draws its mask with `mask`: the attention weights' (model.py) and
    the Dropout layers' (tinychar/dropout.py)."""
    model_module.dropout = dropout_module.dropout = mask


def torch_dropout(x, p):
    return F.dropout(x, p) if p > 0 else x


def uniforms_dropout(x, p):
    """The CPU dropout before keep_mask: a 32-bit draw an element."""
    return x * (torch.rand(x.shape) >= p) * (1.0 / (1.0 - p)) if p > 0 else x


def main():
    # no flags: --help says what it does, a stray argument is an error
    ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                   epilog=__doc__.split("\n\n", 1)[1]).parse_args()
    print(record.machine_line(), flush=True)   # first: the output names the machine it was timed on
    rng = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 65, (32, 128), generator=rng), torch.randint(0, 65, (32, 128), generator=rng))
               for _ in range(3)]
    arms = {}
    for precision in ("bf16", "fp32"):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        for label, p, mask in (("no dropout", 0.0, OURS), ("dropout 0.1, F.dropout", 0.1, torch_dropout),
                               ("dropout 0.1, fp32 uniforms", 0.1, uniforms_dropout),
                               ("dropout 0.1, model.dropout", 0.1, OURS)):
            torch.manual_seed(0)
            m = CharTransformer(ModelConfig(vocab_size=65, dropout=p)).train()
            arms[f"{precision}, {label}"] = (m, make_optimizer(m, TrainConfig()), autocast, mask)
    times = {name: [] for name in arms}
    for round_ in range(8):   # the first round warms up and is not counted
        for name, (m, optimizer, autocast, mask) in arms.items():
            use_mask(mask)
            start = time.perf_counter()
            for x, y in batches:
                train_step(m, optimizer, x, y, 1.0, autocast).item()
            if round_:
                times[name].append((time.perf_counter() - start) / len(batches))
    use_mask(OURS)
    print(f"baseline shape, batch 32 x 128, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name, t in times.items():
        base = statistics.median(times[name.split(",")[0] + ", no dropout"])
        print(f"{name:<32} {1000 * statistics.median(t):6.1f} ms/step (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})"
              f"  {statistics.median(t) / base:.2f}x no dropout")


if __name__ == "__main__":
    main()
