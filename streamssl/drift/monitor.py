"""Drift monitoring: signals fed to river detectors, detections reported as DriftEvents."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from river import drift
from river.base import DriftDetector


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
    """A detector listening to one signal, reporting at one level.

    ``direction`` keeps only changes that move the detector's running estimate ``"up"`` or
    ``"down"`` (e.g. a *rise* in error; a fall in error is the model learning, not a drift);
    ``"both"`` keeps all. Detectors without an ``estimation`` report every change.
    """

    signal: str
    level: str
    detector: DriftDetector
    direction: str = "both"

    def feed(self, value: float) -> bool:
        """Update the detector; ``True`` if it detected a change in the wanted direction."""
        before = getattr(self.detector, "estimation", None)
        self.detector.update(value)
        if not self.detector.drift_detected:
            return False
        after = getattr(self.detector, "estimation", None)
        if self.direction == "both" or before is None or after is None:
            return True
        return after > before if self.direction == "up" else after < before

    @property
    def name(self) -> str:
        return type(self.detector).__name__


def default_channels(error_delta: float = 0.002, warning_delta: float = 0.01,
                     unsupervised_delta: float = 0.002) -> list[Channel]:
    """ADWIN on the 0/1 error of labelled events (a warning and a drift level, rises only), and
    ADWIN on the mean confidence of each micro-batch of unlabelled events (falls only; label-free,
    every batch)."""
    return [
        Channel("error", "warning", drift.ADWIN(delta=warning_delta), "up"),
        Channel("error", "drift", drift.ADWIN(delta=error_delta), "up"),
        Channel("confidence", "drift", drift.ADWIN(delta=unsupervised_delta), "down"),
    ]


class DriftMonitor:
    """Feeds values of named signals to their detectors and returns what they detect.

    Parameters
    ----------
    channels
        Factory of the channels (a fresh set is built on reset); see :func:`default_channels`.
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
    """

    def __init__(self, channels: Callable[[], list[Channel]] = default_channels, history: int = 10_000) -> None:
        self.channels = channels
        self.history = history
        self._reset()

    def _reset(self) -> None:
        self._channels = self.channels()
        self.events: deque[DriftEvent] = deque(maxlen=self.history)
        self.counts: Counter[tuple[str, str, str]] = Counter()

    @property
    def signals(self) -> set[str]:
        return {c.signal for c in self._channels}

    def update(self, signal: str, values: Iterable[float], position: int) -> list[DriftEvent]:
        """Feed values of ``signal`` (in stream order) and return the detections, at most one
        per channel per call."""
        found = []
        listeners = [c for c in self._channels if c.signal == signal]
        if not listeners:
            return found
        values = list(values)
        for channel in listeners:
            hit = None
            for v in values:
                if channel.feed(float(v)) and hit is None:
                    hit = float(v)
            if hit is not None:
                event = DriftEvent(position, signal, channel.name, channel.level, time.time(), hit)
                found.append(event)
                self.events.append(event)
                self.counts[(signal, channel.name, channel.level)] += 1
        return found

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
