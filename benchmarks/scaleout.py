"""N daemon replicas in one consumer group against one daemon, through a real Kafka-protocol broker.

One recorded stream (Elec2 by default, made of ``--entities`` entities: see :func:`entity_stream`;
5 % of labels, each ``--label-delay-s`` after its event) goes through topics of ``--replicas`` partitions, against fresh topics each time with the
same partitions and label mask: read by one daemon; and by ``--replicas`` daemons of one group,
which split the partitions and share their labels through sync rounds (torch.distributed on
loopback). Two runs of each:

1. live, at ``--rate`` events/s once the daemons are ready, as a stream arrives: accuracy is that
   of the first prediction of every event against the stream's own labels (every event,
   prequential: predicted before its label is learned);
2. sustained: every event in the topic before the daemons start; events/s from the first to the
   last prediction (their Kafka timestamps). A catch-up reads events ahead of their labels, so
   its accuracy is not the one reported.

    python benchmarks/scaleout.py --replicas 2 --json benchmarks/results/scaleout.json

JSON keys: ``replicas``, ``events``, ``labels``, ``predicted`` (distinct ids predicted),
``duplicates``, ``accuracy`` (all replicas together), ``single_accuracy`` (one daemon on the
same stream), ``sync_rounds`` (rounds that went through, summed over replicas),
``rows_shared`` (labelled rows each replica received, summed), ``sync_round_seconds_mean``
(joining a round to its end, the join window included), ``sync_sent_bytes_per_round`` (one
replica's pickled payload), ``events_per_second`` and
``single_events_per_second`` (first to last prediction, by the predictions' Kafka timestamps).
On a 2-core machine the replicas, the broker and nothing else share two cores: the events/s
say what the protocol costs there, not what N machines would do.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamssl.replay.produce import produce  # noqa: E402
from streamssl.sources.file import FileOptions, FileSource  # noqa: E402
from streamssl.testing.broker import LocalBroker, Topics, free_port, read_topic  # noqa: E402
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def entity_stream(path: Path, n: int | None, entities: int, out: Path) -> tuple[list[str], list]:
    """A stream of ``entities`` entities made of ``path``'s first ``n`` records: cut into that
    many contiguous parts, each one entity (``entity`` column), interleaved in time. Kafka then
    keeps each entity in one partition, in order, as a keyed production stream would be; one
    recorded entity split across partitions would lose the order its temporal context needs.
    Returns the feature names and the labels in the new order."""
    source = FileSource(path, batch_size=10 ** 7, limit=n)
    batch = next(iter(source))
    names, X, y = source.feature_names, batch.X, [str(v) for v in batch.y]
    parts = np.array_split(np.arange(len(y)), entities)
    order = [(e, part[i]) for i in range(max(map(len, parts))) for e, part in enumerate(parts) if i < len(part)]
    with gzip.open(out, "wt") as f:
        f.write(",".join([*names, "entity", "label"]) + "\n")
        for e, row in order:
            f.write(",".join([*(repr(float(v)) for v in X[row]), f"e{e}", y[row]]) + "\n")
    return names, [y[row] for _, row in order]


def one_run(broker: LocalBroker, path: Path, truth: list, names: list[str], replicas: int, partitions: int,
            label_rate: float, label_delay_s: float, rate: float | None, tmp: Path) -> dict:
    """One daemon or ``replicas`` of them on the stream: live at ``rate`` events/s, or (``rate``
    None) with every event in the topic before they start."""
    n = len(truth)
    tag = f"scale{replicas}-{'live' if rate else 'sustained'}-{int(time.time())}"
    topics = Topics.unique(tag).create(broker.bootstrap, partitions=partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20, batch_size=256 << 10, acks=1)
    fill = (lambda: produce(path, producer, topics.events, topics.labels, label_rate, label_delay_s, rate, limit=n,
                            options=FileOptions(key_column="entity")))
    filled = None if rate else fill()
    address = f"127.0.0.1:{free_port()}"
    daemons = []
    try:
        for rank in range(replicas):
            home = tmp / f"{tag}-r{rank}"
            home.mkdir()
            sections = {"events": {"features": names, "key_field": "entity"}, "batch": {"max_events": 500}}
            if replicas > 1:
                sections["distributed"] = {"world_size": replicas, "rank": rank, "address": address,
                                           "sync_every_s": 1.0, "timeout_s": 10.0}
            config = write_config(home, broker.bootstrap, topics, tag, **sections)
            daemons.append(DaemonProcess(*config, home / "daemon.log", "--log-level", "warning"))

        def total(name: str, labels: dict | None = None) -> float:
            return sum(d.metric(name, labels) for d in daemons)

        if rate:
            for d in daemons:
                wait_for(lambda: d.get("/readyz")[0] == 200, 120, "every daemon ready", d)
            filled = fill()
        producer.close()

        wait_for(lambda: total("streamssl_predictions_produced_total") >= n, 1800, "a prediction per event", daemons[0])
        wait_for(lambda: total("streamssl_label_join_hits_total") + total("streamssl_label_join_misses_total")
                 >= filled.labels, 300, "every label joined or missed", daemons[0])
        if replicas > 1:  # every replica has had a round since the last label was joined
            rounds = [d.metric("streamssl_sync_rounds_total", {"outcome": "ok"}) for d in daemons]
            wait_for(lambda: all(d.metric("streamssl_sync_rounds_total", {"outcome": "ok"}) >= r + 2
                                 for d, r in zip(daemons, rounds)), 120, "a last sync round", daemons[0])
        sync_rounds = total("streamssl_sync_rounds_total", {"outcome": "ok"})
        round_s = total("streamssl_sync_duration_seconds_sum") / max(1.0, total("streamssl_sync_duration_seconds_count"))
        sent_bytes = total("streamssl_sync_sent_bytes_total")
        shared = total("streamssl_sync_rows_total", {"direction": "received"})
        for d in daemons:
            d.stop(signal.SIGTERM)
    finally:
        for d in daemons:
            d.kill()
    records = read_topic(broker.bootstrap, topics.predictions, timeout_s=120, expect=n)
    first: dict[str, str] = {}
    ids = Counter()
    for r in sorted(records, key=lambda r: r.timestamp):
        body = json.loads(r.value)
        ids[body["id"]] += 1
        first.setdefault(body["id"], str(body["prediction"]))
    stamps = np.array([r.timestamp for r in records], dtype=np.float64) / 1000
    correct = sum(first.get(str(i)) == y for i, y in enumerate(truth))
    return {"events": filled.events, "labels": filled.labels, "predicted": len(ids),
            "duplicates": sum(ids.values()) - len(ids), "accuracy": round(correct / n, 4),
            "sync_rounds": int(sync_rounds), "rows_shared": int(shared),
            "sync_round_seconds_mean": round(round_s, 3),  # joining to done, the join window included
            "sync_sent_bytes_per_round": round(sent_bytes / max(1.0, sync_rounds)),
            "events_per_second": float(round(n / max(1e-9, stamps.max() - stamps.min()), 0))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--stream", type=Path, default=SHARED / "elec2.csv.gz")
    p.add_argument("--events", type=int, default=None, help="the first N events (default: the whole stream)")
    p.add_argument("--label-rate", type=float, default=0.05)
    p.add_argument("--label-delay-s", type=float, default=1.0)
    p.add_argument("--rate", type=float, default=2000.0, help="events/s of the live runs")
    p.add_argument("--entities", type=int, default=8, help="entities the stream is made of (see entity_stream)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "entities.csv.gz"
        names, truth = entity_stream(args.stream, args.events, args.entities, stream)
        runs = {}
        for name, k in (("single", 1), ("many", args.replicas)):
            for mode, rate in (("live", args.rate), ("sustained", None)):
                runs[name, mode] = one_run(broker, stream, truth, names, k, args.replicas, args.label_rate,
                                           args.label_delay_s, rate, Path(tmp))
                print(name, mode, json.dumps(runs[name, mode]), file=sys.stderr, flush=True)
    many, single = runs["many", "live"], runs["single", "live"]
    out = {"replicas": args.replicas, "stream": args.stream.name, "entities": args.entities,
           "label_rate": args.label_rate,
           "label_delay_s": args.label_delay_s, "rate": args.rate, **many,
           "single_accuracy": single["accuracy"],
           "events_per_second": runs["many", "sustained"]["events_per_second"],
           "single_events_per_second": runs["single", "sustained"]["events_per_second"],
           "sustained_duplicates": runs["many", "sustained"]["duplicates"],
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"}
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
