"""Behaviour of sampling.py. The sampler draws from the distribution it claims: softmax(logits / T),
cut to the k most likely (top-k), then to the smallest set of most likely tokens whose probability
reaches p (top-p, "nucleus"), renormalised; many seeded draws are counted against that
distribution, written out here in NumPy (float64), so a sampler wrong on every path (cached,
uncached, compiled) fails. Generation: the cached, rolling and compiled paths give exactly what
recomputing the window each step gives."""
import numpy as np
import pytest
import torch

from conftest import tiny_model
from model import POS_ENCODINGS, CharTransformer, ModelConfig
from tinychar.sampling import (LayerCache, StaticDecoder, compile_decoder, decode_step, generate, generate_tokens, new_caches,
                      sample_next)

LOGITS = [2.0, 1.0, 0.5, 0.0, -1.0, -2.0]
DRAWS = 40_000


def expected_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """What sample_next must draw from, written plainly: top-k first, then top-p on what is left."""
    logits = np.asarray(logits, dtype=np.float64) / temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    keep = np.zeros(len(probs), dtype=bool)
    keep[order[:top_k or len(probs)]] = True
    probs = np.where(keep, probs, 0.0) / probs[keep].sum()
    if top_p is not None:
        nucleus, mass = [], 0.0
        for token in order:
            if mass >= top_p or not keep[token]:
                break
            nucleus.append(token)
            mass += probs[token]
        probs = np.where(np.isin(np.arange(len(probs)), nucleus), probs, 0.0)
        probs /= probs.sum()
    return probs


def frequencies(logits, **kwargs):
    rows = torch.tensor([logits]).repeat(DRAWS, 1)
    picks = sample_next(rows, generator=torch.Generator().manual_seed(0), **kwargs)
    return np.bincount(picks.numpy(), minlength=len(logits)) / DRAWS


def assert_draws_follow(logits, **kwargs):
    expected = expected_distribution(logits, **kwargs)
    observed = frequencies(logits, **kwargs)
    # 6 standard errors of a frequency: a correct sampler misses this bound about once in 10^8 draws
    # of the seed; with 40,000 draws it is at most 0.015, a tenth of the gaps between the mistakes
    # these tests exist for (a temperature applied twice, a filter that keeps one token too many)
    bound = 6 * np.sqrt(expected * (1 - expected) / DRAWS) + 1e-12
    assert np.all(np.abs(observed - expected) <= bound), f"observed {observed.round(4)}, expected {expected.round(4)}"
    assert np.all(observed[expected == 0] == 0), "a token outside the filter was drawn"


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draws_follow_softmax_of_the_logits_divided_by_the_temperature(temperature):
    assert_draws_follow(LOGITS, temperature=temperature)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_top_k_draws_among_the_k_most_likely_in_their_renormalised_proportions(top_k):
    assert_draws_follow(LOGITS, temperature=1.5, top_k=top_k)


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.9])
def test_top_p_draws_from_the_smallest_set_reaching_p_in_their_renormalised_proportions(top_p):
    assert_draws_follow(LOGITS, temperature=0.7, top_p=top_p)


def test_top_k_and_top_p_together_cut_to_k_first_then_to_p_of_what_is_left():
    assert_draws_follow(LOGITS, temperature=1.0, top_k=3, top_p=0.8)


@pytest.mark.parametrize("top_p,kept", [(0.25, 1), (0.5, 2), (0.75, 3), (0.76, 4)])
def test_top_p_stops_at_the_token_whose_mass_reaches_p_exactly(top_p, kept):
    # four equal logits: probabilities 1/4 each, and cumulative masses 1/4, 1/2, 3/4, 1, all exact in
    # float32, so p can land exactly on a boundary: reaching p is enough, one more token is too many
    picks = sample_next(torch.zeros(DRAWS, 4), top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert len(set(picks.tolist())) == kept


def test_top_p_near_zero_and_temperature_zero_are_greedy_for_every_row():
    logits = torch.randn(64, 11, generator=torch.Generator().manual_seed(3))
    greedy = logits.argmax(dim=-1)
    assert torch.equal(sample_next(logits, temperature=0), greedy)
    assert torch.equal(sample_next(logits, top_p=1e-6, generator=torch.Generator().manual_seed(0)), greedy)
    assert torch.equal(sample_next(logits, top_k=1, generator=torch.Generator().manual_seed(0)), greedy)


def test_the_reference_distribution_is_itself_right_on_a_case_worked_by_hand():
    # probabilities 0.5, 0.25, 0.125, 0.125: top-p 0.7 keeps the first two (0.75 >= 0.7), renormalised
    logits = np.log([0.5, 0.25, 0.125, 0.125])
    assert expected_distribution(logits, top_p=0.7) == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert expected_distribution(logits, top_k=3) == pytest.approx([4 / 7, 2 / 7, 1 / 7, 0])
    assert expected_distribution(logits, temperature=0.5) == pytest.approx(np.array([16, 4, 1, 1]) / 22)


# generation: the cache, the window, the compiled step


def trained_on_a_cycle(pos_encoding):
    """A tiny model fitted to a random 37-token cycle, so that greedy decoding walks through
    varied tokens instead of repeating one (an untrained model's greedy output is constant,
    which would let a broken cache pass)."""
    torch.manual_seed(1)
    cycle = torch.randint(0, 13, (37,)).repeat(8)
    model = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_heads=4,
                                        pos_encoding=pos_encoding))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        starts = torch.randint(0, len(cycle) - 17, (16,))
        x = torch.stack([cycle[s:s + 16] for s in starts])
        y = torch.stack([cycle[s + 1:s + 17] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), cycle


@pytest.mark.slow
@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
@pytest.mark.parametrize("prompt_len,new_tokens", [(1, 10), (5, 40), (20, 50), (40, 20)])
def test_cached_greedy_decoding_equals_recomputing_the_context_each_step(pos_encoding, prompt_len, new_tokens):
    # 40 and 50 new tokens run well past seq_len = 16, through several window slides (or, for the
    # relative encodings, many steps of the rolling cache); a 20-token prompt is itself longer than
    # the context, a 40-token one longer than the rolling reference's reach (2 * 15 + 1 = 31)
    model, cycle = trained_on_a_cycle(pos_encoding)
    prompt = torch.stack([cycle[:prompt_len], cycle[3:3 + prompt_len]])
    cached = generate(model, prompt, new_tokens, temperature=0, use_cache=True)
    recomputed = generate(model, prompt, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (2, prompt_len + new_tokens)
    assert len(set(cached[0, prompt_len:].tolist())) >= min(5, new_tokens // 2), "degenerate output"
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_logits_from_the_cache_equal_a_full_forward_pass(pos_encoding):
    model = tiny_model(pos_encoding=pos_encoding)
    idx = torch.randint(0, 13, (2, 16))
    caches = [LayerCache(2, model.cfg, "cpu", torch.float32) for _ in model.blocks]
    with torch.no_grad():
        full, _ = model(idx)
        stepwise = [model(idx[:, :6], caches=caches)[0]]           # prefill six, then one at a time
        stepwise += [model(idx[:, t:t + 1], caches=caches)[0] for t in range(6, 16)]
    diff = (torch.cat(stepwise, dim=1) - full).abs().max().item()
    assert diff <= 1e-5, f"max abs diff {diff:.3e}"


LEVERS = dict(qk_norm=True, activation="relu2", logit_softcap=3.0, tie_weights=False)


@pytest.mark.parametrize("pos_encoding,levers", [(p, {}) for p in POS_ENCODINGS] + [("rope", LEVERS), ("sinusoidal", LEVERS)])
def test_static_decoding_step_gives_the_logits_of_a_full_forward_pass(pos_encoding, levers):
    # the arithmetic of generate.py --compile, checked uncompiled: a prefill, then one token at a
    # time against the whole (masked) cache
    model = tiny_model(pos_encoding=pos_encoding, **levers)
    idx = torch.randint(0, 13, (2, 16))
    caches = [LayerCache(2, model.cfg, "cpu", torch.float32) for _ in model.blocks]
    decoder = StaticDecoder(model).eval()
    with torch.no_grad():
        full, _ = model(idx)
        stepwise = [model(idx[:, :6], caches=caches)[0]]
        stepwise += [decode_step(decoder, idx[:, t], caches)[:, None, :] for t in range(6, 16)]
    diff = (torch.cat(stepwise, dim=1) - full).abs().max().item()
    assert diff <= 1e-5, f"max abs diff {diff:.3e}"


@pytest.mark.slow
@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "rope", "alibi"])
def test_compiled_decoding_step_samples_what_the_eager_cache_samples(pos_encoding):
    model, cycle = trained_on_a_cycle(pos_encoding)
    decoder, why_not = compile_decoder(model, batch_size=2)
    assert decoder is not None, why_not
    prompt = torch.stack([cycle[:5], cycle[3:8]])
    for kwargs in (dict(temperature=0), dict(temperature=1.0, seed=3)):   # 40 tokens: several slides
        eager = generate(model, prompt, 40, **kwargs)
        compiled = generate(model, prompt, 40, decoder=decoder, **kwargs)
        assert len(set(eager[0, 5:].tolist())) >= 5, "degenerate output"
        assert torch.equal(compiled, eager), kwargs


def test_a_decoding_step_that_cannot_compile_is_reported_not_raised(monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: no_compiler)
    decoder, why_not = compile_decoder(tiny_model())
    assert decoder is None and "no C++ compiler" in why_not


def test_cached_sampling_with_a_seed_is_reproducible_and_equals_the_uncached_path():
    model = tiny_model()
    prompt = torch.zeros(3, 1, dtype=torch.long)
    kwargs = dict(temperature=1.0, top_k=5, top_p=0.9, seed=7)
    first = generate(model, prompt, 40, **kwargs)
    assert torch.equal(first, generate(model, prompt, 40, **kwargs))
    assert torch.equal(first, generate(model, prompt, 40, use_cache=False, **kwargs))
    assert not torch.equal(first, generate(model, prompt, 40, **{**kwargs, "seed": 8}))


def test_top_k_only_samples_among_the_k_most_likely():
    logits = torch.tensor([[0.0, 5.0, 4.0, 1.0, 3.0]]).repeat(500, 1)
    g = torch.Generator().manual_seed(0)
    picks = sample_next(logits, temperature=5.0, top_k=2, generator=g)
    assert set(picks.tolist()) == {1, 2}


def test_top_p_keeps_the_smallest_set_reaching_the_probability_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(1000, 1)
    g = torch.Generator().manual_seed(0)
    # off the cumulative boundaries 0.5, 0.8, 0.95 on both sides, so float rounding cannot decide
    assert set(sample_next(logits, top_p=0.45, generator=g).tolist()) == {0}
    assert set(sample_next(logits, top_p=0.55, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.75, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.85, generator=g).tolist()) == {0, 1, 2}
    assert set(sample_next(logits, top_p=0.97, generator=g).tolist()) == {0, 1, 2, 3}


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, 0.0, 0.0]])
    assert sample_next(logits, temperature=0).tolist() == [1, 0]


@pytest.mark.parametrize("pos_encoding", ["rope", "alibi", "none"])
def test_the_rolling_cache_gives_the_logits_of_sliding_window_attention_over_the_whole_text(pos_encoding):
    # past seq_len each new token attends to itself and the seq_len - 1 before it, in every layer
    model = tiny_model(pos_encoding=pos_encoding)
    idx = torch.randint(0, 13, (2, 45))                   # seq_len 16: the cache rolls 29 times
    with torch.no_grad():
        full, _ = model(idx, window=16)
        caches = new_caches(model, 2, "cpu")
        stepwise = [model(idx[:, :6], caches=caches)[0]]
        stepwise += [model(idx[:, t:t + 1], caches=caches)[0] for t in range(6, 45)]
    assert caches[0].length == 16 and caches[0].next_position == 45
    diff = (torch.cat(stepwise, dim=1) - full).abs().max().item()
    assert diff <= 1e-5, f"max abs diff {diff:.3e}"
    with torch.no_grad():   # and the window matters: without it the last logits differ
        assert not torch.allclose(model(idx)[0][:, -1], full[:, -1], atol=1e-3)


@pytest.mark.parametrize("pos_encoding,prefills", [("sinusoidal", [1, 8, 8, 8]), ("rope", [1])])
def test_absolute_encodings_rebuild_the_cache_when_the_window_slides_relative_ones_never(pos_encoding, prefills):
    model = tiny_model(pos_encoding=pos_encoding)
    calls = []
    forward = model.forward
    model.forward = lambda idx, caches=None, **kw: calls.append((idx.size(1), caches[0].length)) or forward(
        idx, caches=caches, **kw)
    list(generate_tokens(model, torch.zeros(1, 1, dtype=torch.long), 40, temperature=0))
    # a prefill is a forward pass into an empty cache: the 1-token prompt, then (sinusoidal) the
    # newest half of the window, 8 tokens, at each of the slides after 16, 25 and 34 tokens
    assert [n for n, cached in calls if cached == 0] == prefills
