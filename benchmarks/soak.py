"""Soak: the daemon through a real broker for millions of events, with its memory over time.

    python benchmarks/soak.py                       # 2,000,000 events of kddcup99_10pct, looped
    python benchmarks/soak.py --events 300000 --out /tmp/soak

A producer thread replays the recorded stream (looped, ids kept unique) into a Tansu broker on
loopback as fast as it can, with 5 % of the labels 2 s later; the daemon (`streamssl run`, the
default learner, checkpoints every 50,000 events) consumes, predicts, joins labels and learns.
Every second the script reads the daemon's resident memory (/proc/PID/status, VmRSS) and its
`streamssl_events_processed_total{kind="consumed"}`. It reports RSS at the end of warm-up
(the first quarter of the events: the label buffer and the replay memories fill up there),
the largest RSS after it, and the growth between the two (target: at most 10 %), and draws
the curve.

Growth is measured between steady levels, not single samples: each checkpoint (every 50,000
events) briefly adds its serialised copy to RSS. The baseline is the median RSS over the
first tenth of the events after warm-up; the end level is the median over the last tenth;
the transient peaks are reported apart.

    python benchmarks/soak.py --report-only         # recompute figures and plot from soak.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from streamssl.replay.produce import produce  # noqa: E402
from streamssl.sources.file import FileSource  # noqa: E402
from streamssl.testing.broker import LocalBroker, Topics  # noqa: E402
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", type=Path, default=SHARED / "kddcup99_10pct.csv.gz")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--label-rate", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak")
    ap.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    ap.add_argument("--max-lead-s", type=float, default=None,
                    help="labels.max_lead_s for the daemon (default: the config's default)")
    ap.add_argument("--report-only", action="store_true", help="recompute the figures and the plot from OUT/soak.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        result = json.loads((args.out / "soak.json").read_text())
        args.events = result["events"]
        write(result, result["samples"], args)
        return
    source = FileSource(args.path, batch_size=1, limit=1)
    next(iter(source))
    features = source.feature_names

    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        tmp = Path(tmp)
        topics = Topics.unique("soak").create(broker.bootstrap, partitions=1)
        config, port = write_config(tmp, broker.bootstrap, topics, "soak", events={"features": features},
                                    batch={"max_events": 1024, "max_wait_ms": 50},
                                    **({"labels": {"max_lead_s": args.max_lead_s}} if args.max_lead_s else {}))
        daemon = DaemonProcess(config, port, tmp / "daemon.log")
        sent: dict = {}

        def feed() -> None:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20, batch_size=256 << 10, acks=1)
            s = produce(args.path, producer, topics.events, topics.labels, args.label_rate, 2.0, None,
                        limit=args.events, repeat=10 ** 6)
            producer.close()
            sent.update(events=s.events, labels=s.labels)

        samples = []  # (seconds, events consumed, RSS MiB)
        try:
            wait_for(lambda: daemon.get("/readyz")[0] == 200, 120, "/readyz", daemon)
            start = time.monotonic()
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            consumed = 0.0
            while consumed < args.events and time.monotonic() - start < args.timeout:
                if daemon.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited:\n{daemon.log_text()[-3000:]}")
                consumed = daemon.metric("streamssl_events_processed_total", {"kind": "consumed"})
                samples.append((time.monotonic() - start, consumed, rss_mib(daemon.process.pid)))
                print(f"\r{samples[-1][0]:6.0f} s  {consumed:12,.0f} events  {samples[-1][2]:7.1f} MiB RSS", end="",
                      file=sys.stderr, flush=True)
                time.sleep(1.0)
            print(file=sys.stderr)
            feeder.join(60)
            # Labels sent last (2 s after their event) may still be on their way: wait for both topics' ends.
            wait_for(lambda: daemon.metric("streamssl_label_join_hits_total")
                     + daemon.metric("streamssl_label_join_misses_total") >= sent.get("labels", 0), 60,
                     "every label joined or counted", daemon)
            dead = daemon.metric("streamssl_dead_letters_total")
            buffer_events = daemon.metric("streamssl_label_buffer_events")
            hits = daemon.metric("streamssl_label_join_hits_total")
            misses = {reason: daemon.metric("streamssl_label_join_misses_total", {"reason": reason})
                      for reason in ("unknown", "expired", "duplicate")}
            evictions = {cause: daemon.metric("streamssl_label_buffer_evictions_total", {"cause": cause})
                         for cause in ("capacity", "ttl")}
            duplicates = daemon.metric("streamssl_duplicate_events_total")
            holds = {topic: daemon.metric("streamssl_partition_holds_total", {"topic": topic})
                     for topic in (topics.events, topics.labels)}
        finally:
            code = daemon.stop()
    seconds = samples[-1][0]
    result = {
        "path": args.path.name, "events": args.events, "consumed": samples[-1][1], "sent": sent,
        "seconds": seconds, "events_per_second": samples[-1][1] / seconds,
        "dead_letters": dead, "label_buffer_events": buffer_events, "label_join_hits": hits,
        "label_join_misses": misses, "label_buffer_evictions": evictions, "duplicate_events": duplicates,
        "partition_holds": {"events": holds[topics.events], "labels": holds[topics.labels]},
        "exit_code": code, "max_lead_s": args.max_lead_s,
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    write(result, samples, args)


def write(result: dict, samples: list, args) -> None:
    n = args.events
    level = lambda lo, hi: statistics.median(s[2] for s in samples if lo <= s[1] < hi)  # noqa: E731
    baseline = level(n / 4, n / 4 + n / 10)
    end = level(n - n / 10, n + 1)
    peak = max(s[2] for s in samples if s[1] >= n / 4)
    result.update({
        "rss_mib_baseline_after_warmup": baseline, "rss_mib_end_level": end, "rss_mib_peak_after_warmup": peak,
        "growth_after_warmup": end / baseline - 1, "peak_over_baseline": peak / baseline - 1, "samples": samples,
    })
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    plot(samples, args, baseline, args.out / "soak_rss.png")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))


def plot(samples, args, rss_warm: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    events = [s[1] / 1e6 for s in samples]
    ax.plot(events, [s[2] for s in samples], color="#1f4e9c", lw=1.6, label="daemon RSS")
    ax.axvline(args.events / 4 / 1e6, color="#999", ls="--", lw=1, label="end of warm-up (¼ of the events)")
    ax.axhline(rss_warm, color="#27ae60", ls=":", lw=1, label="baseline: median RSS over the next tenth")
    ax.axhline(rss_warm * 1.1, color="#c0392b", ls=":", lw=1, label="baseline + 10 %")
    ax.set_xlabel("events consumed (millions)")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"streamssl run · {args.path.name} looped · {args.events:,} events · labels {args.label_rate:.0%}",
                 loc="left", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
