"""Behaviour of model.py: shapes, causality, positional encodings, the two attention paths,
config validation, and that the model learns (generation and sampling: test_sampling.py)."""
import math

import pytest
import torch

from conftest import tiny_model
from model import (POS_ENCODINGS, CharTransformer, ModelConfig, alibi_slopes, apply_rope, attention_mask, count_params,
                   flops_per_token, rope_angles, sinusoidal_table)


def test_logits_have_shape_batch_time_vocab_and_loss_is_a_scalar():
    model = tiny_model()
    idx = torch.randint(0, 13, (3, 10))
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (3, 10, 13)
    assert loss.shape == () and torch.isfinite(loss)


def test_initial_loss_is_close_to_uniform_guessing():
    torch.manual_seed(0)
    model = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_heads=4))
    idx = torch.randint(0, 13, (8, 16))
    _, loss = model(idx, targets=idx)
    assert abs(loss.item() - math.log(13)) < 0.3


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_future_tokens_do_not_change_past_logits(pos_encoding):
    model = tiny_model(pos_encoding=pos_encoding)
    idx = torch.randint(0, 13, (2, 16))
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 13
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
    assert torch.equal(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 9:], after[:, 9:])


def test_without_positional_encoding_the_first_position_cannot_tell_order_but_later_ones_can():
    # the causal mask is then the only source of order: position 0 sees only itself
    model = tiny_model(pos_encoding="none")
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[1, 3, 2, 4]])
    with torch.no_grad():
        la, _ = model(a)
        lb, _ = model(b)
    assert torch.equal(la[:, 0], lb[:, 0])
    assert not torch.allclose(la[:, 3], lb[:, 3])  # same bag of tokens, different prefixes


@pytest.mark.parametrize("position,dim", [(0, 0), (0, 1), (1, 0), (1, 1), (5, 6), (5, 7), (15, 30), (15, 31)])
def test_sinusoidal_table_follows_vaswani_formula(position, dim):
    d_model = 32
    table = sinusoidal_table(16, d_model)
    angle = position / 10000 ** ((dim - dim % 2) / d_model)
    expected = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
    assert table[position, dim].item() == pytest.approx(expected, abs=1e-6)


def test_sinusoidal_encoding_is_added_to_the_scaled_token_embedding():
    model = tiny_model()
    idx = torch.tensor([[3, 3, 3]])
    x = model.embed(idx)
    scaled = model.tok_emb.weight[3] * math.sqrt(32)
    assert torch.allclose(x[0, 2] - scaled, sinusoidal_table(16, 32)[2], atol=1e-6)


def test_no_positional_encoding_adds_nothing_and_has_no_position_parameters():
    model = tiny_model(pos_encoding="none")
    x = model.embed(torch.tensor([[3, 3, 3]]))
    assert torch.equal(x[0, 0], x[0, 2])
    assert not any("pos" in name for name, _ in model.named_parameters())


def test_learned_positional_encoding_is_a_trainable_table_of_seq_len_rows():
    model = tiny_model(pos_encoding="learned")
    assert model.pos_emb.weight.shape == (16, 32) and model.pos_emb.weight.requires_grad


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_explicit_and_fused_attention_paths_give_the_same_logits(pos_encoding):
    model = tiny_model(pos_encoding=pos_encoding)
    idx = torch.randint(0, 13, (2, 16))
    with torch.no_grad():
        fused, _ = model(idx)
        explicit = model.output(model.residual_stream(idx, need_weights=True)[0])
        weights = model.attention_weights(idx)
    assert (fused - explicit).abs().max().item() <= 1e-5
    assert len(weights) == 2 and weights[0].shape == (2, 4, 16, 16)
    assert torch.allclose(weights[0].sum(-1), torch.ones(2, 4, 16))
    assert torch.all(weights[1].triu(1) == 0)  # nothing attends to the future


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
@pytest.mark.parametrize("n_layers,outputs_from", [(2, 7), (3, 1), (1, 8)])
def test_outputs_from_gives_those_positions_logits_and_the_last_block_makes_only_their_rows(pos_encoding, n_layers,
                                                                                           outputs_from):
    model = tiny_model(pos_encoding=pos_encoding, n_layers=n_layers, qk_norm=True)
    idx = torch.randint(0, 13, (3, 16))
    rows_in = []   # the rows each block's feed-forward is given
    for block in model.blocks:
        block.ff.register_forward_hook(lambda module, args, out: rows_in.append(args[0].size(1)))
    with torch.no_grad():
        whole, _ = model(idx)
        rows_in.clear()
        part, _ = model(idx, outputs_from=outputs_from)
        windowed, _ = model(idx, window=5)
        windowed_part, _ = model(idx, window=5, outputs_from=outputs_from)
    assert part.shape == (3, 16 - outputs_from, 13) and windowed_part.shape == part.shape
    assert (part - whole[:, outputs_from:]).abs().max().item() <= 1e-6
    assert (windowed_part - windowed[:, outputs_from:]).abs().max().item() <= 1e-6
    assert rows_in[:n_layers] == [16] * (n_layers - 1) + [16 - outputs_from]   # every block but the last: all rows


@pytest.mark.parametrize("field,value", [
    ("d_model", 30), ("n_heads", 0), ("d_model", -8), ("seq_len", 0), ("vocab_size", 0),
    ("n_layers", 0), ("d_ff", -1), ("dropout", 1.0), ("pos_encoding", "rotary"), ("learned_init", "zeros"),
    ("activation", "swiglu"), ("logit_softcap", -1.0), ("norm", "batchnorm"),
])
def test_invalid_config_raises_value_error_naming_the_field(field, value):
    fields = dict(d_model=32, n_heads=4)
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        ModelConfig(**fields)


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="even"):
        ModelConfig(d_model=36, n_heads=4, pos_encoding="rope")   # head size 9


def test_feed_forward_width_defaults_to_four_times_d_model():
    assert ModelConfig(d_model=48, n_heads=4).d_ff == 192


def test_parameter_count_matches_the_architecture():
    V, d, L, ff = 13, 32, 2, 128
    per_block = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 4 * d
    tied = V * d + L * per_block + 2 * d
    assert count_params(tiny_model()) == tied
    assert count_params(tiny_model(tie_weights=False)) == tied + V * d
    assert count_params(tiny_model(pos_encoding="learned")) == tied + 16 * d


def test_flops_per_token_equals_pytorchs_own_count_of_the_matmuls():
    # FlopCounterMode counts every matmul PyTorch runs (mm, addmm, bmm), forward and backward. The
    # explicit attention path computes q k^T and weights @ v over the whole T x T square (the causal
    # mask zeroes half the weights but skips no work), which is how flops_per_token counts attention.
    # (The fused CPU kernel would not be counted by FlopCounterMode, hence need_weights=True.)
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode
    cfg = ModelConfig(vocab_size=37, seq_len=24, d_model=48, n_layers=3, n_heads=4, d_ff=80)
    model = CharTransformer(cfg)
    idx = torch.randint(0, 37, (2, 24))
    def explicit_forward():
        return model.output(model.residual_stream(idx, need_weights=True)[0])

    with FlopCounterMode(display=False) as forward_count:
        explicit_forward()
    assert flops_per_token(cfg, training=False) * idx.numel() == forward_count.get_total_flops()
    with FlopCounterMode(display=False) as step_count:
        F.cross_entropy(explicit_forward().view(-1, 37), idx.view(-1)).backward()
    assert flops_per_token(cfg) * idx.numel() == step_count.get_total_flops()


def test_tiny_model_memorises_a_64_character_string():
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog; pack my box with fiv"
    assert len(text) == 65  # 64 inputs, 64 targets
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    model = CharTransformer(ModelConfig(vocab_size=len(chars), seq_len=64, d_model=64, n_layers=2, n_heads=4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = data[None, :-1], data[None, 1:]
    for _ in range(200):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02, f"loss after 200 steps: {loss.item():.4f}"


def test_bf16_autocast_on_cpu_trains_on_the_explicit_path_scores_on_the_fused_one_and_stays_close_to_fp32(monkeypatch):
    model = tiny_model()
    idx = torch.randint(0, 13, (2, 16))
    with torch.no_grad():
        fp32, loss32 = model(idx, targets=idx)
    fused = torch.nn.functional.scaled_dot_product_attention
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16, loss16 = model(idx, targets=idx)          # with gradients: the explicit path (faster backward)
        assert calls == []
        with torch.no_grad():
            scored, _ = model(idx)                      # without: the fused kernel
        assert calls == [torch.bfloat16] * 2
    assert bf16.dtype == torch.bfloat16
    assert (bf16.float() - fp32).abs().max().item() < 0.1 and (scored.float() - fp32).abs().max().item() < 0.1
    assert abs(loss16.item() - loss32.item()) < 0.02


def test_in_bf16_alibi_biases_reach_the_fused_kernel_in_fp32_as_training_adds_them(monkeypatch):
    # eval.py --context 600 on an ALiBi model: rounded to bf16, -slope x distance would be off past
    # distance 256, so scoring would not use the biases the model was trained with
    model = tiny_model(pos_encoding="alibi")
    idx = torch.randint(0, 13, (1, 600))
    fused = torch.nn.functional.scaled_dot_product_attention
    masks = []

    def spy(*args, **kwargs):
        masks.append(kwargs["attn_mask"])
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(idx)
    positions = torch.arange(600)
    biases = attention_mask(positions, positions, alibi_slopes(4))
    assert not torch.equal(biases.bfloat16().float(), biases)   # what a cast would lose
    assert len(masks) == 2 and all(torch.equal(mask, biases) for mask in masks)


@pytest.mark.parametrize("shift", [1, 37, 5000])
def test_rope_scores_depend_only_on_the_distance_between_query_and_key(shift):
    torch.manual_seed(0)
    q, k = torch.randn(2, 10, 8), torch.randn(2, 10, 8)     # (heads, positions, head size)
    positions = torch.arange(10)

    def scores(pos):
        angles = rope_angles(pos, 8)
        return apply_rope(q, angles) @ apply_rope(k, angles).transpose(-2, -1)

    assert torch.allclose(scores(positions), scores(positions + shift), atol=1e-5)
    assert not torch.allclose(scores(positions), q @ k.transpose(-2, -1), atol=1e-2)   # it does rotate


def test_learned_positions_start_as_the_sinusoids_unless_asked_for_the_old_normal_init():
    model = tiny_model(pos_encoding="learned")   # tiny_model perturbs weights by 0.05
    assert (model.pos_emb.weight - sinusoidal_table(16, 32)).abs().max() < 0.3
    torch.manual_seed(0)
    old = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, pos_encoding="learned",
                                      learned_init="normal"))
    assert abs(old.pos_emb.weight.std().item() - 0.02) < 0.005


def test_long_contexts_run_for_every_encoding_but_learned():
    for pos_encoding in ("sinusoidal", "rope", "alibi", "none"):
        logits, _ = tiny_model(pos_encoding=pos_encoding)(torch.randint(0, 13, (1, 40)))
        assert logits.shape == (1, 40, 13) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="learned positions stop at seq_len 16"):
        tiny_model(pos_encoding="learned")(torch.randint(0, 13, (1, 17)))


def test_zero_init_starts_every_block_as_the_identity():
    torch.manual_seed(0)
    model = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_layers=2, n_heads=4, zero_init=True))
    for block in model.blocks:
        assert not block.attn.proj.weight.any() and not block.ff.down.weight.any()
    idx = torch.randint(0, 13, (2, 16))
    with torch.no_grad():   # the blocks add nothing yet: the logits are those of the embeddings alone
        assert torch.equal(model(idx)[0], model.output(model.embed(idx)))
    default = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_layers=2, n_heads=4))
    assert default.blocks[0].attn.proj.weight.std() > 0.001


def test_the_logit_soft_cap_bounds_every_logit_and_leaves_small_ones_almost_unchanged():
    capped, plain = tiny_model(logit_softcap=5.0), tiny_model()
    idx = torch.randint(0, 13, (2, 16))
    with torch.no_grad():
        plain.head.weight.mul_(100)   # tied: the token embedding grows too, so logits are far past the cap
        capped.load_state_dict(plain.state_dict())
        big, small = capped(idx)[0], plain(idx)[0]
    assert small.abs().max() > 50 and big.abs().max() <= 5.0   # tanh rounds to 1 in float32 far out
    assert torch.allclose(big, 5.0 * torch.tanh(small / 5.0), atol=1e-5)


def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys():
    model = tiny_model(qk_norm=True)
    idx = torch.randint(0, 13, (2, 16))
    with torch.no_grad():
        before = model(idx)[0]
        d = model.cfg.d_model
        for block in model.blocks:   # scale the query and key projections (not the values)
            block.attn.qkv.weight[:2 * d].mul_(7.0)
            block.attn.qkv.bias[:2 * d].mul_(7.0)
        after = model(idx)[0]
    assert torch.allclose(before, after, atol=1e-5)


def test_relu2_feed_forward_is_the_square_of_relu():
    model = tiny_model(activation="relu2")
    ff = model.blocks[0].ff
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.allclose(ff(x), ff.down(torch.relu(ff.up(x)) ** 2))


def test_without_bias_no_layer_adds_one_and_the_model_is_smaller_by_exactly_the_biases():
    with_bias, without = tiny_model(), tiny_model(bias=False)
    biases = [n for n, _ in without.named_parameters() if n.endswith("bias")]
    assert biases == []
    removed = sum(p.numel() for n, p in with_bias.named_parameters() if n.endswith("bias"))
    assert count_params(with_bias) - count_params(without) == removed > 0


def test_rmsnorm_scales_each_row_to_unit_root_mean_square_with_no_mean_removed_and_no_bias():
    model = tiny_model(norm="rmsnorm")
    norm = model.blocks[0].ln1
    assert [n for n, _ in norm.named_parameters()] == ["weight"]
    x = torch.randn(2, 5, 32) * 3 + 1
    expected = x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * norm.weight   # the gain, perturbed by tiny_model
    with torch.no_grad():
        assert torch.allclose(norm(x), expected, atol=1e-6)


def test_gelu_tanh_is_the_tanh_approximation_close_to_but_not_the_exact_gelu():
    exact, approx = tiny_model(), tiny_model(activation="gelu_tanh")
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        h = approx.blocks[0].ff.up(x)
        tanh_form = 0.5 * h * (1 + torch.tanh((2 / math.pi) ** 0.5 * (h + 0.044715 * h ** 3)))
        assert torch.allclose(approx.blocks[0].ff(x), approx.blocks[0].ff.down(tanh_form), atol=1e-6)
        assert not torch.equal(approx.blocks[0].ff(x), exact.blocks[0].ff(x))
        assert (approx.blocks[0].ff(x) - exact.blocks[0].ff(x)).abs().max() < 1e-3


def test_dropout_zeroes_a_fraction_p_and_scales_the_rest_like_f_dropout():
    from tinychar.dropout import Dropout, dropout
    torch.manual_seed(0)
    x = torch.randn(1000, 1000).abs() + 0.5   # no zeros of its own
    y = dropout(x, 0.2)
    kept = y != 0
    # 1e6 Bernoulli draws: the kept fraction within 5 standard deviations (0.0002) of 0.8
    assert abs(kept.float().mean().item() - 0.8) < 0.002
    assert torch.allclose(y[kept], x[kept] / 0.8)
    x.requires_grad_(True)
    dropout(x, 0.2).sum().backward()   # the gradient flows through the kept elements only, scaled
    assert set(x.grad.unique().tolist()) == {0.0, 1.25}
    layer = Dropout(0.2)
    assert torch.equal(layer.eval()(x), x) and dropout(x, 0.0) is x
    assert (layer.train()(x) == 0).any()


@pytest.mark.parametrize("p", [0.1, 0.6, 0.003])
def test_the_cpu_keep_mask_drops_each_element_with_probability_p_at_every_byte_of_its_words(p):
    from tinychar.dropout import keep_mask
    torch.manual_seed(0)
    dropped = ~keep_mask((1_000_000, 8), p)   # column j: byte j of each 64-bit word drawn
    # 1e6 draws a column: within 5 standard deviations of p (p = 0.1 without the ties redrawn: 0.0977)
    tolerance = 5 * (p * (1 - p) / 1e6) ** 0.5
    assert (dropped.float().mean(0) - p).abs().max().item() < tolerance
    both = (dropped[:, :-1] & dropped[:, 1:]).float().mean().item()   # neighbours independent: p^2
    assert abs(both - p * p) < 5 * (p * p / 7e6) ** 0.5
    assert keep_mask((3, 5, 7), p).shape == (3, 5, 7)


def test_dropout_on_a_cpu_is_the_input_times_the_keep_mask_times_the_scale_in_fp32_and_bf16():
    from tinychar.dropout import dropout, keep_mask
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(64, 33).to(dtype)
        torch.manual_seed(1)
        y = dropout(x, 0.3)
        torch.manual_seed(1)
        assert y.dtype == dtype and torch.equal(y, x * keep_mask(x.shape, 0.3) * (1 / 0.7))


def test_without_attention_dropout_the_attention_weights_are_never_dropped():
    torch.manual_seed(0)
    cfg = dict(vocab_size=13, seq_len=16, d_model=32, n_layers=1, n_heads=4, dropout=0.5)
    x = torch.randn(2, 16, 32)
    for dropout_attention, expect_dropped in ((True, True), (False, False)):
        attn = CharTransformer(ModelConfig(**cfg, dropout_attention=dropout_attention)).blocks[0].attn.train()
        attn.resid_drop.p = 0.0   # leave only the attention weights' dropout
        with torch.no_grad():
            outs = [attn(x)[0] for _ in range(2)]
        assert (not torch.equal(*outs)) == expect_dropped
