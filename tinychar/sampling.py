"""Text from a trained CharTransformer: the key/value cache, one generation loop, the compiled
decoding step (generate.py --compile), the sampler, and the text it makes, decoded.

    from tinychar.sampling import generate
    out = generate(model, prompt_idx, 200, temperature=0.8, top_k=20, seed=0)   # (B, T0 + 200)

generate.py and the Python API (tinychar/api.py) both sample through stream_text (one prompt,
streamed) and check their settings with check_prompt and check_sampling, so that the same seed
gives the same text and the same mistake the same message.

What the model sees as it writes past its context is a Window (below): absolute encodings
(sinusoidal, learned) see a window that jumps forward by half, relative ones (rope, alibi, none)
a window that rolls by one token. The loop is the same for both.
"""
import codecs
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

from model import RELATIVE_ENCODINGS, attention_mask, rope_angles
from tinychar.cli import UserError


class LayerCache:
    """Preallocated keys and values of one layer: (B, nh, seq_len, hs), filled up to `length`.

    With an absolute encoding the cache holds a window from its start (the loop rebuilds it when
    the window slides). With a relative one it rolls: once full, each new token pushes the oldest
    out, so it always holds the last seq_len tokens. next_position is the position of the next
    token, in the text."""

    def __init__(self, B, cfg, device, dtype):
        shape = (B, cfg.n_heads, cfg.seq_len, cfg.d_model // cfg.n_heads)
        # zeros, not empty: the decoding step multiplies the unwritten slots by a weight of 0, and
        # 0 * (NaN left in fresh memory) would be NaN
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.next_position = 0

    def make_room(self, T):
        """Drop the oldest entries so that T more fit (a rolling cache)."""
        overflow = self.length + T - self.k.size(2)
        if overflow > 0:
            keep = self.length - overflow
            self.k[:, :, :keep] = self.k[:, :, overflow:self.length].clone()
            self.v[:, :, :keep] = self.v[:, :, overflow:self.length].clone()
            self.length = keep

    def append(self, k, v):
        """Store T new keys/values; returns every key/value the new queries attend to: those
        cached before and the new ones (all T of a prefill, even past the capacity, of which
        only the last seq_len are kept)."""
        T, capacity = k.size(2), self.k.size(2)
        self.next_position += T
        if T > capacity:   # a long prefill (relative encodings): attend to all, keep the newest
            self.k[:], self.v[:] = k[:, :, -capacity:], v[:, :, -capacity:]
            self.length = capacity
            return k, v
        self.make_room(T)
        self.k[:, :, self.length:self.length + T] = k
        self.v[:, :, self.length:self.length + T] = v
        self.length += T
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


def new_caches(model, batch_size, device, next_position=0):
    """One empty LayerCache per block, in the model's dtype."""
    dtype = next(model.parameters()).dtype
    caches = [LayerCache(batch_size, model.cfg, device, dtype) for _ in model.blocks]
    for cache in caches:
        cache.next_position = next_position
    return caches


@dataclass(frozen=True)
class Window:
    """What the next prediction sees once the text outgrows the context.

    Absolute encodings (sinusoidal, learned): every cached key/value is tied to its slot of the
    window, so the window cannot roll. While the text fits in seq_len the window is all of it;
    when it is full it jumps forward, keeping the newest seq_len // 2 tokens at positions 0, 1,
    ..., and the cache is rebuilt once (one prefill) instead of every step. Every prediction
    therefore sees at least seq_len // 2 characters, as in the full pass (scoring.py).

    Relative encodings (rope, alibi, none): nothing ties a key to a slot, so the cache rolls by
    one token per step and every prediction sees the seq_len - 1 characters before it
    (sliding-window attention, attend = seq_len). In deeper layers each of those carries its own
    window, so information reaches n_layers * (seq_len - 1) characters back: the text kept
    (`size`) is that much, which is what the uncached reference recomputes each step."""
    size: int                # tokens kept; more, and the window slides
    keep: int                # tokens kept after a slide
    attend: int | None       # keys each query may see (None: all before it)
    relative: bool           # tokens keep their positions across a slide, and the cache stays

    @staticmethod
    def for_model(cfg):
        if cfg.pos_encoding in RELATIVE_ENCODINGS:
            reach = cfg.n_layers * (cfg.seq_len - 1) + 1
            return Window(size=reach, keep=reach, attend=cfg.seq_len, relative=True)
        return Window(size=cfg.seq_len, keep=max(1, cfg.seq_len // 2), attend=None, relative=False)


@torch.inference_mode()  # cheaper than no_grad: no version counters on the cache writes
def generate_tokens(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
                    use_cache=True, decoder=None):
    """Yield the next token of every row, (B,), one step at a time. idx: (B, T0) prompt.

    temperature 0 means greedy (argmax). decoder: compile_decoder(model, B)'s result, used for the
    one-token steps (a prefill still goes through forward). use_cache=False recomputes the whole
    window each step: the slow reference the cached path must match exactly."""
    window = Window.for_model(model.cfg)
    generator = torch.Generator(device=idx.device).manual_seed(seed) if seed is not None else None
    text = idx[:, -window.size:]   # a prompt longer than the window keeps its newest tokens
    first = idx.size(1) - text.size(1) if window.relative else 0   # the position of text[:, 0]
    caches, next_token = None, None
    for _ in range(max_new_tokens):
        if not use_cache:
            positions = torch.arange(first, first + text.size(1), device=idx.device)
            logits, _ = model(text, positions=positions, window=window.attend)
        elif caches is None:       # the prompt, or the window after a slide, in one prefill
            caches = new_caches(model, idx.size(0), idx.device, next_position=first)
            logits, _ = model(text, caches=caches, window=window.attend)
        elif decoder is not None:   # the token sampled last, text's last, contiguous (a new stride recompiles)
            logits = decode_step(decoder, next_token, caches)[:, None, :]
        else:
            logits, _ = model(text[:, -1:], caches=caches)
        next_token = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
        yield next_token
        text = torch.cat([text, next_token[:, None]], dim=1)
        if text.size(1) > window.size:
            if window.relative:
                first += text.size(1) - window.keep
            else:
                caches = None
            text = text[:, -window.keep:]


def generate(model, idx, max_new_tokens, **kwargs):
    """Return idx with max_new_tokens sampled tokens appended; kwargs as generate_tokens."""
    out = [idx] + [t[:, None] for t in generate_tokens(model, idx, max_new_tokens, **kwargs)]
    return torch.cat(out, dim=1)


def check_sampling(max_new_tokens, temperature, top_k, top_p):
    """A sampling setting out of range: UserError, named by generate.py's flag."""
    if max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must not be negative, got {max_new_tokens}")
    if temperature < 0:
        raise UserError(f"--temperature must not be negative, got {temperature}")
    if top_k is not None and top_k <= 0:
        raise UserError(f"--top-k must be positive, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")


def check_prompt(prompt):
    """An empty prompt: UserError (the model needs at least one character to continue)."""
    if not prompt:
        raise UserError("--prompt must not be empty")


def stream_text(model, vocab, prompt_ids, max_new_tokens, **kwargs):
    """Yield the continuation of one prompt as text, a piece per sampled token: what generate.py
    streams and the Python API returns. prompt_ids: (T0,) the prompt's ids (vocab.encode); kwargs
    as generate_tokens."""
    idx = prompt_ids[None, :].to(next(model.parameters()).device)                    # (1, T0)
    # a byte model's text is decoded as UTF-8: a character cut across two steps is held back until
    # its last byte, and invalid bytes (or a text cut mid-character) come out as U+FFFD
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace") if vocab.unit == "bytes" else None
    for token in generate_tokens(model, idx, max_new_tokens, **kwargs):
        piece = vocab.decode([token.item()])
        yield utf8.decode(piece) if utf8 else piece
    if utf8:
        yield utf8.decode(b"", final=True)


def sample_texts(model, vocab, prompt_ids, num_samples, max_new_tokens, **kwargs):
    """The continuations of num_samples samples of one prompt, sampled together as one batch:
    a list of str (a byte model's decoded as stream_text's are)."""
    idx = prompt_ids[None, :].repeat(num_samples, 1).to(next(model.parameters()).device)   # (B, T0)
    tokens = generate_tokens(model, idx, max_new_tokens, **kwargs)
    samples = torch.stack(list(tokens), dim=1).tolist() if max_new_tokens else [[]] * num_samples
    texts = [vocab.decode(sample) for sample in samples]
    return [text.decode("utf-8", errors="replace") for text in texts] if vocab.unit == "bytes" else texts


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


class SlotWrite:
    """A cache write for the static decoding step: the new key/value go in place at `slot` of the
    preallocated k, v, and attention sees all seq_len slots (the mask hides those not written).
    It stands where a LayerCache stands in Block.forward, so the step runs Block's own code."""

    def __init__(self, k, v, slot):
        self.k, self.v, self.slot = k, v, slot

    def append(self, k, v):
        self.k.index_copy_(2, self.slot, k)
        self.v.index_copy_(2, self.slot, v)
        return self.k, self.v


class StaticDecoder(nn.Module):
    """One decoding step of a CharTransformer with static shapes, for torch.compile.

    The new token of each row attends over the whole preallocated cache (seq_len slots) with the
    slots not yet written masked out, so every step has the same shapes and compiles once; each
    block is the model's own Block. compile_decoder compiles it with inductor's weight freezing
    and its own CPU matrix kernels (max_autotune): at batch 1 each layer is a handful of
    matrix-vector products, which those kernels run several times faster than the eager ones
    (experiments/levers/decode_static_compiled.py)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tok, slot, position, *keys_values):
        """tok: (B,) new tokens; slot: (1,) int64, the cache slot they are written to; position:
        (1,) their position in the text (= slot for absolute encodings; a rolling cache's slot
        stays at the end while the position grows); keys_values: each layer's cache k, v
        (B, nh, seq_len, hs), written in place at slot. Returns the logits (B, V)."""
        m, cfg = self.model, self.model.cfg
        x = m.embed(tok[:, None], position)                                          # (B, 1, d)
        rope = rope_angles(position, cfg.d_model // cfg.n_heads) if cfg.pos_encoding == "rope" else None
        # the slots' distances to the new token's are those of their positions: slot j <= slot holds
        # position - (slot - j)
        mask = attention_mask(slot, torch.arange(cfg.seq_len, device=tok.device), getattr(m, "slopes", None))
        for i, block in enumerate(m.blocks):
            x, _ = block(x, cache=SlotWrite(keys_values[2 * i], keys_values[2 * i + 1], slot), mask=mask, rope=rope)
        return m.output(x[:, 0])


def decode_step(decoder, tok, caches):
    """One step of a (compiled) StaticDecoder against LayerCaches, advancing them: tok (B,) ->
    logits (B, V). A full cache (only a rolling one gets full) first drops its oldest entry,
    outside the compiled code."""
    for cache in caches:
        cache.make_room(1)
    slot = torch.tensor([caches[0].length], device=tok.device)
    position = torch.tensor([caches[0].next_position], device=tok.device)
    logits = decoder(tok, slot, position, *[t for c in caches for t in (c.k, c.v)])
    for c in caches:
        c.length += 1
        c.next_position += 1
    return logits


def compile_decoder(model, batch_size=1):
    """StaticDecoder(model) compiled for batch_size rows (another batch size would recompile,
    without the frozen weights), and tried once: (decoder, None), or (None, reason) where this
    machine cannot compile it. Compiling takes ~25 s on 2 CPU cores (less once inductor's on-disk
    cache is warm); the weights are frozen into the compiled code, so compile again after
    changing them."""
    import torch._inductor.config as inductor_config   # here: importing inductor costs ~1 s

    # No CUDA graphs: the step writes its caches in place, which makes inductor skip them with a
    # warning on a GPU (on the CPU there are none either way).
    decoder = torch.compile(StaticDecoder(model).eval(), mode="max-autotune-no-cudagraphs")
    param = next(model.parameters())
    # Freezing is read from inductor's global config (options= does not reach it); on a GPU its
    # autotuning would print each matrix product's table of kernels to stderr.
    quiet = {"freezing": True, "max_autotune_report_choices_stats": False, "autotune_num_choices_displayed": 0}
    try:
        # The first call compiles, on inference tensors like generate_tokens', or the first real
        # step would recompile without them. Warnings raised inside torch while compiling speak to
        # torch's developers (TypedStorage, TF32), not to someone sampling text.
        with torch.inference_mode(), warnings.catch_warnings(), \
                inductor_config.patch({k: v for k, v in quiet.items() if hasattr(inductor_config, k)}):
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
            caches = new_caches(model, batch_size, param.device)
            decode_step(decoder, torch.zeros(batch_size, dtype=torch.long, device=param.device), caches)
    except Exception as e:  # no C++ compiler, unsupported backend, ...
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return decoder, None
