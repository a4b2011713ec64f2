import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamssl.label_join import LabelJoin
from streamssl.state.serialize import dumps, loads


def rows(n: int, d: int = 2) -> np.ndarray:
    return np.arange(n * d, dtype=np.float32).reshape(n, d)


def test_a_label_finds_its_event_with_features_and_prediction():
    join = LabelJoin()
    join.add_events(["a", "b"], rows(2), ["p0", "p1"], now=0.0)
    (j,) = join.add_labels([("b", "y")], now=5.0)
    assert (j.id, j.x.tolist(), j.label, j.predicted) == ("b", [2.0, 3.0], "y", "p1")
    assert join.hits == 1 and len(join) == 1 and not join.misses


def test_ttl_expires_events_and_their_late_labels_are_counted_expired():
    join = LabelJoin(ttl_s=10)
    join.add_events(["old"], rows(1), [None], now=0.0)
    join.add_events(["new"], rows(1), [None], now=9.0)
    assert join.add_labels([("old", 1), ("new", 0)], now=11.0)[0].id == "new"
    assert join.misses == {"expired": 1} and join.evictions == {"ttl": 1} and len(join) == 0


def test_capacity_evicts_the_oldest_first():
    join = LabelJoin(max_events=3)
    join.add_events([str(i) for i in range(5)], rows(5), [None] * 5, now=0.0)
    assert list(join.events) == ["2", "3", "4"] and join.evictions == {"capacity": 2}


def test_a_label_before_its_event_waits_then_joins():
    join = LabelJoin(pending_ttl_s=30)
    assert join.add_labels([("later", 1)], now=0.0) == []
    (j,) = join.add_events(["later", "other"], rows(2), ["p", "q"], now=5.0)
    assert (j.id, j.label, j.predicted) == ("later", 1, "p")
    assert "later" not in join.events and "other" in join.events and join.hits == 1


def test_a_label_whose_event_never_comes_is_an_unknown_miss_after_the_pending_ttl():
    join = LabelJoin(pending_ttl_s=30)
    join.add_labels([("ghost", 1)], now=0.0)
    join.expire(now=29.0)
    assert not join.misses
    join.expire(now=31.0)
    assert join.misses == {"unknown": 1} and not join.pending


def test_a_label_ahead_of_a_backlog_waits_on_the_event_clock_not_the_wall_clock():
    join = LabelJoin(pending_ttl_s=30)
    # Written at t=1000, read at wall time 1000 while the events are read up to t=400 only.
    join.add_labels([("ahead", 1)], now=1000.0, times=[1000.0], clock=400.0)
    join.expire(now=5000.0, clock=1020.0)  # an hour of catching up later: still waiting
    assert list(join.pending) == ["ahead"] and not join.misses
    (j,) = join.add_events(["ahead"], rows(1), ["p"], now=5001.0, clock=1025.0)
    assert (j.id, j.label) == ("ahead", 1) and join.hits == 1
    join.add_labels([("ghost", 0)], now=5002.0, times=[1030.0], clock=1030.0)
    join.expire(now=5003.0, clock=1061.0)  # the events passed its time by more than the ttl
    assert join.misses == {"unknown": 1} and not join.pending


def test_pending_labels_are_bounded():
    join = LabelJoin(max_pending=2)
    join.add_labels([("x", 1), ("y", 1), ("z", 1)], now=0.0)
    assert list(join.pending) == ["y", "z"] and join.misses == {"unknown": 1}


def test_second_label_for_an_event_is_a_duplicate_and_redelivered_events_are_counted():
    join = LabelJoin()
    join.add_events(["a"], rows(1), [None], now=0.0)
    join.add_events(["a"], rows(1) + 1, [None], now=1.0)  # redelivered after a restart
    assert join.redelivered == 1 and len(join) == 1
    (j,) = join.add_labels([("a", 0)], now=2.0)
    assert j.x.tolist() == [1.0, 2.0]  # the latest copy
    assert join.add_labels([("a", 0)], now=3.0) == [] and join.misses == {"duplicate": 1}


def test_state_round_trip_keeps_everything():
    join = LabelJoin(ttl_s=100, max_events=10)
    join.add_events(["a", "b", "c"], rows(3), [0, 1, None], now=0.0)
    join.add_labels([("b", 1), ("zz", 0)], now=1.0)
    restored = LabelJoin(ttl_s=100, max_events=10)
    restored.load_state_dict(join.state_dict())
    assert list(restored.events) == ["a", "c"] and list(restored.pending) == ["zz"]
    assert restored.hits == 1 and restored.gone == join.gone
    (j,) = restored.add_labels([("c", 5)], now=2.0)
    assert j.x.tolist() == [4.0, 5.0] and j.predicted is None
    empty = LabelJoin()
    empty.load_state_dict(LabelJoin().state_dict())
    assert len(empty) == 0


def test_pseudo_labels_of_waiting_events_are_scored_when_their_label_comes_and_survive_a_restart():
    join = LabelJoin(ttl_s=60, max_events=10)
    X = np.eye(4, dtype=np.float32)
    join.add_events(["a", "b", "c", "d"], X, [0, 1, 1, 0], now=0.0)
    join.mark_pseudo(["a", "b", "zz"], [0, 0, 1])  # an id not waiting is ignored
    restored = LabelJoin(ttl_s=60, max_events=10)
    restored.load_state_dict(loads(dumps(join.state_dict())))
    for j in (join, restored):
        assert j.pseudo == {"a": 0, "b": 0}
        got = {x.id: (x.label, x.pseudo) for x in j.add_labels([("a", 0), ("b", 1), ("c", 1)], now=1.0)}
        assert got == {"a": (0, 0), "b": (1, 0), "c": (1, None)}
        assert j.pseudo == {}
    # A pseudo-labelled event that expires or is redelivered forgets its pseudo-label.
    join.add_events(["e", "f"], X[:2], [0, 0], now=2.0)
    join.mark_pseudo(["e", "f"], [1, 1])
    join.add_events(["f"], X[:1], [0], now=3.0)
    join.expire(now=100.0)
    assert join.pseudo == {}


def test_a_keyed_event_gets_its_key_back_with_its_label_before_and_after_a_restart():
    join = LabelJoin()
    join.add_events(["a", "b"], rows(2), [0, 1], now=0.0, keys=["s1", "s2"])
    join.add_labels([("z", 1)], now=0.0)  # its event comes later, keyed
    (early,) = join.add_events(["z"], rows(1), [0], now=1.0, keys=["s3"])
    assert early.key == "s3"
    restored = LabelJoin()
    restored.load_state_dict(loads(dumps(join.state_dict())))
    for j in (join, restored):
        assert [(x.id, x.key) for x in j.add_labels([("b", 0), ("a", 1)], now=2.0)] == [("b", "s2"), ("a", "s1")]
    join.add_events(["c"], rows(1), [0], now=3.0, keys=["s4"])
    state = join.state_dict()  # as written before events kept their keys: no key list
    state["events"] = json.dumps(json.loads(state["events"])[:4])
    restored.load_state_dict(state)
    assert [x.key for x in restored.add_labels([("c", 1)], now=4.0)] == [None]


def test_a_join_state_with_its_times_in_json_still_loads_and_expires_alike():
    join = LabelJoin(ttl_s=10)
    join.add_events(["a", "b"], rows(2), [0, 1], now=1.25)
    join.add_events(["c"], rows(1), [1], now=7.5)
    state = join.state_dict()
    assert state["event_times"].tolist() == [1.25, 1.25, 7.5]
    old = dict(state)
    events = json.loads(old["events"])
    events[1] = old.pop("event_times").tolist()  # as written before the times were an array
    old["events"] = json.dumps(events)
    for written in (state, old):
        restored = LabelJoin(ttl_s=10)
        restored.load_state_dict(loads(dumps(written)))
        restored.expire(now=12.0)  # a and b are 10.75 s old: gone; c stays
        assert list(restored.events) == ["c"] and restored.evictions == {"ttl": 2}


def test_a_join_state_from_before_pseudo_marks_still_loads():
    join = LabelJoin()
    join.add_events(["a"], np.eye(2, dtype=np.float32)[:1], [0], now=0.0)
    state = join.state_dict()
    del state["pseudo"]
    restored = LabelJoin()
    restored.load_state_dict(state)
    assert list(restored.events) == ["a"] and restored.pseudo == {}


# -- handover: a partition's next owner rebuilds the waiting entries from the records again

def _origins(source: str, offsets, handed: bool | str) -> list:
    return [(source, o, handed) for o in offsets]


def test_waiting_offsets_per_source_survive_a_restart():
    join = LabelJoin()
    join.add_events(["a", "b", "c"], rows(3), [0, 1, 0], now=0.0, origins=_origins("ev:0", [5, 6, 7], False))
    join.add_labels([("a", 0), ("x", 1), ("y", 0)], now=1.0, origins=_origins("lb:0", [2, 3, 4], False))
    assert join.waiting() == {"ev:0": [6, 7], "lb:0": [3, 4]}
    restored = LabelJoin()
    restored.load_state_dict(loads(dumps(join.state_dict())))
    assert restored.waiting() == {"ev:0": [6, 7], "lb:0": [3, 4]}
    assert restored.drop_sources({"lb:0"}) == 2 and restored.waiting() == {"ev:0": [6, 7]}
    assert not restored.misses and not restored.pending


def test_a_pair_both_read_by_the_previous_owner_is_settled_not_joined_again():
    # Windows too long to list hand every record over ("all"), the pairs they had joined too.
    join = LabelJoin()
    join.add_events(["a"], rows(1), [None], now=0.0, origins=_origins("ev:0", [0], "all"))
    assert join.add_labels([("a", 1)], now=1.0, origins=_origins("lb:0", [0], "all")) == []
    assert join.handover == {"settled": 1} and join.hits == 0 and "a" not in join.events
    join.add_labels([("b", 1)], now=1.0, origins=_origins("lb:0", [1], "all"))  # label first, then its event
    assert join.add_events(["b"], rows(1), [None], now=2.0, origins=_origins("ev:0", [1], "all")) == []
    assert join.handover == {"settled": 2} and "b" not in join.events and not join.pending


def test_a_handed_over_entry_joins_what_its_previous_owner_never_read():
    join = LabelJoin()
    join.add_events(["a"], rows(1), [None], now=0.0, origins=_origins("ev:0", [0], True))
    (j,) = join.add_labels([("a", 1)], now=1.0, origins=_origins("lb:0", [9], False))
    assert j.handed and j.predicted is None and join.hits == 1
    join.add_labels([("b", 0)], now=1.0, origins=_origins("lb:0", [3], True))
    (j,) = join.add_events(["b"], rows(1), ["p"], now=2.0, origins=_origins("ev:0", [5], False))
    assert not j.handed and j.predicted == "p" and join.hits == 2 and not join.misses


def test_two_listed_handed_over_entries_join_and_a_pair_from_an_unlisted_window_is_settled():
    """B takes a partition from A and dies before re-reading A's window: its window lists the
    label it had waiting and (what is left of A's) the event it had not re-read. The next owner
    joins them. Where a window listed nothing, the pair may have met at the previous owner."""
    join = LabelJoin()
    join.add_labels([("a", 1)], now=0.0, origins=_origins("lb:0", [4], True))
    (j,) = join.add_events(["a"], rows(1), [None], now=1.0, origins=_origins("ev:0", [7], True))
    assert j.label == 1 and j.handed and join.hits == 1
    join.add_labels([("b", 1)], now=0.0, origins=_origins("lb:0", [5], True))
    assert join.add_events(["b"], rows(1), [None], now=1.0, origins=_origins("ev:0", [8], "all")) == []
    assert join.hits == 1 and join.handover == {"settled": 1}


def test_a_handed_over_label_left_without_its_event_is_unmatched_not_a_miss():
    join = LabelJoin(pending_ttl_s=5)
    join.add_labels([("z", 1), ("w", 0)], now=0.0, origins=[("lb:0", 0, True), ("lb:0", 1, False)])
    join.expire(now=100.0)
    assert join.handover == {"unmatched": 1} and join.misses == {"unknown": 1}


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_partition_moving_at_any_point_loses_and_repeats_no_label(data):
    """One partition pair: events at offsets 0..n-1, labels for some of them, each label
    arriving at an arbitrary time relative to its event (before it too). The old owner reads
    the two partitions up to an arbitrary point and hands over; the new owner reads the handed
    windows (in either order) and then the rest: every label is joined exactly once. When the
    windows list what was waiting, nothing is left over either; when they are too long to list
    (every record in them handed over), labels the old owner had settled may be left waiting
    at the new one, to expire as unmatched, never as misses."""
    from streamssl.sources.handover import Window

    n = data.draw(st.integers(5, 40), label="events")
    labelled = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="labelled")
    arrivals = {i: i + data.draw(st.floats(-10, 10), label=f"delay{i}") for i in range(n) if labelled[i]}
    labels = sorted(arrivals, key=arrivals.get)  # labels partition order: by arrival
    records = sorted([(float(i), "event", i) for i in range(n)] +
                     [(arrivals[i], "label", pos) for pos, i in enumerate(labels)])
    cut = data.draw(st.integers(0, len(records)), label="cut")
    listed = data.draw(st.booleans(), label="listed")
    x = rows(1)

    def feed(join: LabelJoin, kind: str, offset: int, handed: bool) -> None:
        if kind == "event":
            join.add_events([f"e{offset}"], x, [None], now=0.0, origins=[("event", offset, handed)])
        else:
            join.add_labels([(f"e{labels[offset]}", 1)], now=0.0, origins=[("label", offset, handed)])

    old = LabelJoin(pending_ttl_s=1e9)
    for _, kind, offset in records[:cut]:
        feed(old, kind, offset, False)
    waiting = old.waiting()
    windows = {}
    for kind in ("event", "label"):
        window = Window.of(waiting.get(kind, []), sum(r[1] == kind for r in records[:cut]))
        windows[kind] = window if listed else Window(window.start, window.end)
    old.drop_sources({"event", "label"})

    new = LabelJoin(pending_ttl_s=1e9)
    for kind in (["label", "event"] if data.draw(st.booleans(), label="labels first") else ["event", "label"]):
        for offset in range(windows[kind].start, windows[kind].end):
            if windows[kind].holds(offset):
                feed(new, kind, offset, True if listed else "all")  # as the daemon marks them
    for _, kind, offset in records[cut:]:
        if offset >= windows[kind].end:
            feed(new, kind, offset, False)
    assert old.hits + new.hits == len(labels)
    assert not old.misses and not new.misses
    assert all(entry[2][2] for entry in new.pending.values())  # only handed-over labels may be left
    if listed:
        assert not new.pending and not new.handover


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_a_partition_moving_twice_loses_and_repeats_no_label(data):
    """As above, then the second owner dies (or hands over) at any point of its own reading,
    the handed windows perhaps not read through: its windows list what it had waiting and
    what is left of its predecessor's, and a third owner reads them. Every label is joined
    exactly once over the three (each counted up to the point it handed over)."""
    from streamssl.sources.handover import Window

    n = data.draw(st.integers(5, 30), label="events")
    labelled = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="labelled")
    arrivals = {i: i + data.draw(st.floats(-10, 10), label=f"delay{i}") for i in range(n) if labelled[i]}
    labels = sorted(arrivals, key=arrivals.get)
    total = {"event": n, "label": len(labels)}
    records = sorted([(float(i), "event", i) for i in range(n)] +
                     [(arrivals[i], "label", pos) for pos, i in enumerate(labels)])
    x = rows(1)

    def feed(join: LabelJoin, kind: str, offset: int, handed) -> None:
        if kind == "event":
            join.add_events([f"e{offset}"], x, [None], now=0.0, origins=[("event", offset, handed)])
        else:
            join.add_labels([(f"e{labels[offset]}", 1)], now=0.0, origins=[("label", offset, handed)])

    def hand_over(join: LabelJoin, positions: dict, pending: dict) -> dict:
        waiting = join.waiting()
        return {kind: Window.of(waiting.get(kind, []), positions[kind], None,
                                pending.get(kind) if pending.get(kind) and pending[kind].end > positions[kind] else None)
                for kind in ("event", "label")}

    def reading(windows: dict) -> list:
        """A new owner's records, each topic in offset order from its window's start, the two
        topics interleaved at random: (kind, offset, handed or None when skipped)."""
        queues = {kind: [(kind, o, (True if w.only is not None else "all") if w.holds(o) else None)
                         if o < w.end else (kind, o, False) for o in range(w.start, total[kind])]
                  for kind, w in windows.items()}
        merged = []
        while queues["event"] or queues["label"]:
            kind = "event" if not queues["label"] else "label" if not queues["event"] else \
                data.draw(st.sampled_from(["event", "label"]))
            merged.append(queues[kind].pop(0))
        return merged

    cut = data.draw(st.integers(0, len(records)), label="first cut")
    first = LabelJoin(pending_ttl_s=1e9)
    positions = {"event": 0, "label": 0}
    for _, kind, offset in records[:cut]:
        feed(first, kind, offset, False)
        positions[kind] = offset + 1
    windows = hand_over(first, positions, {})

    second = LabelJoin(pending_ttl_s=1e9)
    second_reads = reading(windows)
    cut = data.draw(st.integers(0, len(second_reads)), label="second cut")
    positions = {kind: w.start for kind, w in windows.items()}
    for kind, offset, handed in second_reads[:cut]:
        if handed is not None:
            feed(second, kind, offset, handed)
        positions[kind] = offset + 1
    windows = hand_over(second, positions, windows)

    third = LabelJoin(pending_ttl_s=1e9)
    for kind, offset, handed in reading(windows):
        if handed is not None:
            feed(third, kind, offset, handed)
    assert first.hits + second.hits + third.hits == len(labels)
    assert not first.misses and not second.misses and not third.misses


def _walked(join: LabelJoin) -> dict[str, list[int]]:
    """What :meth:`LabelJoin.waiting` must answer, from a walk over every waiting entry."""
    out: dict[str, list[int]] = {}
    for entries, at in ((join.events, 3), (join.pending, 2)):
        for entry in entries.values():
            if entry[at] is not None:
                out.setdefault(entry[at][0], []).append(entry[at][1])
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["events", "labels", "expire", "drop", "restart"]),
                          st.lists(st.integers(0, 30), min_size=1, max_size=6), st.integers(0, 1)),
                max_size=40))
def test_the_waiting_offsets_kept_as_entries_come_and_go_match_a_walk_over_the_buffer(steps):
    join = LabelJoin(ttl_s=50, max_events=12, pending_ttl_s=20, max_pending=5)
    now, offset = 0.0, 0
    for kind, ids, partition in steps:
        now += 3.0
        names = [f"e{i}" for i in ids]  # repeated ids: redeliveries, duplicates
        origins = [(f"{kind}:{partition}", offset + k, (False, True, "all")[k % 3 * (kind == "events")])
                   for k in range(len(ids))]
        offset += len(ids)
        if kind == "events":
            join.add_events(names, rows(len(ids)), [0] * len(ids), now=now, origins=origins)
        elif kind == "labels":
            join.add_labels([(n, 1) for n in names], now=now, origins=origins)
        elif kind == "expire":
            join.expire(now + 10 * ids[0])
        elif kind == "drop":
            join.drop_sources({f"events:{partition}", f"labels:{1 - partition}"})
        else:
            join = _restarted(join)
        assert join.waiting() == _walked(join)


def _restarted(join: LabelJoin) -> LabelJoin:
    again = LabelJoin(ttl_s=join.ttl_s, max_events=join.max_events, pending_ttl_s=join.pending_ttl_s,
                      max_pending=join.max_pending)
    again.load_state_dict(loads(dumps(join.state_dict())))
    for kept, back in ((join.events, again.events), (join.pending, again.pending)):
        assert [(k, *e[:1], *e[2:]) for k, e in kept.items()] == [(k, *e[:1], *e[2:]) for k, e in back.items()]
    return again


def test_a_join_state_with_its_origins_in_json_still_loads():
    join = LabelJoin()
    join.add_events(["a", "b"], rows(2), [0, 1], now=0.0, origins=[("events:0", 7, False), ("events:1", 3, "all")])
    state = join.state_dict()
    ids, _, predicted, _, keys = json.loads(state["events"])
    origins = [[source, offset, handed] for source, offset, handed in
               [("events:0", 7, False), ("events:1", 3, "all")]]
    state["events"] = json.dumps([ids, None, predicted, origins, keys])  # as written before 2026-12-05
    del state["event_sources"], state["event_origins"]
    again = LabelJoin()
    again.load_state_dict(loads(dumps(state)))
    assert again.waiting() == join.waiting() == {"events:0": [7], "events:1": [3]}
    assert [e[3] for e in again.events.values()] == [("events:0", 7, False), ("events:1", 3, "all")]
