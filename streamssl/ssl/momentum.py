"""Momentum (EMA) targets: copies of a network that follow it slowly, and their schedule."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that no optimiser will train (``requires_grad`` off).

    >>> net = nn.Linear(2, 2)
    >>> any(p.requires_grad for p in frozen_copy(net).parameters())
    False
    """
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target ← momentum·target + (1 − momentum)·online``, parameter by parameter.

    >>> a, b = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = a.weight.fill_(0.0), b.weight.fill_(1.0)
    >>> ema_update(a, b, 0.9)
    >>> round(a.weight.item(), 3)
    0.1
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError("momentum must be in [0, 1]")
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def momentum_schedule(step: int, start: float = 0.99, end: float = 0.999, steps: int = 2000) -> float:
    """The EMA momentum at ``step``: from ``start`` up to ``end`` along a half cosine over
    ``steps`` steps, then ``end`` for good. (BYOL anneals to 1 at the end of training; a stream
    has no end, and a target that never moves again could not follow a drift.)

    >>> [round(momentum_schedule(s), 6) for s in (0, 1000, 10**6)]
    [0.99, 0.9945, 0.999]
    """
    if step >= steps:
        return end
    return end - (end - start) * (math.cos(math.pi * step / steps) + 1) / 2
