"""Events as they really come, through a real broker: text categories, nulls, NaN and absent
keys, string labels. The daemon predicts every one and dead-letters none."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from kafka import KafkaProducer

from streamssl.replay.run import bundled_sample
from streamssl.sources.file import FileSource
from streamssl.testing.broker import Topics, read_topic
from streamssl.testing.daemon import DaemonProcess, wait_for, write_config

pytestmark = pytest.mark.kafka

N = 600
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FEATURES = [{"name": "day", "type": "categorical"}, "date", "period",
            *({"name": n, "nullable": True} for n in ("nswprice", "nswdemand", "vicprice", "vicdemand", "transfer")),
            {"name": "holiday", "type": "boolean"}]


def messy_events(n: int, seed: int = 0) -> list[tuple[str, dict, str]]:
    """``(id, features, label)`` from the bundled Elec2 sample with the day as text, about 10 %
    of the measurements null, NaN or absent, and labels as words."""
    rng = np.random.default_rng(seed)
    source = FileSource(bundled_sample(), batch_size=n, limit=n)
    out = []
    for batch in source:
        names = source.feature_names
        for i, (x, y) in enumerate(zip(batch.X, batch.y)):
            row = dict(zip(names, x.tolist()))
            features = {"day": DAYS[(int(row["day"]) - 1) % 7], "date": row["date"], "period": row["period"],
                        "holiday": bool(rng.random() < 0.05)}
            for name in ("nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"):
                u = rng.random()
                if u >= 0.1:
                    features[name] = row[name]
                elif u < 0.04:
                    features[name] = None  # null; below 0.07 NaN, else the key is absent
                elif u < 0.07:
                    features[name] = float("nan")
            out.append((f"m{i}", features, "up" if y == 1 else "down"))
    assert len(out) == n
    return out


def test_messy_events_are_all_predicted_and_none_dead_lettered(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topics = Topics.unique("messy").create(bootstrap, partitions=2)
    events = messy_events(N + 40)
    producer = KafkaProducer(bootstrap_servers=bootstrap)

    def send(part: list, labels: bool) -> None:
        for i, (event_id, features, label) in enumerate(part):
            # json.dumps writes NaN as the bare token NaN, as many producers do
            producer.send(topics.events, json.dumps({"id": event_id, "features": features}).encode())
            if labels and i % 4 == 0:
                producer.send(topics.labels, json.dumps({"id": event_id, "label": label}).encode())
        producer.flush()

    send(events[:N], labels=True)
    config, port = write_config(tmp_path, bootstrap, topics, "messy", events={"features": FEATURES})
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    try:
        wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= N, 150, "every event predicted", daemon)
        wait_for(lambda: daemon.metric("streamssl_label_join_hits_total") >= N // 4, 150, "the labels joined", daemon)
        send(events[N:], labels=False)  # predicted by a model that has learned the string labels
        wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= N + 40, 150, "the later events", daemon)
        assert daemon.metric("streamssl_dead_letters_total") == 0
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        producer.close()
        daemon.kill()
    predictions = {p["id"]: p for p in (json.loads(r.value) for r in read_topic(bootstrap, topics.predictions,
                                                                                 expect=N + 40))}
    assert set(predictions) == {e[0] for e in events}
    assert read_topic(bootstrap, topics.dead_letters, timeout_s=3) == []
    assert {predictions[e[0]]["prediction"] for e in events[N:]} <= {"up", "down"}
