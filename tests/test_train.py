"""train.py: settings, schedule, optimizer groups, checkpoints, metrics, exact resume,
Ctrl-C, divergence, and reproducibility."""
import contextlib
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import types
from dataclasses import asdict, replace

import pytest
import torch

from conftest import PRIMER, ROOT, TINY_FLAGS, signals_as_in_a_terminal
import train
from model import CharTransformer, ModelConfig
from tinychar import budget, run_checkpoints, run_log, runtime, scoring
from tinychar.budget import fit_steps_to_budget, plan_steps
from tinychar.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from tinychar.cli import UserError
from tinychar.corpus import get_batch, load_corpus
from tinychar.metrics import METRICS_FIELDS, read_metrics
from tinychar.plan import RunPlan, plan_from_checkpoint
from tinychar.scoring import VAL_BATCH_SEED, validation_loss
from tinychar.settings import PRESETS, parse_args, resolve_configs
from tinychar.step import batch_at, follow_schedule, lr_at, make_optimizer


def configs(*argv):
    return resolve_configs(parse_args(list(argv)))


def run(out, *extra, steps=8):
    model_cfg, cfg, resumed, _ = configs("--out", str(out), "--steps", str(steps), "--eval-every", "2",
                                      "--ckpt-every", "4", *TINY_FLAGS, *extra)
    return train.train(model_cfg, cfg, resumed, progress=False)


def losses(rows):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in rows]


def test_defaults_are_the_baseline_configuration():
    model_cfg, cfg, _, _ = configs()
    assert (model_cfg.n_layers, model_cfg.n_heads, model_cfg.d_model, model_cfg.seq_len) == (2, 4, 256, 128)
    assert model_cfg.pos_encoding == "sinusoidal"
    assert (cfg.steps, cfg.batch_size, cfg.eval_every, cfg.ckpt_every, cfg.grad_clip) == (5000, 32, 500, 1000, 1.0)
    assert os.path.samefile(cfg.data, PRIMER)


def test_ablation_preset_is_one_head_without_positions_and_explicit_flags_override_it():
    model_cfg, _, _, _ = configs("--preset", "ablation")
    assert (model_cfg.n_heads, model_cfg.pos_encoding) == (1, "none")
    model_cfg, _, _, _ = configs("--preset", "ablation", "--n-heads", "2")
    assert (model_cfg.n_heads, model_cfg.pos_encoding) == (2, "none")
    model_cfg, _, _, _ = configs("--preset", "baseline", "--pos", "learned")
    assert (model_cfg.n_heads, model_cfg.pos_encoding) == (4, "learned")


@pytest.mark.parametrize("argv,fragment", [
    (["--d-model", "30"], "divisible"), (["--lr", "0"], "--lr"), (["--steps", "0"], "--steps"),
    (["--batch-size", "-1"], "--batch-size"), (["--min-lr", "1"], "--min-lr"), (["--n-layers", "0"], "n_layers"),
    (["--dropout", "1.5"], "dropout"), (["--grad-clip", "-1"], "--grad-clip"), (["--logit-softcap", "-2"], "logit_softcap"),
])
def test_invalid_settings_are_user_errors(argv, fragment):
    with pytest.raises(UserError, match=fragment):
        configs(*argv)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    _, cfg, _, _ = configs("--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "10", "--steps", "110")
    plan = RunPlan(cfg.steps, "fp32")
    assert lr_at(0, cfg, plan) == pytest.approx(1e-4)
    assert lr_at(4, cfg, plan) == pytest.approx(5e-4)
    assert lr_at(10, cfg, plan) == pytest.approx(1e-3)
    assert lr_at(60, cfg, plan) == pytest.approx(5.5e-4)  # half way: the mean of lr and min_lr
    assert lr_at(110, cfg, plan) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg, plan) >= lr_at(s + 1, cfg, plan) for s in range(10, 110))


def test_the_learning_rate_logged_for_a_step_is_the_one_that_step_trained_with(tmp_path):
    # warmup to 1e-3 over 4 steps, then cosine towards 1e-4; metrics.csv counts steps from 1, so
    # step s trained at lr_at(s - 1): 1e-3 * s / 4 for s <= 4, then half way down at step 6 of 6
    rows = run(tmp_path / "r", "--warmup-steps", "4", "--lr", "1e-3", "--min-lr", "1e-4", "--eval-every", "1", steps=6)
    assert [r["lr"] for r in rows] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 5.5e-4])
    # and the optimizer was given it: the checkpoint of step 6 holds step 6's learning rate
    assert [g["lr"] for g in load_checkpoint(str(tmp_path / "r"))["optimizer"]["param_groups"]] == \
        pytest.approx([5.5e-4, 5.5e-4])


def test_a_run_that_ends_inside_its_warmup_warns_once_how_far_the_learning_rate_rose(tmp_path, capsys):
    # 3 steps of a 10-step warmup: the rate rises by 1e-4 a step to 3/10 of --lr, and no decay starts
    rows = run(tmp_path / "short", "--warmup-steps", "10", "--lr", "1e-3", "--eval-every", "1", steps=3)
    assert [r["lr"] for r in rows] == pytest.approx([1e-4, 2e-4, 3e-4])
    assert capsys.readouterr().err == ("warning: --steps 3 ends inside the 10 warmup steps: the learning rate rises "
                                       "to 30% of --lr and the run ends there, with no decay; pass --warmup-steps N "
                                       "to shorten the warmup\n")
    run(tmp_path / "whole", "--warmup-steps", "3", steps=3)   # the warmup ends with the run: nothing to say
    assert capsys.readouterr().err == ""


def test_a_time_budget_planning_fewer_steps_than_the_warmup_warns_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (5, dict(step_s=0.01, validation_s=0.0,
                                                                                       checkpoint_s=0.0)))
    model_cfg, cfg, _, _ = configs("--out", str(tmp_path / "r"), "--time-budget", "0.5", "--eval-every", "5",
                                   "--ckpt-every", "5", *TINY_FLAGS, "--warmup-steps", "10")
    rows = train.train(model_cfg, cfg, progress=False)
    assert [r["step"] for r in rows] == [5] and rows[0]["lr"] == pytest.approx(cfg.lr / 2)
    assert capsys.readouterr().err == ("warning: --time-budget 0.5 plans 5 steps, which end inside the 10 warmup "
                                       "steps: the learning rate rises to 50% of --lr and the run ends there, with no "
                                       "decay; pass --warmup-steps N to shorten the warmup, or give it more time\n")


class ScaledLoss(torch.nn.Module):
    """A model whose loss is multiplied by `scale`: a gradient as large as we like."""

    def __init__(self, model, scale):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x, y):
        logits, loss = self.model(x, y)
        return logits, loss * self.scale


@pytest.mark.parametrize("grad_clip", [0.5, 0.0])
def test_gradient_clipping_bounds_the_step_of_a_huge_loss(grad_clip):
    # plain SGD at learning rate 1 moves the weights by exactly the gradient: clipped to a norm of
    # 0.5 the step is 0.5 long however large the loss; unclipped (0) it is the huge gradient itself
    torch.manual_seed(0)
    model = ScaledLoss(CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_heads=4)), 1e6)
    x, y = torch.randint(0, 13, (4, 16)), torch.randint(0, 13, (4, 16))
    before = torch.nn.utils.parameters_to_vector(model.parameters()).clone()
    train.train_step(model, torch.optim.SGD(model.parameters(), lr=1.0), x, y, grad_clip)
    moved = (torch.nn.utils.parameters_to_vector(model.parameters()) - before).norm().item()
    if grad_clip:
        assert moved == pytest.approx(grad_clip, rel=1e-4)
    else:
        assert moved > 1e3


def test_training_clips_at_the_norm_grad_clip_gives_and_not_at_all_with_zero(tmp_path, monkeypatch):
    clipped_at, clip = [], torch.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, **kwargs):
        clipped_at.append(max_norm)
        return clip(parameters, max_norm, **kwargs)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    run(tmp_path / "a", "--grad-clip", "0.25", steps=3)
    assert clipped_at == [0.25] * 3
    run(tmp_path / "b", "--grad-clip", "0", steps=3)
    assert clipped_at == [0.25] * 3


def test_gradient_accumulation_gives_the_losses_and_weights_of_the_whole_batch_up_to_rounding(tmp_path):
    whole = run(tmp_path / "whole", steps=8)
    parts = run(tmp_path / "parts", "--grad-accum", "4", steps=8)   # batch 4: four micro-batches of 1
    assert max(abs(a - b) for pa, pb in zip(losses(whole), losses(parts)) for a, b in zip(pa, pb)) <= 1e-5
    w1, w4 = (load_checkpoint(str(tmp_path / name))["model"] for name in ("whole", "parts"))
    assert all(torch.allclose(w1[k], w4[k], atol=1e-5) for k in w1)
    assert not all(torch.equal(w1[k], w4[k]) for k in w1)   # two ways of summing, not one run twice


def test_the_gradient_of_accumulated_micro_batches_is_the_whole_batchs():
    # plain SGD, no clipping: the weights move by exactly the gradient (AdamW and clipping would
    # hide a gradient N times too large)
    x, y = torch.randint(0, 10, (8, 8)), torch.randint(0, 10, (8, 8))
    moved = []
    for micro_batches in (1, 4):
        torch.manual_seed(0)
        model = CharTransformer(ModelConfig(vocab_size=10, seq_len=8, d_model=16, n_heads=2))
        before = [p.detach().clone() for p in model.parameters()]
        train.train_step(model, torch.optim.SGD(model.parameters(), lr=1.0), x, y, 0.0, micro_batches=micro_batches)
        moved.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert moved[0].abs().max() > 1e-3 and torch.allclose(moved[0], moved[1], atol=1e-6)


def test_micro_batches_are_all_reduced_once_after_the_last(tmp_path):
    synced = []

    class Replica(torch.nn.Module):   # what DistributedDataParallel offers train_step: no_sync
        def __init__(self, module):
            super().__init__()
            self.module, self.syncing = module, True

        @contextlib.contextmanager
        def no_sync(self):
            self.syncing = False
            yield
            self.syncing = True

        def forward(self, x, y):
            synced.append(self.syncing)
            return self.module(x, y)

    model = Replica(CharTransformer(ModelConfig(vocab_size=10, seq_len=8, d_model=16, n_heads=2)))
    x, y = torch.randint(0, 10, (8, 8)), torch.randint(0, 10, (8, 8))
    train.train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, 1.0, micro_batches=4)
    assert synced == [False, False, False, True]


@pytest.mark.slow
def test_an_accumulated_run_with_dropout_resumes_exactly(tmp_path):
    uninterrupted = run(tmp_path / "whole", "--dropout", "0.1", "--grad-accum", "2", steps=12)
    crashed = tmp_path / "crashed"
    run(crashed, "--dropout", "0.1", "--grad-accum", "2", steps=12)
    os.remove(crashed / "step_000012.pt")
    assert losses(run(crashed, "--resume", steps=12)) == losses(uninterrupted)


def test_grad_accum_that_does_not_divide_the_batch_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--grad-accum 3 must divide each process's batch"):
        train.main(["--out", str(tmp_path / "r"), "--steps", "2", "--grad-accum", "3", *TINY_FLAGS])


@pytest.mark.parametrize("kernel,expected", [("default", dict(foreach=None, fused=None)),
                                             ("foreach", dict(foreach=True, fused=None)),
                                             ("fused", dict(foreach=None, fused=True))])
def test_adamw_kernel_picks_torchs_update_and_default_leaves_the_choice_to_torch(kernel, expected):
    model = CharTransformer(ModelConfig(vocab_size=10, d_model=32, n_heads=4))
    _, cfg, _, _ = configs("--adamw-kernel", kernel)
    defaults = make_optimizer(model, cfg).defaults
    assert {name: defaults[name] for name in expected} == expected


def test_every_adamw_kernel_makes_the_same_update_up_to_rounding():
    weights = {}
    for kernel in ("default", "foreach", "fused"):
        torch.manual_seed(0)
        model = CharTransformer(ModelConfig(vocab_size=10, d_model=32, n_heads=4, seq_len=8))
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        _, cfg, _, _ = configs("--adamw-kernel", kernel, "--lr", "1e-2")
        optimizer = make_optimizer(model, cfg)
        x = torch.randint(10, (4, 8), generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            optimizer.zero_grad()
            model(x, x)[1].backward()
            optimizer.step()
        weights[kernel] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (weights["default"] - start).abs().max() > 1e-2   # three steps of lr 1e-2 moved the weights
    # fused rounds the update in another order, and Adam's division by sqrt(v) + eps magnifies that
    # for the smallest gradients: within 1% of one step's size (lr 1e-2), where a dropped term is not
    for kernel in ("foreach", "fused"):
        assert torch.allclose(weights[kernel], weights["default"], rtol=0, atol=1e-4)


def test_weight_decay_applies_to_linear_matrices_only():
    model = CharTransformer(ModelConfig(vocab_size=10, d_model=32, n_heads=4, pos_encoding="learned"))
    _, cfg, _, _ = configs("--weight-decay", "0.1")
    decay, no_decay = make_optimizer(model, cfg).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "blocks.0.attn.qkv.weight" in decayed and "blocks.1.ff.down.weight" in decayed
    assert not any("ln" in n or n.endswith("bias") or "emb" in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_a_run_writes_metrics_plot_and_self_contained_checkpoints(tiny_run):
    rows = read_metrics(os.path.join(tiny_run, "metrics.csv"))
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert set(rows[0]) == set(METRICS_FIELDS)
    assert all(math.isclose(r["val_bpc"], r["val_loss"] / math.log(2)) for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    with open(os.path.join(tiny_run, "loss_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [step for step, _ in list_checkpoints(tiny_run)] == [6, 12]
    assert not [n for n in os.listdir(tiny_run) if n.endswith(".tmp")]
    ckpt = torch.load(os.path.join(tiny_run, "step_000012.pt"), weights_only=True)
    assert ckpt["format_version"] == 1 and ckpt["step"] == 12
    assert ckpt["model_config"]["d_model"] == 32 and ckpt["train_config"]["steps"] == 12
    with open(PRIMER, encoding="utf-8") as f:
        assert ckpt["vocab"] == "".join(sorted(set(f.read())))
    assert len(ckpt["data_fingerprint"]) == 64
    assert not any(k.startswith("_orig_mod") for k in ckpt["model"])
    assert {"state", "param_groups"} <= set(ckpt["optimizer"]) and {"torch", "batches"} <= set(ckpt["rng"])


def test_each_row_logs_the_mean_loss_of_its_steps_and_the_last_step_is_validated_and_saved(tmp_path, monkeypatch):
    step_losses, train_step = [], train.train_step

    def recording(*args, **kwargs):
        loss = train_step(*args, **kwargs)
        step_losses.append(loss.item())
        return loss
    monkeypatch.setattr(train, "train_step", recording)
    rows = run(tmp_path / "r", steps=7)   # validation every 2 steps, a checkpoint every 4: 7 is on neither
    assert [r["step"] for r in rows] == [2, 4, 6, 7]
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [4, 7]
    means = [sum(step_losses[a:b]) / (b - a) for a, b in ((0, 2), (2, 4), (4, 6), (6, 7))]
    assert [r["train_loss"] for r in rows] == pytest.approx(means, rel=1e-6)
    assert [r["train_bpc"] for r in rows] == pytest.approx([m / math.log(2) for m in means], rel=1e-6)


def test_validation_scores_with_dropout_off_then_leaves_the_model_training():
    torch.manual_seed(0)
    model = CharTransformer(ModelConfig(vocab_size=13, seq_len=16, d_model=32, n_heads=4, dropout=0.5)).train()
    batches = [(torch.randint(0, 13, (4, 16)), torch.randint(0, 13, (4, 16))) for _ in range(2)]
    first = validation_loss(model, batches, contextlib.nullcontext())
    assert model.training   # the run trains on, with its dropout
    assert validation_loss(model, batches, contextlib.nullcontext()) == first
    with torch.no_grad():
        assert first == pytest.approx(sum(model.eval()(x, y)[1].item() for x, y in batches) / 2, rel=1e-6)


def test_a_dropout_runs_logged_validation_is_its_checkpoints_loss_with_dropout_off(tmp_path):
    rows = run(tmp_path / "r", "--dropout", "0.5", steps=4)   # validated at steps 2 and 4, saved at 4
    ckpt = load_checkpoint(str(tmp_path / "r"))
    model = CharTransformer(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    _, _, val_ids, _ = load_corpus(PRIMER, 16)
    val_rng = torch.Generator().manual_seed(VAL_BATCH_SEED)   # the run's fixed validation batches
    batches = [get_batch(val_ids, 4, 16, val_rng) for _ in range(2)]
    with torch.no_grad():
        expected = sum(model.eval()(x, y)[1].item() for x, y in batches) / len(batches)
    assert rows[-1]["val_loss"] == pytest.approx(expected, rel=1e-6)


def test_train_leaves_the_callers_configs_as_they_were(tmp_path, monkeypatch):
    # it resolves the vocabulary size, the precision ("auto") and a time budget's steps for its own run
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (3, dict(step_s=0.01, validation_s=0.0,
                                                                             checkpoint_s=0.0)))
    model_cfg, cfg, _, _ = configs("--out", str(tmp_path / "r"), "--time-budget", "1", "--device", "cpu", *TINY_FLAGS[4:])
    before = (asdict(model_cfg), asdict(cfg))
    assert train.train(model_cfg, cfg, progress=False)[-1]["step"] == 3
    assert (asdict(model_cfg), asdict(cfg)) == before


@pytest.mark.slow
def test_same_seed_and_flags_give_the_same_metrics(tmp_path):
    assert losses(run(tmp_path / "a")) == losses(run(tmp_path / "b"))
    assert losses(run(tmp_path / "c")) != losses(run(tmp_path / "d", "--seed", "2"))


def test_resume_after_a_crash_gives_exactly_the_losses_of_an_uninterrupted_run(tmp_path):
    # dropout makes the run depend on the global RNG too, which the checkpoint must restore
    uninterrupted = run(tmp_path / "whole", "--dropout", "0.1", steps=12)
    crashed = tmp_path / "crashed"
    run(crashed, "--dropout", "0.1", steps=12)
    os.remove(crashed / "step_000012.pt")   # as if it died after step 11: last checkpoint at step 8
    resumed = run(crashed, "--resume", steps=12)
    assert losses(resumed) == losses(uninterrupted)
    assert losses(read_metrics(crashed / "metrics.csv")) == losses(uninterrupted)


def test_resume_uses_the_saved_settings_and_can_extend_the_run(tmp_path):
    run(tmp_path / "r", "--n-heads", "2", "--pos", "none", steps=4)
    model_cfg, cfg, resumed, _ = configs("--out", str(tmp_path / "r"), "--resume", "--steps", "6")
    assert (model_cfg.n_heads, model_cfg.pos_encoding, model_cfg.d_model) == (2, "none", 32)
    rows = train.train(model_cfg, cfg, resumed, progress=False)
    assert [r["step"] for r in rows] == [2, 4, 6]


def test_resume_refuses_a_different_model_shape(tmp_path):
    run(tmp_path / "r", steps=4)
    with pytest.raises(UserError, match="d_model"):
        configs("--out", str(tmp_path / "r"), "--resume", "--d-model", "64")


def test_resume_refuses_levers_a_checkpoint_from_before_them_did_not_have(tmp_path):
    run(tmp_path / "r", steps=4)
    path = tmp_path / "r" / "step_000004.pt"
    old = torch.load(path, weights_only=True)
    for field in ("qk_norm", "activation", "zero_init", "logit_softcap", "bias", "norm"):   # as saved before these fields existed
        del old["model_config"][field]
    del old["train_config"]["optimizer"], old["train_config"]["adamw_kernel"]
    save_checkpoint(old, str(path))
    model_cfg, cfg, _, _ = configs("--out", str(tmp_path / "r"), "--resume")
    assert (model_cfg.qk_norm, model_cfg.activation, cfg.optimizer) == (False, "gelu", "adamw")
    assert (model_cfg.bias, model_cfg.norm, cfg.adamw_kernel) == (True, "layernorm", "default")
    for flags, fragment in ((["--qk-norm"], "qk_norm"), (["--activation", "relu2"], "activation"),
                            (["--no-bias"], "bias"), (["--norm", "rmsnorm"], "norm"),
                            (["--adamw-kernel", "fused"], "keeps its adamw-kernel"),
                            (["--logit-softcap", "30"], "logit_softcap"), (["--optimizer", "muon"], "keeps its optimizer")):
        with pytest.raises(UserError, match=fragment):
            configs("--out", str(tmp_path / "r"), "--resume", *flags)


def test_resume_refuses_different_data(tmp_path):
    run(tmp_path / "r", steps=4)
    other = tmp_path / "other.txt"
    other.write_text("a different corpus entirely, long enough for windows of sixteen. " * 20)
    model_cfg, cfg, resumed, _ = configs("--out", str(tmp_path / "r"), "--resume", "--data", str(other))
    with pytest.raises(UserError, match="not the text"):
        train.train(model_cfg, cfg, resumed, progress=False)


def test_a_run_directory_with_checkpoints_is_never_overwritten_without_resume(tmp_path):
    run(tmp_path / "r", steps=4)
    before = (tmp_path / "r" / "step_000004.pt").read_bytes()
    with pytest.raises(UserError, match="--resume"):
        run(tmp_path / "r", steps=4)
    assert (tmp_path / "r" / "step_000004.pt").read_bytes() == before


def poison_step(monkeypatch, bad_step, value="nan"):
    """Make the training loss of step bad_step (counted from 1) NaN (or inf: value "inf")."""
    forward = CharTransformer.forward
    calls = {"train": 0}

    def poisoned(self, idx, targets=None, **kwargs):
        logits, loss = forward(self, idx, targets, **kwargs)
        if self.training:
            calls["train"] += 1
            if calls["train"] == bad_step:
                loss = loss * float(value)
        return logits, loss

    monkeypatch.setattr(CharTransformer, "forward", poisoned)


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, poison):
    poison_step(monkeypatch, 6, poison)   # step 6: after the checkpoint at step 4
    with pytest.raises(UserError, match=rf"{poison} at step 6.*step_000004\.pt"):
        run(tmp_path / "r", steps=8)
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [4]
    ckpt = load_checkpoint(str(tmp_path / "r"))
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


@pytest.mark.parametrize("failure", ["while writing", "at the final flush to disk"])
def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch, failure):
    path = str(tmp_path / "step_000001.pt")
    save_checkpoint({"value": torch.ones(3)}, path)

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    if failure == "while writing":
        monkeypatch.setattr(torch, "save", dies_half_way)
    else:
        monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        save_checkpoint({"value": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(3))
    assert os.listdir(tmp_path) == ["step_000001.pt"]   # the half-written temporary file is gone


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_or_sigterm_while_a_checkpoint_is_synced_leaves_no_temporary_file(tmp_path, monkeypatch, interruption):
    path = str(tmp_path / "step_000001.pt")
    save_checkpoint({"value": torch.ones(3)}, path)

    def interrupted(fd):   # the signal arrives while the bytes go to disk (SIGTERM ends as SystemExit)
        raise interruption()

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(interruption):
        save_checkpoint({"value": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(3))
    assert os.listdir(tmp_path) == ["step_000001.pt"]


def test_a_saved_checkpoint_is_synced_to_disk_and_so_is_the_rename_in_its_folder(tmp_path, monkeypatch):
    synced = []   # for each fsync, whether it was of a folder
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    save_checkpoint({"value": torch.ones(3)}, str(tmp_path / "step_000001.pt"))
    assert synced == [False, True]   # the file's bytes, then the folder that now names it


@pytest.mark.parametrize("signum,status,said", [(signal.SIGINT, 130, "interrupted:"),
                                               (signal.SIGTERM, 143, "interrupted by SIGTERM:")])
@pytest.mark.slow
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resuming_matches_an_uninterrupted_run(tmp_path, signum, status,
                                                                                          said):
    # SIGTERM is what a cluster scheduler, timeout, docker stop and torchrun's agent send: the same as
    # Ctrl-C, with the status a scheduler reads as "terminated"
    flags = ["--steps", "1000", "--eval-every", "50", "--ckpt-every", "1000", "--dropout", "0.1", *TINY_FLAGS]
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "train.py", "--out", str(out), *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=signals_as_in_a_terminal)
    deadline = time.time() + 60
    while not (out / "metrics.csv").exists() and time.time() < deadline:  # training has started
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert f"{said} checkpoint saved at step" in stdout and "Traceback" not in stderr
    (step, _), = list_checkpoints(out)
    assert 50 <= step < 1000
    train.main(["--out", str(out), "--resume"])
    train.main(["--out", str(tmp_path / "whole"), *flags])
    assert losses(read_metrics(out / "metrics.csv")) == losses(read_metrics(tmp_path / "whole" / "metrics.csv"))


def test_auto_precision_is_bf16_on_gpus_and_cpus_with_native_bf16(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert runtime.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)   # e.g. a V100 or T4
    assert runtime.resolve_precision("auto", cuda) == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("auto", torch.device("mps")) == "fp32"
    assert runtime.resolve_precision("fp32", cuda) == "fp32" and runtime.resolve_precision("bf16", cpu) == "bf16"


@pytest.mark.slow
def test_bf16_training_learns_resumes_exactly_and_records_its_precision(tmp_path):
    whole = run(tmp_path / "whole", "--precision", "bf16", "--dropout", "0.1", steps=12)
    assert whole[-1]["train_loss"] < whole[0]["train_loss"]
    crashed = tmp_path / "crashed"
    run(crashed, "--precision", "bf16", "--dropout", "0.1", steps=12)
    os.remove(crashed / "step_000012.pt")
    assert losses(run(crashed, "--resume", "--precision", "bf16", steps=12)) == losses(whole)
    assert load_checkpoint(str(crashed))["plan"]["precision"] == "bf16"


def test_a_resumed_run_keeps_the_precision_it_resolved(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    model_cfg, cfg, _, _ = configs("--out", str(tmp_path / "r"), "--steps", "2", "--device", "cpu", *TINY_FLAGS[4:])   # auto
    train.train(model_cfg, cfg, progress=False)
    assert load_checkpoint(str(tmp_path / "r"))["train_config"]["precision"] == "auto"   # as given
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    model_cfg, cfg, resumed, _ = configs("--out", str(tmp_path / "r"), "--resume", "--steps", "3")
    train.train(model_cfg, cfg, resumed, progress=False)
    ckpt = load_checkpoint(str(tmp_path / "r"))
    assert ckpt["step"] == 3 and ckpt["plan"]["precision"] == "bf16"


def test_a_preset_sets_training_fields_too_and_explicit_steps_replace_its_time_budget(monkeypatch):
    monkeypatch.setitem(PRESETS, "fast", dict(d_model=128, lr=3e-3, dropout=0.1, time_budget=5.0))
    model_cfg, cfg, _, _ = configs("--preset", "fast")
    assert (model_cfg.d_model, model_cfg.dropout, cfg.lr, cfg.time_budget) == (128, 0.1, 3e-3, 5.0)
    model_cfg, cfg, _, _ = configs("--preset", "fast", "--lr", "1e-3", "--steps", "100")
    assert (model_cfg.d_model, cfg.lr, cfg.steps, cfg.time_budget) == (128, 1e-3, 100, 0.0)


def test_a_presets_muon_rate_gives_way_when_the_flags_choose_another_optimizer():
    _, cfg, _, _ = configs("--preset", "cpu30")
    assert (cfg.optimizer, cfg.muon_lr, cfg.schedule) == ("muon", 3e-3, "wsd")
    _, cfg, _, _ = configs("--preset", "cpu30", "--optimizer", "adamw")   # not an error: the rate goes too
    assert (cfg.optimizer, cfg.muon_lr) == ("adamw", 0.0)
    with pytest.raises(UserError, match="needs --optimizer muon"):   # a rate the user gave still needs Muon
        configs("--preset", "cpu30", "--optimizer", "adamw", "--muon-lr", "3e-3")


def test_resume_refuses_a_preset_that_would_change_the_model(tmp_path):
    run(tmp_path / "r", steps=4)   # 4 heads, sinusoidal
    with pytest.raises(UserError, match="n_heads"):
        configs("--out", str(tmp_path / "r"), "--resume", "--preset", "ablation")


def test_reading_the_loss_every_k_steps_as_on_a_gpu_gives_the_same_metrics(tmp_path, monkeypatch):
    every_step = run(tmp_path / "k1", "--dropout", "0.1", steps=10)
    monkeypatch.setattr(runtime, "host_sync_interval", lambda device: 3)
    assert losses(run(tmp_path / "k3", "--dropout", "0.1", steps=10)) == losses(every_step)


def test_reading_the_loss_every_k_steps_still_stops_on_nan_before_saving_it(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "host_sync_interval", lambda device: 4)   # reads at steps 3, 4, 6, 8
    poison_step(monkeypatch, 5)   # step 5, read back at step 6 with step 6's loss
    with pytest.raises(UserError, match=r"nan at step 5.*step_000004\.pt"):
        run(tmp_path / "r", "--eval-every", "3", steps=8)
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [4]


def test_checkpoints_hold_the_dropout_generators_of_every_rank(tiny_run):
    rng = torch.load(os.path.join(tiny_run, "step_000012.pt"), weights_only=True)["rng"]
    assert len(rng["ranks"]) == 1 and torch.equal(rng["ranks"][0]["torch"], rng["torch"])


def test_on_cuda_the_devices_generator_is_saved_and_restored(monkeypatch):
    # no GPU needed: the CUDA generator calls are stood in for (tests/test_cuda.py runs the real thing)
    saved = torch.arange(16, dtype=torch.uint8)
    restored = {}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.update(state=state, device=device))
    cuda = torch.device("cuda", 1)
    state = runtime.rng_state(cuda)
    assert torch.equal(state["cuda"], saved) and torch.equal(state["torch"], torch.get_rng_state())
    runtime.set_rng_state(state, cuda)
    assert torch.equal(restored["state"], saved) and restored["device"] == cuda
    assert "cuda" not in runtime.rng_state(torch.device("cpu"))


def test_wsd_holds_the_learning_rate_then_decays_linearly_over_the_last_fraction():
    _, cfg, _, _ = configs("--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "10", "--steps", "110",
                        "--schedule", "wsd", "--decay-fraction", "0.2")
    plan = RunPlan(cfg.steps, "fp32")
    assert lr_at(4, cfg, plan) == pytest.approx(5e-4)                 # the same warmup
    assert all(lr_at(s, cfg, plan) == 1e-3 for s in range(10, 89))   # stable until the last 22 steps
    assert lr_at(89, cfg, plan) == pytest.approx(1e-3 - 0.9e-3 / 22)  # the first step of the decay
    assert lr_at(99, cfg, plan) == pytest.approx(1e-3 - 0.9e-3 * 11 / 22)
    assert lr_at(110, cfg, plan) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg, plan) >= lr_at(s + 1, cfg, plan) for s in range(10, 110))


def test_a_time_budget_fixes_the_steps_from_the_measured_step_time_and_saves_them(tmp_path, monkeypatch):
    # the probe's clock is replaced: a step "takes" 10 ms, everything else nothing
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (9, dict(step_s=0.01, validation_s=0.0,
                                                                                       checkpoint_s=0.0)))
    model_cfg, cfg, _, _ = configs("--out", str(tmp_path / "r"), "--time-budget", "0.5", "--eval-every", "3",
                                "--ckpt-every", "3", *TINY_FLAGS)
    given = asdict(cfg)
    rows = train.train(model_cfg, cfg, progress=False)
    assert [r["step"] for r in rows] == [3, 6, 9]
    ckpt = load_checkpoint(str(tmp_path / "r"))
    # the run's decision is its plan; its settings are saved as given, and never written to
    assert ckpt["plan"]["steps"] == 9 and ckpt["train_config"] == given == asdict(cfg) and cfg.steps == 5000
    # resuming does not measure again: the saved number of steps stands, and the losses repeat
    os.remove(tmp_path / "r" / "step_000009.pt")
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: pytest.fail("measured again"))
    model_cfg, cfg, resumed, _ = configs("--out", str(tmp_path / "r"), "--resume")
    assert losses(train.train(model_cfg, cfg, resumed, progress=False)) == losses(rows)
    # untimed from here on (--time-budget 0), it still goes on to the planned steps, not --steps' default
    os.remove(tmp_path / "r" / "step_000009.pt")
    model_cfg, cfg, resumed, _ = configs("--out", str(tmp_path / "r"), "--resume", "--time-budget", "0")
    assert losses(train.train(model_cfg, cfg, resumed, progress=False)) == losses(rows)


def fake_clock(monkeypatch, step_s, validation_s, checkpoint_s):
    """Replace train.py's clock with one that only steps, validations and checkpoint saves move, each
    by its seconds (step_s: a number, or a function of the step, counted from 1). Returns the clock,
    [seconds]."""
    clock, steps = [0.0], [0]
    for module in (train, budget, run_log, scoring):   # every module that reads the clock in a run
        monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def taking(seconds, function):
        def timed(*args, **kwargs):
            clock[0] += seconds() if callable(seconds) else seconds
            return function(*args, **kwargs)
        return timed

    def step_seconds():
        steps[0] += 1
        return step_s(steps[0]) if callable(step_s) else step_s
    monkeypatch.setattr(train, "train_step", taking(step_seconds, train.train_step))
    monkeypatch.setattr(run_log, "validation_loss", taking(validation_s, validation_loss))
    monkeypatch.setattr(run_checkpoints, "save_checkpoint", taking(checkpoint_s, run_checkpoints.save_checkpoint))
    return clock


def test_the_budget_counts_setting_up_and_the_probe_and_reserves_for_the_slowest_of_the_last_16_steps(
        tmp_path, monkeypatch):
    # a fake clock: reading the corpus takes 0.5 s, the probe 0.25 s, steps 10 ms but step 45 100 ms
    clock = fake_clock(monkeypatch, step_s=lambda step: 0.100 if step == 45 else 0.010, validation_s=0.0,
                       checkpoint_s=0.0)
    load_corpus, spent_before_probe = train.load_corpus, []

    def slow_corpus(*args, **kwargs):
        clock[0] += 0.5
        return load_corpus(*args, **kwargs)

    def probe(*args, **kwargs):
        spent_before_probe.append(args[-1])
        clock[0] += 0.25
        return 70, dict(step_s=0.010, validation_s=0.0, checkpoint_s=0.0)
    monkeypatch.setattr(train, "load_corpus", slow_corpus)
    monkeypatch.setattr(budget, "fit_steps_to_budget", probe)
    out = tmp_path / "r"
    train.train(*configs("--out", str(out), "--time-budget", "1", "--eval-every", "25", "--ckpt-every", "25",
                         *TINY_FLAGS)[:2], progress=False)
    saved = {step: load_checkpoint(path) for step, path in list_checkpoints(str(out))}
    assert list(saved) == [25, 50, 70]
    assert spent_before_probe == [0.5]   # the probe plans what is left after setting up
    assert saved[50]["elapsed_s"] == pytest.approx(0.5 + 0.25 + 49 * 0.010 + 0.100)   # both count
    # the pace the ceiling reserves for: the slowest of the last 16 steps (one read of the loss each on
    # a CPU), so a slowdown counts at once and is forgotten 16 steps later
    assert [saved[s]["budget_costs"]["step_s"] for s in (25, 50, 70)] == pytest.approx([0.010, 0.100, 0.010])


@pytest.mark.slow
def test_a_timed_run_plans_again_at_the_end_of_its_warmup_from_its_own_pace(tmp_path, monkeypatch, capsys):
    # the probe said 20 ms a step (100 steps); the run's steps take 10 ms. At the end of the warmup
    # (step 20) the steps are fitted again to the pace measured from step 5 (a quarter of the
    # warmup), and the run is then exactly the --steps N run: no step so far depended on N
    fake_clock(monkeypatch, step_s=lambda step: 0.050 if step < 5 else 0.010, validation_s=0.0, checkpoint_s=0.0)
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (100, dict(step_s=0.02, validation_s=0.0,
                                                                                         checkpoint_s=0.0)))
    flags = ["--eval-every", "50", "--ckpt-every", "50", *TINY_FLAGS, "--warmup-steps", "20"]
    timed = train.train(*configs("--out", str(tmp_path / "timed"), "--time-budget", "0.05", *flags)[:2], progress=False)
    elapsed = 0.0   # at step 20, summed as the clock sums it; the slow first steps are not the pace
    for step in range(1, 21):
        elapsed += 0.050 if step < 5 else 0.010
    planned = 20 + budget.steps_that_fit(0.05, dict(step_s=0.010, validation_s=0.0, checkpoint_s=0.0), 50, 50, elapsed)
    assert planned > 250 and load_checkpoint(str(tmp_path / "timed"))["plan"]["steps"] == planned
    assert (f"time budget planned again at the end of the warmup (step 20) from this run's pace, 10.0 ms a step: "
            f"{planned:,} steps (the probe's plan: 100)") in capsys.readouterr().out
    monkeypatch.undo()
    untimed = train.train(*configs("--out", str(tmp_path / "untimed"), "--steps", str(planned), *flags)[:2],
                          progress=False)
    assert losses(timed) == losses(untimed)


def test_a_plan_made_during_the_run_keeps_the_learning_rate_continuous_and_still_decays_it_fully():
    # cosine over 110 steps; at step 40 the run learns it has 70 steps in all, then at step 50 that it
    # has 200: each time the rest of the schedule it had is laid over the steps left
    _, cfg, _, _ = configs("--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "10", "--steps", "110")
    plan = RunPlan(cfg.steps, "fp32")
    planned = [lr_at(s, cfg, plan) for s in range(110)]
    plan.replan(40, 70)
    assert lr_at(40, cfg, plan) == planned[40]                                 # where it was, exactly
    assert lr_at(69, cfg, plan) == pytest.approx(planned[109])                 # the schedule's last rate, sooner
    at_50 = lr_at(50, cfg, plan)
    plan.replan(50, 200)
    assert lr_at(50, cfg, plan) == pytest.approx(at_50) and plan.steps == 200
    assert lr_at(199, cfg, plan) == pytest.approx(planned[109])
    assert all(lr_at(s, cfg, plan) >= lr_at(s + 1, cfg, plan) for s in range(10, 200))
    # wsd: a plan made in the stable phase keeps the rate; the rest, decay included, is compressed
    _, wsd, _, _ = configs("--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "10", "--steps", "110",
                        "--schedule", "wsd", "--decay-fraction", "0.2")
    wsd_plan = RunPlan(wsd.steps, "fp32")
    planned_wsd = replace(wsd_plan)
    wsd_plan.replan(30, 60)
    assert all(lr_at(s, wsd, wsd_plan) == 1e-3 for s in range(10, 51))   # the schedule's step 88 is step 51.3 now
    assert lr_at(52, wsd, wsd_plan) < 1e-3 and lr_at(59, wsd, wsd_plan) == pytest.approx(lr_at(109, wsd, planned_wsd))


def test_a_plan_keeps_room_for_the_last_validation_and_checkpoint():
    # 60 s at 97% = 58.2 s; 3.2 s of them for the last step's validation (1 s) and checkpoint (2.2 s)
    timing = dict(step_s=0.1, validation_s=1.0, checkpoint_s=2.2)
    assert budget.steps_that_fit(1, timing, 10**9, 10**9, spent_s=4.95) == 500   # (58.2 - 4.95 - 3.2) / 0.1 = 500.5


def test_validations_and_checkpoints_are_expected_to_slow_down_as_the_steps_do(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(budget, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    timed = budget.Budget(1, sync_every=1)
    for seconds in (0.1, 0.1, 0.3, 0.1, 0.1):   # the median pace: 0.1 s a step
        timed.start_window()
        clock[0] += seconds
        timed.end_window(1)
    timed.measured("validation_s", 0.5)          # five steps' worth
    assert timed.cost("validation_s", 0.1) == 0.5 and timed.cost("validation_s", 0.05) == 0.5   # never less
    assert timed.cost("validation_s", 0.4) == pytest.approx(2.0)                              # 4x slower steps
    # the ceiling keeps that much room: the slowest recent step is 0.3 s, so 1.5 s for a validation
    assert timed.over(elapsed_s=60 - 2 * 0.3 - 1.5 - 0.01) is False
    assert timed.over(elapsed_s=60 - 2 * 0.3 - 1.5 + 0.01) is True


@pytest.mark.slow
def test_a_timed_run_that_slows_down_plans_again_and_ends_on_time_with_its_learning_rate_decayed(
        tmp_path, monkeypatch, capsys):
    # steps take 10 ms (the plan: about 1,160 steps in 97% of 12 s), then 20 ms from step 101 on.
    # The clock is read every 100 steps; the pace of the last 200 (from 20 at step 200) says the
    # planned steps would end past the budget: the run plans again at steps 200 and 300, then is on
    # time, and ends on its last planned step, in 95-100% of the budget, its rate at --min-lr
    # Validations (10 ms) and checkpoints (20 ms) slow down alike: the plan expects it
    slow = [1]
    clock = fake_clock(monkeypatch, step_s=lambda step: slow.__setitem__(0, 1 + (step > 100)) or 0.010 * slow[0],
                       validation_s=lambda: 0.010 * slow[0], checkpoint_s=lambda: 0.020 * slow[0])
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (300, dict(step_s=0.01, validation_s=0.01,
                                                                                         checkpoint_s=0.02)))
    rows = train.train(*configs("--out", str(tmp_path / "r"), "--time-budget", "0.2", "--eval-every", "50",
                                "--ckpt-every", "50", *TINY_FLAGS, "--warmup-steps", "20")[:2], progress=False)
    said = capsys.readouterr().out
    assert [int(s) for s in re.findall(r"time budget planned again at step (\d+)", said)] == [200, 300]
    assert "time budget spent" not in said                                 # the ceiling never had to stop it
    ckpt = load_checkpoint(str(tmp_path / "r"))
    assert ckpt["step"] == ckpt["plan"]["steps"] == rows[-1]["step"] and ckpt["plan"]["knot_step"] == 300
    assert 0.95 * 12 <= ckpt["elapsed_s"] and clock[0] <= 12                # the last checkpoint's save included
    assert rows[-1]["lr"] == pytest.approx(1e-4, rel=1e-3)                  # --min-lr, TINY_FLAGS' lr 1e-3
    # the plans are saved: resumed after the second, at the pace it planned for, it is the same run
    for step, path in list_checkpoints(str(tmp_path / "r")):
        if step > 450:
            os.remove(path)
    fake_clock(monkeypatch, step_s=0.020, validation_s=0.020, checkpoint_s=0.040)
    resumed = train.train(*configs("--out", str(tmp_path / "r"), "--resume"), progress=False)
    assert losses(resumed)[-5:] == losses(rows)[-5:] and len(resumed) == len(rows)
    assert "planned again" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_timed_run_that_speeds_up_plans_more_steps_and_still_ends_on_time(tmp_path, monkeypatch, capsys):
    # 20 ms a step (the plan: about 580 steps), then 10 ms from step 101 on: without planning again
    # the run would end at about two thirds of its budget
    fake_clock(monkeypatch, step_s=lambda step: 0.020 if step <= 100 else 0.010, validation_s=0.0, checkpoint_s=0.0)
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (300, dict(step_s=0.02, validation_s=0.0,
                                                                                         checkpoint_s=0.0)))
    rows = train.train(*configs("--out", str(tmp_path / "r"), "--time-budget", "0.2", "--eval-every", "50",
                                "--ckpt-every", "50", *TINY_FLAGS, "--warmup-steps", "20")[:2], progress=False)
    said = capsys.readouterr().out
    assert re.search(r"time budget planned again at step 200: .* would end at (6\d|7\d)% of the budget", said)
    ckpt = load_checkpoint(str(tmp_path / "r"))
    assert ckpt["step"] == ckpt["plan"]["steps"] > 1000 and 0.95 * 12 <= ckpt["elapsed_s"] <= 12
    assert rows[-1]["lr"] == pytest.approx(1e-4, rel=1e-3)


@pytest.mark.parametrize("eval_every, last_step, saved_at_s", [(25, 46, 0.566), (20, 40, 0.506)])
def test_the_time_budget_is_a_ceiling_a_run_slower_than_planned_stops_early_validated_and_saved(
        tmp_path, monkeypatch, eval_every, last_step, saved_at_s):
    # A fake clock: a step takes 10 ms, a validation 43 ms, a checkpoint 20 ms. The probe said 5 ms
    # a step and nothing else, so its 100 steps would need over 1 s of the 0.6 s budget. The run
    # stops at the first step S where S's own validation and checkpoint (if due), two more steps
    # and a final validation and checkpoint, all at the measured costs, would pass 0.6 s:
    # every 25 steps: step 46 (0.523 s + 0.083 s); every 20: step 40, itself a validation step
    # (0.463 s + 0.063 s + 0.083 s), where not counting its own would spend them twice (0.605 s).
    clock = fake_clock(monkeypatch, step_s=0.010, validation_s=0.043, checkpoint_s=0.020)
    monkeypatch.setattr(budget, "fit_steps_to_budget", lambda *args, **kwargs: (100, dict(step_s=0.005, validation_s=0.0,
                                                                                         checkpoint_s=0.0)))
    out = tmp_path / "r"
    model_cfg, cfg, _, _ = configs("--out", str(out), "--time-budget", "0.01", "--eval-every", str(eval_every),
                                "--ckpt-every", str(eval_every), *TINY_FLAGS)
    rows = train.train(model_cfg, cfg, progress=False)
    ckpt = load_checkpoint(str(out))
    assert ckpt["step"] == last_step and [r["step"] for r in rows] == [eval_every, last_step]
    assert ckpt["elapsed_s"] == pytest.approx(saved_at_s) and 0.6 > clock[0] == pytest.approx(saved_at_s + 0.02)
    assert ckpt["budget_costs"] == pytest.approx(dict(step_s=0.01, validation_s=0.043, checkpoint_s=0.02))
    assert ckpt["plan"]["steps"] == 100                                 # the schedule stays the planned one
    # resuming a run whose budget is spent ends at once; --steps on resume lets it go on untimed
    assert losses(train.train(*configs("--out", str(out), "--resume"), progress=False)) == losses(rows)
    assert list_checkpoints(str(out))[-1][0] == last_step and clock[0] == pytest.approx(saved_at_s + 0.02)
    model_cfg, cfg, resumed, _ = configs("--out", str(out), "--resume", "--steps", "100")
    assert cfg.time_budget == 0 and train.train(model_cfg, cfg, resumed, progress=False)[-1]["step"] == 100


def test_fit_steps_to_budget_fills_97_percent_of_the_budget_with_steps_at_the_measured_cost():
    model = CharTransformer(ModelConfig(vocab_size=10, seq_len=8, d_model=16, n_heads=2))
    _, cfg, _, _ = configs("--time-budget", "0.5", "--eval-every", "1", "--ckpt-every", "1")   # 30 s (none of it spent)
    batch = (torch.randint(0, 10, (2, 8)), torch.randint(0, 10, (2, 8)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    steps, timing = fit_steps_to_budget(model, make_optimizer(model, cfg), cfg, lambda: batch, [batch],
                                              contextlib.nullcontext())
    per_step = timing["step_s"] + timing["validation_s"] + timing["checkpoint_s"]   # each step validates and saves
    # the probe's own seconds (more than a step's, validation's and checkpoint's together) are spent
    assert steps == budget.steps_that_fit(0.5, timing, 1, 1, spent_s=timing["probe_s"]) and timing["probe_s"] > per_step
    # with the last step's validation and checkpoint, the plan fills 97% of the 30 s to within a step: 3% of the
    # budget is kept for a pace the probe misjudged
    planned = timing["probe_s"] + steps * per_step + timing["validation_s"] + timing["checkpoint_s"]
    assert 0.97 * 30 - per_step < planned <= 0.97 * 30 and steps > 1
    assert 0 < timing["step_s"] < timing["probe_s"] < 30 and timing["validation_s"] > 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())   # the probe ran on a copy
    assert torch.equal(torch.get_rng_state(), rng)                                 # and left the RNG alone


def test_under_torchrun_the_budget_probe_times_steps_through_distributed_data_parallel(tmp_path, monkeypatch):
    # the run's steps wait for DDP's all-reduce: a probe timing the bare model plans too many steps
    torch.distributed.init_process_group("gloo", store=torch.distributed.FileStore(str(tmp_path / "store"), 1),
                                         rank=0, world_size=1)
    try:
        model = CharTransformer(ModelConfig(vocab_size=10, seq_len=8, d_model=16, n_heads=2))
        _, cfg, _, _ = configs("--time-budget", "0.5", "--batch-size", "4")
        stepped = []
        real_step = budget.train_step
        monkeypatch.setattr(budget, "train_step", lambda runner, *a: stepped.append(type(runner)) or real_step(runner, *a))
        ids = torch.randint(0, 10, (1000,)).numpy().astype("uint8")   # as corpus.py memory-maps it
        batch = (torch.randint(0, 10, (4, 8)), torch.randint(0, 10, (4, 8)))
        steps = plan_steps(model, make_optimizer(model, cfg), cfg, ids, ids, [batch], contextlib.nullcontext(),
                                 budget.Budget(0.5, 1, 0.0, None), torch.device("cpu"), rank=0, world_size=2)
        assert steps > 1 and stepped and set(stepped) == {torch.nn.parallel.DistributedDataParallel}
    finally:
        torch.distributed.destroy_process_group()


def test_time_budget_and_steps_together_are_a_user_error():
    with pytest.raises(UserError, match="drop --steps"):
        configs("--time-budget", "5", "--steps", "100")
    with pytest.raises(UserError, match="--time-budget"):
        configs("--time-budget", "-1")


@pytest.mark.slow
@pytest.mark.parametrize("pos", ["rope", "alibi"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_rope_and_alibi_train_end_to_end_in_both_precisions(tmp_path, pos, precision):
    rows = run(tmp_path / "r", "--pos", pos, "--precision", precision, "--dropout", "0.1", steps=8)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and all(math.isfinite(r["val_loss"]) for r in rows)
    ckpt = load_checkpoint(str(tmp_path / "r"))
    assert ckpt["model_config"]["pos_encoding"] == pos and ckpt["plan"]["precision"] == precision


def test_muon_takes_the_blocks_matrices_and_adamw_everything_else():
    model = CharTransformer(ModelConfig(vocab_size=10, d_model=32, n_heads=4, tie_weights=False))
    _, cfg, _, _ = configs("--optimizer", "muon", "--weight-decay", "0.05", "--lr", "2e-3")
    optimizer = make_optimizer(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in optimizer.muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in optimizer.adamw.param_groups for p in g["params"]}
    assert in_muon == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "ff.up", "ff.down")}
    assert in_muon.isdisjoint(in_adamw) and in_muon | in_adamw == set(names.values())
    assert "head.weight" in in_adamw and "tok_emb.weight" in in_adamw   # 2-D, but not hidden: AdamW
    muon_group = optimizer.muon.param_groups[0]
    assert muon_group["adjust_lr_fn"] == "match_rms_adamw" and muon_group["weight_decay"] == 0.05
    assert all(g["lr"] == 2e-3 for g in optimizer.param_groups) and len(optimizer.param_groups) == 3


def test_muon_lr_gives_the_muon_matrices_their_own_peak_rate_on_the_same_schedule():
    model = CharTransformer(ModelConfig(vocab_size=10, d_model=32, n_heads=4))
    _, cfg, _, _ = configs("--optimizer", "muon", "--lr", "1e-3", "--muon-lr", "4e-3", "--steps", "1000",
                           "--warmup-steps", "100")
    optimizer = make_optimizer(model, cfg)
    plan = RunPlan(1000, "fp32")
    for step in (0, 50, 100, 600, 999):
        lr = follow_schedule(model, optimizer, step, cfg, plan)
        assert optimizer.adamw.param_groups[0]["lr"] == lr
        assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(4 * lr, rel=1e-12)
    saved = optimizer.state_dict()
    _, cfg, _, _ = configs("--optimizer", "muon", "--lr", "1e-3", "--muon-lr", "2e-3", "--steps", "1000")
    optimizer = make_optimizer(model, cfg)
    optimizer.load_state_dict(saved)   # a resumed run follows its flags, not the rate its state was saved with
    lr = follow_schedule(model, optimizer, 600, cfg, plan)
    assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(2 * lr, rel=1e-12)
    _, cfg, _, _ = configs("--optimizer", "muon", "--lr", "1e-3")   # 0: Muon at --lr, bit for bit
    optimizer = make_optimizer(model, cfg)
    lr = follow_schedule(model, optimizer, 300, cfg, plan)
    assert all(g["lr"] == lr for g in optimizer.param_groups)


def test_the_recipe_flags_reach_the_model_and_train_configs():
    model_cfg, cfg, _, _ = configs("--activation", "relu2", "--qk-norm", "--zero-init", "--no-tie-weights",
                                "--logit-softcap", "15", "--optimizer", "muon", "--no-dropout-attention")
    assert (model_cfg.activation, model_cfg.qk_norm, model_cfg.zero_init, model_cfg.tie_weights,
            model_cfg.logit_softcap, cfg.optimizer, model_cfg.dropout_attention) == (
        "relu2", True, True, False, 15.0, "muon", False)
    model_cfg, cfg, _, _ = configs()
    assert (model_cfg.activation, model_cfg.qk_norm, model_cfg.zero_init, model_cfg.tie_weights,
            model_cfg.logit_softcap, cfg.optimizer, model_cfg.dropout_attention) == (
        "gelu", False, False, True, 0.0, "adamw", True)


@pytest.mark.slow
def test_a_muon_run_with_every_lever_resumes_exactly(tmp_path):
    levers = ("--optimizer", "muon", "--activation", "relu2", "--qk-norm", "--zero-init", "--no-tie-weights",
              "--logit-softcap", "15", "--pos", "rope", "--precision", "bf16")
    uninterrupted = run(tmp_path / "whole", *levers, steps=12)
    assert uninterrupted[-1]["train_loss"] < uninterrupted[0]["train_loss"]
    crashed = tmp_path / "crashed"
    run(crashed, *levers, steps=12)
    os.remove(crashed / "step_000012.pt")   # the momentum buffers of both optimizers come back from step 8's
    # the other flags come back from the checkpoint; run() repeats TINY_FLAGS' --precision fp32, so bf16 is restated
    assert losses(run(crashed, "--resume", "--precision", "bf16", steps=12)) == losses(uninterrupted)
    saved = load_checkpoint(str(crashed))
    assert set(saved["optimizer"]) == {"muon", "adamw"} and saved["train_config"]["optimizer"] == "muon"


def dropout_rates(model):
    from tinychar.dropout import Dropout
    return {m.p for m in model.modules() if isinstance(m, Dropout)} | {b.attn.dropout for b in model.blocks}


def test_late_dropout_starts_at_its_fraction_of_the_schedule_and_follows_a_plan():
    model_cfg, cfg, _, _ = configs("--dropout", "0.1", "--dropout-from", "0.5", "--steps", "10", *TINY_FLAGS)
    model_cfg.vocab_size = 8
    model = CharTransformer(model_cfg)
    optimizer, plan = make_optimizer(model, cfg), RunPlan(cfg.steps, "fp32")
    rates = []
    for step in range(10):
        follow_schedule(model, optimizer, step, cfg, plan)
        rates.append(dropout_rates(model))
    assert rates == [{0.0}] * 5 + [{0.1}] * 5
    # a timed run planned again at step 2 for 30 steps: the rest of the schedule (steps 2-9) is laid
    # over steps 2-29, and its first half now ends after step 13 (not at half the 30 steps)
    plan.replan(2, 30)
    rates = []
    for step in (13, 14):
        follow_schedule(model, optimizer, step, cfg, plan)
        rates.append(dropout_rates(model))
    assert rates == [{0.0}, {0.1}]


@pytest.mark.slow
def test_late_dropout_trains_as_no_dropout_until_it_starts_and_resumes_exactly(tmp_path):
    late = run(tmp_path / "late", "--dropout", "0.1", "--dropout-from", "0.5", steps=12)
    without = run(tmp_path / "none", steps=12)
    assert losses(late)[:3] == losses(without)[:3]   # validations at steps 2, 4, 6: the switch is at step 6
    assert losses(late)[3:] != losses(without)[3:]
    crashed = tmp_path / "crashed"
    run(crashed, "--dropout", "0.1", "--dropout-from", "0.5", steps=12)
    os.remove(crashed / "step_000012.pt")
    assert losses(run(crashed, "--resume", steps=12)) == losses(late)


@pytest.mark.parametrize("flags,message", [(["--dropout-from", "0.5"], "it needs --dropout P"),
                                           (["--dropout", "0.1", "--dropout-from", "1"], "--dropout-from must be")])
def test_late_dropout_mistakes_are_one_line_errors(flags, message):
    with pytest.raises(UserError, match=re.escape(message)):
        configs(*flags)


def test_batch_warmup_grows_the_batch_from_a_quarter_over_its_fraction_of_the_schedule():
    _, cfg, _, _ = configs("--batch-size", "32", "--batch-warmup", "0.5", "--steps", "100")
    plan = RunPlan(cfg.steps, "fp32")
    sizes = [batch_at(step, cfg, plan, 1) for step in range(100)]
    assert (sizes[0], sizes[25], sizes[49]) == (8, 20, 31)   # 8 + 24 x step / 50, rounded down
    assert sizes == sorted(sizes) and sizes[50:] == [32] * 50
    # in whole units (2 processes x 2 micro-batches: every micro-batch alike), never below one
    assert {batch_at(step, cfg, plan, 4) % 4 for step in range(100)} == {0} and batch_at(0, cfg, plan, 16) == 16
    # a timed run planned again at step 2 for 30 steps: the warmup ends where its schedule's half does
    plan.replan(2, 30)
    assert (batch_at(15, cfg, plan, 1), batch_at(16, cfg, plan, 1)) == (31, 32)
    _, off, _, _ = configs("--batch-size", "32", "--steps", "100")
    assert {batch_at(step, off, RunPlan(100, "fp32"), 1) for step in range(100)} == {32}


@pytest.mark.slow
def test_batch_warmup_trains_its_growing_batches_and_resumes_exactly(tmp_path, monkeypatch):
    drawn, draw = [], train.get_batch
    monkeypatch.setattr(train, "get_batch", lambda ids, size, *rest: drawn.append(size) or draw(ids, size, *rest))
    warm = run(tmp_path / "warm", "--batch-warmup", "0.5", steps=12)
    assert drawn == [1, 1, 2, 2, 3, 3] + [4] * 6   # a quarter of --batch-size 4, growing to all of it at step 6
    assert losses(warm) != losses(run(tmp_path / "plain", steps=12))
    # the tokens it trained on, as eval.py reports them: 36 windows of 16, not 12 x 4
    assert scoring.tokens_seen(load_checkpoint(str(tmp_path / "warm")), 16) == 36 * 16
    assert scoring.tokens_seen(load_checkpoint(str(tmp_path / "plain")), 16) == 48 * 16
    crashed = tmp_path / "crashed"
    run(crashed, "--batch-warmup", "0.5", steps=12)
    for later in ("step_000012.pt", "step_000008.pt"):   # resumed at step 4, inside the warmup
        os.remove(crashed / later)
    assert losses(run(crashed, "--resume", steps=12)) == losses(warm)


@pytest.mark.parametrize("value", ["1", "-0.1"])
def test_a_batch_warmup_outside_0_to_1_is_a_one_line_error(value):
    with pytest.raises(UserError, match=re.escape(f"--batch-warmup must be a fraction in [0, 1), got {float(value)}")):
        configs("--batch-warmup", value)


@pytest.mark.parametrize("timed,untimed", [(["--time-budget", "5"], ["--time-budget", "0"]),
                                           (["--preset", "cpu30"], ["--steps", "100"])])
def test_a_batch_warmup_in_a_timed_run_is_a_one_line_error(timed, untimed):
    with pytest.raises(UserError, match="--batch-warmup needs --steps N"):
        configs("--batch-warmup", "0.5", *timed)
    assert configs("--batch-warmup", "0.5", *timed, *untimed)[1].time_budget == 0   # a cpuN preset's budget gives way


FIXTURE = os.path.join(ROOT, "tests", "fixtures", "run_before_plans")


def test_a_checkpoint_from_before_plans_were_saved_apart_loads_and_resumes_as_its_run_went_on(tmp_path):
    # written by earlier code (tests/fixtures/README.md): its decisions sat in its training settings
    out = tmp_path / "old"
    os.makedirs(out)
    for name in ("step_000004.pt", "metrics.csv"):   # metrics.csv: the rows after step 4 are logged again
        shutil.copy(os.path.join(FIXTURE, name), out)
    ckpt = load_checkpoint(str(out))
    assert ckpt["plan"] == dict(steps=8, precision="fp32", chosen_in_s=0.0, knot_step=0, knot_at=0.0, schedule_steps=0)
    assert "device" not in ckpt["plan"]   # not saved then: the next session says
    assert not {"knot_step", "knot_at", "schedule_steps", "chosen_in_s"} & set(ckpt["train_config"])
    model_cfg, cfg, resumed, _ = configs("--out", str(out), "--resume", "--data", PRIMER)
    rows = train.train(model_cfg, cfg, resumed, progress=False)
    whole = read_metrics(os.path.join(FIXTURE, "metrics.csv"))   # the old code's run, never interrupted
    assert [r["step"] for r in rows] == [r["step"] for r in whole] == [2, 4, 6, 8]
    assert [(r["train_loss"], r["val_loss"]) for r in rows] == pytest.approx(
        [(r["train_loss"], r["val_loss"]) for r in whole], rel=1e-5)
    assert load_checkpoint(str(out))["plan"] == dict(steps=8, precision="fp32", device="cpu", preset="", chosen_in_s=0.0,
                                                     knot_step=0, knot_at=0.0, schedule_steps=0)


def test_an_old_timed_runs_knots_become_its_plan():
    saved = dict(steps=4210, precision="bf16", time_budget=7.0, knot_step=300, knot_at=301.5, schedule_steps=4300,
                 chosen_in_s=2.5, lr=1e-3)
    assert RunPlan(**plan_from_checkpoint(saved)) == RunPlan(steps=4210, precision="bf16", chosen_in_s=2.5,
                                                             knot_step=300, knot_at=301.5, schedule_steps=4300)
    assert saved == dict(steps=4210, precision="bf16", time_budget=7.0, lr=1e-3)   # the settings keep the rest
