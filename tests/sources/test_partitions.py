"""A consumer's partitions without a broker: positions, handover windows, what each record is."""

from collections import namedtuple

from kafka import TopicPartition

from streamssl.sources.handover import Window
from streamssl.sources.partitions import Partitions

Rec = namedtuple("Rec", "topic partition offset")
EV, LB = TopicPartition("ev", 0), TopicPartition("lb", 1)


def records(tp, offsets):
    return [Rec(tp.topic, tp.partition, o) for o in offsets]


def test_positions_go_past_the_last_record_and_never_back():
    parts = Partitions()
    parts.route(records(EV, [3, 4]) + records(LB, [0]))
    parts.route(records(EV, [2]))  # a record read again after a rewind
    assert parts.positions == {EV: 5, LB: 1}


def test_a_window_hands_over_its_listed_records_skips_the_rest_and_ends_where_it_ends():
    parts = Partitions()
    parts.read_window(EV, Window(10, 20, (12, 15)))
    first = parts.route(records(EV, range(10, 16)))
    assert [r.offset for r in first.handed] == [12, 15] and first.skipped == 4 and not first.new
    assert EV in parts.windows and parts.commit_offsets() == {EV: 20}  # the previous owner's work is not redone
    second = parts.route(records(EV, range(16, 23)))
    assert [r.offset for r in second.handed] == [] and second.skipped == 4
    assert [r.offset for r in second.new] == [20, 21, 22]
    assert parts.windows == {} and parts.commit_offsets() == {EV: 23}


def test_a_window_listing_nothing_hands_over_everything_in_it():
    parts = Partitions()
    parts.read_window(LB, Window(0, 3, None))
    routed = parts.route(records(LB, [0, 1, 2, 3]))
    assert [r.offset for r in routed.handed] == [0, 1, 2] and [r.offset for r in routed.new] == [3]


def test_the_next_owner_gets_the_waiting_offsets_and_what_is_left_of_a_window_being_read():
    parts = Partitions({EV: 30, LB: 9})
    parts.read_window(EV, Window(20, 40, (25, 35)))
    windows = parts.handover_windows({EV: [28], LB: []}, parts.commit_offsets(), held={EV})
    assert windows == {EV: Window(28, 40, (28, 35))}  # LB is no longer held: no window for it


def test_a_checkpoint_round_trip_keeps_positions_and_windows_and_forget_drops_positions():
    parts = Partitions({EV: 7, LB: 2}, {EV: Window(5, 9, (6,))})
    back = Partitions.from_state_dict(parts.state_dict())
    assert back.positions == parts.positions and back.windows == parts.windows
    assert Partitions.from_state_dict({"offsets": [["ev", 0, 7]]}).windows == {}  # written before windows
    back.forget({EV})
    assert back.positions == {LB: 2}
