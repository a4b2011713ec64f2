"""Self-supervision over time: a window of recent events learns to predict the next one's latent."""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..device import GeneratorPickling
from ..ssl.encoder import mlp
from ..ssl.momentum import ema_update, frozen_copy
from .temporal import TemporalContext


def next_latent_loss(predicted: torch.Tensor, target: torch.Tensor, variance_weight: float = 1.0) -> torch.Tensor:
    """``2 − 2·cos`` between predicted and (stop-gradient) target latents, plus a hinge that keeps
    each dimension of the prediction's batch std above 1 (against collapse).

    >>> p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> float(next_latent_loss(p, p, variance_weight=0.0))
    0.0
    >>> float(next_latent_loss(p, -p, variance_weight=0.0))
    4.0
    """
    cos = (F.normalize(predicted, dim=1) * F.normalize(target.detach(), dim=1)).sum(1)
    std = torch.sqrt(predicted.var(0, unbiased=False) + 1e-4)
    return (2 - 2 * cos).mean() + variance_weight * F.relu(1 - std).mean()


class LearnedTemporalContext(GeneratorPickling, TemporalContext):
    """Each event becomes ``[x_t, f(x_{t−W+1..t})]``: a learned embedding of the window of the last
    ``window`` events, no label used.

    JEPA-style: the context encoder ``f`` sees the window ending at ``t−1``; a predictor maps its
    embedding to the embedding that an EMA copy of ``f`` (no gradient) gives the window ending at
    ``t``. Predicting what comes next in latent space, not the raw values, is what makes the
    embedding summarise the recent past, as hand-made moving averages do. Every ``every`` events
    one step runs on ``batch_size`` windows drawn from the last ``history`` events. Windows run
    across the whole stream in arrival order (keys are not used). Same interface as
    :class:`TemporalContext` (``transform``, ``update``, ``recall``).

    >>> ctx = LearnedTemporalContext(2, window=4, dim=3, every=8, batch_size=8, seed=0)
    >>> out = ctx.update(np.random.default_rng(0).normal(size=(40, 2)))
    >>> out.shape, ctx.steps > 0
    ((40, 5), True)
    """

    def __init__(self, n_features: int, window: int = 16, hidden: int = 64, dim: int = 16, lr: float = 1e-3,
                 ema: float = 0.99, batch_size: int = 128, every: int = 64, history: int = 4096,
                 recall_values: int = 4_000_000, seed: int = 0, device: torch.device = torch.device("cpu")) -> None:
        self.n_features, self.window, self.dim, self.ema = n_features, window, dim, ema
        self.batch_size, self.every, self.history = batch_size, every, history
        self.device = device
        super().__init__(spans=(), recall_values=recall_values)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.context = mlp([window * n_features, hidden, dim]).to(device)
            self.predictor = mlp([dim, hidden, dim]).to(device)
        self.target = frozen_copy(self.context)
        self.optimizer = torch.optim.Adam([*self.context.parameters(), *self.predictor.parameters()], lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.past = np.zeros((0, n_features))  # the last `history` events, oldest first
        self.steps, self.last_loss, self._credit = 0, None, 0

    def n_outputs(self, n_features: int) -> int:
        return n_features + self.dim

    def _windows(self, seq: np.ndarray) -> torch.Tensor:
        """Every window of ``window`` consecutive rows of ``seq``, flattened."""
        t = torch.as_tensor(seq, dtype=torch.float32, device=self.device)
        return t.unfold(0, self.window, 1).transpose(1, 2).reshape(-1, self.window * self.n_features)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        # Windows are compared in standardised units of the recent past (only the past: the
        # batch itself would leak later events into earlier ones).
        if len(self.past) < 2:
            return X
        return (X - self.past.mean(0)) / (self.past.std(0) + 1e-6)

    def _features(self, X: np.ndarray, keys: Sequence[Hashable] | None) -> tuple[np.ndarray, dict]:
        X = np.asarray(X, dtype=np.float64)
        seq = np.vstack([self.past[-(self.window - 1):], X]) if len(self.past) else X
        pad = self.window - 1 - (len(seq) - len(X))
        if pad > 0:  # the very first events: repeat the first one as its own past
            seq = np.vstack([np.repeat(seq[:1], pad, axis=0), seq])
        with torch.no_grad():
            emb = self.context(self._windows(self._scale(seq))).cpu().numpy()
        return np.hstack([X, emb]), {}

    def update(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        out = super().update(X, keys)
        self.past = np.vstack([self.past, np.asarray(X, dtype=np.float64)])[-self.history:]
        self._credit += len(X)
        while self._credit >= self.every and len(self.past) > self.window + 1:
            self._credit -= self.every
            self.step()
        return out

    def step(self) -> float:
        """One optimisation step on windows drawn from the recent past."""
        seq = self._scale(self.past)
        wins = self._windows(seq)  # wins[i] ends at row i + window − 1
        idx = torch.randint(0, len(wins) - 1, (min(self.batch_size, len(wins) - 1),), generator=self.generator)
        loss = next_latent_loss(self.predictor(self.context(wins[idx])), self.target(wins[idx + 1]))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        ema_update(self.target, self.context, self.ema)
        self.steps, self.last_loss = self.steps + 1, float(loss.detach())
        return self.last_loss

    def state_dict(self) -> dict:
        return {**super().state_dict(), "nets": {"context": self.context.state_dict(),
                                                 "predictor": self.predictor.state_dict(),
                                                 "target": self.target.state_dict()},
                "optimizer": self.optimizer.state_dict(), "past": self.past, "steps": self.steps,
                "credit": self._credit}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for name, net in (("context", self.context), ("predictor", self.predictor), ("target", self.target)):
            net.load_state_dict(state["nets"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.past = np.asarray(state["past"], dtype=np.float64)
        self.steps, self._credit = state["steps"], state["credit"]
