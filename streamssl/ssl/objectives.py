"""Self-supervised objectives: modules that turn a batch of events into a loss.

Each objective owns the encoder it trains plus whatever extra networks it needs
(here a decoder), and declares how many augmented views of a batch it uses.
"""

from __future__ import annotations

import torch
from torch import nn

from .augment import feature_mask, marginal_resample
from .encoder import MLPEncoder, mlp
from .losses import reconstruction_loss


class DenoisingAutoencoder(nn.Module):
    """Corrupt the input (SCARF resampling, then masking), encode it, decode it, and score the
    reconstruction of the *clean* input.

    Parameters
    ----------
    encoder
        The encoder being trained; its ``dim`` is the bottleneck.
    corruption
        Probability that an entry is resampled from its marginal.
    mask
        Probability that an entry is zeroed.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> dae = DenoisingAutoencoder(MLPEncoder(4, hidden=8, dim=2))
    >>> loss = dae(torch.randn(16, 4))
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """

    views = 1

    def __init__(self, encoder: MLPEncoder, corruption: float = 0.3, mask: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= corruption <= 1.0 or not 0.0 <= mask <= 1.0:
            raise ValueError("corruption and mask are probabilities in [0, 1]")
        self.encoder = encoder
        self.decoder = mlp([encoder.dim, encoder.hidden, encoder.n_features])
        self.corruption, self.mask = corruption, mask

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        view = feature_mask(marginal_resample(x, self.corruption, generator), self.mask, generator)
        return reconstruction_loss(self.decoder(self.encoder(view)), x)
