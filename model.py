"""A small character-level transformer language model, in plain PyTorch.

    from model import ModelConfig, CharTransformer
    model = CharTransformer(ModelConfig(vocab_size=65))
    logits, loss = model(idx, targets)          # idx, targets: (B, T) int64

Top to bottom: ModelConfig, positional encodings, attention, feed-forward, block, the model, parameter
/ FLOP counts. Generation: tinychar/sampling.py; dropout's CPU mask: tinychar/dropout.py;
attention_np.py: a NumPy implementation the tests check this file against.

Positional encodings enter at one place each. The absolute ones (sinusoidal, learned) are added
to the token embeddings (CharTransformer.embed). The relative ones act where attention scores
are made: RoPE rotates queries and keys by their positions (apply_rope), ALiBi adds a penalty
linear in the distance between query and key (attention_mask); "none" has only the causal mask.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinychar.cli import setting
from tinychar.dropout import Dropout, dropout

POS_ENCODINGS = ("sinusoidal", "learned", "none", "rope", "alibi")
RELATIVE_ENCODINGS = ("rope", "alibi", "none")   # nothing ties a key to a slot of the window
LEARNED_INITS = ("sinusoidal", "normal")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu2")
GELU_FORMS = {"gelu": "none", "gelu_tanh": "tanh"}   # F.gelu's approximate=: the exact erf form, or tanh's
NORMS = ("layernorm", "rmsnorm")
ROPE_BASE = 10000.0
RMS_EPS = 1e-6   # fixed: the default, the dtype's epsilon, would be 0.008 in bf16
RECIPE = "; measured at equal time: experiments/recipe/README.md"   # where a lever's effect is


@dataclass
class ModelConfig:
    vocab_size: int = 65        # set from the corpus, never a flag
    seq_len: int = setting(128, "context length in characters")
    d_model: int = setting(256, "width of embeddings and residual stream")
    n_layers: int = setting(2, "number of transformer blocks")
    n_heads: int = setting(4, "attention heads per block; must divide --d-model")
    d_ff: int = setting(0, "feed-forward hidden width", shown="4 x --d-model")   # 0 means 4 * d_model
    dropout: float = setting(0.0, "dropout on embeddings, attention weights and residual branches" + RECIPE)
    dropout_attention: bool = setting(True, "--dropout applies to the attention weights too",
                                      shown="on; --no-dropout-attention: embeddings and residual branches only")
    pos_encoding: str = setting("sinusoidal", "positional encoding; effects measured: REPORT.md", flag="--pos",
                                choices=POS_ENCODINGS)
    # "sinusoidal": at step 0 the model is the sinusoidal one and only trainability differs;
    # "normal": N(0, 0.02) like every other weight, 16x weaker than the sqrt(d_model)-scaled tokens
    learned_init: str = setting("sinusoidal", "how --pos learned starts: sinusoidal (the sinusoids) or normal "
                                              "(N(0, 0.02), the first study's runs)", choices=LEARNED_INITS)
    tie_weights: bool = setting(True, "the output head reuses the token embedding matrix" + RECIPE,
                                shown="on; --no-tie-weights: a head of its own")
    # levers from fast-training work (modded-nanogpt), all off in the study's configurations
    activation: str = setting("gelu", "feed-forward nonlinearity: gelu (exact), gelu_tanh (its tanh approximation) "
                                      "or relu2 = relu(x)^2" + RECIPE, choices=ACTIVATIONS)
    bias: bool = setting(True, "the linear layers and LayerNorms carry additive biases" + RECIPE,
                         shown="on; --no-bias: none (as PaLM and nanoGPT's bias=False)")
    norm: str = setting("layernorm", "the norm before each branch and the head: layernorm, or rmsnorm (no mean "
                                     "subtracted, no bias)" + RECIPE, choices=NORMS)
    qk_norm: bool = setting(False, "RMS-normalise each head's queries and keys before their dot product" + RECIPE)
    zero_init: bool = setting(False, "the residual branches' output projections start at zero, each block as the "
                                     "identity" + RECIPE, shown="off: normal, std 0.02 / sqrt(2 x layers)")
    logit_softcap: float = setting(0.0, "> 0: logits = C * tanh(logits / C), bounded by C; 0 = off" + RECIPE)

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
        for field, allowed in (("pos_encoding", POS_ENCODINGS), ("learned_init", LEARNED_INITS),
                               ("activation", ACTIVATIONS), ("norm", NORMS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, got {getattr(self, field)!r}")
        if self.pos_encoding == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"pos_encoding rope rotates pairs of channels: the head size d_model / n_heads "
                             f"({self.d_model // self.n_heads}) must be even")
        if not self.logit_softcap >= 0:
            raise ValueError(f"logit_softcap must be 0 (off) or positive, got {self.logit_softcap!r}")


def sinusoidal_table(n_positions, d_model):
    """Vaswani et al. 2017: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)   # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)                 # (d/2,)
    angle = position / (10000.0 ** (two_i / d_model))                        # (P, d/2)
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd d_model: one fewer cos column
    return table.float()


def rope_angles(positions, head_size):
    """RoPE's rotation angles (Su et al. 2021, eq. 15): (cos, sin), each (T, head_size / 2), of
    angle[t, i] = positions[t] * 10000^(-2i / head_size), in float64 so that positions in the tens
    of thousands (long generations) keep accurate angles; apply_rope rounds them."""
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_size, 2, dtype=torch.float64, device=positions.device) / head_size)
    angle = positions.to(torch.float64)[:, None] * inv_freq[None, :]          # (T, hs/2)
    return angle.cos(), angle.sin()


def apply_rope(x, angles):
    """Rotate each pair of channels (2i, 2i+1) of x (..., T, hs) by angle[t, i] (Su et al. 2021,
    eq. 34). A query at position m and a key at position n then score q R(n - m) k: only the
    distance matters. Computed in float32 at least (bf16 would round cos and sin to 3 digits)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    cos, sin = (a.to(dtype) for a in angles)                                  # (T, hs/2)
    even, odd = x[..., 0::2].to(dtype), x[..., 1::2].to(dtype)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).to(x.dtype)


def alibi_slopes(n_heads):
    """ALiBi's head slopes (Press et al. 2022, section 3): for n a power of two the geometric
    sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8); otherwise the slopes of the nearest smaller power of
    two m, then every other slope of 2m, as the paper's code does."""
    def power_of_two(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]
    m = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(m) + power_of_two(2 * m)[0::2][:n_heads - m]
    return torch.tensor(slopes)


def attention_mask(q_pos, k_pos, slopes=None, window=None):
    """Additive attention mask (nh or 1, Tq, Tk): -inf where query i may not see key j (a key after
    the query, or window or more positions before it), else ALiBi's -slope_h * (q_pos - k_pos)
    with slopes (nh,), or 0 without."""
    distance = q_pos[:, None] - k_pos[None, :]                                 # (Tq, Tk)
    allowed = distance >= 0
    if window is not None:
        allowed &= distance < window
    bias = torch.zeros(1, *distance.shape, device=q_pos.device)
    if slopes is not None:
        bias = -slopes.to(q_pos.device)[:, None, None] * distance[None].float()   # (nh, Tq, Tk)
    return bias.masked_fill(~allowed, float("-inf"))


def explicit_attention(q, k, v, causal, dropout_p=0.0, mask=None):
    """softmax(q k^T / sqrt(d_k) + mask) v, written out so the weights can be returned.

    q: (B, nh, Tq, hs); k, v: (B, nh, Tk, hs); mask: attention_mask's additive mask, or None for
    the plain causal mask (causal) or none. Returns (out (B, nh, Tq, hs), weights (B, nh, Tq, Tk))."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))               # (B, nh, Tq, Tk)
    if mask is not None:
        scores = scores + mask
    elif causal:
        Tq, Tk = q.size(-2), k.size(-2)
        # query i sits at absolute position Tk - Tq + i and may see keys 0..that position
        allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return dropout(weights, dropout_p) @ v, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg.n_heads
        # on a CPU the attention weights' masks are almost half of dropout's cost (B x nh x T x T draws)
        self.dropout = cfg.dropout if cfg.dropout_attention else 0.0
        self.qk_norm = cfg.qk_norm
        self.alibi = cfg.pos_encoding == "alibi"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)   # q, k, v projections in one matmul
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.resid_drop = Dropout(cfg.dropout)

    def forward(self, x, causal=True, need_weights=False, cache=None, mask=None, rope=None, queries_from=0):
        """x: (B, T, d) -> (y (B, T, d), attention weights (B, nh, T, keys) or None). need_weights
        selects the explicit path, which makes the weights (the fused kernel does not). queries_from: y
        has rows queries_from.. only (the same numbers as those rows of the whole y).

        cache: tinychar/sampling.py's LayerCache (or SlotWrite); the new keys/values are appended to it
        and the queries attend to everything it returns. Either T new tokens into an empty cache (a prefill) or one.
        mask: attention_mask's additive mask over (queries, keys), or None for plain causal. rope:
        rope_angles of the new tokens' positions, applied to their queries and keys."""
        B, T, d = x.shape
        q, k, v = self.queries_keys_values(x, rope)
        if cache is not None:
            k, v = cache.append(k, v)
        dropout_p = self.dropout if self.training else 0.0
        on_cpu = q.device.type == "cpu"
        # ALiBi's biases (-slope x distance) rounded to bf16 would be off past distance 256: they stay
        # fp32 (the CPU's fused kernel takes them; elsewhere the explicit path adds them, as training does)
        biases_in_fp32 = mask is not None and self.alibi and q.dtype != mask.dtype and not on_cpu
        # On a CPU in bf16 the explicit path trains faster (the fused kernel's bf16 backward is slow: bench.py),
        # as does one query over a masked cache, which inductor fuses (experiments/levers/decoder_block_reuse.txt)
        explicit = need_weights or biases_in_fp32 or (T == 1 and mask is not None)
        if explicit or (on_cpu and q.dtype == torch.bfloat16 and torch.is_grad_enabled()):
            y, weights = explicit_attention(q, k, v, causal, dropout_p, mask)
        else:
            weights = None
            # a single new query may see every cached key, so it needs no mask at all
            is_causal = causal and T > 1 and mask is None
            if mask is not None and not self.alibi:   # -inf and 0: exact in any dtype
                mask = mask.to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        # every query attends (the kernel and its numbers are the whole pass's); rows before queries_from stop
        # here. contiguous: rows with gaps would make the projection a batched product, several times slower
        y = y[:, :, queries_from:].transpose(1, 2).contiguous().view(B, T - queries_from, d)   # (B, T, d)
        y = self.resid_drop(self.proj(y))
        return y, weights

    def queries_keys_values(self, x, rope=None):
        """x: (B, T, d) -> q, k, v: (B, nh, T, hs), each head on its own slice of d; with qk_norm the
        queries and keys RMS-normalised (no gain), then with rope rotated by their positions. The
        one place they are made."""
        B, T, d = x.shape
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for t in self.qkv(x).split(d, dim=2))
        if self.qk_norm:   # bounds every score by sqrt(hs): no head's softmax can saturate early
            q, k = F.rms_norm(q, (q.size(-1),), eps=RMS_EPS), F.rms_norm(k, (k.size(-1),), eps=RMS_EPS)
        if rope is not None:   # keys are cached rotated: a key's position never changes
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        return q, k, v


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.drop = Dropout(cfg.dropout)
        self.activation = cfg.activation

    def forward(self, x):
        h = self.up(x)                                                      # (B, T, d_ff)
        h = F.relu(h).square() if self.activation == "relu2" else F.gelu(h, approximate=GELU_FORMS[self.activation])
        return self.drop(self.down(h))


def norm_layer(cfg):
    """cfg.norm over d_model: LayerNorm (a bias if cfg.bias), or RMSNorm (a gain only; LayerNorm's eps)."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=1e-5)
    return nn.LayerNorm(cfg.d_model, bias=cfg.bias)


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + ff(ln(x)); the residual path stays un-normalised."""

    def __init__(self, cfg):
        super().__init__()
        self.ln1 = norm_layer(cfg)
        self.attn = MultiHeadAttention(cfg)
        self.ln2 = norm_layer(cfg)
        self.ff = FeedForward(cfg)

    def forward(self, x, need_weights=False, cache=None, mask=None, rope=None, queries_from=0):
        """x: (B, T, d) -> (x, the attention weights or None), as MultiHeadAttention; with
        queries_from, x's rows from queries_from on only."""
        a, weights = self.attn(self.ln1(x), need_weights=need_weights, cache=cache, mask=mask, rope=rope,
                               queries_from=queries_from)
        x = x[:, queries_from:] + a
        x = x + self.ff(self.ln2(x))
        return x, weights


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
        elif cfg.pos_encoding == "alibi":
            self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = norm_layer(cfg)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale each residual branch's output projection so the residual stream's variance does not
        # grow with depth; or (zero_init) start each at zero: every block begins as the identity
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("ff.down.weight"):
                if cfg.zero_init:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if cfg.pos_encoding == "learned" and cfg.learned_init == "sinusoidal":
            with torch.no_grad():   # the amplitude the sqrt(d_model)-scaled tokens were scaled to meet
                self.pos_emb.weight.copy_(sinusoidal_table(cfg.seq_len, cfg.d_model))

    def set_dropout(self, p):
        """Every dropout of the model at rate p (the attention weights' only if cfg.dropout_attention):
        cfg.dropout at first; train.py --dropout-from changes it during training (late dropout)."""
        for module in self.modules():
            if isinstance(module, Dropout):
                module.p = p
            elif isinstance(module, MultiHeadAttention):
                module.dropout = p if self.cfg.dropout_attention else 0.0

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(self, idx, positions=None, n_positions=None):
        """Token embedding (scaled by sqrt(d_model) as in Vaswani et al., so that it is not drowned
        by the unit-amplitude sinusoids) plus, for an absolute encoding, each token's position.
        idx: (B, T) or (B,); positions: (T,) or (1,), default 0..T-1; n_positions: one past the largest
        position (default seq_len): past seq_len the sinusoids are computed, though never trained there."""
        if positions is None:
            positions = torch.arange(idx.size(-1), device=idx.device)
        x = self.tok_emb(idx) * math.sqrt(self.cfg.d_model)                # (B, T, d)
        if self.cfg.pos_encoding == "sinusoidal":
            table = self.pos_table
            if n_positions is not None and n_positions > self.cfg.seq_len:
                table = sinusoidal_table(n_positions, self.cfg.d_model).to(x.device)
            x = x + table[positions]
        elif self.cfg.pos_encoding == "learned":
            x = x + self.pos_emb(positions)
        return self.drop(x)

    def forward(self, idx, targets=None, caches=None, positions=None, window=None, outputs_from=0):
        """idx: (B, T) -> (logits (B, T, V), mean cross-entropy against targets or None). outputs_from:
        the logits of positions outputs_from.. only (B, T - outputs_from, V), and targets theirs."""
        logits = self.output(self.residual_stream(idx, caches, positions, window, outputs_from=outputs_from)[0])
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def attention_weights(self, idx):
        """Every layer's attention weights for idx (B, T): a list of (B, nh, T, T)."""
        return self.residual_stream(idx, need_weights=True)[1]

    def residual_stream(self, idx, caches=None, positions=None, window=None, need_weights=False, outputs_from=0):
        """idx: (B, T) -> (the last block's output (B, T, d), each layer's attention weights or None).

        positions: (T,) the tokens' positions; default 0..T-1, or after what the caches hold. T may
        exceed seq_len (eval.py --context) except with learned positions, which have no rows there.
        window: each query sees at most this many keys, itself included (sliding-window attention:
        the uncached reference of rolling generation). outputs_from: the output of positions
        outputs_from.. only, (B, T - outputs_from, d): the last block does not make the other rows."""
        T = idx.size(1)
        start = caches[0].next_position if caches else 0
        if caches and caches[0].length > 0 and T > 1:
            raise ValueError("a non-empty cache takes one token at a time")
        if positions is None:
            positions, n_positions = torch.arange(start, start + T, device=idx.device), start + T
        else:
            n_positions = int(positions.max()) + 1
        if self.cfg.pos_encoding == "learned" and n_positions > self.cfg.seq_len:
            raise ValueError(f"learned positions stop at seq_len {self.cfg.seq_len}: no position {n_positions - 1}")
        x = self.embed(idx, positions, n_positions)
        rope = rope_angles(positions, self.cfg.d_model // self.cfg.n_heads) if self.cfg.pos_encoding == "rope" else None
        mask = None
        if self.cfg.pos_encoding == "alibi" or window is not None:
            if caches:   # the keys attended to: those the caches will hold after this step, or a whole prefill
                capacity = caches[0].k.size(2)
                n_keys = T if T > capacity else min(capacity, caches[0].length + T)
                key_positions = torch.arange(start + T - n_keys, start + T, device=idx.device)
            else:
                key_positions = positions
            mask = attention_mask(positions, key_positions, getattr(self, "slopes", None), window)
        all_weights = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, weights = block(x, need_weights=need_weights, cache=caches[i] if caches else None, mask=mask, rope=rope,
                               queries_from=outputs_from if i == last else 0)
            all_weights.append(weights)
        return x, all_weights

    def output(self, x):
        """The residual stream (..., d) -> logits (..., V): final LayerNorm, head, and with
        logit_softcap c the soft cap c * tanh(logits / c), which keeps every logit within (-c, c)."""
        logits = self.head(self.ln_f(x))
        if self.cfg.logit_softcap > 0:
            logits = self.cfg.logit_softcap * torch.tanh(logits / self.cfg.logit_softcap)
        return logits


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
