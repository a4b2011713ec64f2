"""The encoder that keeps learning from the unlabelled stream."""

from __future__ import annotations

import numpy as np
import torch
from river import base

from ..device import GeneratorPickling, restore_generator, to_tensor
from . import DEFAULT_OBJECTIVE, OBJECTIVE_NAMES
from .buffer import ReplayBuffer
from .collapse import CollapseMonitor
from .encoder import MLPEncoder
from .objectives import Objective, make_objective


class ContinualEncoder(GeneratorPickling):
    """Trains an encoder with a self-supervised objective on a replay of the stream.

    Every ``every`` observed events, one optimisation step runs on ``batch_size`` events
    drawn from a :class:`ReplayBuffer` (half recent, half older), so the work per event
    stays constant whatever the micro-batch size. The online embeddings of the steps' batches
    feed a :class:`CollapseMonitor` (:attr:`collapse`).

    Parameters
    ----------
    n_features
        Width of the standardised input.
    objective, objective_params
        The self-supervised objective by name (see :data:`~streamssl.ssl.objectives.OBJECTIVES`)
        and its settings. ``corruption`` is the denoising objective's resampling rate.
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
        objective: str = DEFAULT_OBJECTIVE,
        objective_params: dict | None = None,
    ) -> None:
        self.device = device
        self.batch_size, self.every, self.lr = batch_size, every, lr
        settings = dict(objective_params or {})
        if objective == "denoising":
            settings.setdefault("corruption", corruption)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.objective: Objective = make_objective(objective, MLPEncoder(n_features, hidden, dim), **settings)
            self.objective.to(device)
        self.objective_name = objective
        self.optimizer = torch.optim.Adam([p for p in self.objective.parameters() if p.requires_grad], lr=lr)
        self.collapse = CollapseMonitor()  # the encoder's embeddings (what the heads see)
        self.projection_collapse = CollapseMonitor()  # the loss's space, where the objective has one
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.buffer = ReplayBuffer(n_features, recent=buffer_size // 2, reservoir=buffer_size // 2, seed=seed)
        self.steps = 0
        self._last_loss: torch.Tensor | float | None = None  # a tensor until read: no device sync per step
        self._credit = 0  # observed events not yet paid for by a step
        self._boost_until = 0  # steps taken at a raised learning rate run until this one

    def boost(self, factor: float, steps: int) -> None:
        """Learn at ``factor`` times the learning rate for the next ``steps`` steps (after a drift)."""
        self._boost_until = self.steps + steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * factor

    @property
    def boosted(self) -> bool:
        return self.steps < self._boost_until

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

    @property
    def last_loss(self) -> float | None:
        """The loss of the latest step."""
        if isinstance(self._last_loss, torch.Tensor):
            self._last_loss = float(self._last_loss)
        return self._last_loss

    def step(self) -> torch.Tensor:
        """One optimisation step of the objective on a replayed batch; returns the loss (detached)."""
        x = to_tensor(self.buffer.sample(self.batch_size), self.device)
        self.objective.train()
        loss = self.objective(x, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.objective.after_step(self.steps)
        self.collapse.add(self.objective.embedding)
        self.projection_collapse.add(self.objective.projection)
        self.steps += 1
        if self.steps == self._boost_until:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        self._last_loss = loss.detach()
        return self._last_loss

    def collapse_stats(self) -> dict[str, float]:
        """Collapse measures over the recent steps' online embeddings: ``effective_rank``,
        ``embedding_std_mean``, ``embedding_std_min`` (see :mod:`streamssl.ssl.collapse`) and, for
        objectives with a projector or head, ``projection_effective_rank`` (where BYOL-style
        collapse shows first). Empty before the first step."""
        stats = {k: v for k, v in self.collapse.stats().items() if k != "rows"}
        projection = self.projection_collapse.stats()
        if projection:
            stats["projection_effective_rank"] = projection["effective_rank"]
        return stats

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
            "steps": self.steps, "last_loss": self.last_loss, "credit": self._credit, "boost_until": self._boost_until,
            "collapse": {name: None if mon.rows() is None else mon.rows().cpu() for name, mon in self._monitors()},
        }

    def _monitors(self):
        return (("embedding", self.collapse), ("projection", self.projection_collapse))

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
        self.buffer.load_state_dict(state["buffer"])
        self.steps, self._last_loss, self._credit = state["steps"], state["last_loss"], state["credit"]
        self._boost_until = state.get("boost_until", 0)  # absent before 0.3
        for name, mon in self._monitors():
            rows = state.get("collapse", {}).get(name)
            if rows is not None:
                mon.add_rows(rows.to(self.device))


class Encoder(base.Base):
    """The settings of a :class:`~streamssl.learner.StreamLearner`'s self-supervised encoder,
    from which it builds its :class:`ContinualEncoder` at the first event.

    ``objective`` by name (``denoising``, ``masked``, ``infonce``, ``byol``, ``simsiam``,
    ``vicreg``, ``jepa``, ``dino``; InfoNCE, the best mean accuracy of benchmarks/OBJECTIVES.md,
    by default) with its ``objective_params``; an embedding of ``embedding_dim`` through
    ``hidden`` units, learned at ``lr``; one step on a replayed batch of ``batch`` events per
    ``every`` events; ``corruption``, the share of entries the denoising objective resamples.
    After a drift the encoder learns at ``drift_boost`` times its rate for ``boost_events`` events.

    >>> enc = Encoder("vicreg", embedding_dim=4, hidden=8).build(3, device=torch.device("cpu"), seed=0)
    >>> enc.objective_name, enc.embed(np.zeros((2, 3))).shape
    ('vicreg', torch.Size([2, 4]))
    """

    def __init__(self, objective: str = DEFAULT_OBJECTIVE, objective_params: dict | None = None,
                 embedding_dim: int = 16, hidden: int = 64, lr: float = 1e-3, corruption: float = 0.3,
                 every: int = 64, batch: int = 128, drift_boost: float = 3.0, boost_events: int = 500) -> None:
        if objective not in OBJECTIVE_NAMES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVE_NAMES)}")
        self.objective, self.objective_params = objective, objective_params
        self.embedding_dim, self.hidden, self.lr, self.corruption = embedding_dim, hidden, lr, corruption
        self.every, self.batch = every, batch
        self.drift_boost, self.boost_events = drift_boost, boost_events

    def build(self, n_features: int, *, device: torch.device, seed: int) -> ContinualEncoder:
        """The encoder of events ``n_features`` wide."""
        return ContinualEncoder(n_features, self.hidden, self.embedding_dim, self.lr, self.batch, self.every,
                                self.corruption, device=device, seed=seed, objective=self.objective,
                                objective_params=self.objective_params)
