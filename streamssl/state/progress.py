"""How far the daemon got, written after every micro-batch: a restart can then tell the records
it reads again (processed before a crash, after the last checkpoint) from new ones.

A checkpoint holds the offsets of its own moment; what was predicted after it and before a
crash is read and predicted again on restart (at-least-once). This small file beside the
checkpoint, rewritten (not fsynced: it survives the process, not the machine) after each
batch, holds the offsets reached, so those replays are counted as the duplicates they are.

>>> import tempfile
>>> from kafka import TopicPartition
>>> mark = ProgressMark(tempfile.mkdtemp() + "/d.ckpt.progress")
>>> mark.read()
{}
>>> mark.write({TopicPartition("events", 0): 120})
>>> mark.read()
{TopicPartition(topic='events', partition=0): 120}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kafka import TopicPartition


class ProgressMark:
    """The offsets reached (next to read, by partition), at ``path``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")

    def write(self, offsets: dict[TopicPartition, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.write_text(json.dumps([[tp.topic, tp.partition, o] for tp, o in offsets.items()]))
        os.replace(self._tmp, self.path)

    def read(self) -> dict[TopicPartition, int]:
        """The offsets last written; empty when there are none or the file is unreadable
        (then replays go uncounted, nothing else changes)."""
        try:
            rows = json.loads(self.path.read_text())
            return {TopicPartition(str(t), int(p)): int(o) for t, p, o in rows}
        except (OSError, ValueError, TypeError):
            return {}
