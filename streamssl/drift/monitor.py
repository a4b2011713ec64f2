"""Drift monitoring: signals fed to river detectors, detections reported as DriftEvents; the
learner's drift stage (:class:`DriftMonitor`)."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from river import base, drift

from .cusum import CUSUM
from .detectors import DETECTORS, ChannelSpec

DETECTOR_NAMES = {cls: name for name, cls in DETECTORS.items()}


@dataclass(frozen=True)
class DriftEvent:
    """One detection: where in the stream, on which signal, by which detector, at which level."""

    position: int
    signal: str
    detector: str
    level: str  # "warning" or "drift"
    time: float
    statistic: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Channel:
    """A detector listening to one signal.

    ``level`` is what its detections are reported as (``"drift"`` or ``"warning"``); a
    detector with a warning level of its own (DDM, EDDM, HDDM) also reports its warnings.
    ``direction`` keeps only changes that move the detector's running estimate ``"up"`` or
    ``"down"`` (e.g. a *rise* in error; a fall in error is the model learning, not a drift);
    ``"both"`` keeps all. Detectors without an ``estimation`` report every change. A vector
    signal's detector (:class:`~streamssl.drift.two_sample.MMDTest`) takes a batch of rows.
    """

    signal: str
    level: str
    detector: Any
    direction: str = "both"

    @classmethod
    def from_spec(cls, spec: ChannelSpec | str) -> "Channel":
        spec = ChannelSpec.parse(spec) if isinstance(spec, str) else spec
        return cls(spec.signal, "drift", spec.build(), spec.direction)

    def feed(self, value: float) -> str | None:
        """Update the detector with one value; the level detected in the wanted direction."""
        before = getattr(self.detector, "estimation", None)
        was_warning = getattr(self.detector, "warning_detected", False)
        self.detector.update(value)
        if not self.detector.drift_detected:
            if self.level == "drift" and getattr(self.detector, "warning_detected", False) and not was_warning:
                return "warning"
            return None
        after = getattr(self.detector, "estimation", None)
        if self.direction == "both" or before is None or after is None:
            return self.level
        return self.level if (after > before if self.direction == "up" else after < before) else None

    def feed_rows(self, rows: np.ndarray) -> str | None:
        """Update a vector detector with a batch of rows."""
        return self.level if self.detector.update_many(rows) else None

    @property
    def vector(self) -> bool:
        return hasattr(self.detector, "update_many")

    @property
    def statistic(self) -> float | None:
        value = getattr(self.detector, "statistic", None)
        return None if value is None else float(value)

    @property
    def name(self) -> str:
        return DETECTOR_NAMES.get(type(self.detector), type(self.detector).__name__)


def default_channels(error_delta: float = 0.002, warning_delta: float = 0.01,
                     unsupervised_delta: float = 0.002) -> list[Channel]:
    """ADWIN on the 0/1 error of labelled events (a warning and a drift level, rises only),
    ADWIN on the mean confidence of each micro-batch of unlabelled events (falls only; label-free,
    every batch), and the CUSUM on the calibrated residual of labelled events
    (:class:`~streamssl.drift.cusum.CUSUM`: the one that sees a change of concept from 5 % of
    the labels, benchmarks/DRIFT.md)."""
    return [
        Channel("error", "warning", drift.ADWIN(delta=warning_delta), "up"),
        Channel("error", "drift", drift.ADWIN(delta=error_delta), "up"),
        Channel("confidence", "drift", drift.ADWIN(delta=unsupervised_delta), "down"),
        Channel("residual", "drift", CUSUM(), "down"),  # last: checkpoints from before load the others
    ]


class DriftMonitor(base.Base):
    """The learner's drift stage: feeds values of named signals to their detectors, returns
    what they detect, and says whether the learner acts on it.

    Parameters
    ----------
    channels
        Which detector watches which signal, as specs ``signal:Detector[:name=value...]``
        (:mod:`streamssl.drift.detectors`; kept in their normal form); ``None``:
        :func:`default_channels`; ``()``: nothing is watched.
    respond
        Whether the learner acts on detections (background head, pseudo-label pause, encoder
        boost, fresh two-sample reference: :meth:`StreamLearner._react`); ``False``: they are
        only reported.
    history
        How many past events :attr:`events` keeps.

    Examples
    --------
    >>> monitor = DriftMonitor()
    >>> found = monitor.update("error", [0.0] * 1000 + [1.0] * 300, position=1300)
    >>> sorted({(e.signal, e.level) for e in found})
    [('error', 'drift'), ('error', 'warning')]
    >>> monitor.update("confidence", [0.9], position=1301)
    []
    >>> DriftMonitor(["error:DDM", "features:MMD:window=300"], respond=False)
    DriftMonitor (
      channels=('error:DDM', 'features:MMD:window=300')
      respond=False
      history=10000
    )
    """

    def __init__(self, channels: Sequence[str | ChannelSpec] | None = None, respond: bool = True,
                 history: int = 10_000) -> None:
        if channels is not None:
            channels = tuple(str(ChannelSpec.parse(c) if isinstance(c, str) else c) for c in channels)
        self.channels = channels
        self.respond = respond
        self.history = history
        self._reset()

    def _reset(self) -> None:
        self._channels = default_channels() if self.channels is None else [Channel.from_spec(c) for c in self.channels]
        self.events: deque[DriftEvent] = deque(maxlen=self.history)
        self.counts: Counter[tuple[str, str, str]] = Counter()

    @property
    def signals(self) -> set[str]:
        return {c.signal for c in self._channels}

    def update(self, signal: str, values: Iterable[float] | np.ndarray, position: int) -> list[DriftEvent]:
        """Feed values of ``signal`` (in stream order; rows of a 2-d array for a vector
        signal) and return the detections, at most one per channel and level per call."""
        found = []
        listeners = [c for c in self._channels if c.signal == signal]
        if not listeners:
            return found
        scalars = None
        for channel in listeners:
            hits: dict[str, float | None] = {}
            if channel.vector:
                level = channel.feed_rows(np.asarray(values, dtype=np.float64))
                if level is not None:
                    hits[level] = channel.statistic
            else:
                scalars = [float(v) for v in values] if scalars is None else scalars
                for v in scalars:
                    level = channel.feed(v)
                    if level is not None and level not in hits:
                        hits[level] = v
            for level, stat in sorted(hits.items(), key=lambda kv: kv[0] != "warning"):
                event = DriftEvent(position, signal, channel.name, level, time.time(), stat)
                found.append(event)
                self.events.append(event)
                self.counts[(signal, channel.name, level)] += 1
        return found

    def refresh(self) -> None:
        """Start every two-sample test's reference afresh (after a drift was handled)."""
        for channel in self._channels:
            if channel.vector:
                channel.detector.refresh()

    def state_dict(self) -> dict:
        return {
            "detectors": [c.detector for c in self._channels],
            "events": [e.to_dict() for e in self.events],
            "counts": [[*k, v] for k, v in self.counts.items()],
        }

    def load_state_dict(self, state: dict) -> None:
        for channel, detector in zip(self._channels, state["detectors"]):
            channel.detector = detector
        self.events = deque((DriftEvent(**e) for e in state["events"]), maxlen=self.history)
        self.counts = Counter({tuple(k[:3]): k[3] for k in state["counts"]})
