"""The encoder network and the small MLP blocks it is built from."""

from __future__ import annotations

from torch import nn


def mlp(sizes: list[int], activation: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last).

    >>> mlp([4, 8, 2])
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): GELU(approximate='none')
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Maps a standardised event vector to an embedding.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> MLPEncoder(5, hidden=16, dim=3)(torch.zeros(2, 5)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features: int, hidden: int = 64, dim: int = 32) -> None:
        super().__init__()
        self.n_features, self.hidden, self.dim = n_features, hidden, dim
        self.net = mlp([n_features, hidden, dim])

    def forward(self, x):
        return self.net(x)
