"""Sampling draws from the distribution it claims: softmax(logits / T), cut to the k most likely
(top-k), then to the smallest set of most likely tokens whose probability reaches p (top-p,
"nucleus"), renormalised. Each test counts many seeded draws against that distribution, written
out here in NumPy (float64), so a sampler wrong on every path (cached, uncached, compiled) fails."""
import numpy as np
import pytest
import torch

from model import sample_next

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
