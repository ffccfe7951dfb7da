"""The compiled decoding step (generate.py --compile) before and after it ran the model's own Block
(StaticDecoder wrote out Block's residual wiring and called explicit_attention; it now
calls each Block with a cache that writes in place, so attention is the fused kernel). Both
compiled in one process, 500 characters sampled 4 times each, interleaved; median chars/s, and
whether the two sample the same text. The output's first line is the machine (`# machine: ...`,
tinychar/record.py).

    python experiments/levers/decoder_block_reuse.py > experiments/levers/decoder_block_reuse.txt
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
import model  # noqa: E402
from tinychar import record, sampling  # noqa: E402

print(record.machine_line(), flush=True)   # first: the output names the machine it was timed on
BEFORE = "940a059"
with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write(subprocess.run(["git", "show", f"{BEFORE}:model.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout)
spec = importlib.util.spec_from_file_location("model_before", f.name)
before = importlib.util.module_from_spec(spec)
spec.loader.exec_module(before)

torch.manual_seed(0)
m_before = before.CharTransformer(before.ModelConfig(vocab_size=65)).eval()
m_after = model.CharTransformer(model.ModelConfig(vocab_size=65)).eval()
m_after.load_state_dict(m_before.state_dict())
runs = {}
for name, m, compile_decoder, generate in (
        ("before", m_before, before.compile_decoder, lambda m, *a, **k: m.generate(*a, **k)),
        ("after", m_after, sampling.compile_decoder, sampling.generate)):
    start = time.perf_counter()
    decoder, why_not = compile_decoder(m)
    assert decoder is not None, why_not
    print(f"{name}: compiled in {time.perf_counter() - start:.1f} s")
    runs[name] = (m, decoder, generate)
prompt = torch.zeros(1, 1, dtype=torch.long)
times = {name: [] for name in runs}
texts = {}
for _ in range(4):
    for name, (m, decoder, generate) in runs.items():
        start = time.perf_counter()
        texts[name] = generate(m, prompt, 500, temperature=1.0, seed=0, decoder=decoder)
        times[name].append(time.perf_counter() - start)
for name, t in times.items():
    print(f"{name}: median {500 / statistics.median(t):.0f} chars/s ({', '.join(f'{500 / x:.0f}' for x in t)})")
print(f"after / before: {statistics.median(times['before']) / statistics.median(times['after']):.2f}x")
print("same 500 characters sampled:", torch.equal(texts["before"], texts["after"]))
