"""Self-supervised losses as pure functions of tensors."""

from __future__ import annotations

import torch


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between a reconstruction and its clean target.

    >>> reconstruction_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item()
    2.5
    """
    if reconstruction.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(reconstruction.shape)} vs {tuple(target.shape)}")
    return torch.mean((reconstruction - target) ** 2)
