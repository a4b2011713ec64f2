"""Choosing the torch device, once."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when present, otherwise the CPU; anything else is taken as given.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_tensor(X, device: torch.device) -> torch.Tensor:
    """A float32 tensor on ``device`` from a numpy array: one host-to-device copy per micro-batch."""
    t = torch.as_tensor(X, dtype=torch.float32)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a generator's state; a state saved on another device type (CPU vs CUDA
    generators differ) is skipped, leaving the generator as seeded: a run then continues
    correctly but not bit-for-bit."""
    try:
        generator.set_state(state.cpu())
    except RuntimeError:
        pass
