"""Causal, label-free context from the recent past of the stream: a stage before any learner."""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable, Sequence

import numpy as np
from scipy.signal import lfilter
from river import base

from .compiled import compiled


class TemporalContext(base.Base):
    """Each event ``x_t`` becomes ``[x_t, x_t − EMA_s(x)_{t−1} for s in spans]``.

    ``EMA_s`` is the exponential moving average of the past events (smoothing ``2 / (s + 1)``),
    taken *before* ``x_t``: a summary of the past only, using no label. With ``keys``, each
    entity (a sensor, an account) has its own averages; at most ``max_keys`` entities are
    kept, the least recently seen forgotten first.

    Prediction and learning see the same features for the same event:
    :meth:`transform` computes a batch's features without moving the averages on,
    :meth:`update` computes them and moves on (reusing the last :meth:`transform` of the same
    batch), and :meth:`recall` gives the features an event had when it was new (for labels
    that arrive late): the last events are remembered, as many as ``recall_values`` numbers
    hold (4M by default: 125,000 events of 8 features with 3 spans, 1,000 of 1,024 features);
    an older event gets its features against the current averages.

    Examples
    --------
    >>> ctx = TemporalContext(spans=(1, 3))
    >>> ctx.update(np.array([[1.0], [3.0], [3.0]])).tolist()
    [[1.0, 0.0, 0.0], [3.0, 2.0, 2.0], [3.0, 0.0, 1.0]]
    >>> ctx.transform(np.array([[5.0]])).tolist()   # the averages are now 3.0 and 2.5
    [[5.0, 2.0, 2.5]]
    >>> ctx.recall(np.array([[3.0]])).tolist()      # as the last event with these values was seen
    [[3.0, 0.0, 1.0]]
    """

    def __init__(self, spans: Sequence[float] = (4, 16, 64), max_keys: int = 100_000,
                 recall_values: int = 4_000_000) -> None:
        self.spans = tuple(spans)
        self.max_keys = max_keys
        self.recall_values = recall_values
        self._reset()

    def _reset(self) -> None:
        self._alphas = np.array([2.0 / (s + 1.0) for s in self.spans])
        self.state: OrderedDict[Hashable, np.ndarray] = OrderedDict()  # key -> (len(spans), d) averages
        # The features of recent events, in a ring of rows; an event is found by its values.
        self._rec_X: np.ndarray | None = None
        self._rec_F: np.ndarray | None = None
        self._rec_index: dict[bytes, int] = {}
        self._rec_next = 0
        self._rec_size = 0
        self._cached: tuple[np.ndarray, object, np.ndarray, dict] | None = None

    def n_outputs(self, n_features: int) -> int:
        return n_features * (1 + len(self.spans))

    # -- the computation, without side effects
    def _features(self, X: np.ndarray, keys: Sequence[Hashable] | None) -> tuple[np.ndarray, dict]:
        X = np.asarray(X, dtype=np.float64)
        if keys is None and len(X) == 1:  # one event (learn_one): the filter's first step, compiled
            ema = self.state.get(None)
            out, last = _first_step(X[0], np.repeat(X, len(self.spans), axis=0) if ema is None else ema, self._alphas)
            return out, {None: last}
        if keys is None:
            groups = {None: np.arange(len(X))}
        else:
            groups: dict = {}
            for i, k in enumerate(keys):
                groups.setdefault(k, []).append(i)
        out = np.empty((len(X), X.shape[1] * (1 + len(self.spans))))
        out[:, : X.shape[1]] = X
        new_state = {}
        for key, rows in groups.items():
            rows = np.asarray(rows)
            Xk = X[rows]
            ema = self.state.get(key)
            if ema is None:
                ema = np.repeat(Xk[:1], len(self.spans), axis=0)  # the first event is its own past
            if len(rows) == 1:  # one event (learn_one, or one per entity): the filter's first step, for every span at once
                alphas = self._alphas[:, None]
                out[rows[0], X.shape[1]:] = (Xk[0] - ema).ravel()
                new_state[key] = alphas * Xk[0] + (1.0 - alphas) * ema
                continue
            last = np.empty((len(self.spans), X.shape[1]))
            for j, a in enumerate(self._alphas):
                # y_t = a x_t + (1 − a) y_{t−1}, started from the stored average.
                y, _ = lfilter([a], [1.0, a - 1.0], Xk, axis=0, zi=((1.0 - a) * ema[j])[None, :])
                before = np.vstack([ema[j][None, :], y[:-1]])  # the average before each event
                d = X.shape[1]
                out[rows, d * (1 + j): d * (2 + j)] = Xk - before
                last[j] = y[-1]
            new_state[key] = last
        return out, new_state

    # -- the public operations
    def transform(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        """The features of a new batch, the averages unchanged."""
        if len(X) == 0:
            return np.zeros((0, self.n_outputs(np.shape(X)[1])))
        out, new_state = self._features(X, keys)
        self._cached = (fingerprint(X), None if keys is None else list(keys), out, new_state)
        return out

    def update(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        """The features of a new batch; the averages move past it."""
        if len(X) == 0:
            return np.zeros((0, self.n_outputs(np.shape(X)[1])))
        c = self._cached
        if c is not None and c[1] == (None if keys is None else list(keys)) and c[0] == fingerprint(X):
            out, new_state = c[2], c[3]
        else:
            out, new_state = self._features(X, keys)
        self._cached = None
        for key, ema in new_state.items():
            self.state[key] = ema
            self.state.move_to_end(key)
        while len(self.state) > self.max_keys:
            self.state.popitem(last=False)
        self._remember(np.asarray(X, dtype=np.float64), out)
        return out

    def _remember(self, X: np.ndarray, out: np.ndarray) -> None:
        if self._rec_X is None:
            limit = max(1, self.recall_values // max(1, out.shape[1]))
            self._rec_X = np.zeros((limit, X.shape[1]))
            self._rec_F = np.zeros((limit, out.shape[1]), dtype=np.float32)
        limit = len(self._rec_X)
        if len(X) == 1:  # one event: the steps below for one slot, without their array calls
            slot, index = self._rec_next, self._rec_index
            if self._rec_size == limit:  # the ring is full: the slot's row goes
                old = self._rec_X[slot].tobytes()
                if index.get(old) == slot:
                    del index[old]
            self._rec_X[slot], self._rec_F[slot] = X[0], out[0]
            index[X[0].tobytes()] = slot
            self._rec_next, self._rec_size = (slot + 1) % limit, min(limit, self._rec_size + 1)
            return
        X, out = X[-limit:], out[-limit:]
        slots = (self._rec_next + np.arange(len(X))) % limit
        index = self._rec_index
        for slot in slots.tolist():  # a slot's old row leaves the index (an empty slot holds none)
            old = self._rec_X[slot].tobytes()
            if index.get(old) == slot:
                del index[old]
        self._rec_X[slots] = X
        self._rec_F[slots] = out
        for slot, row in zip(slots.tolist(), X):
            index[row.tobytes()] = slot
        self._rec_next = int((self._rec_next + len(X)) % limit)
        self._rec_size = min(limit, self._rec_size + len(X))

    def recall(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        """The features these events had when :meth:`update` saw them (events no longer
        remembered get their features against the current averages)."""
        Xb = np.asarray(X, dtype=np.float64)
        slots = [self._rec_index.get(row.tobytes()) for row in Xb]
        if all(s is not None for s in slots):
            return self._rec_F[slots].astype(np.float64).reshape(len(Xb), -1)
        fresh, _ = self._features(Xb, keys)
        return np.array([self._rec_F[s].astype(np.float64) if s is not None else fresh[i]
                         for i, s in enumerate(slots)])

    def state_dict(self) -> dict:
        # Until the ring of remembered events has filled, its rows in use are its first
        # recall_size: only those are kept (a daemon's checkpoint after 50,000 events of 8
        # features held 24 MB of rows, 14 of them empty).
        used = slice(None) if self._rec_X is None or self._rec_size == len(self._rec_X) else slice(0, self._rec_size)
        return {"keys": list(self.state), "ema": list(self.state.values()),
                "recall_X": None if self._rec_X is None else self._rec_X[used],  # views: the caller
                "recall_F": None if self._rec_F is None else self._rec_F[used],  # copies or serialises at once
                "recall_next": self._rec_next, "recall_size": self._rec_size}

    def load_state_dict(self, state: dict) -> None:
        self._reset()
        self.state.update(zip(state["keys"], (np.asarray(v) for v in state["ema"])))
        if state["recall_X"] is not None:
            X, F = np.asarray(state["recall_X"]), np.asarray(state["recall_F"])
            limit = max(len(X), 1, self.recall_values // max(1, F.shape[1]))  # the ring's rows, used or not
            self._rec_X, self._rec_F = np.zeros((limit, X.shape[1])), np.zeros((limit, F.shape[1]), dtype=np.float32)
            self._rec_X[: len(X)], self._rec_F[: len(F)] = X, F
            self._rec_next, self._rec_size = state["recall_next"], state["recall_size"]
            # Oldest first, so that the newest copy of a repeated row wins.
            limit = len(self._rec_X)
            order = [(self._rec_next - self._rec_size + i) % limit for i in range(self._rec_size)]
            self._rec_index = {self._rec_X[slot].tobytes(): slot for slot in order}


def fingerprint(X) -> tuple:
    """What tells a batch of events from another: its shape and its float64 bytes (for one
    event, a fraction of np.array_equal's cost; equal rows of -0.0 and 0.0 count as different)."""
    X = np.asarray(X, dtype=np.float64)
    return X.shape, X.tobytes()


@compiled
def _first_step(x: np.ndarray, ema: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One event ``x``'s features against the averages ``ema`` (one row per span), shape ``(1,
    features)``, and the averages after it: the step the arrays take for one event, in their order."""
    d, spans = x.shape[0], alphas.shape[0]
    out, after = np.empty((1, d * (1 + spans))), np.empty((spans, d))
    for j in range(d):
        out[0, j] = x[j]
    for s in range(spans):
        for j in range(d):
            out[0, d * (1 + s) + j] = x[j] - ema[s, j]
            after[s, j] = alphas[s] * x[j] + (1.0 - alphas[s]) * ema[s, j]
    return out, after
