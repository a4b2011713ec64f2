"""Running the real daemon as a subprocess against a real broker, and reading what it exposes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Callable

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .broker import Topics, free_port

ELEC2_FEATURES = ["date", "day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def write_config(tmp_path: Path, bootstrap: str, topics: Topics, group: str, **sections) -> tuple[Path, int]:
    port = free_port()
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "events_topic": topics.events,
                  "labels_topic": topics.labels, "predictions_topic": topics.predictions,
                  "dead_letter_topic": topics.dead_letters, "handover_topic": topics.handover,
                  "session_timeout_ms": 6000,
                  "heartbeat_interval_ms": 1000},
        "events": {"features": ELEC2_FEATURES},
        "checkpoint": {"path": str(tmp_path / "state" / "daemon.ckpt")},
        "http": {"port": port},
        "batch": {"max_wait_ms": 100},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = tmp_path / f"daemon-{group}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, proc: "DaemonProcess | None" = None,
             explain: Callable[[], str] | None = None) -> None:
    """Wait until ``condition()``; on timeout fail with ``explain()`` (the figures the condition
    read) first, then ``proc``'s log tail and metrics and the other daemons' logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.process.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.process.returncode}) while waiting for {what}:\n{proc.log_text()}")
        time.sleep(0.2)
    metrics = ""
    if proc is not None:
        status, body = proc.get("/metrics")
        metrics = "\n".join(line for line in body.splitlines()
                            if line.startswith("streamssl_") and "_bucket" not in line and "_created" not in line)
    # The other daemons of the test often hold the reason (a partition they did not let go).
    others = "".join(f"\n--- {other.log.name}:\n{other.log_text()[-2000:]}" for other in DaemonProcess.started
                     if other is not proc and other.process.poll() is None)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}" + (f" ({explain()})" if explain else "")
                         + (f"\n{proc.log_text()[-3000:]}\n{metrics}" if proc else "") + others)


class DaemonProcess:
    """``streamssl run`` in a child process; its JSON logs go to a file."""

    started: "weakref.WeakSet[DaemonProcess]" = weakref.WeakSet()  # for :func:`wait_for`'s report

    def __init__(self, config: Path, port: int, log: Path, *args: str) -> None:
        self.port = port
        self.log = log
        DaemonProcess.started.add(self)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as f:
            self.process = subprocess.Popen([sys.executable, "-m", "streamssl.cli", "run", "--config", str(config), *args],
                                            stdout=f, stderr=subprocess.STDOUT, env=env)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, labels: dict | None = None) -> float:
        """A sample's value from /metrics (0 when absent or the server is not up yet)."""
        return sum(self._samples(name, labels))

    def caught_up(self, partitions: int | None = None) -> bool:
        """Partitions are assigned and every one of them is read to its end (lag 0); with
        ``partitions``, only once at least that many have a lag. A partition that no fetch has
        reached yet has no lag sample (its end is unknown), so without the count a daemon that
        has read its event partitions but not yet fetched a label partition looks caught up."""
        lags = self._samples("streamssl_consumer_lag")
        return bool(lags) and sum(lags) == 0 and len(lags) >= (partitions or 0)

    def partitions_known(self) -> int:
        """Assigned partitions whose lag is known (a fetch has told their end)."""
        return len(self._samples("streamssl_consumer_lag"))

    def _samples(self, name: str, labels: dict | None = None) -> list[float]:
        status, body = self.get("/metrics")
        if status != 200:
            return []
        return [sample.value for family in text_string_to_metric_families(body) for sample in family.samples
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items())]

    def usage(self) -> tuple[float, float]:
        """(resident memory in MiB, CPU seconds used so far) of the daemon process."""
        rss = 0.0
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_events(self, event: str | None = None) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                out.append(record)
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
