"""Merging what replicas learned apart: running statistics, and parameters weighted by events seen.

Examples
--------
>>> import numpy as np
>>> a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])
>>> n, mean, m2 = merge_moments([moments(a), moments(b)])
>>> n, round(float(mean[0]), 4), round(float(m2[0] / n), 4) == round(float(np.var(np.r_[a, b])), 4)
(5.0, 7.2, True)
>>> import torch
>>> average_states([{"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}], [1, 2])["w"]
tensor([2.])
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

Moments = tuple[float, np.ndarray, np.ndarray]  # count, mean, sum of squared deviations (M2)


def moments(x: np.ndarray) -> Moments:
    """The moments of the rows of ``x`` (one column per feature)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean = x.mean(axis=0)
    return float(len(x)), mean, ((x - mean) ** 2).sum(axis=0)


def merge_moments(parts: Sequence[Moments]) -> Moments:
    """Count, mean and M2 of the union of ``parts`` (Chan et al.'s pairwise update): exactly
    what one pass over all their rows would give, up to rounding."""
    n, mean, m2 = 0.0, None, None
    for nb, mb, m2b in parts:
        if nb == 0:
            continue
        if mean is None:
            n, mean, m2 = nb, np.array(mb, dtype=np.float64), np.array(m2b, dtype=np.float64)
            continue
        total = n + nb
        delta = mb - mean
        mean = mean + delta * nb / total
        m2 = m2 + m2b + delta ** 2 * n * nb / total
        n = total
    if mean is None:
        raise ValueError("nothing to merge: every part is empty")
    return n, mean, m2


def average_states(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of each floating-point tensor of ``states`` (same keys and shapes);
    other entries (integer counters) are taken from the state of largest weight."""
    if len(states) != len(weights) or not states:
        raise ValueError("one weight per state, and at least one state")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    w = w / w.sum()
    heaviest = states[int(torch.argmax(w))]
    out: dict[str, torch.Tensor] = {}
    for key, first in states[0].items():
        if torch.is_floating_point(first):
            acc = sum(wi * s[key].detach().to(torch.float64) for wi, s in zip(w, states))
            out[key] = acc.to(first.dtype)
        else:
            out[key] = heaviest[key].clone()
    return out
