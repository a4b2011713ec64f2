"""The streaming learner: standardiser, self-supervised encoder, online head, pseudo-labels, drift."""

from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np
import torch
from river import base

from ..device import resolve_device, to_tensor
from ..drift.monitor import DriftEvent, DriftMonitor
from ..ssl.continual import ContinualEncoder
from .classifier import OnlineMLPClassifier
from .pseudo import PseudoLabelPolicy
from .standardize import OnlineStandardizer


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


class StreamLearner(base.Classifier):
    """A classifier for drifting, label-scarce streams that also learns from unlabelled events.

    Each event goes through online standardisation; optionally a self-supervised encoder
    (denoising autoencoder, trained continually on a replay of the unlabelled stream) adds an
    embedding; an MLP head classifies ``[embedding, standardised features]``. The head learns
    from true labels (with a replay of recent ones) and from pseudo-labels that pass a
    :class:`PseudoLabelPolicy`. A :class:`DriftMonitor` watches the error on labelled events and
    the confidence on unlabelled ones; a background head trained only on recent labels
    replaces the current one when it proves better after a warning or drift.

    It follows river's classifier contract (``learn_one``, ``predict_proba_one``,
    ``predict_one``) and adds micro-batch methods on numpy arrays (``learn_many``,
    ``predict_proba_many``, ``predict_many``). A missing label (``None`` or NaN) means
    "unlabelled". Labels that arrive late for events already passed to ``learn_many`` go to
    :meth:`learn_late_labels`, so those events are not counted twice by the unsupervised parts.

    Both mechanisms of the mission, the encoder and pseudo-labels, are switches that default
    to off: on six real streams at 5 % labels (3 seeds, see the README) neither beat the
    learner without them. Turn them on with ``encoder=True`` / ``pseudo_labels=True``.

    Parameters
    ----------
    encoder
        Use the self-supervised encoder (``False``: the head sees standardised features only).
    embedding_dim, encoder_hidden, encoder_lr, corruption
        Encoder size, learning rate, and the share of entries its denoising task corrupts.
    ssl_every
        One encoder step per this many observed events (a batch of ``ssl_batch`` replayed events).
    head_hidden, head_lr, head_replay
        The MLP head: hidden units, Adam learning rate, labelled replay size.
    head_steps, head_steps_per_label, head_max_steps
        Optimisation steps of the head per update: ``head_steps_per_label`` per unit of label
        weight that arrived, at least ``head_steps`` and at most ``head_max_steps``.
    pseudo_labels
        Learn from accepted pseudo-labels.
    threshold, warmup_labels, pseudo_weight, class_slack, drift_cooldown
        Guards of the pseudo-labelling policy (see :class:`PseudoLabelPolicy`).
    challenger_min_labels, challenger_patience, challenger_margin
        The background head replaces the current one once it has been scored on at least
        ``challenger_min_labels`` labels and leads by ``challenger_margin`` (share of those
        labels); it is dropped after ``challenger_patience`` labels without winning.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``; chosen once.
    seed
        Seeds every random choice, so a run repeats exactly on the same device.

    Examples
    --------
    >>> import numpy as np
    >>> from river import datasets, evaluate, metrics
    >>> model = StreamLearner(seed=0)
    >>> evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    Accuracy: 8...%

    Micro-batches on numpy arrays, with ``None`` for unlabelled events:

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 4))
    >>> y = [int(v) if i % 4 == 0 else None for i, v in enumerate(X[:, 0] > 0)]
    >>> model = StreamLearner(encoder=True, pseudo_labels=True, seed=0)
    >>> for _ in range(5):
    ...     model.learn_many(X, y)
    >>> model.classes_, model.predict_proba_many(X[:3]).shape
    ([1, 0], (3, 2))
    """

    def __init__(
        self,
        encoder: bool = False,
        embedding_dim: int = 16,
        encoder_hidden: int = 64,
        encoder_lr: float = 1e-3,
        corruption: float = 0.3,
        ssl_every: int = 64,
        ssl_batch: int = 128,
        head_hidden: int = 64,
        head_lr: float = 3e-3,
        head_replay: int = 256,
        head_steps: int = 1,
        head_steps_per_label: float = 2.0,
        head_max_steps: int = 16,
        pseudo_labels: bool = False,
        threshold: float = 0.99,
        warmup_labels: int = 100,
        pseudo_weight: float = 0.3,
        class_slack: float = 1.5,
        drift_cooldown: int = 500,
        challenger_min_labels: int = 30,
        challenger_patience: int = 500,
        challenger_margin: float = 0.05,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.encoder = encoder
        self.embedding_dim = embedding_dim
        self.encoder_hidden = encoder_hidden
        self.encoder_lr = encoder_lr
        self.corruption = corruption
        self.ssl_every = ssl_every
        self.ssl_batch = ssl_batch
        self.head_hidden = head_hidden
        self.head_lr = head_lr
        self.head_replay = head_replay
        self.head_steps = head_steps
        self.head_steps_per_label = head_steps_per_label
        self.head_max_steps = head_max_steps
        self.pseudo_labels = pseudo_labels
        self.threshold = threshold
        self.warmup_labels = warmup_labels
        self.pseudo_weight = pseudo_weight
        self.class_slack = class_slack
        self.drift_cooldown = drift_cooldown
        self.challenger_min_labels = challenger_min_labels
        self.challenger_patience = challenger_patience
        self.challenger_margin = challenger_margin
        self.device = device
        self.seed = seed
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self._device = resolve_device(self.device)
        self.standardizer = OnlineStandardizer()
        self.policy = PseudoLabelPolicy(
            self.threshold, self.warmup_labels, self.pseudo_weight, self.class_slack, self.drift_cooldown
        )
        self.monitor = DriftMonitor()
        self.feature_names_: list[Hashable] | None = None
        self.classes_: list[Hashable] = []
        self._class_index: dict[Hashable, int] = {}
        self.n_features_: int | None = None
        self.ssl: ContinualEncoder | None = None
        self.head: OnlineMLPClassifier | None = None
        self.challenger: OnlineMLPClassifier | None = None
        self._duel = [0, 0, 0]  # labels scored since the challenger started, main correct, challenger correct
        self._heads_made = 0
        self.n_seen = 0
        self.labels_used = 0
        self.swaps = 0
        # Rows of the last learn_many batch accepted as pseudo-labels, and their labels.
        self.last_pseudo_labels: tuple[np.ndarray, list[Hashable]] = (np.zeros(0, dtype=np.int64), [])
        self.last_confidence: float | None = None

    @property
    def _multiclass(self) -> bool:
        return True

    def _build(self, n_features: int) -> None:
        self.n_features_ = n_features
        if self.encoder:
            self.ssl = ContinualEncoder(
                n_features, self.encoder_hidden, self.embedding_dim, self.encoder_lr, self.ssl_batch,
                self.ssl_every, self.corruption, device=self._device, seed=self.seed,
            )
        self.head = self._new_head()

    def _new_head(self) -> OnlineMLPClassifier:
        n_inputs = self.n_features_ + (self.embedding_dim if self.encoder else 0)
        head = OnlineMLPClassifier(
            n_inputs, self.head_hidden, self.head_lr, self.head_replay, steps=self.head_steps,
            device=self._device, seed=self.seed + 7919 * self._heads_made, row_width=self.n_features_,
            steps_per_row=self.head_steps_per_label, max_steps=self.head_max_steps,
        )
        self._heads_made += 1
        head.add_classes(len(self.classes_))
        return head

    # --------------------------------------------------------------- features
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array of events, got shape {X.shape}")
        if self.n_features_ is not None and X.shape[1] != self.n_features_:
            raise ValueError(f"expected {self.n_features_} features, got {X.shape[1]}")
        if not np.isfinite(X).all():
            raise ValueError("events contain NaN or infinite values")
        return X

    def _featurize(self, Z: torch.Tensor) -> torch.Tensor:
        if self.ssl is None:
            return Z
        return torch.cat([self.ssl.embed(Z), Z], dim=1)

    def _vector(self, x: dict) -> np.ndarray:
        if self.feature_names_ is None:
            self.feature_names_ = list(x)
        fill = self.standardizer.mean if self.standardizer.mean is not None else np.zeros(len(self.feature_names_))
        return np.array([[float(x.get(k, fill[i])) for i, k in enumerate(self.feature_names_)]])

    def _encode_labels(self, labels: Sequence[Hashable]) -> np.ndarray:
        for label in labels:
            if label not in self._class_index:
                self._class_index[label] = len(self.classes_)
                self.classes_.append(label)
        for head in (self.head, self.challenger):
            if head is not None:
                head.add_classes(len(self.classes_))
        return np.array([self._class_index[label] for label in labels], dtype=np.int64)

    # -------------------------------------------------------------- predicting
    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, len(classes_))``, columns in the order of ``classes_``."""
        X = self._check(X)
        if self.head is None or not self.classes_:
            return np.zeros((len(X), len(self.classes_)))
        return self._proba(to_tensor(self.standardizer.transform(X), self._device)).cpu().numpy().astype(np.float64)

    def _proba(self, Z: torch.Tensor, head: OnlineMLPClassifier | None = None) -> torch.Tensor:
        return (head or self.head).predict_proba(self._featurize(Z))

    def predict_many(self, X: np.ndarray) -> list[Hashable | None]:
        """The most probable class of each event (``None`` before any label was seen)."""
        proba = self.predict_proba_many(X)
        if proba.shape[1] == 0:
            return [None] * len(proba)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def predict_proba_one(self, x: dict) -> dict[Hashable, float]:
        if self.head is None:
            return {}
        proba = self.predict_proba_many(self._vector(x))[0]
        return dict(zip(self.classes_, proba.tolist()))

    # ---------------------------------------------------------------- learning
    def learn_one(self, x: dict, y: Hashable | None = None) -> None:
        self.learn_many(self._vector(x), [y])

    def learn_many(self, X: np.ndarray, y: Sequence[Hashable | None] | None = None) -> None:
        """Learn from a micro-batch of new events; ``y[i]`` is ``None``/NaN when unlabelled."""
        X = self._check(X)
        if len(X) == 0:
            return
        if y is None:
            y = [None] * len(X)
        if len(y) != len(X):
            raise ValueError(f"{len(X)} events but {len(y)} labels")
        if self.n_features_ is None:
            self._build(X.shape[1])
        self.standardizer.update(X)
        Z = self.standardizer.transform(X)
        self.n_seen += len(X)
        if self.ssl is not None:
            self.ssl.observe(Z)
        Zt = to_tensor(Z, self._device)
        labelled = np.array([not _is_missing(v) for v in y])
        mask = torch.as_tensor(labelled, device=self._device)
        # Pseudo-labels are chosen by the head as it is before this batch's labels, and learned
        # together with them.
        pseudo = self._pseudo_label(Zt[~mask], np.flatnonzero(~labelled))
        if labelled.any():
            self._learn_labelled(Zt[mask], [v for v, k in zip(y, labelled) if k], pseudo)
        elif pseudo is not None:
            Zp, yp = pseudo
            self.head.learn(Zp, yp, self._pseudo_weights(len(yp)), self._featurize, mass=0.0)

    def learn_late_labels(self, X: np.ndarray, y: Sequence[Hashable]) -> None:
        """Learn labels that arrived late for events already given to :meth:`learn_many`."""
        X = self._check(X)
        keep = [i for i, v in enumerate(y) if not _is_missing(v)]
        if not keep:
            return
        if self.n_features_ is None:
            self._build(X.shape[1])
        Z = self.standardizer.transform(X[keep])
        self._learn_labelled(to_tensor(Z, self._device), [y[i] for i in keep])

    def _learn_labelled(self, Z: torch.Tensor, labels: list[Hashable],
                        pseudo: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        y = self._encode_labels(labels)
        yt = torch.as_tensor(y, device=self._device)
        # Prequential error of the heads on these labels, before they learn them. A challenger
        # born from this very update is not scored on labels it has never had a chance at.
        challenger = self.challenger
        main_ok = self._proba(Z).argmax(1) == yt
        self._react(self.monitor.update("error", (~main_ok).float().tolist(), self.n_seen))
        if challenger is not None and challenger is self.challenger:
            self._duel_round(main_ok, self._proba(Z, challenger).argmax(1) == yt)
        self.policy.observe_labels(y, len(self.classes_))
        ones = torch.ones(len(y), device=self._device)
        remember = torch.ones(len(y), dtype=torch.bool, device=self._device)
        if self.challenger is not None:
            self.challenger.learn(Z, yt, ones, self._featurize, remember)
        if pseudo is not None:
            # Pseudo-labels ride along in the steps that the true labels pay for; they are
            # never replayed.
            Zp, yp = pseudo
            Z, yt = torch.cat([Z, Zp]), torch.cat([yt, yp])
            ones = torch.cat([ones, self._pseudo_weights(len(yp))])
            remember = torch.cat([remember, torch.zeros(len(yp), dtype=torch.bool, device=self._device)])
        self.head.learn(Z, yt, ones, self._featurize, remember, mass=float(len(y)))
        self.labels_used += len(y)

    def _pseudo_weights(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.pseudo_weight, device=self._device)

    def _pseudo_label(self, Z: torch.Tensor, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Watch the confidence on unlabelled events and pick those the policy accepts."""
        self.last_pseudo_labels = (np.zeros(0, dtype=np.int64), [])
        if len(Z) == 0 or not self.classes_:
            return None
        proba = self._proba(Z)
        self.last_confidence = float(proba.max(1).values.mean())
        self._react(self.monitor.update("confidence", [self.last_confidence], self.n_seen))
        if not self.pseudo_labels:
            return None
        rows, labels = self.policy.select(proba.cpu().numpy(), self.n_seen)
        if len(rows) == 0:
            return None
        self.last_pseudo_labels = (positions[rows], [self.classes_[c] for c in labels])
        idx = torch.as_tensor(rows, device=self._device)
        return Z[idx], torch.as_tensor(labels, device=self._device)

    # ----------------------------------------------------------- drift response
    def _react(self, events: list[DriftEvent]) -> None:
        for event in events:
            if event.level == "drift":
                self.policy.pause(self.n_seen)
            if self.challenger is None:
                self.challenger = self._new_head()
                self._duel = [0, 0, 0]

    def _duel_round(self, main_ok: torch.Tensor, challenger_ok: torch.Tensor) -> None:
        self._duel[0] += len(main_ok)
        self._duel[1] += int(main_ok.sum())
        self._duel[2] += int(challenger_ok.sum())
        n, main, challenger = self._duel
        if n >= self.challenger_min_labels and challenger - main >= self.challenger_margin * n:
            self.head, self.challenger = self.challenger, None
            self.swaps += 1
        elif n >= self.challenger_patience:
            self.challenger = None

    @property
    def drift_events(self) -> Sequence[DriftEvent]:
        """Drift detections so far, oldest first (the most recent ``monitor.history``); read-only."""
        return self.monitor.events

    @property
    def drift_in_progress(self) -> bool:
        """A warning or drift was signalled and its background head has not yet won or given up."""
        return self.challenger is not None

    @property
    def pseudo_labels_accepted(self) -> int:
        return self.policy.accepted

    @property
    def ssl_loss(self) -> float | None:
        return None if self.ssl is None else self.ssl.last_loss

    # ------------------------------------------------------------- save/restore
    def state_dict(self) -> dict:
        """Everything the learner has learned, as plain data, tensors and river detectors."""
        return {
            "params": self._get_params(),
            "n_features": self.n_features_,
            "feature_names": self.feature_names_,
            "classes": list(self.classes_),
            "standardizer": self.standardizer.state_dict(),
            "policy": self.policy.state_dict(),
            "monitor": self.monitor.state_dict(),
            "ssl": None if self.ssl is None else self.ssl.state_dict(),
            "head": None if self.head is None else self.head.state_dict(),
            "challenger": None if self.challenger is None else self.challenger.state_dict(),
            "counters": {
                "duel": list(self._duel), "heads_made": self._heads_made, "n_seen": self.n_seen,
                "labels_used": self.labels_used, "swaps": self.swaps,
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "StreamLearner":
        """Rebuild a learner from :meth:`state_dict` (see :mod:`streamssl.state.checkpoint`)."""
        model = cls(**state["params"])
        if state["n_features"] is not None:
            model._build(state["n_features"])
        model.feature_names_ = state["feature_names"]
        model._encode_labels(state["classes"])
        model.standardizer.load_state_dict(state["standardizer"])
        model.policy.load_state_dict(state["policy"])
        model.monitor.load_state_dict(state["monitor"])
        if state["ssl"] is not None:
            model.ssl.load_state_dict(state["ssl"])
        if state["head"] is not None:
            model.head.load_state_dict(state["head"])
        if state["challenger"] is not None:
            model.challenger = model._new_head()
            model.challenger.load_state_dict(state["challenger"])
        counters = state["counters"]
        model._duel, model._heads_made = list(counters["duel"]), counters["heads_made"]
        model.n_seen, model.labels_used, model.swaps = counters["n_seen"], counters["labels_used"], counters["swaps"]
        return model
