"""Structured logs: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

LOGGER = "streamssl"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "event", ...fields}``; fields come from ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "info") -> logging.Logger:
    """The daemon's logger, writing JSON lines to stderr (idempotent)."""
    log = logging.getLogger(LOGGER)
    log.setLevel(level.upper())
    if not any(getattr(h, "_streamssl", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._streamssl = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
    return log


class RateLimited:
    """Logs at most ``per_s`` records per second for one kind of event; counts the rest."""

    def __init__(self, log: logging.Logger, per_s: float = 5.0) -> None:
        self.log = log
        self.per_s = per_s
        self._window = 0.0
        self._n = 0
        self.suppressed = 0

    def warning(self, event: str, **fields) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            if self.suppressed:
                self.log.warning(f"{event}_suppressed", extra={"fields": {"count": self.suppressed}})
            self._window, self._n, self.suppressed = now, 0, 0
        if self._n < self.per_s:
            self._n += 1
            self.log.warning(event, extra={"fields": fields})
        else:
            self.suppressed += 1
