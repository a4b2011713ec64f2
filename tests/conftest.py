"""Suite-wide settings."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Every test that takes the broker, directly or through another fixture, carries the
    ``kafka`` marker: ``pytest -m "not kafka"`` runs the rest without one. The ``kafka`` tests
    also form one xdist group, so that pytest-xdist's ``loadgroup`` (pyproject.toml) runs them one
    after another in one worker, with one broker."""
    for item in items:
        if "kafka_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)
        if item.get_closest_marker("kafka"):
            item.add_marker(pytest.mark.xdist_group("kafka"))


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The networks are tiny; with more threads torch busy-waits against other processes
    on a 2-core machine and the suite runs many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_data(name: str):
    """A recorded stream from ../shared/data beside the repository (or $STREAMSSL_SHARED_DATA)."""
    import os
    from pathlib import Path

    root = os.environ.get("STREAMSSL_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / name


@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-protocol broker for the session: Tansu on a free loopback port, or the
    external broker named by $STREAMSSL_TEST_KAFKA (e.g. real Apache Kafka)."""
    from streamssl.testing.broker import BrokerUnavailable, LocalBroker

    broker = LocalBroker()
    try:
        broker.start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    yield broker
    broker.stop()
