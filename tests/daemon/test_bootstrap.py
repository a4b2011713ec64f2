"""Starting with the broker down: the daemon waits for it (unready, saying why, alive), honours
SIGTERM and ``--timeout`` while it waits, and consumes once a broker comes up."""

from __future__ import annotations

import json
import os
import signal

import pytest
from kafka import KafkaProducer

from streamssl.replay.produce import produce
from streamssl.replay.run import bundled_sample
from streamssl.testing.broker import LocalBroker, Topics, free_port
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config

pytestmark = [pytest.mark.kafka,
              pytest.mark.skipif(bool(os.environ.get("STREAMSSL_TEST_KAFKA")), reason="starts its own broker late")]


def nobody_listening(tmp_path, name: str, *args: str) -> tuple[DaemonProcess, int, Topics]:
    """A daemon started against a port where no broker listens (yet)."""
    port, topics = free_port(), Topics.unique(name)
    config, http = write_config(tmp_path, f"127.0.0.1:{port}", topics, name)
    return DaemonProcess(config, http, tmp_path / f"{name}.log", *args), port, topics


def json_lines_only(daemon: DaemonProcess) -> None:
    for line in daemon.log_text().splitlines():
        assert isinstance(json.loads(line), dict), line


def test_without_a_broker_it_waits_unready_and_a_sigterm_stops_it_cleanly(tmp_path):
    daemon, _, _ = nobody_listening(tmp_path, "down")
    try:
        wait_for(lambda: daemon.get("/readyz")[0] == 503, 120, "/readyz to answer", daemon)
        assert "broker" in json.loads(daemon.get("/readyz")[1])["reason"]
        assert daemon.get("/healthz")[0] == 200  # waiting is alive: no restart wanted
        assert daemon.metric("streamssl_ready") == 0
        assert daemon.stop(signal.SIGTERM, timeout_s=30) == 0  # in the middle of a bootstrap attempt
    finally:
        daemon.kill()
    [stopped] = daemon.log_events("stopped")
    assert stopped["reason"] == "SIGTERM" and stopped["connected"] is False
    json_lines_only(daemon)


def test_without_a_broker_a_bounded_run_ends_on_time(tmp_path):
    daemon, _, _ = nobody_listening(tmp_path, "bounded", "--timeout", "8")
    try:
        assert daemon.process.wait(120) == 0
    finally:
        daemon.kill()
    assert daemon.log_events("stopped")[0]["reason"] == "timeout"
    json_lines_only(daemon)


def test_a_broker_that_comes_up_late_is_waited_for_and_used(tmp_path):
    daemon, port, topics = nobody_listening(tmp_path, "late")
    try:
        wait_for(lambda: daemon.get("/readyz")[0] == 503, 120, "/readyz to answer", daemon)
        with LocalBroker(port=port) as broker:
            topics.create(broker.bootstrap)
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            produce(bundled_sample(), producer, topics.events, limit=200)
            producer.close()
            wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= 200, 150,
                     "every event predicted once the broker is up", daemon)
            wait_for(lambda: daemon.get("/readyz")[0] == 200, 120, "/readyz once consuming", daemon)
            assert daemon.stop(signal.SIGTERM) == 0
    finally:
        daemon.kill()
    json_lines_only(daemon)
