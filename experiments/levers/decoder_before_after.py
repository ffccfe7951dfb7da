"""The compiled decoding step (generate.py --compile) before and after model.py's q/k/v moved into
MultiHeadAttention.queries_keys_values (commit ce3aab9): both compiled in one process, 500
characters sampled 4 times each, interleaved; median chars/s. The output's first line is the
machine (`# machine: ...`, tinychar/record.py).

    python experiments/levers/decoder_before_after.py > experiments/levers/decoder_before_after.txt
"""
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)
import model as new  # noqa: E402
from tinychar import record  # noqa: E402

print(record.machine_line(), flush=True)   # first: the output names the machine it was timed on
with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write(subprocess.run(["git", "show", "ef1eecf:model.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
spec = importlib.util.spec_from_file_location("model_old", f.name)
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
decoders = {}
for name, module in (("old", old), ("new", new)):
    torch.manual_seed(0)
    m = module.CharTransformer(module.ModelConfig(vocab_size=65)).eval()
    decoder, why_not = module.compile_decoder(m)
    assert decoder is not None, why_not
    decoders[name] = (m, decoder)
prompt = torch.zeros(1, 1, dtype=torch.long)
times = {name: [] for name in decoders}
for _ in range(4):
    for name, (m, decoder) in decoders.items():
        start = time.perf_counter()
        m.generate(prompt, 500, temperature=1.0, seed=0, decoder=decoder)
        times[name].append(time.perf_counter() - start)
for name, t in times.items():
    print(f"{name} model.py: {500 / statistics.median(t):,.0f} chars/s (compiled decoding step, median of 4)")
