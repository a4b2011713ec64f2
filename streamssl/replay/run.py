"""One replay run: a recorded stream, a model, the prequential loop, bad rows accounted for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, TextIO

from ..errors import InputError
from ..sources.file import BadRecord, FileOptions, open_maybe_gzip
from .prequential import BatchResult, ReplaySummary, prequential

BUNDLED_SAMPLE = "elec2_sample.csv.gz"


def bundled_sample() -> Path:
    """The recorded stream that ships with the package: the first 5,000 events of Elec2."""
    return Path(str(resources.files("streamssl") / "data" / BUNDLED_SAMPLE))


def count_records(path: str | os.PathLike, limit: int | None = None) -> int | None:
    """Number of data lines (for a progress bar), or ``None`` if the file cannot be read."""
    try:
        with open_maybe_gzip(path, "rb") as f:
            n = sum(1 for line in f if line.strip())
    except (OSError, EOFError):
        return None
    if str(path).lower().removesuffix(".gz").endswith(".csv"):
        n -= 1
    return max(n, 0) if limit is None else min(max(n, 0), limit)


class DeadLetters:
    """Where rejected rows go: counted by reason, written as JSON lines if a file is given,
    and the first few reported on ``stream``."""

    def __init__(self, path: str | os.PathLike | None = None, stream: TextIO | None = None, show: int = 10) -> None:
        self.path, self.stream, self.show = path, stream, show
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self._file = open(path, "w", encoding="utf-8") if path else None

    def __call__(self, bad: BadRecord) -> None:
        self.count += 1
        self.by_reason[bad.kind] = self.by_reason.get(bad.kind, 0) + 1
        if self._file is not None:
            self._file.write(json.dumps({"path": bad.path, "line": bad.line, "kind": bad.kind, "reason": bad.reason,
                                         "raw": bad.raw}) + "\n")
        if self.stream is not None and self.count <= self.show:
            self.stream.write(f"warning: {bad.path}:{bad.line}: {bad.reason}; row skipped\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass
class ReplayRun:
    """Settings of one replay; :meth:`execute` runs it."""

    path: Path
    model: object
    label_rate: float = 1.0
    label_delay: int = 0
    seed: int = 0
    batch_size: int = 64
    limit: int | None = None
    dead_letters: DeadLetters = field(default_factory=DeadLetters)
    options: FileOptions = field(default_factory=FileOptions)
    columns: list = field(default_factory=list, init=False)  # the file's schema, once executed

    def execute(self, on_batch: Callable[[BatchResult], None] | None = None) -> ReplaySummary:
        source = self.options.source(self.path, batch_size=self.batch_size, limit=self.limit, on_bad=self.dead_letters)
        summary = ReplaySummary()
        try:
            for result in prequential(source, self.model, self.label_rate, self.label_delay, self.seed):
                summary = result.summary
                if on_batch is not None:
                    on_batch(result)
        finally:
            self.dead_letters.close()
        summary.rows_rejected = dict(self.dead_letters.by_reason)
        summary.label_column = source.label_name
        self.columns = source.columns
        if summary.events == 0:
            rejected = f" ({self.dead_letters.count} rows rejected)" if self.dead_letters.count else ""
            raise InputError(f"{self.path}: no events to replay{rejected}")
        return summary
