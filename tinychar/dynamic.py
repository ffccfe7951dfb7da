"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"; 2019
for transformers): the model adapts to the text it is scoring, as it reads it.

The scored split is read once, in order, by eval.py's scoring windows (eval.dynamic_bpc) (seq_len long, stride
seq_len / 2, each scoring its new targets). For each window, its new targets are scored first,
exactly as the static pass scores them (same forward, one window at a time); then the model takes
one gradient step on those same targets' mean loss: SGD with learning rate `lr`, and every weight
pulled back toward its trained value by the fraction `decay` (Krause et al.'s decay toward the
global weights, which keeps a long text from dragging the model away). So the score of a
character depends on the text before it only, never on itself or on what follows; with lr 0 the
figures are the static pass's. A copy of the model adapts: the trained checkpoint is never changed.

Dynamic figures answer another question than static ones (how well the model predicts a text it
may learn from as it goes) and are reported in rows of their own, never mixed with static ones.
"""
import copy
import sys
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


def dynamic_nats(model, stream, n_context, windows, window, lr, decay=0.0, device="cpu", autocast=nullcontext(),
                 progress=False, unit="char"):
    """Cross-entropy in nats of every target stream[n_context:], each scored once and in order by a
    model that takes a gradient step on each window's targets after scoring them: a float64 NumPy
    array, as eval.stream_nats. windows: eval.scoring_windows(n_context, targets, window)."""
    stream = np.asarray(stream)
    adapting = copy.deepcopy(model).eval()   # eval mode: no dropout while scoring or adapting
    params = [p for p in adapting.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    n_scored = len(stream) - n_context
    nats = np.empty(n_scored)
    bar = tqdm(total=n_scored, unit=unit, unit_scale=True, file=sys.stderr, delay=3, leave=False,
               disable=not progress, dynamic_ncols=True)
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

