"""The online classification head: a small MLP trained from labelled rows and a replay of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from river import base
from torch import nn
from torch.nn import functional as F

from ..device import GeneratorPickling, restore_generator
from ..ssl.encoder import mlp
from . import mlp_kernels
from .adam import Adam, adam_step
from .compiled import COMPILED_VALUES

Featurize = Callable[[torch.Tensor], torch.Tensor]
COMPILED_ROWS = 16
"""The most rows an MLP head answers through its compiled forward on the CPU: one row of 40
inputs (64 hidden units) 22 against 38 µs in torch calls, 8 rows 30 against 50; from about 32
rows on torch's matrix products win (256 rows: 0.31 against 0.10 ms)."""


class OnlineMLPClassifier(GeneratorPickling):
    """An MLP head learned online, with a FIFO replay of the last labelled rows.

    Each call to :meth:`learn` takes ``steps_per_row`` optimisation steps per unit of label
    weight that arrived (at least ``steps``, at most ``max_steps``), each on the new rows plus
    ``replay_batch`` rows drawn from the replay: a label buys the same learning whether it comes
    alone or in a crowd, so short label-scarce streams are not starved of updates. With
    ``balanced``, replayed rows are drawn so that each class in the replay is as likely (a rare
    class is rehearsed as often as a common one); otherwise uniformly. The replay keeps the *inputs* before
    featurisation, so rows are re-encoded with the current encoder at every step. With
    ``label_smoothing`` ε, the target of a labelled row is 1 − ε on its class and ε spread evenly
    over the classes met so far (a head rehearsing a few dozen labels otherwise drives their
    probabilities to 1 and answers far more confidently than it is right). With
    ``smoothing_halved_at`` h, ε fades as labels come: ε · h / (h + n) after n labelled rows
    remembered, as a prior's pseudo-counts weigh less against more evidence.
    Classes may appear at any time: the output layer grows (capacity doubles) and
    logits of unused slots are masked out.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> head = OnlineMLPClassifier(n_inputs=2, device=torch.device("cpu"))
    >>> head.add_classes(2)
    >>> X = torch.tensor([[2.0, 0.0], [-2.0, 0.0]] * 8)
    >>> y = torch.tensor([1, 0] * 8)
    >>> for _ in range(30):
    ...     head.learn(X, y, torch.ones(16), remember=torch.ones(16, dtype=torch.bool))
    >>> head.predict_proba(torch.tensor([[3.0, 0.0]])).argmax(1).tolist()
    [1]
    """

    label_smoothing = 0.0  # heads pickled before the setting existed
    smoothing_halved_at = None

    def __init__(
        self,
        n_inputs: int,
        hidden: int = 64,
        lr: float = 3e-3,
        replay: int = 256,
        replay_batch: int = 32,
        steps: int = 1,
        device: torch.device = torch.device("cpu"),
        seed: int = 0,
        row_width: int | None = None,
        steps_per_row: float = 2.0,
        max_steps: int = 16,
        balanced: bool = False,
        label_smoothing: float = 0.0,
        smoothing_halved_at: float | None = None,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if smoothing_halved_at is not None and smoothing_halved_at <= 0:
            raise ValueError(f"smoothing_halved_at must be None or > 0, got {smoothing_halved_at}")
        self.n_inputs, self.hidden, self.lr = n_inputs, hidden, lr
        self.label_smoothing, self.smoothing_halved_at = label_smoothing, smoothing_halved_at
        self.row_width = row_width or n_inputs
        self.replay, self.replay_batch, self.steps = replay, replay_batch, steps
        self.steps_per_row, self.max_steps = steps_per_row, max_steps
        self.balanced = balanced  # replay rows drawn so that each class in the replay is as likely
        # Label mass to gather before learning (0: learn each call at once); rows wait in _pending.
        self.group = 0.0
        self._pending: tuple | None = None  # (Z, y, weight, remember, mass) not yet learned
        self.device, self.seed = device, seed
        self.n_classes = 0
        self._capacity = 2
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = mlp([n_inputs, hidden, self._capacity]).to(device)
        self.optimizer = Adam(self.net.parameters(), lr=lr)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._zbuf = torch.zeros(replay, self.row_width, device=device)
        self._ybuf = torch.zeros(replay, dtype=torch.long, device=device)
        self._stored = 0  # labelled rows ever remembered

    def add_classes(self, n_classes: int) -> None:
        """Make room for classes ``0..n_classes-1`` (existing weights are kept)."""
        if n_classes <= self.n_classes:
            return
        if n_classes > self._capacity:
            while self._capacity < n_classes:
                self._capacity *= 2
            old = self.net[-1]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1_000_003 + self._capacity)
                new = nn.Linear(old.in_features, self._capacity).to(self.device)
            with torch.no_grad():
                new.weight[: old.out_features] = old.weight
                new.bias[: old.out_features] = old.bias
            self.net[-1] = new
            self.optimizer = Adam(self.net.parameters(), lr=self.lr)
            self._arrays = None
        self.n_classes = n_classes

    @property
    def smoothing(self) -> float:
        """The ε of the next step's targets (``label_smoothing``, faded by the labels remembered)."""
        h = self.smoothing_halved_at
        return self.label_smoothing if h is None else self.label_smoothing * h / (h + self._stored)

    def _logits(self, H: torch.Tensor) -> torch.Tensor:
        # The network's layers called as functions: the same kernels as calling the module,
        # without nn.Module's dispatch, which costs as much as the arithmetic for one row.
        first, last = self.net[0], self.net[2]
        hidden = F.gelu(torch.addmm(first.bias, H, first.weight.t()))
        return torch.addmm(last.bias, hidden, last.weight.t())[:, : self.n_classes]

    def predict_proba(self, H: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape ``(n, n_classes)``: on the CPU, for at most
        :data:`COMPILED_ROWS` rows of at most :data:`~streamssl.learner.compiled.COMPILED_VALUES`
        inputs, one compiled loop over the weights as they are
        (:func:`~streamssl.learner.mlp_kernels.forward`); else the layers' torch kernels."""
        if self.n_classes == 0:
            return torch.zeros(len(H), 0, device=self.device)
        if H.device.type == "cpu" and H.shape[0] <= COMPILED_ROWS and H.numel() <= COMPILED_VALUES:
            return torch.from_numpy(mlp_kernels.forward(H.detach().numpy(), *self._weights(), self.n_classes))
        with torch.no_grad():
            return torch.softmax(self._logits(H), dim=1)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_arrays"] = None  # views of these parameters: a copy makes its own of its own
        return state

    def _weights(self) -> tuple[np.ndarray, ...]:
        """The layers' weights and biases as numpy arrays sharing the CPU parameters' memory (so
        Adam's in-place steps show in them), kept until a layer is replaced (:meth:`add_classes`)."""
        if getattr(self, "_arrays", None) is None:
            first, last = self.net[0], self.net[2]
            self._arrays = tuple(p.detach().numpy() for p in (first.weight, first.bias, last.weight, last.bias))
        return self._arrays

    def learn(
        self,
        Z: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor,
        featurize: Featurize | None = None,
        remember: torch.Tensor | None = None,
        mass: float | None = None,
    ) -> None:
        """Train on rows ``Z`` with class indices ``y`` and per-row ``weight``, plus replay.

        ``mass`` is the label mass that pays for steps (default: ``weight.sum()``); rows flagged
        in ``remember`` (true labels) join the replay afterwards. While less than ``group`` label
        mass has gathered, rows wait and are learned with those of a later call (or by
        :func:`flush_together`).
        """
        learn_together([Lesson(self, Z, y, weight, featurize, remember, mass)])

    def _plan(self, lesson: "Lesson") -> "_Plan | None":
        """What :meth:`learn` does before its steps: the rows that waited joined to the lesson's,
        the number of steps, and every step's replay rows drawn (``None`` while they wait)."""
        Z, y, weight, remember, mass = lesson.Z, lesson.y, lesson.weight, lesson.remember, lesson.mass
        mass = float(weight.sum()) if mass is None else mass
        if remember is None:
            remember = torch.zeros(len(y), dtype=torch.bool, device=self.device)
        if self._pending is not None:  # rows that waited are learned with these
            pZ, py, pw, pr, pm = self._pending
            Z, y, weight, remember, mass = (torch.cat([pZ, Z]), torch.cat([py, y]), torch.cat([pw, weight]),
                                            torch.cat([pr, remember]), pm + mass)
            self._pending = None
        if mass < self.group and not lesson.now:
            self._pending = (Z, y, weight, remember, mass)
            return None
        n_replay = min(self._stored, self.replay)
        # Steps scale with the label mass that arrived (pseudo-labels count by their weight).
        n_steps = min(self.max_steps, max(self.steps, round(mass * self.steps_per_row)))
        zs = ys = None
        if n_replay:
            # Every step's replay rows drawn at once (on the CPU the generator gives the same
            # draws as step by step) and gathered at once; each step adds them to the new rows.
            draws = n_steps * self.replay_batch
            if self.balanced:
                idx = torch.multinomial(self.replay_chances(), draws, replacement=True, generator=self.generator)
            else:
                idx = torch.randint(0, n_replay, (draws,), generator=self.generator, device=self.device)
            idx = idx.view(n_steps, self.replay_batch)
            zs, ys = self._zbuf[idx], self._ybuf[idx]
            weight = torch.cat([weight, torch.ones(self.replay_batch, device=self.device)])
        return _Plan(self, lesson.featurize or (lambda x: x), Z, y, weight, remember, n_steps, zs, ys)

    @torch.no_grad()
    def _step(self, H: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> None:
        """One optimiser step on the weighted mean cross-entropy of rows ``H``."""
        _step_together([self], [H], [y], (weight / weight.sum()).unsqueeze(1))

    def replay_chances(self) -> torch.Tensor:
        """Each stored row's chance to be drawn for replay: with ``balanced``, every class in the
        replay has the same total chance, shared by its rows; otherwise every row the same."""
        stored = self._ybuf[: min(self._stored, self.replay)]
        if not self.balanced:
            return torch.full((len(stored),), 1.0 / max(1, len(stored)), device=self.device)
        per_row = 1.0 / torch.bincount(stored, minlength=self.n_classes).float()[stored]
        return per_row / per_row.sum()

    def _remember(self, Z: torch.Tensor, y: torch.Tensor) -> None:
        Z, y = Z[-self.replay:], y[-self.replay:]
        idx = (self._stored + torch.arange(len(Z), device=self.device)) % self.replay
        self._zbuf[idx], self._ybuf[idx] = Z, y
        self._stored += len(Z)

    def state_dict(self) -> dict:
        return {
            "n_classes": self.n_classes, "capacity": self._capacity, "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "zbuf": self._zbuf, "ybuf": self._ybuf, "stored": self._stored,
            "pending": None if self._pending is None else list(self._pending),
        }

    def load_state_dict(self, state: dict) -> None:
        self.add_classes(state["capacity"])  # rebuilds the output layer at the saved capacity
        self.n_classes = state["n_classes"]
        self.net.load_state_dict(state["net"])
        self._arrays = None  # loaded in place, but a view made before is not relied on
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
        self._zbuf, self._ybuf = state["zbuf"].to(self.device), state["ybuf"].to(self.device)
        self._stored = state["stored"]
        pending = state.get("pending")  # absent in checkpoints from before grouping
        self._pending = None if pending is None else (*(t.to(self.device) for t in pending[:4]), float(pending[4]))



@dataclass
class Lesson:
    """What one head is to learn: :meth:`OnlineMLPClassifier.learn`'s arguments (``now``: learned
    with the rows that wait however little label mass has gathered, as :func:`flush_together`)."""

    mlp: OnlineMLPClassifier
    Z: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    featurize: Featurize | None = None
    remember: torch.Tensor | None = None
    mass: float | None = None
    now: bool = False


@dataclass
class _Plan:
    """A lesson ready for its steps: rows (with those that waited), every step's replay drawn."""

    mlp: OnlineMLPClassifier
    featurize: Featurize
    Z: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor  # of a step's rows: the new ones, then the replayed ones
    remember: torch.Tensor
    n_steps: int
    zs: torch.Tensor | None  # (n_steps, replay_batch, width): each step's replayed rows
    ys: torch.Tensor | None  # (n_steps, replay_batch): their classes

    def inputs(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``i``'s featurised rows (the new ones, then its replayed ones) and their classes."""
        if self.zs is None:
            return self.featurize(self.Z), self.y
        return self.featurize(torch.cat([self.Z, self.zs[i]])), torch.cat([self.y, self.ys[i]])

    def key(self) -> tuple:
        """What heads stepping together must share: steps, rows, shapes and Adam's settings."""
        head = self.mlp
        return (self.n_steps, len(self.weight), head.hidden, head.n_classes, head.net[2].out_features,
                head.optimizer.settings(), head.device)


def learn_together(lessons: Sequence[Lesson]) -> None:
    """Each lesson learned by its head as :meth:`OnlineMLPClassifier.learn` learns it, the heads
    whose steps match (as many steps on as many rows with the same weights, the same shapes and
    Adam settings: the main MLP, its challenger and the one on the event's own features, all
    learning a batch's labels) in the same steps: the element-wise work of a step done once on
    their stacked activations, and one Adam update, with each head's own arithmetic, so each
    ends with the weights it would have had alone, to the bit on the CPU
    (tests/learner/test_classifier.py). A step of two heads on 35 rows took 587 µs against 389 µs
    for one (this 2-core machine): three quarters of the time of stepping them apart."""
    plans = [plan for plan in (lesson.mlp._plan(lesson) for lesson in lessons) if plan is not None]
    groups: list[tuple[tuple | None, list[_Plan]]] = []
    for plan in plans:
        key = plan.key() if len(plans) > 1 else None
        for first, group in groups:
            if first == key and torch.equal(group[0].weight, plan.weight):
                group.append(plan)
                break
        else:
            groups.append((key, [plan]))
    for _, group in groups:
        mlps, weight = [plan.mlp for plan in group], group[0].weight
        share = (weight / weight.sum()).unsqueeze(1)  # each row's share of a step's loss
        for i in range(group[0].n_steps):
            Hs, ys = zip(*(plan.inputs(i) for plan in group))
            _step_together(mlps, Hs, ys, share)
    for plan in plans:
        if bool(plan.remember.any()):
            plan.mlp._remember(plan.Z[plan.remember], plan.y[plan.remember])


def flush_together(heads: Sequence[tuple[OnlineMLPClassifier, Featurize | None]]) -> None:
    """Each head of ``(head, featurize)`` learns the rows waiting for its ``group`` to fill, now,
    in the same steps where they match (:func:`learn_together`)."""
    learn_together([Lesson(head, *(t[:0] for t in head._pending[:3]), featurize, mass=0.0, now=True)
                    for head, featurize in heads if head._pending is not None])


def _stacked(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


@torch.no_grad()
def _step_together(mlps: Sequence[OnlineMLPClassifier], Hs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
                   share: torch.Tensor) -> None:
    """One optimiser step of each head on the weighted mean cross-entropy of its rows ``Hs[i]``
    (classes ``ys[i]``; ``share``: each row's weight over their sum, shape ``(rows, 1)``, the same
    for all heads), one Adam update for all (:func:`~streamssl.learner.adam.adam_step`). The heads
    share classes, hidden units and Adam's settings (:func:`learn_together`).

    The network is two linear layers with a GELU between them, so the gradients are written
    out: at this size autograd's bookkeeping costs as much as the arithmetic (a step on 45 rows
    of 32 features: 0.41 ms with autograd, 0.21 ms written out in torch calls, on 2 cores). On the
    CPU each head's are one compiled loop (:func:`~streamssl.learner.mlp_kernels.gradients`) for
    rows of at most :data:`~streamssl.learner.compiled.COMPILED_VALUES` inputs, as the torch
    calls' own cost was most of a step's (three heads, 45 rows of 40 inputs: 255 against 398 µs;
    about even at 300 inputs; 1,000: 1.48 against 0.96 ms); on a GPU and for wider rows, torch's
    (:func:`_torch_gradients`)."""
    if Hs[0].device.type != "cpu":
        grads = _torch_gradients(mlps, Hs, ys, share)
    else:
        grads = [_compiled_gradients(head, H, y, share) if H.numel() <= COMPILED_VALUES
                 else _torch_gradients([head], [H], [y], share)[0] for head, H, y in zip(mlps, Hs, ys)]
    adam_step([head.optimizer for head in mlps], grads)


def _compiled_gradients(head: OnlineMLPClassifier, H: torch.Tensor, y: torch.Tensor,
                        share: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One head's gradients on the CPU (:func:`~streamssl.learner.mlp_kernels.gradients`), in its
    parameters' order."""
    k, eps = head.n_classes, head.smoothing
    # eps - 1 and eps / k rounded to float32 once, as the torch path's targets are
    minus, spread = (float(np.float32(v)) for v in (eps - 1.0, eps / k))
    # Rows made contiguous (a head on the event's own features takes a slice of the columns):
    # one compiled variant, whose loops run lanes wide.
    grads = mlp_kernels.gradients(np.ascontiguousarray(H.detach().numpy()), y.numpy(), share.numpy()[:, 0],
                                  *head._weights(), k, minus, spread)
    return tuple(torch.from_numpy(g) for g in grads)


def _torch_gradients(mlps: Sequence[OnlineMLPClassifier], Hs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
                     share: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Each head's gradients in torch calls. Each head's products are its own (``addmm`` and
    ``@`` on its 2-D tensors, as stepping alone: a batched product takes other kernels for a few
    rows, with other roundings); the element-wise work between them runs once on the heads'
    stacked activations."""
    k, lasts = mlps[0].n_classes, [head.net[2] for head in mlps]
    full = k == lasts[0].out_features  # else the rows of classes not met yet get no gradient
    w2 = [last.weight if full else last.weight[:k] for last in lasts]
    a = _stacked([torch.addmm(head.net[0].bias, H, head.net[0].weight.t()) for head, H in zip(mlps, Hs)])
    cdf = (a * mlp_kernels.SQRT_HALF).erf_().add_(1.0).mul_(0.5)  # GELU: a * Phi(a)
    h = a * cdf
    b2 = [last.bias if full else last.bias[:k] for last in lasts]
    g = torch.softmax(_stacked([torch.addmm(b, h_i, w.t()) for b, h_i, w in zip(b2, h, w2)]), dim=2)
    # Minus the target: 1 - eps on the label's class, eps / k on every class (each head its eps).
    # (eps - 1 and eps / k computed in Python, then rounded once, whatever the heads' number.)
    eps = [head.smoothing for head in mlps]
    minus, spread = torch.tensor([[e - 1.0 for e in eps], [e / k for e in eps]], dtype=g.dtype,
                                 device=g.device).view(2, -1, 1, 1)
    g.scatter_add_(2, _stacked(ys).unsqueeze(2), minus.expand(-1, len(share), 1))
    g -= spread
    g *= share
    # Phi'(a) written with in-place steps in the order of cdf + a * exp(-a^2 / 2) / sqrt(2 pi).
    slope = (a * -0.5).mul_(a).exp_().mul_(a).mul_(mlp_kernels.INV_SQRT_2PI).add_(cdf)
    grads = []
    for H, last, w, g_i, h_i, slope_i in zip(Hs, lasts, w2, g, h, slope):
        if full:
            d_last_w, d_last_b = g_i.t() @ h_i, g_i.sum(0)
        else:
            d_last_w, d_last_b = torch.zeros_like(last.weight), torch.zeros_like(last.bias)
            d_last_w[:k], d_last_b[:k] = g_i.t() @ h_i, g_i.sum(0)
        da = (g_i @ w).mul_(slope_i)
        grads.append((da.t() @ H, da.sum(0), d_last_w, d_last_b))
    return grads


class MLPHead(base.Base):
    """The settings every MLP head of a :class:`~streamssl.learner.StreamLearner` is built from
    (the main head, its challengers and the head on the event's own features): ``hidden``
    units, Adam's ``lr``, a replay of the last ``replay`` labelled rows (drawn class-balanced
    with ``balanced_replay``), and per update ``steps_per_label`` steps per unit of label
    weight, at least ``steps`` and at most ``max_steps``, and targets smoothed by
    ``label_smoothing``, fading with ``smoothing_halved_at`` (see :class:`OnlineMLPClassifier`).

    >>> head = MLPHead(hidden=8).build(3, device=torch.device("cpu"), seed=0)
    >>> head.hidden, head.balanced, head.predict_proba(torch.zeros(2, 3)).shape
    (8, True, torch.Size([2, 0]))
    """

    label_smoothing = 0.0  # settings pickled before it existed learn as they did
    smoothing_halved_at = None

    def __init__(self, hidden: int = 64, lr: float = 3e-3, replay: int = 256, balanced_replay: bool = True,
                 steps: int = 1, steps_per_label: float = 2.0, max_steps: int = 16,
                 label_smoothing: float = 0.1, smoothing_halved_at: float | None = 256) -> None:
        if hidden < 1 or lr <= 0 or replay < 1 or steps < 1 or steps_per_label < 0 or max_steps < steps \
                or not 0.0 <= label_smoothing < 1.0 or (smoothing_halved_at is not None and smoothing_halved_at <= 0):
            raise ValueError("MLPHead needs hidden, replay and steps >= 1, lr > 0, steps_per_label >= 0, "
                             "max_steps >= steps, 0 <= label_smoothing < 1 and smoothing_halved_at None or > 0")
        self.hidden, self.lr, self.replay, self.balanced_replay = hidden, lr, replay, balanced_replay
        self.steps, self.steps_per_label, self.max_steps = steps, steps_per_label, max_steps
        self.label_smoothing, self.smoothing_halved_at = label_smoothing, smoothing_halved_at

    def build(self, n_inputs: int, *, device: torch.device, seed: int,
              row_width: int | None = None) -> OnlineMLPClassifier:
        """A head on ``n_inputs`` features (its replay keeps rows ``row_width`` wide)."""
        return OnlineMLPClassifier(
            n_inputs, self.hidden, self.lr, self.replay, steps=self.steps, device=device, seed=seed,
            row_width=row_width, steps_per_row=self.steps_per_label, max_steps=self.max_steps,
            balanced=self.balanced_replay, label_smoothing=self.label_smoothing,
            smoothing_halved_at=self.smoothing_halved_at,
        )
