"""The pacing rules of the daemon's two topics, without a broker (the catch-up through a real
broker is in test_daemon_kafka.py)."""

import math

from kafka import TopicPartition

from streamssl.daemon.pacing import Pacer

EV0, EV1, LB = TopicPartition("ev", 0), TopicPartition("ev", 1), TopicPartition("lb", 0)


def pacer(**kw) -> Pacer:
    return Pacer("ev", "lb", **{"max_pending": 100, "max_lead_s": 30.0, **kw})


def test_the_event_clock_is_the_slowest_partition_by_what_was_read_or_confirmed_read_to_its_end():
    p = pacer()
    p.saw(EV0, 500.0)
    p.saw(EV0, 400.0)  # an older record does not move it back
    p.saw(EV1, 700.0)
    assert p.event_clock({EV0: 10, EV1: 10}, now=1000.0) == 500.0
    # A lag of 0 is only the last fetch's high watermark (old, after a rebalance or on a starved
    # machine): without the broker's word the partition is read as far as its last record.
    assert p.event_clock({EV0: 0, EV1: 10}, now=1000.0) == 500.0
    p.caught_up(EV0, 990.0)
    assert p.event_clock({EV0: 0, EV1: 10}, now=1000.0) == 700.0
    p.caught_up(EV1, 995.0)
    p.caught_up(EV1, 900.0)  # an older word does not move it back
    assert p.event_clock({EV0: 0, EV1: 0}, now=1000.0) == 990.0
    assert p.event_clock({EV0: 0, EV1: 0}, now=950.0) == 950.0  # never past now
    assert p.event_clock({EV0: 0, EV1: 0, TopicPartition("ev", 2): 5}, now=1000.0) == -math.inf  # nothing read yet
    assert p.event_clock({LB: 0}, now=1000.0) == 1000.0  # no events partition: nothing to wait for
    p.forget({EV1})
    assert p.event_clock({EV0: 10}, now=1000.0) == 990.0 and EV1 not in p.times and EV1 not in p.confirmed


def test_labels_are_held_while_the_pending_buffer_is_over_half_full_with_hysteresis():
    p = pacer()
    lag = {EV0: 1000, LB: 1000}
    p.saw(EV0, 10.0)
    p.saw(LB, 20.0)
    assert p.decide(lag, pending=49, now=100.0) == set()
    assert p.decide(lag, pending=50, now=100.0) == {LB}
    assert p.decide(lag, pending=30, now=100.0) == {LB}  # between a quarter and a half: still held
    assert p.decide(lag, pending=25, now=100.0) == set()


def test_events_are_held_while_they_lead_labels_with_a_backlog_by_more_than_max_lead():
    p = pacer()
    p.saw(LB, 100.0)
    p.saw(EV0, 131.0)
    assert p.decide({EV0: 50, LB: 50}, pending=0, now=1000.0) == {EV0}
    p.saw(LB, 110.0)  # lead 21 s: above half of max_lead, still held
    assert p.decide({EV0: 50, LB: 50}, pending=0, now=1000.0) == {EV0}
    p.saw(LB, 117.0)  # lead 14 s
    assert p.decide({EV0: 50, LB: 50}, pending=0, now=1000.0) == set()
    p.saw(EV0, 500.0)
    assert p.decide({EV0: 50, LB: 0}, pending=0, now=1000.0) == set()  # no labels backlog: nothing to wait for
    # Events read to their end (a lag of 0) are read up to their last record: a labels backlog far behind holds them.
    assert p.decide({EV0: 0, LB: 50}, pending=0, now=1000.0) == {EV0}


def test_never_both_held_labels_win_and_events_move():
    p = pacer()
    p.saw(LB, 100.0)
    p.saw(EV0, 200.0)
    assert p.decide({EV0: 50, LB: 50}, pending=0, now=1000.0) == {EV0}
    assert p.decide({EV0: 50, LB: 50}, pending=80, now=1000.0) == {LB}


def test_without_a_labels_topic_or_with_pacing_off_nothing_is_held():
    assert Pacer("ev", None, max_pending=100).decide({EV0: 5}, pending=0, now=0.0) == set()
    p = pacer(max_lead_s=None, max_pending=0)
    p.saw(LB, 0.0)
    p.saw(EV0, 1e6)
    assert p.decide({EV0: 5, LB: 5}, pending=10**6, now=2e6) == set()
