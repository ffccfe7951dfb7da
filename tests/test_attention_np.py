"""The NumPy reference (attention_np.py) is the oracle: the PyTorch attention and the whole
PyTorch model must agree with it to stated tolerances."""
import numpy as np
import pytest
import torch

import attention_np as ref
from model import CharTransformer, ModelConfig, MultiHeadAttention, alibi_slopes, attention_mask, rope_angles

D_MODEL = 24  # divisible by 1, 2, 3, 4, 6 and 8


def numpy_weights(module):
    """The torch module's projections as separate (d_in, d_out) NumPy matrices."""
    d = module.proj.weight.shape[0]
    w = module.qkv.weight.detach().numpy()
    b = module.qkv.bias.detach().numpy()
    return dict(
        w_q=w[:d].T, w_k=w[d:2 * d].T, w_v=w[2 * d:].T, w_o=module.proj.weight.detach().numpy().T,
        b_q=b[:d], b_k=b[d:2 * d], b_v=b[2 * d:], b_o=module.proj.bias.detach().numpy(),
    )


def random_attention(n_heads, dtype):
    torch.manual_seed(n_heads)
    module = MultiHeadAttention(ModelConfig(d_model=D_MODEL, n_heads=n_heads)).to(dtype)
    with torch.no_grad():  # biases are zero at init; make them matter
        for p in module.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 7, D_MODEL, dtype=dtype)
    return module, x


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("causal,pos_encoding", [(True, None), (False, None), (True, "rope"), (True, "alibi")])
@pytest.mark.parametrize("n_heads", [h for h in range(1, 9) if D_MODEL % h == 0])
def test_torch_attention_matches_numpy_reference(n_heads, causal, pos_encoding, dtype, tol):
    if pos_encoding == "rope" and (D_MODEL // n_heads) % 2:
        pytest.skip("rope needs an even head size")
    module, x = random_attention(n_heads, dtype)
    expected, expected_weights = ref.multi_head_attention(
        x.numpy(), **numpy_weights(module), n_heads=n_heads, causal=causal, pos_encoding=pos_encoding)
    positions = torch.arange(x.size(1))
    rope = rope_angles(positions, D_MODEL // n_heads) if pos_encoding == "rope" else None
    mask = attention_mask(positions, positions, alibi_slopes(n_heads)).to(dtype) if pos_encoding == "alibi" else None
    for need_weights in (False, True):  # the fused and the explicit path
        with torch.no_grad():
            out, weights = module(x, causal=causal, need_weights=need_weights, mask=mask, rope=rope)
        if need_weights:
            weight_diff = np.abs(weights.numpy() - expected_weights).max()
            assert weight_diff <= tol, f"weights max abs diff {weight_diff:.3e} > {tol}"
        diff = np.abs(out.numpy() - expected).max()
        assert diff <= tol, f"output max abs diff {diff:.3e} > {tol} (need_weights={need_weights})"


def random_qkv(causal, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(2, 3, 5, 4)) for _ in range(3))
    d_out = rng.normal(size=(2, 3, 5, 4))
    mask = ref.causal_mask(5) if causal else None
    return q, k, v, d_out, mask


@pytest.mark.parametrize("causal", [True, False])
def test_numpy_backward_matches_torch_autograd(causal):
    q, k, v, d_out, mask = random_qkv(causal)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    (out * torch.tensor(d_out)).sum().backward()
    for name, mine, theirs in zip("qkv", ref.scaled_dot_product_attention_backward(q, k, v, d_out, mask),
                                  (tq.grad, tk.grad, tv.grad)):
        diff = np.abs(mine - theirs.numpy()).max()
        assert diff <= 1e-8, f"d{name} max abs diff from autograd {diff:.3e} > 1e-8"


@pytest.mark.parametrize("causal", [True, False])
def test_numpy_backward_matches_central_finite_differences(causal):
    q, k, v, d_out, mask = random_qkv(causal, seed=1)
    grads = ref.scaled_dot_product_attention_backward(q, k, v, d_out, mask)
    eps = 1e-6

    def objective(q, k, v):
        return np.sum(ref.scaled_dot_product_attention(q, k, v, mask)[0] * d_out)

    for which, analytic in enumerate(grads):
        numeric = np.zeros_like(analytic)
        for index in np.ndindex(analytic.shape):
            plus = [q.copy(), k.copy(), v.copy()]
            minus = [q.copy(), k.copy(), v.copy()]
            plus[which][index] += eps
            minus[which][index] -= eps
            numeric[index] = (objective(*plus) - objective(*minus)) / (2 * eps)
        diff = np.abs(numeric - analytic).max()
        assert diff <= 1e-6, f"d{'qkv'[which]} max abs diff from finite differences {diff:.3e}"


def test_softmax_is_stable_for_huge_scores():
    scores = np.array([[1e4, -1e4, 0.0], [1e4, 1e4 - 1.0, -1e4]])
    p = ref.softmax(scores)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    assert p[0, 0] == 1.0
    q = np.full((1, 4, 8), 40.0)  # q k^T / sqrt(8) = 4525: would overflow a naive exp
    out, weights = ref.scaled_dot_product_attention(q, -q * np.arange(4)[:, None] / 3, q, ref.causal_mask(4))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(weights))


def model_and_oracle_logits(noise, **fields):
    """The model's logits and attention_np.model_logits' from its state_dict, on random tokens;
    the weights perturbed by noise (zero biases and unit LayerNorm gains would hide layout mistakes)."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**dict(vocab_size=11, seq_len=16, d_model=32, n_layers=2, n_heads=4), **fields})
    model = CharTransformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * noise)
    idx = torch.randint(0, 11, (3, 16))
    with torch.no_grad():
        logits, _ = model(idx)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return logits.numpy(), ref.model_logits(state, vars(cfg), idx.numpy())


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "learned", "none", "rope", "alibi"])
@pytest.mark.parametrize("tie_weights", [True, False])
def test_whole_model_matches_numpy_forward_from_state_dict(pos_encoding, tie_weights):
    logits, expected = model_and_oracle_logits(0.1, pos_encoding=pos_encoding, tie_weights=tie_weights)
    diff = np.abs(logits - expected).max()
    assert diff <= 1e-4, f"logits max abs diff {diff:.3e} > 1e-4"


@pytest.mark.parametrize("levers", [
    dict(qk_norm=True), dict(activation="relu2"), dict(logit_softcap=2.0),
    dict(qk_norm=True, activation="relu2", logit_softcap=3.0, tie_weights=False, pos_encoding="rope"),
    dict(bias=False), dict(norm="rmsnorm"), dict(activation="gelu_tanh"),
    dict(bias=False, norm="rmsnorm", activation="gelu_tanh", tie_weights=False, pos_encoding="rope"),
])
def test_whole_model_with_the_recipe_levers_matches_numpy_forward(levers):
    # weights large enough that the soft cap and the norms bite
    logits, expected = model_and_oracle_logits(0.3, **{"pos_encoding": "sinusoidal", **levers})
    if levers.get("logit_softcap"):
        assert np.abs(expected).max() > 0.9 * levers["logit_softcap"]   # the cap is reached, so it is tested
    diff = np.abs(logits - expected).max()
    assert diff <= 1e-4, f"logits max abs diff {diff:.3e} > 1e-4"


@pytest.mark.parametrize("n_heads", range(1, 17))
def test_alibi_slopes_match_the_papers_geometric_sequence_for_any_head_count(n_heads):
    assert np.allclose(alibi_slopes(n_heads).numpy(), ref.alibi_slopes(n_heads), rtol=1e-6)


def test_alibi_slopes_written_out_for_powers_of_two_and_not():
    assert np.allclose(ref.alibi_slopes(8), [2.0 ** -i for i in range(1, 9)])             # the paper's example
    assert np.allclose(ref.alibi_slopes(16), [2.0 ** (-i / 2) for i in range(1, 17)])
    assert np.allclose(ref.alibi_slopes(6), [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3])
    assert np.allclose(ref.alibi_slopes(1), [2.0 ** -8])


def test_numpy_rope_is_a_rotation_whose_scores_depend_only_on_the_distance():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(1, 8)), rng.normal(size=(1, 8))
    score = lambda m, n: (ref.rope_rotate(q, [m]) @ ref.rope_rotate(k, [n]).T).item()   # noqa: E731
    assert score(3, 1) == pytest.approx(score(103, 101)) and score(3, 1) != pytest.approx(score(3, 2))
    assert np.linalg.norm(ref.rope_rotate(q, [7])) == pytest.approx(np.linalg.norm(q))
