"""The daemon's own cost per micro-batch, without a broker: ``Daemon.process`` timed batch by batch.

    python benchmarks/daemon_batch.py                    # 300 batches of 256 elec2 events, 5 % labels
    python benchmarks/daemon_batch.py --batches 500 --batch 1024 --no-trees
    python benchmarks/daemon_batch.py --part trees.n_models=5   # the parts' settings, as learner.parts

Records are built as the Kafka source hands them over (events topic, and a labels topic whose
labels for a batch's 5 % arrive with the next batch, as the daemon's late join sees them) and
given to the daemon's ``process``; predictions and dead letters go to an in-memory producer.
No broker and no load generator share the cores, so the figures show the daemon's own path
(decode, predict, send, join, learn, metrics) and move far less between runs than
``daemon_throughput.py``'s: use it to compare commits (run both one after the other), and
``py-spy record -- python benchmarks/daemon_batch.py`` to see where the time goes. Checkpoints
are the loop's, not ``process``'s, and are not in these figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamssl.cli import parse_part_setting, part_settings  # noqa: E402
from streamssl.config import load_config_text  # noqa: E402
from streamssl.daemon.service import Daemon  # noqa: E402
from streamssl.replay.run import bundled_sample  # noqa: E402
from streamssl.sinks.kafka import DeadLetterSink, PredictionSink  # noqa: E402
from streamssl.sources.file import FileSource  # noqa: E402
from streamssl.sources.kafka import Batch  # noqa: E402

Record = namedtuple("Record", "topic partition offset timestamp key value")


class _Sent:
    def add_errback(self, fn):
        return self


class MemoryProducer:
    """Counts what it is given; every send succeeds at once."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, topic, value=None, key=None, headers=None):
        self.sent += 1
        return _Sent()

    def flush(self, timeout=None) -> None:
        pass


def records(path: Path, batch: int, n_batches: int, label_rate: float, seed: int):
    """Each micro-batch's records: ``batch`` events of ``path`` (looped), then the labels of the
    previous batch's labelled share."""
    source = FileSource(path, batch_size=batch)
    rows = [(x, y) for b in source for x, y in zip(b.X.tolist(), b.y)]
    names = source.feature_names
    rng = np.random.default_rng(seed)
    previous: list = []  # (event id, label) of the last batch's labelled events
    offset = label_offset = 0
    for _ in range(n_batches):
        out, current = [], []
        for _ in range(batch):
            x, y = rows[offset % len(rows)]
            body = {"id": f"e{offset}", "features": dict(zip(names, x))}
            out.append(Record("ev", 0, offset, 1_700_000_000_000 + offset, None, json.dumps(body).encode()))
            if rng.random() < label_rate:
                current.append((f"e{offset}", y))
            offset += 1
        for event_id, label in previous:
            out.append(Record("lb", 0, label_offset, 1_700_000_000_000 + offset, None,
                              json.dumps({"id": event_id, "label": label}).encode()))
            label_offset += 1
        previous = current
        yield out, names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, default=None, help="recorded stream (default: the bundled Elec2 sample)")
    p.add_argument("--batch", type=int, default=256, help="events per micro-batch (default 256)")
    p.add_argument("--batches", type=int, default=300, help="micro-batches timed (default 300, the first 5 not counted)")
    p.add_argument("--label-rate", type=float, default=0.05)
    p.add_argument("--trees", action=argparse.BooleanOptionalAction, default=True,
                   help="the learner's forests on or off (learner.trees; the daemon's default: on)")
    p.add_argument("--part", type=parse_part_setting, action="append", default=[], metavar="NAME.SETTING=VALUE",
                   help="a setting of the learner's parts (the daemon's learner.parts), repeatable: trees.n_models=5")
    args = p.parse_args()
    learner = {"trees": args.trees, "parts": part_settings(args.part)}
    path = args.path or bundled_sample()
    times, daemon, producer = [], None, MemoryProducer()
    with tempfile.TemporaryDirectory() as tmp:
        for recs, names in records(path, args.batch, args.batches, args.label_rate, seed=0):
            if daemon is None:
                config = {"kafka": {"events_topic": "ev", "labels_topic": "lb", "predictions_topic": "pr",
                                    "dead_letter_topic": "dl"},
                          "events": {"features": names}, "learner": learner,
                          "checkpoint": {"path": str(Path(tmp) / "d.ckpt")}}
                daemon = Daemon(load_config_text(json.dumps(config), environ={}), log=logging.getLogger("bench"))
                daemon.predictions = PredictionSink(producer, "pr")
                daemon.dead = DeadLetterSink(producer, "dl", 1 << 16)
            start = time.perf_counter()
            daemon.process(Batch.of(recs, daemon.partitions))
            times.append(time.perf_counter() - start)
            if len(times) == 1:  # as Daemon.run after its warm-up: what lives from the start
                gc.collect()     # is kept out of the collector's full passes
                gc.freeze()
    t = np.array(times[5:]) * 1000
    print(f"{platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}: "
          f"{len(t)} batches of {args.batch} events, {args.label_rate:.0%} labels, trees {'on' if args.trees else 'off'}"
          + "".join(f", {n}.{k}={v}" for n, settings in learner["parts"].items() for k, v in settings.items()))
    print(f"per batch: mean {t.mean():.1f} ms, p50 {np.median(t):.1f}, p90 {np.percentile(t, 90):.1f}, "
          f"p99 {np.percentile(t, 99):.1f}, max {t.max():.1f}; {args.batch / t.mean() * 1000:,.0f} events/s; "
          f"{producer.sent:,} records sent")


if __name__ == "__main__":
    main()
