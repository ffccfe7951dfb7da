"""Print the max differences between model.py and the NumPy oracle (attention_np.py): the figures
quoted in REPORT.md. The tests assert the bounds (tests/test_attention_np.py); this prints the values.

    python experiments/oracle_diffs.py
"""
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import attention_np as ref  # noqa: E402
from model import CharTransformer, ModelConfig  # noqa: E402
from test_attention_np import D_MODEL, numpy_weights, random_attention, random_qkv  # noqa: E402


def attention_diffs(dtype):
    worst = {"fused": 0.0, "explicit": 0.0}
    for n_heads in (h for h in range(1, 9) if D_MODEL % h == 0):
        for causal in (True, False):
            module, x = random_attention(n_heads, dtype)
            expected, _ = ref.multi_head_attention(x.numpy(), **numpy_weights(module), n_heads=n_heads, causal=causal)
            with torch.no_grad():
                fused, _ = module(x, causal=causal)
                explicit, _ = module(x, causal=causal, need_weights=True)
            worst["fused"] = max(worst["fused"], np.abs(fused.numpy() - expected).max())
            worst["explicit"] = max(worst["explicit"], np.abs(explicit.numpy() - expected).max())
    return worst


def backward_diffs():
    vs_autograd, vs_finite = 0.0, 0.0
    for causal in (True, False):
        q, k, v, d_out, mask = random_qkv(causal)
        tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = torch.nn.functional.scaled_dot_product_attention(*tensors, is_causal=causal)
        (out * torch.tensor(d_out)).sum().backward()
        grads = ref.scaled_dot_product_attention_backward(q, k, v, d_out, mask)
        vs_autograd = max(vs_autograd, *(np.abs(g - t.grad.numpy()).max() for g, t in zip(grads, tensors)))
        for which, analytic in enumerate(grads):
            for index in np.ndindex(analytic.shape):
                plus, minus = [q.copy(), k.copy(), v.copy()], [q.copy(), k.copy(), v.copy()]
                plus[which][index] += 1e-6
                minus[which][index] -= 1e-6
                numeric = (np.sum(ref.scaled_dot_product_attention(*plus, mask)[0] * d_out)
                           - np.sum(ref.scaled_dot_product_attention(*minus, mask)[0] * d_out)) / 2e-6
                vs_finite = max(vs_finite, abs(numeric - analytic[index]))
    return vs_autograd, vs_finite


def whole_model_diff():
    worst = 0.0
    for pos_encoding in ("sinusoidal", "learned", "none"):
        for tie_weights in (True, False):
            torch.manual_seed(0)
            cfg = ModelConfig(vocab_size=11, seq_len=16, d_model=32, n_layers=2, n_heads=4,
                              pos_encoding=pos_encoding, tie_weights=tie_weights)
            model = CharTransformer(cfg).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
                idx = torch.randint(0, 11, (3, 16))
                logits, _ = model(idx)
            expected = ref.model_logits({k: v.numpy() for k, v in model.state_dict().items()}, vars(cfg), idx.numpy())
            worst = max(worst, np.abs(logits.numpy() - expected).max())
    return worst


if __name__ == "__main__":
    from argparse import RawDescriptionHelpFormatter
    from tinychar.cli import ArgumentParser
    # no flags: --help says what it does, a stray argument is an error
    ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDescriptionHelpFormatter,
                   epilog=__doc__.split("\n\n", 1)[1]).parse_args()
    for dtype in (torch.float64, torch.float32):
        worst = attention_diffs(dtype)
        print(f"attention vs NumPy, {dtype}, heads 1-8 dividing {D_MODEL}, causal and not: "
              f"fused {worst['fused']:.2e}, explicit {worst['explicit']:.2e}")
    vs_autograd, vs_finite = backward_diffs()
    print(f"NumPy attention backward (float64): vs torch autograd {vs_autograd:.2e}, vs central differences {vs_finite:.2e}")
    print(f"whole model logits vs NumPy forward from the state dict (float32, 6 configs): {whole_model_diff():.2e}")
