"""`streamssl produce` stopped by a signal mid-stream, through a real Kafka-protocol broker: the
events end, the labels of those sent still follow, and the summary counts what was sent."""

import json
import signal
import subprocess
import sys

import pytest

from streamssl.testing.broker import Topics, read_topic
from streamssl.testing.daemon import wait_for

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_events_and_every_sent_events_label_still_follows(kafka_broker, sig):
    topics = Topics.unique("stop").create(kafka_broker.bootstrap)
    # Every event labelled, 2 s later: at the signal about 2 s of labels are still due.
    producer = subprocess.Popen(
        [sys.executable, "-m", "streamssl.cli", "produce", "--topic", topics.events, "--labels-topic", topics.labels,
         "--label-rate", "1", "--label-delay-s", "2", "--rate", "100", "--repeat", "100",
         "--bootstrap-servers", kafka_broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_topic(kafka_broker.bootstrap, topics.events, timeout_s=1)) >= 300, 120,
                 "300 events sent")
        producer.send_signal(sig)
        out, err = producer.communicate(timeout=120)
    finally:
        producer.kill()
    assert producer.returncode == 0, err
    sent = json.loads(out)
    assert 300 <= sent["events"] < 500_000 and sent["labels"] == sent["events"]
    events = {json.loads(r.value)["id"] for r in read_topic(kafka_broker.bootstrap, topics.events,
                                                             expect=sent["events"])}
    labels = [json.loads(r.value)["id"] for r in read_topic(kafka_broker.bootstrap, topics.labels,
                                                             expect=sent["labels"])]
    assert events == {str(i) for i in range(sent["events"])}
    assert sorted(labels, key=int) == sorted(events, key=int)
