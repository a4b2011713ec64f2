"""The encoder that keeps learning from the unlabelled stream."""

from __future__ import annotations

import numpy as np
import torch

from ..device import restore_generator, to_tensor
from .buffer import ReplayBuffer
from .encoder import MLPEncoder
from .objectives import DenoisingAutoencoder


class ContinualEncoder:
    """Trains an encoder with a self-supervised objective on a replay of the stream.

    Every ``every`` observed events, one optimisation step runs on ``batch_size`` events
    drawn from a :class:`ReplayBuffer` (half recent, half older), so the work per event
    stays constant whatever the micro-batch size.

    Parameters
    ----------
    n_features
        Width of the standardised input.
    device
        Where the networks live; inputs are moved one micro-batch at a time.

    Examples
    --------
    >>> import numpy as np
    >>> enc = ContinualEncoder(3, hidden=8, dim=2, every=4, device=torch.device("cpu"))
    >>> enc.observe(np.random.default_rng(0).normal(size=(8, 3)))
    >>> enc.steps, enc.embed(np.zeros((5, 3))).shape
    (2, torch.Size([5, 2]))
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 64,
        dim: int = 32,
        lr: float = 1e-3,
        batch_size: int = 128,
        every: int = 64,
        corruption: float = 0.3,
        buffer_size: int = 1024,
        device: torch.device = torch.device("cpu"),
        seed: int = 0,
    ) -> None:
        self.device = device
        self.batch_size, self.every, self.lr = batch_size, every, lr
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.objective = DenoisingAutoencoder(MLPEncoder(n_features, hidden, dim), corruption).to(device)
        self.optimizer = torch.optim.Adam(self.objective.parameters(), lr=lr)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.buffer = ReplayBuffer(n_features, recent=buffer_size // 2, reservoir=buffer_size // 2, seed=seed)
        self.steps = 0
        self.last_loss: float | None = None
        self._credit = 0  # observed events not yet paid for by a step

    @property
    def encoder(self) -> MLPEncoder:
        return self.objective.encoder

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def observe(self, Z: np.ndarray) -> None:
        """Add standardised events to the replay buffer and take the steps they pay for."""
        self.buffer.add(Z)
        self._credit += len(Z)
        while self._credit >= self.every:
            self._credit -= self.every
            self.step()

    def step(self) -> float:
        """One optimisation step of the objective on a replayed batch; returns the loss."""
        x = to_tensor(self.buffer.sample(self.batch_size), self.device)
        self.objective.train()
        loss = self.objective(x, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        self.last_loss = float(loss.detach())
        return self.last_loss

    @torch.no_grad()
    def embed(self, Z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Embeddings of standardised events (no gradient: the heads see detached features)."""
        x = Z if isinstance(Z, torch.Tensor) else to_tensor(Z, self.device)
        self.objective.eval()
        return self.encoder(x)

    @torch.no_grad()
    def loss_on(self, Z: np.ndarray | torch.Tensor) -> float:
        """The objective's loss on given events, without learning (a drift signal)."""
        x = Z if isinstance(Z, torch.Tensor) else to_tensor(Z, self.device)
        self.objective.eval()
        return float(self.objective(x, self.generator))

    def state_dict(self) -> dict:
        return {
            "objective": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "buffer": self.buffer.state_dict(),
            "steps": self.steps, "last_loss": self.last_loss, "credit": self._credit,
        }

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
        self.buffer.load_state_dict(state["buffer"])
        self.steps, self.last_loss, self._credit = state["steps"], state["last_loss"], state["credit"]
