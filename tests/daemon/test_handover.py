"""The handover log against a real Kafka-protocol broker: a partition's next owner finds the
latest window its previous owner wrote, however far back, and nothing else."""

from kafka import KafkaProducer, TopicPartition

from streamssl.config import KafkaConfig
from streamssl.sinks.kafka import make_producer
from streamssl.sources.handover import HandoverLog, Window
from streamssl.testing.broker import Topics


def config(bootstrap: str, topics: Topics, group: str) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=bootstrap, group_id=group, events_topic=topics.events,
                       labels_topic=topics.labels, predictions_topic=topics.predictions,
                       dead_letter_topic=topics.dead_letters, handover_topic=topics.handover)


def test_the_latest_window_of_each_partition_is_found_however_far_back(kafka_broker):
    topics = Topics.unique("handover").create(kafka_broker.bootstrap)
    producer = make_producer(config(kafka_broker.bootstrap, topics, "g"))
    try:
        log = HandoverLog(config(kafka_broker.bootstrap, topics, "g"), producer)
        other = HandoverLog(config(kafka_broker.bootstrap, topics, "other-group"), producer)
        events = [TopicPartition(topics.events, p) for p in range(2)]
        labels = TopicPartition(topics.labels, 0)
        log.write({events[0]: Window(0, 5, (1, 3)), events[1]: Window(2, 9), labels: Window(4, 4, ())})
        log.write({events[1]: Window(3, 10, (3,))})
        log.flush(10)
        # Many later records for one partition push the others far back (several chunks);
        # another group's and undecodable records in between are ignored.
        raw = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        raw.send(topics.handover, key=f"g/{topics.events}:0".encode(), value=b"{not json")
        raw.send(topics.handover, key=f"g/{topics.events}:0".encode(), value=b'{"start": 9, "end": 2}')
        raw.send(topics.handover, key=f"g/{topics.labels}:1".encode(), value=b'{"start": 9, "end": 2}')
        raw.flush()
        raw.close()
        for i in range(3 * HandoverLog.CHUNK):
            (other if i % 2 else log).write({events[0]: Window(i, i + 1)})
        log.flush(10)
        last = 3 * HandoverLog.CHUNK - 2
        assert log.read({*events, labels}) == {
            events[0]: Window(last, last + 1), events[1]: Window(3, 10, (3,)), labels: Window(4, 4, ())}
        assert log.read({TopicPartition(topics.labels, 1)}) == {}  # its only window is not one
        assert other.read({events[1]}) == {}
    finally:
        producer.close()


def test_with_a_key_only_signed_windows_are_taken(kafka_broker):
    topics = Topics.unique("handover-signed").create(kafka_broker.bootstrap)
    producer = make_producer(config(kafka_broker.bootstrap, topics, "g"))
    try:
        signed = HandoverLog(config(kafka_broker.bootstrap, topics, "g"), producer, key=b"secret")
        unsigned = HandoverLog(config(kafka_broker.bootstrap, topics, "g"), producer)
        forger = HandoverLog(config(kafka_broker.bootstrap, topics, "g"), producer, key=b"guess")
        tp = TopicPartition(topics.events, 0)
        signed.write({tp: Window(10, 20)})
        signed.flush(10)
        unsigned.write({tp: Window(0, 1_000_000)})  # later, but not signed: ignored
        forger.write({tp: Window(0, 2_000_000)})  # signed with another key: ignored
        unsigned.flush(10)
        assert signed.read({tp}) == {tp: Window(10, 20)}
        assert unsigned.read({tp}) == {tp: Window(0, 2_000_000)}  # without a key, the latest is taken
    finally:
        producer.close()
