"""Dropout as model.py applies it: F.dropout's numbers, with a cheaper mask on a CPU.

A CPU's dropout mask costs about as much as the matmuls around it in a small bf16 step: one
32-bit random draw an element. keep_mask draws one random byte an element instead, with the
same probability of a drop (experiments/recipe/dropout_cost.txt measures the difference).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def dropout(x, p):
    """Inverted dropout, as F.dropout in training: each element zeroed with probability p, the rest
    scaled by 1 / (1 - p). On a CPU the mask is keep_mask's: dropout 0.1 then adds about half of what
    F.dropout adds to a bf16 training step (experiments/recipe/dropout_cost.txt); elsewhere F.dropout's
    fused kernel runs."""
    if p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p)
    keep = keep_mask(x.shape, p)
    if x.dtype == torch.float32:   # the scale folded into the mask: one multiply each way, the same numbers
        return x * (keep.float() * (1.0 / (1.0 - p)))
    return x * keep * (1.0 / (1.0 - p))   # a bf16 mask would round the scale


def keep_mask(shape, p):
    """A CPU bool mask of `shape`, each element False with probability p, independently.

    One random byte an element: the generator draws 64 bits at a time for 8 elements (torch.rand
    draws 32 bits for each). A byte below p x 256's whole part drops its element, a byte above
    keeps it, and the few equal to it (1 in 256) draw again, dropped with the fraction's
    probability: P(drop) = (whole + fraction) / 256 = p, as exactly as an fp32 uniform."""
    n = math.prod(shape)
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-2**63, None)   # every 64-bit value
    bits = words.view(torch.uint8)[:n]
    whole = int(p * 256)                                 # an int: a float would compare every byte as a float
    fraction = p * 256 - whole
    keep = bits > whole
    ties = (bits == whole).nonzero().squeeze(1)
    keep[ties] = torch.rand(len(ties)) >= fraction
    return keep.view(shape)


class Dropout(nn.Module):
    """nn.Dropout with model.dropout's mask: active in training mode only."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p) if self.training else x
