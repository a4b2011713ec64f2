"""Augmentations for tabular event vectors: each is a small function of a batch."""

from __future__ import annotations

import torch


def marginal_resample(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SCARF-style corruption: each entry, with probability ``rate``, is replaced by the same
    feature's value in a random row of the batch (a draw from that feature's marginal).

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.arange(6.0).reshape(3, 2)
    >>> bool((marginal_resample(x, 0.0, g) == x).all())
    True
    >>> out = marginal_resample(x, 1.0, g)
    >>> bool(torch.isin(out[:, 0], x[:, 0]).all() and torch.isin(out[:, 1], x[:, 1]).all())
    True
    """
    n, d = x.shape
    mask = torch.rand(n, d, generator=generator, device=x.device) < rate
    rows = torch.randint(0, n, (n, d), generator=generator, device=x.device)
    donors = torch.gather(x, 0, rows)
    return torch.where(mask, donors, x)


def gaussian_noise(x: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, scale²) noise (inputs are standardised, so ``scale`` is in units of std).

    >>> x = torch.zeros(2, 3)
    >>> bool((gaussian_noise(x, 0.0) == x).all())
    True
    """
    return x + scale * torch.randn(x.shape, generator=generator, device=x.device)


def feature_mask(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each entry (its running mean, after standardisation) with probability ``rate``.

    >>> x = torch.ones(2, 4)
    >>> feature_mask(x, 1.0).sum().item()
    0.0
    """
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= rate
    return x * keep
