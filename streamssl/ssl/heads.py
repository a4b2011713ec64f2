"""Heads on top of the encoder: one generic projection MLP and one small class per use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import mlp


class ProjectionHead(nn.Module):
    """An MLP ``sizes[0] → … → sizes[-1]`` (GELU between layers).

    >>> ProjectionHead([16, 32, 8])(torch.zeros(3, 16)).shape
    torch.Size([3, 8])
    """

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.net = mlp(self.sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BYOLProjectionHead(ProjectionHead):
    """BYOL's projector (online and target sides) and, with the same shape, its predictor."""

    def __init__(self, dim: int, hidden: int = 64, out: int = 32) -> None:
        super().__init__([dim, hidden, out])


class ExpanderHead(ProjectionHead):
    """VICReg's expander: the loss is computed on a wider space than the embedding."""

    def __init__(self, dim: int, hidden: int = 64, out: int = 64) -> None:
        super().__init__([dim, hidden, out])


class DINOHead(nn.Module):
    """DINO's head: an MLP to a small bottleneck, L2-normalised, then a linear map to
    ``prototypes`` logits.

    >>> DINOHead(16, prototypes=10)(torch.zeros(2, 16)).shape
    torch.Size([2, 10])
    """

    def __init__(self, dim: int, hidden: int = 64, bottleneck: int = 16, prototypes: int = 64) -> None:
        super().__init__()
        self.mlp = mlp([dim, hidden, bottleneck])
        self.last = nn.Linear(bottleneck, prototypes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=1))
