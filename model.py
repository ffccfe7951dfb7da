"""A small character-level transformer language model, in plain PyTorch.

    from model import ModelConfig, CharTransformer
    model = CharTransformer(ModelConfig(vocab_size=65))
    logits, loss = model(idx, targets)          # idx, targets: (B, T) int64
    out = model.generate(prompt_idx, 200, temperature=0.8, top_k=20, seed=0)

Pieces, top to bottom: ModelConfig, positional encodings, attention (explicit and
fused paths), feed-forward, block, the model, generation with a key/value cache, a
static-shape decoding step for torch.compile (generate.py --compile), and the parameter /
FLOP counts used by bench.py. attention_np.py holds an
independent NumPy implementation the tests check this file against.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

POS_ENCODINGS = ("sinusoidal", "learned", "none")


@dataclass
class ModelConfig:
    vocab_size: int = 65
    seq_len: int = 128          # context length in characters
    d_model: int = 256
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0               # feed-forward width; 0 means 4 * d_model
    dropout: float = 0.0
    pos_encoding: str = "sinusoidal"
    tie_weights: bool = True    # the output head reuses the token embedding matrix

    def __post_init__(self):
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        for field in ("vocab_size", "seq_len", "d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {', '.join(POS_ENCODINGS)}, got {self.pos_encoding!r}")


def sinusoidal_table(n_positions, d_model):
    """Vaswani et al. 2017: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)   # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)                 # (d/2,)
    angle = position / (10000.0 ** (two_i / d_model))                        # (P, d/2)
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd d_model: one fewer cos column
    return table.float()


def explicit_attention(q, k, v, causal, dropout_p=0.0):
    """softmax(q k^T / sqrt(d_k) + mask) v, written out so the weights can be returned.

    q: (B, nh, Tq, hs); k, v: (B, nh, Tk, hs). Returns (out (B, nh, Tq, hs), weights (B, nh, Tq, Tk)).
    """
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))               # (B, nh, Tq, Tk)
    if causal:
        Tq, Tk = q.size(-2), k.size(-2)
        # query i sits at absolute position Tk - Tq + i and may see keys 0..that position
        allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return F.dropout(weights, dropout_p) @ v, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)   # q, k, v projections in one matmul
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, causal=True, need_weights=False, cache=None):
        """x: (B, T, d). need_weights selects the explicit path and returns (y, weights).

        cache: a LayerCache; the new keys/values are appended to it and the queries attend
        to everything cached. Either T new tokens into an empty cache (a prefill) or one.
        """
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (B, T, d) -> (B, nh, T, hs): each head works on its own slice of d
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.append(k, v)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        # On a CPU in bf16 the explicit path trains ~1.2x faster than the fused kernel, whose bf16
        # backward is slow there (measured with bench.py); everywhere else the fused kernel wins.
        if need_weights or (q.device.type == "cpu" and q.dtype == torch.bfloat16):
            y, weights = explicit_attention(q, k, v, causal, dropout_p)
        else:
            # a single new query may see every cached key, so it needs no mask at all
            is_causal = causal and T > 1
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, d)                              # (B, T, d)
        y = self.resid_drop(self.proj(y))
        return (y, weights) if need_weights else y


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln(x)), then x + ff(ln(x)). The residual path stays un-normalised,
    which keeps gradients well-behaved without warmup tricks at this depth."""

    def __init__(self, cfg):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = FeedForward(cfg)

    def forward(self, x, need_weights=False, cache=None):
        a = self.attn(self.ln1(x), need_weights=need_weights, cache=cache)
        weights = None
        if need_weights:
            a, weights = a
        x = x + a
        x = x + self.ff(self.ln2(x))
        return (x, weights) if need_weights else x


class LayerCache:
    """Preallocated keys and values of one layer: (B, nh, seq_len, hs), filled up to `length`."""

    def __init__(self, B, cfg, device, dtype):
        shape = (B, cfg.n_heads, cfg.seq_len, cfg.d_model // cfg.n_heads)
        # zeros, not empty: StaticDecoder multiplies the unwritten slots by a weight of 0, and
        # 0 * (NaN left in fresh memory) would be NaN
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def append(self, k, v):
        T = k.size(2)
        self.k[:, :, self.length:self.length + T] = k
        self.v[:, :, self.length:self.length + T] = v
        self.length += T
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class CharTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos_encoding == "learned":
            self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        elif cfg.pos_encoding == "sinusoidal":
            # a buffer, not a parameter, and not saved: it is a fixed function of the config
            self.register_buffer("pos_table", sinusoidal_table(cfg.seq_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale each residual branch's output projection so the residual stream's
        # variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("ff.down.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(self, idx, start_pos=0):
        """Token embedding (scaled by sqrt(d_model) as in Vaswani et al., so that it is not drowned
        by the unit-amplitude sinusoids) plus the position of each token in the window."""
        T = idx.size(1)
        x = self.tok_emb(idx) * math.sqrt(self.cfg.d_model)                # (B, T, d)
        if self.cfg.pos_encoding == "sinusoidal":
            x = x + self.pos_table[start_pos:start_pos + T]
        elif self.cfg.pos_encoding == "learned":
            x = x + self.pos_emb.weight[start_pos:start_pos + T]
        return self.drop(x)

    def forward(self, idx, targets=None, need_weights=False, caches=None):
        """idx: (B, T) with T <= seq_len. Returns (logits (B, T, V), loss or None), and with
        need_weights a list of per-layer attention weights (B, nh, T, T) as a third item."""
        T = idx.size(1)
        start_pos = caches[0].length if caches else 0
        if start_pos > 0 and T > 1:
            raise ValueError("a non-empty cache takes one token at a time")
        if start_pos + T > self.cfg.seq_len:
            raise ValueError(f"sequence of {start_pos + T} exceeds seq_len {self.cfg.seq_len}")
        x = self.embed(idx, start_pos)
        all_weights = []
        for i, block in enumerate(self.blocks):
            cache = caches[i] if caches else None
            if need_weights:
                x, w = block(x, need_weights=True, cache=cache)
                all_weights.append(w)
            else:
                x = block(x, cache=cache)
        logits = self.head(self.ln_f(x))                                    # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return (logits, loss, all_weights) if need_weights else (logits, loss)

    @torch.inference_mode()  # cheaper than no_grad: no version counters on the cache writes
    def generate_tokens(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                        seed=None, use_cache=True, decoder=None):
        """Yield the next token of every row, (B,), one step at a time. idx: (B, T0) prompt.

        The context is a window over the text. While the text fits in seq_len the window is all of
        it. When it is full, the window jumps forward by seq_len // 2, keeping the newest half:
        with absolute positions every cached key/value is tied to its place in the window, so a
        slide invalidates the cache, and it is rebuilt once (one prefill of seq_len // 2 tokens)
        instead of every step. Every prediction therefore sees at least seq_len // 2 characters,
        as in eval.py's scoring. use_cache=False recomputes the same window from scratch each
        step: the slow reference the cached path must match exactly.
        decoder: compile_decoder(self, B)'s result, used for the one-token steps (the prompt and
        each rebuild of the cache still go through forward). temperature 0 means greedy (argmax).
        """
        seq_len = self.cfg.seq_len
        keep = max(1, seq_len // 2)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        window = idx[:, -seq_len:]   # a prompt longer than the context keeps its newest characters
        caches = None
        new_tokens = window          # what the next forward pass must process
        for _ in range(max_new_tokens):
            if use_cache:
                if caches is None:
                    dtype = next(self.parameters()).dtype
                    caches = [LayerCache(idx.size(0), self.cfg, idx.device, dtype) for _ in self.blocks]
                if decoder is not None and new_tokens.size(1) == 1 and caches[0].length > 0:
                    logits = decode_step(decoder, new_tokens[:, 0], caches)[:, None, :]
                else:
                    logits, _ = self(new_tokens, caches=caches)
            else:
                logits, _ = self(window)
            next_token = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            yield next_token
            window = torch.cat([window, next_token[:, None]], dim=1)
            new_tokens = next_token[:, None]
            if window.size(1) > seq_len:
                window = window[:, -keep:]
                caches, new_tokens = None, window

    def generate(self, idx, max_new_tokens, **kwargs):
        """Return idx with max_new_tokens sampled tokens appended; kwargs as generate_tokens."""
        out = [idx] + [t[:, None] for t in self.generate_tokens(idx, max_new_tokens, **kwargs)]
        return torch.cat(out, dim=1)


class StaticDecoder(nn.Module):
    """One decoding step of a CharTransformer with static shapes, for torch.compile.

    The new token of each row attends over the whole preallocated cache (seq_len slots) with the
    slots not yet written masked out, so every step has the same shapes and compiles once; the
    arithmetic is forward()'s with a cache. Compiled by compile_decoder with inductor's weight
    freezing and its own CPU matrix kernels (max_autotune): at batch 1 each layer is a handful of
    matrix-vector products, which those kernels run several times faster than the eager ones
    (experiments/levers/decode_static_compiled.py).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tok, pos, *keys_values):
        """tok: (B,) new tokens at position pos ((1,) int64); keys_values: each layer's cache k, v
        (B, nh, seq_len, hs), written in place at pos. Returns the logits (B, V)."""
        m, cfg = self.model, self.model.cfg
        B, nh = tok.size(0), cfg.n_heads
        hs = cfg.d_model // nh
        x = m.tok_emb(tok) * math.sqrt(cfg.d_model)                                 # (B, d)
        if cfg.pos_encoding == "sinusoidal":
            x = x + m.pos_table[pos]
        elif cfg.pos_encoding == "learned":
            x = x + m.pos_emb.weight[pos]
        written = torch.arange(cfg.seq_len, device=tok.device) <= pos               # (seq_len,)
        for i, block in enumerate(m.blocks):
            k_cache, v_cache = keys_values[2 * i], keys_values[2 * i + 1]
            q, k, v = block.attn.qkv(block.ln1(x)).view(B, 3, nh, 1, hs).unbind(1)  # (B, nh, 1, hs)
            k_cache.index_copy_(2, pos, k)
            v_cache.index_copy_(2, pos, v)
            scores = (q @ k_cache.transpose(-2, -1)) / math.sqrt(hs)                 # (B, nh, 1, seq_len)
            weights = scores.masked_fill(~written, float("-inf")).softmax(dim=-1)
            x = x + block.attn.proj((weights @ v_cache).reshape(B, cfg.d_model))
            x = x + block.ff(block.ln2(x))
        return m.head(m.ln_f(x))


def decode_step(decoder, tok, caches):
    """One step of a (compiled) StaticDecoder against LayerCaches, advancing them: tok (B,) ->
    logits (B, V). What generate_tokens calls for each new token when given a decoder."""
    pos = torch.tensor([caches[0].length], device=tok.device)
    logits = decoder(tok, pos, *[t for c in caches for t in (c.k, c.v)])
    for c in caches:
        c.length += 1
    return logits


def compile_decoder(model, batch_size=1):
    """StaticDecoder(model) compiled for batch_size rows (another batch size would recompile,
    without the frozen weights), and tried once: (decoder, None), or (None, reason) where this
    machine cannot compile it. Compiling takes ~25 s on 2 CPU cores
    (less once inductor's on-disk cache is warm); the weights are frozen into the compiled code,
    so compile again after changing them."""
    import torch._inductor.config as inductor_config   # here: importing inductor costs ~1 s

    decoder = torch.compile(StaticDecoder(model).eval(), mode="max-autotune")
    param = next(model.parameters())
    try:
        # The first call compiles. Freezing is read from inductor's global config (options= does not
        # reach it), and the trial runs on inference tensors like generate_tokens', or the first
        # real step would recompile without it.
        with torch.inference_mode(), inductor_config.patch(freezing=True):
            caches = [LayerCache(batch_size, model.cfg, param.device, param.dtype) for _ in model.blocks]
            decode_step(decoder, torch.zeros(batch_size, dtype=torch.long, device=param.device), caches)
    except Exception as e:  # no C++ compiler, unsupported backend, ...
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return decoder, None


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Pick one token per row from logits (B, V)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # nucleus: keep the smallest set of most likely tokens whose probability reaches top_p
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def count_params(model):
    """Trainable parameters, a tied matrix counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token(cfg, training=True):
    """Model FLOPs per token: 2 per multiply-add of every matmul (the head included; embedding
    lookups are free), plus attention's q k^T and weights @ v counted over the full seq_len x
    seq_len square as PaLM and nanoGPT do. A training step costs 3x the forward (backward = 2x)."""
    d, L, T = cfg.d_model, cfg.n_layers, cfg.seq_len
    matmul_params = L * (4 * d * d + 2 * d * cfg.d_ff) + d * cfg.vocab_size
    forward = 2 * matmul_params + L * 2 * 2 * T * d
    return 3 * forward if training else forward
