"""How a model is scored: eval.py's full pass, dynamic evaluation, and a saved run's figures.

The full pass (full_pass_bpc): the validation split is the last part of the corpus the run was
trained on (--split). Every scored unit is scored exactly once, by sliding windows of seq_len
units with stride seq_len / 2: a window scores only its last seq_len / 2 predictions, so each
scored unit sees at least seq_len / 2 units of context (the first ones take theirs from the end
of the training split, which is not scored). BPC = total cross-entropy in bits / number of
scored units. No logits are made for a window's context half: its last block makes only the
scored rows (model.py's outputs_from), the same figures for less work.

Dynamic evaluation (dynamic_bpc; Krause et al. 2018, "Dynamic Evaluation of Neural Sequence
Models"; 2019 for transformers): the model adapts to the text it is scoring, as it reads it. The
scored split is read once, in order, by the same windows. For each window, its new targets are
scored first, exactly as the static pass scores them (same forward, one window at a time); then
the model takes one gradient step on those same targets' mean loss: SGD with learning rate `lr`,
and every weight pulled back toward its trained value by the fraction `decay` (Krause et al.'s
decay toward the global weights, which keeps a long text from dragging the model away). So the
score of a unit depends on the text before it only, never on itself or on what follows; with lr
0 the figures are the static pass's. A copy of the model adapts: the trained checkpoint is never
changed. Dynamic figures answer another question than static ones (how well the model predicts
a text it may learn from as it goes) and are reported in rows of their own, never mixed with
static ones.

A training run's validations are a quick estimate on a few fixed batches (validation_loss); its
checkpoints are scored by the full pass over the first BEST_SCORED units of the split
(score_checkpoint), which chooses best.pt. A text's surprisal (surprisal) is the bits of each of
its characters, scored by the same windows. Used by eval.py (every figure it prints), train.py,
export.py (the model card's figures) and tinychar/api.py.
"""
import copy
import math
import os
import time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from tinychar import record, runtime
from tinychar.checkpoint import describe_choice, load_checkpoint, model_from_checkpoint, run_corpus
from tinychar.cli import UserError
from tinychar.corpus import get_batch, load_corpus, parse_split
from tinychar.plan import RunPlan
from tinychar.progress import bar as progress_bar
from tinychar.step import batch_at

BEST_SCORED = 250_000   # units of the validation split each checkpoint is scored on: all of Tiny Shakespeare's
VAL_BATCH_SEED = 1234   # the same validation batches for every run and seed, so curves compare


def tokens_seen(ckpt, seq_len):
    """The tokens a checkpoint's steps trained on: --batch-size windows a step, fewer during --batch-warmup
    (its batches again, step by step, in the units of the run's processes x --grad-accum)."""
    train = SimpleNamespace(**ckpt["train_config"])
    if not getattr(train, "batch_warmup", 0.0):
        return ckpt["step"] * train.batch_size * seq_len
    unit = (ckpt["run_record"][-1].get("processes", 1) if ckpt["run_record"] else 1) * train.grad_accum
    plan = RunPlan(**ckpt["plan"])
    return seq_len * sum(batch_at(step, train, plan, unit) for step in range(ckpt["step"]))


def scoring_windows(n_context, n_scored, seq_len):
    """Windows over a stream of n_context unscored + n_scored scored characters.

    Returns [(start, first)]: the window's inputs are stream[start:start + seq_len], its targets
    stream[start + 1:start + seq_len + 1], and it scores targets first..seq_len - 1 of the window.
    """
    stride = seq_len // 2 or 1
    end = n_context + n_scored                      # one past the last target position
    windows, scored_up_to = [], n_context - 1       # target positions <= scored_up_to are done
    start = max(0, n_context - 1 - (seq_len - stride))
    while scored_up_to < end - 1:
        start = min(start, end - 1 - seq_len)       # the last window ends exactly at the stream's end
        first = scored_up_to + 1 - (start + 1)      # index in the window of the first new target
        windows.append((start, first))
        scored_up_to = start + seq_len
        start += stride
    return windows


@torch.inference_mode()
def stream_nats(model, stream, n_context, window, batch_size=64, device="cpu", autocast=nullcontext(),
                progress=False, unit="char"):
    """Cross-entropy in nats of every target stream[n_context:], each once, by the scoring windows
    of `window` units: a float64 NumPy array. stream: 1-D integer ids (NumPy or torch). progress:
    show it (progress.bar: tqdm's bar on a terminal, else a line every 30 s)."""
    stream = np.asarray(stream)
    n_scored = len(stream) - n_context
    windows = np.array(scoring_windows(n_context, n_scored, window))             # (n_windows, 2)
    nats = np.empty(n_scored)
    offsets = np.arange(window + 1)
    bar = progress_bar(n_scored, unit, "scored", progress)
    for i in range(0, len(windows), batch_size):
        starts, firsts = windows[i:i + batch_size, 0], windows[i:i + batch_size, 1]
        rows = torch.from_numpy(stream[starts[:, None] + offsets].astype(np.int64)).to(device)   # (b, T + 1)
        scored_from = int(firsts.min())   # the positions before it are context: no logits for them
        with autocast:
            logits, _ = model(rows[:, :-1], outputs_from=scored_from)
        step_nats = F.cross_entropy(logits.float().transpose(1, 2), rows[:, 1 + scored_from:],
                                    reduction="none").double().cpu()
        for start, first, row in zip(starts, firsts, step_nats.numpy()):   # a window at a time: O(windows)
            target = start + 1 + first - n_context                           # index of its first new target
            nats[target:target + window - first] = row[first - scored_from:]
        bar.update(int((window - firsts).sum()))
    bar.close()
    return nats


@torch.no_grad()
def surprisal(model, vocab, text, autocast=nullcontext()):
    """Bits the model spends on each character of text after the first, each predicted from up to
    seq_len - 1 characters before it (the scoring windows of the full pass). For a byte model a
    character's bits are the sum over its UTF-8 bytes. Returns (characters, bits per character;
    None for the first, which has no context)."""
    ids = vocab.encode(text).numpy()
    if len(ids) < 2:
        raise UserError("--surprisal needs a text of at least two characters")
    window = min(model.cfg.seq_len, len(ids) - 1)
    bits = stream_nats(model, ids, 1, window, autocast=autocast) / math.log(2)   # targets 1..n-1
    if vocab.unit == "chars":
        return list(text), [None] + bits.tolist()
    per_char, position = [None], len(text[0].encode("utf-8"))
    for c in text[1:]:
        n = len(c.encode("utf-8"))
        per_char.append(float(bits[position - 1:position - 1 + n].sum()))
        position += n
    return list(text), per_char


def surprisal_bpc(bits):
    """The bits per character of surprisal's per-character bits: their mean over the characters
    after the first (eval.py --surprisal's figure)."""
    scored = [b for b in bits if b is not None]
    return sum(scored) / len(scored)


def scoring_stream(train_ids, val_ids, window):
    """(the units a full pass reads: the end of the training split, then the scored split; how many
    of them come from the training split, unscored)."""
    # at least one unit before the first scored one: with a window of 1 that is all there is
    n_context = min(max(1, window // 2), len(train_ids))
    return np.concatenate([np.asarray(train_ids[len(train_ids) - n_context:]), np.asarray(val_ids)]), n_context


def full_pass_bpc(model, train_ids, val_ids, batch_size=64, device="cpu", context=None, autocast=nullcontext(),
                  progress=False, unit="char"):
    """(BPC, units scored) over the whole validation (or test) split: the full pass (the module docstring).
    context: the window length (default the model's seq_len)."""
    window = context or model.cfg.seq_len
    stream, n_context = scoring_stream(train_ids, val_ids, window)
    return mean_bits(stream_nats(model, stream, n_context, window, batch_size, device, autocast, progress, unit))


def dynamic_bpc(model, train_ids, val_ids, lr, decay=0.0, device="cpu", context=None, autocast=nullcontext(),
                progress=False, unit="char"):
    """(BPC, units scored) of dynamic evaluation (the module docstring) over the whole split, with the full
    pass's windows and context; lr 0 gives full_pass_bpc's figure."""
    window = context or model.cfg.seq_len
    stream, n_context = scoring_stream(train_ids, val_ids, window)
    windows = scoring_windows(n_context, len(stream) - n_context, window)
    return mean_bits(dynamic_nats(model, stream, n_context, windows, window, lr, decay, device, autocast, progress,
                                  unit))


def mean_bits(nats):
    """(BPC, units scored) of the per-unit cross-entropies in nats: each unit counts once."""
    return float(nats.sum()) / len(nats) / math.log(2), len(nats)


def dynamic_nats(model, stream, n_context, windows, window, lr, decay=0.0, device="cpu", autocast=nullcontext(),
                 progress=False, unit="char"):
    """Cross-entropy in nats of every target stream[n_context:], each scored once and in order by a
    model that takes a gradient step on each window's targets after scoring them: a float64 NumPy
    array, as stream_nats. windows: scoring_windows(n_context, targets, window)."""
    stream = np.asarray(stream)
    adapting = copy.deepcopy(model).eval()   # eval mode: no dropout while scoring or adapting
    params = [p for p in adapting.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    n_scored = len(stream) - n_context
    nats = np.empty(n_scored)
    bar = progress_bar(n_scored, unit, "scored (dynamic evaluation)", progress)
    for start, first in windows:
        row = torch.from_numpy(stream[start:start + window + 1].astype(np.int64))[None].to(device)   # (1, T + 1)
        with torch.inference_mode(), autocast:   # the static pass's forward, so lr 0 gives its figures
            logits, _ = adapting(row[:, :-1], outputs_from=first)
        step_nats = F.cross_entropy(logits.float().transpose(1, 2), row[:, first + 1:], reduction="none")[0]
        target = start + 1 + first - n_context
        nats[target:target + window - first] = step_nats.double().cpu().numpy()
        with torch.enable_grad(), autocast:   # then learn from what was just scored
            logits, _ = adapting(row[:, :-1], outputs_from=first)
            loss = F.cross_entropy(logits.float()[0], row[0, first + 1:])
            grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, grad, start_value in zip(params, grads, trained):
                p.sub_(lr * grad)
                p.lerp_(start_value, decay)   # exact at 0 and 1: decay 1 undoes the step
        bar.update(window - first)
    bar.close()
    return nats


def context_note(cfg, context):
    """Why a context length cannot be scored (UserError), or what to know about its figure."""
    if cfg.pos_encoding == "learned" and context > cfg.seq_len:
        raise UserError(f"--context {context}: learned positions exist only for the {cfg.seq_len} positions "
                        f"the model was trained with")
    if context <= cfg.seq_len:
        return ""
    if cfg.pos_encoding == "sinusoidal":
        return f"sinusoids past position {cfg.seq_len - 1} computed, never trained"
    return f"past the trained seq_len {cfg.seq_len}"


def run_autocast(ckpt, precision, device):
    """bf16 autocast where asked, or (auto) where the run trained in bf16; else none."""
    if precision == "auto":
        precision = ckpt["plan"]["precision"]
    return runtime.autocast(precision, device), precision


def evaluate_run(path, data=None, batch_size=64, device="cpu", contexts=(None,), part="val", precision="auto",
                 progress=False):
    """score_run of the run directory or checkpoint file at path."""
    ckpt = load_checkpoint(path)
    return score_run(ckpt, *model_from_checkpoint(ckpt, device), data, batch_size, device, contexts, part, precision,
                     progress)


def check_parts(ckpt, parts, train_ids, trained_ids):
    """--parts: another division of the corpus is scored only if its training part is the run's
    own and no checkpoint was chosen on the run's validation split (which the new parts share)."""
    spec = ckpt["train_config"]["split"]
    if len(train_ids) != len(trained_ids):
        raise UserError(f"--parts {parts}: its training part has {len(train_ids):,} units, the run trained on "
                        f"{len(trained_ids):,} (--split {spec}): it would score text the model was trained on or "
                        f"leave some out; give the run's training part first")
    if ckpt["chosen_by_validation"]:
        raise UserError(f"--parts {parts}: {ckpt['path']} was chosen by its score on the run's validation split "
                        f"(--split {spec}), which the new parts are cut from: score --checkpoint last or a step")


def score_run(ckpt, model, vocab, data=None, batch_size=64, device="cpu", contexts=(None,), part="val",
              precision="auto", progress=False, dynamic=None, parts=None):
    """(one result dict per context length (None: the model's own seq_len), then one for dynamic
    evaluation if dynamic = (lr, decay), (vocab, train ids, scored ids) for the reference rows).
    parts: score this division of the corpus (train.py's --split) instead of the run's own."""
    data = run_corpus(ckpt, data)
    unit = ckpt["train_config"]["unit"]
    split_spec = parts or ckpt["train_config"]["split"]
    run_dir = os.path.dirname(ckpt["path"])
    _, train_ids, scored_ids, _ = load_corpus(data, model.cfg.seq_len, vocab, ckpt["data_fingerprint"], unit=unit,
                                              split_spec=split_spec, part=part, run_dir=run_dir)
    if parts:
        check_parts(ckpt, parts, train_ids, load_corpus(data, model.cfg.seq_len, vocab, ckpt["data_fingerprint"],
                                                         unit=unit, split_spec=ckpt["train_config"]["split"],
                                                         run_dir=run_dir)[1])
    autocast, precision = run_autocast(ckpt, precision, device)
    evaluated_on = record.session(device, precision)
    results = []
    for context in contexts:
        note = "" if context is None else context_note(model.cfg, context)
        if context is not None and context + 1 > len(scored_ids):
            raise UserError(f"--context {context} is longer than the {'validation' if part == 'val' else part} split "
                            f"({len(scored_ids)} {'characters' if unit == 'chars' else 'bytes'})")
        bpc, n_scored = full_pass_bpc(model, train_ids, scored_ids, batch_size, device, context, autocast, progress,
                                      unit[:-1])
        results.append(dict(name=os.path.basename(os.path.normpath(run_dir)), checkpoint=ckpt["path"], data=data,
                            params=sum(p.numel() for p in model.parameters()), steps=ckpt["step"],
                            tokens_seen=tokens_seen(ckpt, model.cfg.seq_len),
                            pos_encoding=model.cfg.pos_encoding, seq_len=model.cfg.seq_len,
                            context=context or model.cfg.seq_len, note=note, unit=unit, split=part,
                            split_spec=split_spec, precision=precision, val_bpc=bpc, val_chars=n_scored,
                            run_dir=run_dir, checkpoint_choice=describe_choice(ckpt), weights=ckpt["weights"],
                            chosen_by_validation=ckpt["chosen_by_validation"], run_record=ckpt["run_record"],
                            evaluated_on=evaluated_on))
    if results[0]["chosen_by_validation"] and part == "val" and len(parse_split(split_spec)) == 3:
        # the validation figure chose this checkpoint: the test split's is the unbiased one
        _, _, test_ids, _ = load_corpus(data, model.cfg.seq_len, vocab, ckpt["data_fingerprint"], unit=unit,
                                        split_spec=split_spec, part="test", run_dir=run_dir)
        results[0]["test_bpc"] = full_pass_bpc(model, train_ids, test_ids, batch_size, device, None, autocast,
                                               progress, unit[:-1])[0]
    if dynamic:
        lr, decay = dynamic
        bpc, _ = dynamic_bpc(model, train_ids, scored_ids, lr, decay, device, None, autocast, progress, unit[:-1])
        results.append(dict(results[0], name=f"{results[0]['name']} (dynamic)", val_bpc=bpc, context=model.cfg.seq_len,
                            note=f"dynamic evaluation, lr {lr:g}, decay {decay:g}: not a static figure",
                            dynamic=dict(lr=lr, decay=decay)))
        results[-1].pop("test_bpc", None)
    return results, (vocab, train_ids, scored_ids)


def fixed_validation_batches(val_ids, cfg, seq_len, device):
    """The eval_batches batches every validation of every run scores (VAL_BATCH_SEED), on the device."""
    val_rng = torch.Generator().manual_seed(VAL_BATCH_SEED)
    return [tuple(t.to(device) for t in get_batch(val_ids, cfg.batch_size, seq_len, val_rng))
            for _ in range(cfg.eval_batches)]


@torch.no_grad()
def validation_loss(model, batches, autocast):
    """Mean cross-entropy (nats) over the fixed validation batches."""
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast:
            total += model(x, y)[1].item()
    model.train()
    return total / len(batches)


def score_checkpoint(model, train_ids, val_ids, autocast):
    """(Full-pass BPC of the model as it is, in eval mode and the run's precision, over the first
    BEST_SCORED units of the validation split; the seconds it took)."""
    start = time.perf_counter()
    model.eval()
    bpc, _ = full_pass_bpc(model, train_ids, val_ids[:BEST_SCORED], device=next(model.parameters()).device,
                           autocast=autocast)
    model.train()
    return bpc, time.perf_counter() - start
