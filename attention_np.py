"""NumPy reference implementation: the oracle the PyTorch model is tested against.

Written independently of model.py (no torch): stable softmax, scaled dot-product
attention with its backward pass, multi-head attention with separate projection
matrices, the relative encodings RoPE and ALiBi from their papers' formulas, and a forward
pass of the whole character model from its state dict.
Weights here follow the maths convention y = x @ W + b with W of shape (d_in, d_out);
torch's nn.Linear stores W transposed, and model_logits transposes it on the way in.

    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(T))
    logits = model_logits(state_dict_as_numpy, config_dict, idx)
"""
import math

import numpy as np


def softmax(x, axis=-1):
    """exp(x - max) / sum: subtracting the row maximum keeps exp() in range for any input;
    entries of -inf (masked) become exactly 0."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def causal_mask(T):
    """(T, T) boolean, True where query i may attend to key j (j <= i)."""
    return np.tril(np.ones((T, T), dtype=bool))


def scaled_dot_product_attention(q, k, v, mask=None, bias=None):
    """softmax(q k^T / sqrt(d_k) + bias, masked) v. q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v);
    mask: boolean broadcastable to (..., Tq, Tk), True = allowed; bias: added to the scores
    (ALiBi). Returns (out, weights)."""
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])             # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def scaled_dot_product_attention_backward(q, k, v, d_out, mask=None):
    """Gradients of sum(out * d_out) with respect to q, k and v."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    _, weights = scaled_dot_product_attention(q, k, v, mask)                  # P: (..., Tq, Tk)
    d_v = np.swapaxes(weights, -1, -2) @ d_out                                # P^T dO
    d_weights = d_out @ np.swapaxes(v, -1, -2)                                # dO V^T
    # softmax backward, row by row: dS = P * (dP - sum_j dP_j P_j); masked entries have P = 0
    d_scores = weights * (d_weights - np.sum(d_weights * weights, axis=-1, keepdims=True))
    d_q = d_scores @ k * scale
    d_k = np.swapaxes(d_scores, -1, -2) @ q * scale
    return d_q, d_k, d_v


def rope_rotate(x, positions, base=10000.0):
    """RoPE (Su et al. 2021, eqs. 13-15 and 34): the vector at position m is multiplied by
    R_m = diag(R(m theta_1), ..., R(m theta_{d/2})), each R(a) = [[cos a, -sin a], [sin a, cos a]]
    acting on channels (2i - 2, 2i - 1), theta_i = base^(-2(i - 1) / d). x: (..., T, d)."""
    d = x.shape[-1]
    out = np.empty_like(x)
    for t, m in enumerate(positions):
        rotation = np.zeros((d, d))
        for i in range(1, d // 2 + 1):
            a = m * base ** (-2 * (i - 1) / d)
            rotation[2 * i - 2:2 * i, 2 * i - 2:2 * i] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
        out[..., t, :] = x[..., t, :] @ rotation.T                            # R_m x, for row vectors
    return out


def alibi_slopes(n_heads):
    """ALiBi's slopes (Press et al. 2022, section 3): for n heads, a power of two, the geometric
    sequence whose first term and ratio are both 2^(-8/n) (8 heads: 1/2, 1/4, ..., 1/256). For other
    n (the paper's released code): the n' = 2^floor(log2 n) slopes of n', then the odd-numbered
    ones (1st, 3rd, ...) of the 2n' sequence until there are n."""
    def geometric(n):
        ratio = 2.0 ** (-8.0 / n)
        return [ratio ** i for i in range(1, n + 1)]
    n_pow2 = 1
    while n_pow2 * 2 <= n_heads:
        n_pow2 *= 2
    extra = [slope for i, slope in enumerate(geometric(2 * n_pow2)) if i % 2 == 0]
    return np.array(geometric(n_pow2) + extra[:n_heads - n_pow2])


def alibi_bias(n_heads, q_positions, k_positions):
    """(nh, Tq, Tk): -m_h * (i - j) added to the score of query i and key j (Press et al. eq. 2's
    'm * [-(i - 1), ..., -1, 0]' row)."""
    distance = np.subtract.outer(np.asarray(q_positions), np.asarray(k_positions))
    return -alibi_slopes(n_heads)[:, None, None] * distance[None]


def rms_normalise(x, eps):
    """x / sqrt(mean(x^2) + eps) over the last axis: every row gets root-mean-square 1."""
    return x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps)


def multi_head_attention(x, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, n_heads, causal=True, pos_encoding=None,
                         positions=None, qk_norm=False):
    """x: (B, T, d); w_*: (d, d); b_*: (d,). pos_encoding "rope" or "alibi" (relative encodings act
    here) at positions (T,), default 0..T-1. qk_norm: each head's queries and keys RMS-normalised
    before the rotation. Returns (out (B, T, d), weights (B, nh, T, T))."""
    B, T, d = x.shape
    hs = d // n_heads
    positions = np.arange(T) if positions is None else np.asarray(positions)

    def split_heads(t):                                                       # (B, T, d) -> (B, nh, T, hs)
        return t.reshape(B, T, n_heads, hs).transpose(0, 2, 1, 3)

    q, k, v = (split_heads(x @ w + b) for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
    if qk_norm:
        q, k = rms_normalise(q, 1e-6), rms_normalise(k, 1e-6)
    if pos_encoding == "rope":
        q, k = rope_rotate(q, positions).astype(x.dtype), rope_rotate(k, positions).astype(x.dtype)
    bias = alibi_bias(n_heads, positions, positions).astype(x.dtype) if pos_encoding == "alibi" else None
    mask = causal_mask(T) if causal else None
    heads, weights = scaled_dot_product_attention(q, k, v, mask, bias)        # (B, nh, T, hs)
    merged = heads.transpose(0, 2, 1, 3).reshape(B, T, d)
    return merged @ w_o + b_o, weights


def layer_norm(x, gain, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)                      # biased, as torch
    return (x - mean) / np.sqrt(var + eps) * gain + bias


_erf = np.vectorize(math.erf, otypes=[float])


def gelu(x):
    """Exact GELU: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))."""
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


def gelu_tanh(x):
    """GELU's tanh approximation (Hendrycks and Gimpel 2016): x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return (0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))).astype(x.dtype)


def relu_squared(x):
    return np.maximum(x, 0) ** 2


def sinusoidal_table(n_positions, d_model):
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    table = np.zeros((n_positions, d_model))
    for p in range(n_positions):
        for i in range(0, d_model, 2):
            angle = p / 10000.0 ** (i / d_model)
            table[p, i] = math.sin(angle)
            if i + 1 < d_model:
                table[p, i + 1] = math.cos(angle)
    return table


def model_logits(state, cfg, idx):
    """Logits (B, T, V) of the character model for token ids idx (B, T).

    state: the model's state_dict as NumPy arrays (torch layout); cfg: ModelConfig fields as a
    dict. Recomputes everything from the formulas: nothing is taken from model.py. The levers
    (qk_norm, activation, logit_softcap, bias, norm) default to the study's where cfg does not name
    them. A layer without biases (bias off) adds zero; RMSNorm is rms_normalise times its gain.
    """
    activation = dict(gelu=gelu, gelu_tanh=gelu_tanh, relu2=relu_squared)[cfg.get("activation", "gelu")]
    biases = cfg.get("bias", True)
    assert biases or not any(name.endswith(".bias") for name in state), "bias off, yet the state has biases"

    def bias(name):   # strict: with bias on, a missing bias is a KeyError, not a zero
        return state[name] if biases else 0.0

    def norm(x, prefix):
        if cfg.get("norm", "layernorm") == "rmsnorm":
            return rms_normalise(x, 1e-5) * state[prefix + ".weight"]
        return layer_norm(x, state[prefix + ".weight"], bias(prefix + ".bias"))

    softcap = cfg.get("logit_softcap", 0.0)
    d, n_heads = cfg["d_model"], cfg["n_heads"]
    dtype = state["tok_emb.weight"].dtype
    T = idx.shape[1]
    x = state["tok_emb.weight"][idx] * math.sqrt(d)                           # (B, T, d)
    if cfg["pos_encoding"] == "sinusoidal":
        x = x + sinusoidal_table(T, d).astype(dtype)
    elif cfg["pos_encoding"] == "learned":
        x = x + state["pos_emb.weight"][:T]
    for layer in range(cfg["n_layers"]):
        p = lambda name: state[f"blocks.{layer}.{name}"]                      # noqa: E731
        b = lambda name: bias(f"blocks.{layer}.{name}")                       # noqa: E731
        h = norm(x, f"blocks.{layer}.ln1")
        w_q, w_k, w_v = np.split(p("attn.qkv.weight").T, 3, axis=1)          # (d, d) each
        b_q, b_k, b_v = np.split(b("attn.qkv.bias"), 3) if biases else (0.0, 0.0, 0.0)
        a, _ = multi_head_attention(h, w_q, w_k, w_v, p("attn.proj.weight").T, b_q, b_k, b_v,
                                    b("attn.proj.bias"), n_heads, causal=True, pos_encoding=cfg["pos_encoding"],
                                    qk_norm=cfg.get("qk_norm", False))
        x = x + a
        h = norm(x, f"blocks.{layer}.ln2")
        x = x + activation(h @ p("ff.up.weight").T + b("ff.up.bias")) @ p("ff.down.weight").T + b("ff.down.bias")
    x = norm(x, "ln_f")
    head = state["tok_emb.weight"] if cfg["tie_weights"] else state["head.weight"]
    logits = x @ head.T
    return softcap * np.tanh(logits / softcap) if softcap > 0 else logits
