"""The comparison point: nanoGPT's model (Karpathy's nanoGPT, model.py) reduced to tinychar's shape.

    from tinychar.plain_gpt import PlainGPT, plain_optimizer
    model = PlainGPT(ModelConfig(vocab_size=65))       # a ModelConfig gives the shape; its
    logits, loss = model(idx, targets)                 # positional and dropout fields are ignored

nn.Linear layers, exact GELU, fused causal attention (scaled_dot_product_attention), learned
positions, tied embedding and head, no dropout; AdamW with weight decay on every matrix (the
embedding included), as nanoGPT does. bench.py times its step beside tinychar's, and
experiments/plain_baseline/ trains it for the quality-for-time comparison.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PlainAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.c_attn, self.c_proj, self.n_heads = nn.Linear(d, 3 * d), nn.Linear(d, d), n_heads

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, d))


class PlainBlock(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), PlainAttention(d, n_heads), nn.LayerNorm(d)
        self.c_fc, self.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    """The comparison point: nanoGPT's model, reduced to this shape."""

    def __init__(self, cfg):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(cfg.vocab_size, cfg.d_model), nn.Embedding(cfg.seq_len, cfg.d_model)
        self.h = nn.ModuleList(PlainBlock(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f, self.lm_head = nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def plain_optimizer(model, cfg):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
