"""Training-step time of each positional encoding at the baseline shape, bf16 autocast, one process,
variants interleaved (median of 5 repeats of 3 steps each, after 3 warm-up steps). The output's
first line is the machine (`# machine: ...`, tinychar/record.py).

    python experiments/levers/pos_encoding_step_cost.py > experiments/levers/pos_encoding_step_cost.txt
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from model import POS_ENCODINGS, CharTransformer, ModelConfig  # noqa: E402
from tinychar import record  # noqa: E402
from tinychar.settings import TrainConfig  # noqa: E402
from tinychar.step import make_optimizer, train_step  # noqa: E402

print(record.machine_line(), flush=True)   # first: the output names the machine it was timed on
bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
x, y = torch.randint(0, 65, (32, 128)), torch.randint(0, 65, (32, 128))
steps = {}
for pos in POS_ENCODINGS:
    torch.manual_seed(0)
    model = CharTransformer(ModelConfig(pos_encoding=pos))
    optimizer = make_optimizer(model, TrainConfig())
    steps[pos] = (model, optimizer)
    for _ in range(3):
        train_step(model, optimizer, x, y, 1.0, bf16)
times = {pos: [] for pos in steps}
for _ in range(5):
    for pos, (model, optimizer) in steps.items():
        start = time.perf_counter()
        for _ in range(3):
            train_step(model, optimizer, x, y, 1.0, bf16)
        times[pos].append((time.perf_counter() - start) / 3)
base = statistics.median(times["sinusoidal"])
print(f"baseline shape, batch 32 x 128, bf16 autocast, {torch.get_num_threads()} threads, torch {torch.__version__}")
for pos, t in times.items():
    print(f"{pos:<11} {1000 * statistics.median(t):6.1f} ms/step (min {1000 * min(t):.1f}, max {1000 * max(t):.1f})"
          f"  {statistics.median(t) / base:.2f}x sinusoidal")
