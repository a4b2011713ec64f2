import numpy as np

from streamssl.drift.monitor import DriftMonitor


def feed_errors(monitor, rate_before, rate_after, seed, n=4000, change_at=2000, batch=50):
    """Feed a 0/1 error stream whose rate changes at ``change_at``; return what was detected."""
    rng = np.random.default_rng(seed)
    found = []
    for pos in range(0, n, batch):
        rate = rate_before if pos < change_at else rate_after
        found += monitor.update("error", (rng.random(batch) < rate).astype(float), position=pos + batch)
    return found


def test_detects_a_rise_in_error_and_records_the_event():
    monitor = DriftMonitor()
    found = feed_errors(monitor, 0.1, 0.5, seed=0)
    drifts = [e for e in found if e.level == "drift"]
    assert drifts and 2000 < drifts[0].position <= 2600
    assert all(e.detector == "ADWIN" and e.signal == "error" for e in drifts)
    assert monitor.counts[("error", "ADWIN", "drift")] == len(drifts)
    assert list(monitor.events)[-1] == found[-1]


def test_quiet_on_a_stationary_signal():
    found = feed_errors(DriftMonitor(), 0.2, 0.2, seed=1, n=20_000)
    assert len([e for e in found if e.level == "drift"]) <= 1


def test_signals_without_a_channel_are_ignored_and_channels_are_configurable():
    monitor = DriftMonitor(channels=["ssl_loss:ADWIN:delta=0.002"])
    assert monitor.channels == ("ssl_loss:ADWIN:delta=0.002",) and monitor.signals == {"ssl_loss"}
    assert monitor.update("error", [1.0] * 100, position=100) == []
    found = monitor.update("ssl_loss", [0.1] * 500 + [3.0] * 200, position=700)
    assert found and found[0].signal == "ssl_loss" and found[0].statistic == 3.0


def test_a_falling_error_is_learning_not_drift():
    assert feed_errors(DriftMonitor(), 0.5, 0.1, seed=2) == []
