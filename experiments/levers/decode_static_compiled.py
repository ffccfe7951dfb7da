# A decode step with static shapes (the whole 128-slot cache, later slots masked), eager and
# torch.compile'd with inductor's weight freezing (constant, prepacked weights) and max-autotune
# (inductor's own CPU GEMM templates), against the module's cached step. ms per character,
# greedy, positions 0..126, median of 5 interleaved repeats.
import math, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, '.')
from model import CharTransformer, ModelConfig, LayerCache

torch.manual_seed(0)
m = CharTransformer(ModelConfig(vocab_size=65)).eval()
cfg = m.cfg
H, hs, T = cfg.n_heads, cfg.d_model // cfg.n_heads, cfg.seq_len


class DecodeStep(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, tok, pos, k0, v0, k1, v1):
        m = self.m
        x = m.tok_emb(tok) * math.sqrt(cfg.d_model) + m.pos_table[pos]          # (1, d)
        visible = torch.arange(T) <= pos                                         # (T,)
        for blk, kc, vc in zip(m.blocks, (k0, k1), (v0, v1)):
            q, k, v = blk.attn.qkv(blk.ln1(x)).view(3, H, 1, hs)
            kc.index_copy_(1, pos, k)
            vc.index_copy_(1, pos, v)
            att = (q @ kc.transpose(1, 2)) / math.sqrt(hs)                       # (H, 1, T)
            att = att.masked_fill(~visible, float('-inf')).softmax(-1)
            x = x + blk.attn.proj((att @ vc).view(1, cfg.d_model))
            x = x + blk.ff.down(F.gelu(blk.ff.up(blk.ln2(x))))
        return m.head(m.ln_f(x))


def run_static(step):
    caches = [torch.zeros(H, T, hs) for _ in range(4)]
    tok = torch.zeros(1, dtype=torch.long)
    start = time.perf_counter()
    out = []
    for i in range(T - 1):
        tok = step(tok, torch.tensor([i]), *caches).argmax(-1)
        out.append(int(tok))
    return (time.perf_counter() - start) / (T - 1) * 1e3, out


def run_module():
    caches = [LayerCache(1, cfg, 'cpu', torch.float32) for _ in m.blocks]
    tok = torch.zeros(1, 1, dtype=torch.long)
    start = time.perf_counter()
    out = []
    for i in range(T - 1):
        logits, _ = m(tok, caches=caches)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(tok))
    return (time.perf_counter() - start) / (T - 1) * 1e3, out


with torch.inference_mode():
    eager = DecodeStep(m).eval()
    variants = {'module (current)': run_module, 'static eager': lambda: run_static(eager)}
    t = time.perf_counter()
    compiled = torch.compile(DecodeStep(m).eval())
    run_static(compiled)
    print(f'compile default: {time.perf_counter() - t:.0f} s', flush=True)
    variants['static compiled'] = lambda: run_static(compiled)
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    torch._dynamo.reset()
    t = time.perf_counter()
    frozen = torch.compile(DecodeStep(m).eval())
    run_static(frozen)
    print(f'compile freezing: {time.perf_counter() - t:.0f} s', flush=True)
    variants['static compiled + freezing'] = lambda: run_static(frozen)
    if '--autotune' in sys.argv:
        t = time.perf_counter()
        tuned = torch.compile(DecodeStep(m).eval(), mode='max-autotune')
        run_static(tuned)
        print(f'compile max-autotune: {time.perf_counter() - t:.0f} s', flush=True)
        variants['static compiled + freezing + max-autotune'] = lambda: run_static(tuned)
    reference = run_module()[1]
    times = {name: [] for name in variants}
    for _ in range(5):
        for name, fn in variants.items():
            ms, out = fn()
            if out != reference:
                print(f'{name}: greedy output differs from the module\'s', flush=True)
            times[name].append(ms)
    for name, ms in times.items():
        print(f'{name:45s} {statistics.median(ms):.3f} ms/char ({min(ms):.3f}-{max(ms):.3f}), '
              f'{1e3 / statistics.median(ms):,.0f} chars/s')
