"""A fixed-size ring of past embeddings, used as extra negatives by contrastive objectives."""

from __future__ import annotations

import torch
from torch import nn


class MemoryBank(nn.Module):
    """The last ``size`` embeddings added (detached), oldest overwritten first. Its contents are
    buffers, so they move with ``.to(device)`` and are saved in ``state_dict()``.

    >>> bank = MemoryBank(size=3, dim=2)
    >>> len(bank.negatives())
    0
    >>> bank.add(torch.ones(2, 2)); bank.add(torch.zeros(2, 2))
    >>> bank.negatives().shape, bank.negatives().sum().item()
    (torch.Size([3, 2]), 2.0)
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError("a memory bank needs a size of at least 1")
        self.size, self.dim = size, dim
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("written", torch.zeros((), dtype=torch.long))
        self._filled = 0  # rows held, mirrored on the host: no device sync to read it

    @torch.no_grad()
    def add(self, z: torch.Tensor) -> None:
        z = z.detach()[-self.size:]
        idx = (self.written + torch.arange(len(z), device=self.bank.device)) % self.size
        self.bank[idx] = z.to(self.bank.dtype)
        self.written += len(z)
        self._filled = min(self.size, self._filled + len(z))

    def negatives(self) -> torch.Tensor:
        """What the bank holds now (fewer than ``size`` rows until it has filled)."""
        return self.bank[: self._filled]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._filled = min(int(self.written), self.size)
