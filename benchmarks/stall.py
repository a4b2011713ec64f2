"""The daemon's memory and CPU while the broker stops answering (SIGSTOP), and after it resumes.

    python benchmarks/stall.py                      # idle daemon, 90 s stall
    python benchmarks/stall.py --backlog 20000      # the stall begins while it works through a backlog
    python benchmarks/stall.py --events 20000 --stall-s 60 --json /tmp/stall.json

A Tansu broker on loopback, ``--events`` events of the bundled Elec2 sample (5 % labels)
produced and consumed first, then the broker is SIGSTOPped for ``--stall-s`` seconds and
SIGCONTed; with ``--backlog N``, N more events are produced just before the stall, so that it
comes while the daemon is busy (it finishes the backlog after the stall). Every second the script reads the daemon's resident memory (VmRSS), its CPU time
(utime + stime from /proc/PID/stat) and whether ``/healthz`` answered within 2 s. It prints
RSS before the stall (median of the last 10 s), the largest RSS during the stall and after it,
the growth (target: at most +10 %), the cores used during the stall, and the health probes
that failed. The daemon must be ready again after the stall, in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from streamssl.replay.produce import produce  # noqa: E402
from streamssl.replay.run import bundled_sample  # noqa: E402
from streamssl.testing.broker import LocalBroker, Topics  # noqa: E402
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--backlog", type=int, default=0, help="events produced just before the stall")
    ap.add_argument("--stall-s", type=float, default=90.0)
    ap.add_argument("--before-s", type=float, default=20.0, help="seconds sampled before the stall")
    ap.add_argument("--after-s", type=float, default=30.0, help="seconds sampled after the broker resumes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    samples: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        if broker.external:
            raise SystemExit("stall.py pauses its own local broker: unset STREAMSSL_TEST_KAFKA")
        tmp = Path(tmp)
        topics = Topics.unique("stall").create(broker.bootstrap)
        config, port = write_config(tmp, broker.bootstrap, topics, "stall", checkpoint={"every_s": 5})
        daemon = DaemonProcess(config, port, tmp / "daemon.log")
        try:
            wait_for(lambda: daemon.get("/readyz")[0] == 200, 120, "the daemon to be ready", daemon)
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
            produce(bundled_sample(), producer, topics.events, topics.labels, label_rate=0.05, limit=args.events)
            wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= args.events, 300,
                     "every event predicted", daemon)
            t0 = time.monotonic()

            def record(phase: str, seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    tick = time.monotonic()
                    rss, cpu = daemon.usage()
                    status = daemon.get("/healthz")[0]
                    samples.append({"t": round(tick - t0, 2), "phase": phase, "rss_mib": round(rss, 1),
                                    "cpu_s": cpu, "healthz": status})
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

            record("before", args.before_s)
            if args.backlog:
                produce(bundled_sample(), producer, topics.events, topics.labels, label_rate=0.05,
                        limit=args.backlog, id_prefix="b", repeat=args.backlog // 5000 + 1)
            broker.pause()
            try:
                record("stall", args.stall_s)
            finally:
                broker.resume()
            record("after", args.after_s)
            wait_for(lambda: daemon.get("/readyz")[0] == 200, 120, "/readyz after the stall", daemon)
            wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= args.events + args.backlog, 300,
                     "every event predicted after the stall", daemon)
            producer.close()
            assert daemon.process.poll() is None, "the daemon exited"
            non_json = [line for line in daemon.log_text().splitlines() if line and not line.startswith("{")]
            daemon.stop()
        finally:
            daemon.kill()

    def phase(name: str) -> list[dict]:
        return [s for s in samples if s["phase"] == name]

    before, stall, after = phase("before"), phase("stall"), phase("after")
    base = statistics.median(s["rss_mib"] for s in before[-10:])
    peak_stall = max(s["rss_mib"] for s in stall)
    peak_after = max(s["rss_mib"] for s in after)
    cores = (stall[-1]["cpu_s"] - stall[0]["cpu_s"]) / max(1e-9, stall[-1]["t"] - stall[0]["t"])
    result = {
        "events": args.events, "backlog": args.backlog, "stall_s": args.stall_s, "rss_before_mib": base,
        "rss_peak_stall_mib": peak_stall, "rss_peak_after_mib": peak_after,
        "growth_stall": round(peak_stall / base - 1, 4), "growth_after": round(peak_after / base - 1, 4),
        "cores_during_stall": round(cores, 3),
        "healthz_failed": sum(s["healthz"] != 200 for s in samples),
        "non_json_log_lines": len(non_json),
        "machine": f"{platform.node()} {os.cpu_count()} cores", "samples": samples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    if non_json:
        print("first non-JSON log lines:\n" + "\n".join(non_json[:10]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
