"""Which detector listens to which signal: the detectors by name, and channel specs as text.

A channel spec reads ``signal:Detector[:name=value...]``, e.g. ``error:ADWIN``,
``confidence:PageHinkley:threshold=20``, ``features:MMD:window=300``. Signals:

- ``error``: 0/1 error of labelled events, when their labels arrive (supervised);
- ``residual``: ``correct - confidence`` of labelled events, the served (calibrated)
  confidence: about 0 on average while the confidence means what it says (supervised);
- ``confidence``: mean top-class probability of each micro-batch of unlabelled events;
- ``entropy``: their mean predictive entropy, divided by its maximum ``log(classes)``;
- ``ssl_loss``: the encoder's self-supervised loss, one value per training step;
- ``features``: the events' raw feature vectors (a two-sample test);
- ``embedding``: what the classifier sees: the encoder's embedding when there is one (a
  two-sample test).

Scalar signals take river's ``ADWIN``, ``PageHinkley`` or ``KSWIN``; the 0/1 ``error`` also
``DDM``, ``EDDM``, ``HDDM_A`` and ``HDDM_W``, which have a warning level; the ``residual``
also ``CUSUM`` (:class:`~streamssl.drift.cusum.CUSUM`, made for few labels); vector signals
take ``MMD`` (:class:`~streamssl.drift.two_sample.MMDTest`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from river import drift
from river.drift import binary

from .cusum import CUSUM
from .two_sample import MMDTest

SIGNALS = ("error", "residual", "confidence", "entropy", "ssl_loss", "features", "embedding")
VECTOR_SIGNALS = ("features", "embedding")


class PageHinkley(drift.PageHinkley):
    """river's PageHinkley whose state pickles as plain data (river's keeps a bound method,
    which the safe checkpoint loader refuses)."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_test_drift"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._test_drift = {self._MODE_UP: self._test_increase, self._MODE_DOWN: self._test_decrease}.get(
            self.mode, self._test_both)


class HDDM_W(binary.HDDMW):  # noqa: N801 - the name river's docs use
    """river's HDDM_W whose state pickles as plain data (its running sums are small objects
    that the safe checkpoint loader would refuse)."""

    def __getstate__(self) -> dict:
        return {k: {"__sample__": dict(vars(v))} if isinstance(v, binary.hddm_w.SampleInfo) else v
                for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict) -> None:
        samples = {k: state.pop(k)["__sample__"] for k in list(state)
                   if isinstance(state[k], dict) and "__sample__" in state[k]}
        self.__dict__.update(state)
        for name, values in samples.items():
            sample = binary.hddm_w.SampleInfo.__new__(binary.hddm_w.SampleInfo)
            vars(sample).update(values)
            setattr(self, name, sample)


DETECTORS: dict[str, type] = {
    "ADWIN": drift.ADWIN, "PageHinkley": PageHinkley, "KSWIN": drift.KSWIN,
    "DDM": binary.DDM, "EDDM": binary.EDDM, "HDDM_A": binary.HDDMA, "HDDM_W": HDDM_W,
    "MMD": MMDTest, "CUSUM": CUSUM,
}
BINARY_DETECTORS = ("DDM", "EDDM", "HDDM_A", "HDDM_W")
_DIRECTIONS = {"error": "up", "residual": "down", "confidence": "down", "entropy": "up", "ssl_loss": "up"}


@dataclass(frozen=True)
class ChannelSpec:
    """A detector for one signal: its name, its settings, and the direction of change that
    counts (``"up"``, ``"down"`` or ``"both"``; scalar detectors with an estimate only). By
    default a rise of error, entropy or SSL loss counts, and a fall of confidence: the other
    way is the model getting better.

    >>> ChannelSpec.parse("confidence:PageHinkley:threshold=20:mode=down")
    ChannelSpec(signal='confidence', detector='PageHinkley', params={'threshold': 20, 'mode': 'down'}, direction='down')
    >>> ChannelSpec.parse("error:ADWIN:delta=0.002:direction=up").build().delta
    0.002
    """

    signal: str
    detector: str
    params: dict = field(default_factory=dict)
    direction: str | None = None

    def __post_init__(self) -> None:
        if self.direction is None:
            object.__setattr__(self, "direction", _DIRECTIONS.get(self.signal, "both"))
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown drift signal {self.signal!r}; choose one of {', '.join(SIGNALS)}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown drift detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        vector = self.signal in VECTOR_SIGNALS
        if vector != (self.detector == "MMD"):
            raise ValueError(f"{self.signal}:{self.detector}: the vector signals ({', '.join(VECTOR_SIGNALS)}) "
                             "take MMD, and MMD only them")
        if self.detector in BINARY_DETECTORS and self.signal != "error":
            raise ValueError(f"{self.detector} reads a 0/1 stream: only the error signal")
        if self.detector == "CUSUM" and self.signal != "residual":
            raise ValueError("CUSUM reads correct - confidence of labelled events: only the residual signal")
        if self.direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {self.direction!r}")
        try:
            self.build()
        except TypeError as exc:
            raise ValueError(f"{self.signal}:{self.detector}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> "ChannelSpec":
        """``signal:Detector[:name=value...]`` (values are Python literals, else strings)."""
        parts = [p.strip() for p in text.split(":")]
        if len(parts) < 2 or not all(parts[:2]):
            raise ValueError(f"drift channel {text!r}: expected signal:Detector[:name=value...]")
        params: dict = {}
        direction = None
        for item in parts[2:]:
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise ValueError(f"drift channel {text!r}: {item!r} is not name=value")
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed = value
            if name == "direction":
                direction = str(parsed)
            else:
                params[name] = parsed
        return cls(parts[0], parts[1], params, direction)

    def build(self):
        """A fresh detector."""
        return DETECTORS[self.detector](**self.params)

    def __str__(self) -> str:
        extra = [f"{k}={v}" for k, v in self.params.items()] + (
            [f"direction={self.direction}"] if self.direction != _DIRECTIONS.get(self.signal, "both") else [])
        return ":".join([self.signal, self.detector, *extra])
