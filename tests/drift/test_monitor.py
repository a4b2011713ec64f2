import numpy as np
from river import drift

from streamssl.drift.monitor import Channel, DriftMonitor


def test_detects_a_rise_in_error_and_records_the_event():
    monitor = DriftMonitor()
    rng = np.random.default_rng(0)
    found = []
    for pos in range(0, 4000, 50):
        rate = 0.1 if pos < 2000 else 0.5
        found += monitor.update("error", (rng.random(50) < rate).astype(float), position=pos + 50)
    drifts = [e for e in found if e.level == "drift"]
    assert drifts and 2000 < drifts[0].position <= 2600
    assert all(e.detector == "ADWIN" and e.signal == "error" for e in drifts)
    assert monitor.counts[("error", "ADWIN", "drift")] == len(drifts)
    assert list(monitor.events)[-1] == found[-1]


def test_quiet_on_a_stationary_signal():
    monitor = DriftMonitor()
    rng = np.random.default_rng(1)
    found = []
    for pos in range(0, 20_000, 50):
        found += monitor.update("error", (rng.random(50) < 0.2).astype(float), position=pos)
    assert len([e for e in found if e.level == "drift"]) <= 1


def test_signals_without_a_channel_are_ignored_and_channels_are_configurable():
    monitor = DriftMonitor(channels=lambda: [Channel("ssl_loss", "drift", drift.ADWIN())])
    assert monitor.signals == {"ssl_loss"}
    assert monitor.update("error", [1.0] * 100, position=100) == []
    found = monitor.update("ssl_loss", [0.1] * 500 + [3.0] * 200, position=700)
    assert found and found[0].signal == "ssl_loss" and found[0].statistic == 3.0


def test_a_falling_error_is_learning_not_drift():
    monitor = DriftMonitor()
    rng = np.random.default_rng(2)
    found = []
    for pos in range(0, 4000, 50):
        rate = 0.5 if pos < 2000 else 0.1
        found += monitor.update("error", (rng.random(50) < rate).astype(float), position=pos + 50)
    assert found == []
