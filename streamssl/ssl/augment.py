"""Augmentations for tabular event vectors, and views composed from them.

An augmentation is a small callable ``(x, generator) -> x'`` on a batch of standardised events
(rows are events). The batches an encoder trains on are drawn from its replay buffer (recent
events plus a reservoir sample of the stream), so "the running marginal" of a feature is
sampled by taking that feature's value from another row of the batch, and "the running std"
of every feature is 1 after standardisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

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
    """Add N(0, scale²) noise (inputs are standardised, so ``scale`` is in units of each
    feature's running std).

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


def mixup(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blend each row with a random other row of the batch: ``λ·x + (1 − λ)·x[j]`` with λ drawn
    uniformly from ``[1 − strength, 1]`` per row (``strength ≤ 0.5`` keeps every view closer to
    its own event than to its partner).

    >>> x = torch.tensor([[0.0], [10.0]])
    >>> bool((mixup(x, 0.0) == x).all())
    True
    >>> out = mixup(x, 0.5, torch.Generator().manual_seed(0))
    >>> bool(((out >= 0) & (out <= 10)).all())
    True
    """
    n = len(x)
    lam = 1 - strength * torch.rand(n, 1, generator=generator, device=x.device)
    partner = torch.randint(0, n, (n,), generator=generator, device=x.device)
    return lam * x + (1 - lam) * x[partner]


class Augmentation(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Resample:
    """:func:`marginal_resample` as a view step."""

    rate: float = 0.3

    def __call__(self, x, generator=None):
        return marginal_resample(x, self.rate, generator)


@dataclass(frozen=True)
class Noise:
    """:func:`gaussian_noise` as a view step."""

    scale: float = 0.1

    def __call__(self, x, generator=None):
        return gaussian_noise(x, self.scale, generator)


@dataclass(frozen=True)
class Mask:
    """:func:`feature_mask` as a view step."""

    rate: float = 0.1

    def __call__(self, x, generator=None):
        return feature_mask(x, self.rate, generator)


@dataclass(frozen=True)
class Mixup:
    """:func:`mixup` as a view step."""

    strength: float = 0.2

    def __call__(self, x, generator=None):
        return mixup(x, self.strength, generator)


class View:
    """A list of augmentations applied in order: one augmented view of a batch.

    >>> view = View([Resample(0.5), Noise(0.0), Mask(0.0)])
    >>> view(torch.zeros(4, 3), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3])
    >>> view
    View([Resample(rate=0.5), Noise(scale=0.0), Mask(rate=0.0)])
    """

    def __init__(self, steps: Sequence[Augmentation]) -> None:
        self.steps = list(steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x

    def __repr__(self) -> str:
        return f"View({self.steps!r})"


def default_view() -> View:
    """The view the two-view objectives use unless told otherwise: SCARF resampling of 30 % of
    the entries, then noise of 0.1 std, then masking of 10 %."""
    return View([Resample(0.3), Noise(0.1), Mask(0.1)])
