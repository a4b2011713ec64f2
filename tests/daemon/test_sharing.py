"""The daemon's side of the sync rounds, with scripted rounds (the rounds themselves run between
processes in tests/distributed): what is offered, kept, learned and checkpointed."""

import logging

import numpy as np
import torch
from prometheus_client import CollectorRegistry

from streamssl.config import DistributedConfig
from streamssl.daemon.sharing import LabelSharing
from streamssl.distributed.merge import average_states
from streamssl.distributed.rounds import Round
from streamssl.learner import StreamLearner
from streamssl.metrics.daemon import DaemonMetrics


class ScriptedGroup:
    """Answers each round with the next outcome, and the other member's payload when ok."""

    member, rank = "me", 0

    def __init__(self, outcomes, theirs):
        self.outcomes, self.theirs, self.offered = list(outcomes), theirs, []

    def wait_for_next(self, stop):
        return len(self.offered)

    def round(self, payload, r):
        self.offered.append(sum(len(entry[1]) for entry in payload["offered"]))
        outcome = self.outcomes.pop(0)
        them = self.theirs if isinstance(self.theirs, dict) else {"member": "them", "rank": 1, "offered": self.theirs}
        payloads = [payload, them] if outcome == "ok" else []
        return Round(r, outcome, ["me", "them"] if outcome == "ok" else [], payloads)

    def close(self):
        pass


TWO = DistributedConfig(world_size=2, rank=0)


def finish(sharing):
    sharing._thread.join(10)


def labelled_rows(n: int):
    """Rows as another replica's learner offers them (features and temporal context)."""
    other = StreamLearner(seed=1)
    other.share_labelled()
    other.learn_many(np.random.default_rng(0).random((n, 2)), ["x", "y"] * (n // 2) + ["x"] * (n % 2))
    return other.take_labelled()


def test_rows_are_offered_until_a_round_goes_through_and_the_others_rows_are_learned():
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)
    theirs = [labelled_rows(3)]
    group = ScriptedGroup(["timeout", "ok", "late", "late"], theirs)
    sharing = LabelSharing(TWO, metrics, logging.getLogger("t"), group=group)
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    learner.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    sharing.tick(learner)  # round 0 offers our two rows and times out
    finish(sharing)
    learner.learn_many(np.array([[0.2, 0.8]]), ["x"])
    assert [len(entry[1]) for entry in sharing.checkpoint(learner)["offers"]] == [2, 1]  # what a checkpoint keeps
    sharing.tick(learner)  # round 1 offers all three, goes through, brings theirs
    finish(sharing)
    assert group.offered == [2, 3]
    before = learner.labels_used
    assert sharing.tick(learner) == 3 and learner.labels_used == before + 3
    finish(sharing)
    value = registry.get_sample_value
    assert value("streamssl_sync_rounds_total", {"outcome": "timeout"}) == 1
    assert value("streamssl_sync_rounds_total", {"outcome": "ok"}) == 1
    assert value("streamssl_sync_rows_total", {"direction": "sent"}) == 3
    assert value("streamssl_sync_rows_total", {"direction": "received"}) == 3
    assert value("streamssl_sync_members") == 2
    assert sharing.state()["offered"] == 0  # nothing waits; kept only for a rank that crashes
    assert [taken for _, _, taken, _ in sharing.checkpoint(learner)["offers"]] == [[(0, -1), (1, 1)]] * 2


def test_rows_received_before_the_learner_has_seen_events_wait_and_bad_ones_are_counted():
    registry = CollectorRegistry()
    theirs = [labelled_rows(2), (np.zeros((1, 5), dtype=np.float32), ["x"])]
    sharing = LabelSharing(TWO, DaemonMetrics(registry), logging.getLogger("t"),
                           group=ScriptedGroup(["ok", "late", "late", "late"], theirs))
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    sharing.tick(learner)
    finish(sharing)
    assert sharing.tick(learner) == 0 and sharing.state()["inbox"] == 3  # nothing seen yet: kept
    finish(sharing)
    learner.learn_many(np.array([[0.0, 1.0]]), [None])
    assert sharing.tick(learner) == 2  # the two of the right width; the other is dropped, counted
    finish(sharing)
    assert registry.get_sample_value("streamssl_sync_rows_total", {"direction": "dropped"}) == 1


def test_the_others_statistics_are_merged_and_the_encoders_averaged_by_the_events_each_saw():
    rng = np.random.default_rng(0)
    mine_x, theirs_x = rng.normal(0, 1, (64, 2)), rng.normal(5, 2, (192, 2))
    learner, other = (StreamLearner(seed=s, encoder=True, temporal=False) for s in (0, 1))
    for model, X in ((learner, mine_x), (other, theirs_x)):
        model.share_labelled()
        model.learn_many(X, [None] * len(X))
    theirs = {"member": "them", "rank": 1, "offered": [], "moments": other.take_moments(), "encoder": other.encoder_state(),
              "events": 192}
    sharing = LabelSharing(TWO, DaemonMetrics(CollectorRegistry()), logging.getLogger("t"),
                           group=ScriptedGroup(["ok", "late", "late"], theirs))
    expected = average_states([learner.encoder_state(), theirs["encoder"]], [64, 192])
    sharing.tick(learner)
    finish(sharing)
    sharing.tick(learner)
    finish(sharing)
    got = learner.encoder_state()
    assert all(torch.allclose(got[k], v) for k, v in expected.items() if torch.is_floating_point(v))
    both = np.concatenate([mine_x, theirs_x])
    assert learner.standardizer.n == 256
    np.testing.assert_allclose(learner.standardizer.mean, both.mean(axis=0))
    np.testing.assert_allclose(learner.standardizer.std, both.std(axis=0))


class PlannedRounds:
    """Rank 0 of three: each round goes through with the members whose payloads are planned for
    it (the others sat it out: busy, late or down); ``None`` plans a round where it was alone."""

    member, rank = "zero", 0

    def __init__(self, plan, first_round=0):
        self.plan, self.payloads, self.first_round = list(plan), [], first_round

    def wait_for_next(self, stop):
        return self.first_round + len(self.payloads)

    def round(self, payload, r):
        self.payloads.append(payload)
        others = self.plan.pop(0)
        if others is None:
            return Round(r, "alone", ["zero"], [payload])
        return Round(r, "ok", ["zero", *(p["member"] for p in others)], [payload, *others])

    def close(self):
        pass


def test_a_replica_that_sat_rounds_out_gets_what_was_offered_meanwhile_once():
    rows_of_1, rows_of_2 = labelled_rows(3), labelled_rows(2)
    group = PlannedRounds([
        [{"member": "two", "rank": 2, "offered": [(*rows_of_2, [2])]}],  # 1 is busy: 0 and 2 meet
        [{"member": "one", "rank": 1, "offered": [(*rows_of_1, [1])]},
         {"member": "two", "rank": 2, "offered": [(*rows_of_2, [0, 2])]}],  # 2 offers again what 0 has
        [{"member": "one", "rank": 1, "offered": []}],
        None, None])
    registry = CollectorRegistry()
    sharing = LabelSharing(DistributedConfig(world_size=3, rank=0), DaemonMetrics(registry), logging.getLogger("t"),
                           group=group)
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    learner.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    received = []
    for _ in range(4):
        received.append(sharing.tick(learner))
        finish(sharing)
    offered = [[(len(e[1]), e[2]) for e in p["offered"]] for p in group.payloads]
    # Ours go to 2 in the first round, again in the second (1 has them then), then no more.
    assert offered == [[(2, [0])], [(2, [0, 2])], [], []]
    assert received == [0, 2, 3, 0]  # 2's rows once, though offered twice; then 1's
    value = registry.get_sample_value
    assert value("streamssl_sync_rows_total", {"direction": "sent"}) == 2  # counted once
    assert value("streamssl_sync_rows_total", {"direction": "received"}) == 5
    assert sharing.state()["offered"] == 0
    assert [taken for _, _, taken, _ in sharing.checkpoint(learner)["offers"]] == [[(0, -1), (1, 1), (2, 0)]]


def test_rows_a_rank_has_not_taken_for_offer_for_s_are_given_up_for_it_and_counted():
    now = [0.0]
    group = PlannedRounds([[{"member": "one", "rank": 1, "offered": []}]] * 3)
    registry = CollectorRegistry()
    sharing = LabelSharing(DistributedConfig(world_size=3, rank=0, offer_for_s=60), DaemonMetrics(registry),
                           logging.getLogger("t"), group=group, clock=lambda: now[0])
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    learner.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    for t in (0.0, 30.0, 61.0):  # rank 2 stays away
        now[0] = t
        sharing.tick(learner)
        finish(sharing)
    assert [[(len(e[1]), e[2]) for e in p["offered"]] for p in group.payloads] == [[(2, [0])], [(2, [0, 1])], []]
    assert registry.get_sample_value("streamssl_sync_rows_total", {"direction": "expired"}) == 2
    assert sharing.checkpoint(learner)["offers"] == []


def test_a_replica_back_from_its_checkpoint_is_offered_again_what_it_took_after_it():
    def one(r):
        return {"member": "one", "rank": 1, "resumed": [-1, 0], "offered": []}

    def two_again(first):  # rank 2, restarted from a checkpoint that had learned no round
        return {"member": "two-again", "rank": 2, "resumed": [-1, first], "offered": []}

    group = PlannedRounds([
        [one(0), {"member": "two", "rank": 2, "resumed": [-1, 0], "offered": []}],  # 0: all take ours
        [one(1)],  # 1: rank 2 is down
        [one(2), two_again(None)],  # 2: its first round back
        [one(3), two_again(2)],  # 3: it says so: we offer again what it took after its checkpoint
        [one(4), two_again(2)],  # 4: it takes them again
        [one(5), two_again(2)]])  # 5: and is not offered them a third time
    sharing = LabelSharing(DistributedConfig(world_size=3, rank=0), DaemonMetrics(CollectorRegistry()),
                           logging.getLogger("t"), group=group)
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    learner.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    for _ in range(6):
        sharing.tick(learner)
        finish(sharing)
    offered = [[(len(e[1]), e[2]) for e in p["offered"]] for p in group.payloads]
    assert offered == [[(2, [0])], [], [], [], [(2, [0, 1])], []]
    assert [t for _, _, t, _ in sharing.checkpoint(learner)["offers"]] == [[(0, -1), (1, 0), (2, 4)]]


def test_the_checkpoint_says_which_round_the_learner_has_learned_and_a_restart_says_so():
    theirs = labelled_rows(2)
    group = PlannedRounds([[{"member": "one", "rank": 1, "offered": [(*theirs, [1])]}]] * 3, first_round=10)
    sharing = LabelSharing(DistributedConfig(world_size=2, rank=0), DaemonMetrics(CollectorRegistry()),
                           logging.getLogger("t"), group=group, restored={"offers": [], "learned_round": 7})
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    sharing.tick(learner)  # round 10 brings theirs; the learner has seen no event yet
    finish(sharing)
    sharing.tick(learner)
    finish(sharing)
    assert sharing.checkpoint(learner)["learned_round"] == 7  # received, not learned: a crash loses them
    learner.learn_many(np.array([[0.0, 1.0]]), [None])
    assert sharing.tick(learner) == 4  # rounds 10 and 11
    finish(sharing)
    assert sharing.checkpoint(learner)["learned_round"] == 11
    assert [p["resumed"] for p in group.payloads] == [[7, None], [7, 10], [7, 10]]


def test_beyond_max_bytes_the_oldest_offers_are_forgotten_and_those_a_rank_lacks_counted():
    group = PlannedRounds([[{"member": "one", "rank": 1, "offered": []}]] + [None] * 4)
    registry = CollectorRegistry()
    sharing = LabelSharing(DistributedConfig(world_size=2, rank=0), DaemonMetrics(registry), logging.getLogger("t"),
                           group=group)
    learner = StreamLearner(seed=0, temporal=False)
    learner.share_labelled()
    for step in range(4):  # one offer of one row per round; rank 1 takes only the first
        learner.learn_many(np.array([[float(step), 1.0]]), ["x"])
        sharing.tick(learner)
        finish(sharing)
    row_bytes = sharing.checkpoint(learner)["offers"][0][0].nbytes
    sharing.MAX_BYTES = 2 * row_bytes
    learner.learn_many(np.array([[9.0, 1.0]]), ["y"])
    sharing.tick(learner)
    finish(sharing)
    kept = [labels for _, labels, _, _ in sharing.checkpoint(learner)["offers"]]
    assert kept == [["x"], ["y"]]  # the newest two
    # Of the three forgotten, the first every rank had; the other two rank 1 lacked.
    assert registry.get_sample_value("streamssl_sync_rows_total", {"direction": "dropped"}) == 2


def test_offers_every_rank_has_on_disk_are_forgotten_and_our_own_checkpoint_is_announced():
    def one(durable):
        return [{"member": "one", "rank": 1, "resumed": [-1, 0], "durable": durable, "offered": []}]

    group = PlannedRounds([one(-1), one(-1), one(0), one(0)])
    sharing = LabelSharing(DistributedConfig(world_size=2, rank=0), DaemonMetrics(CollectorRegistry()),
                           logging.getLogger("t"), group=group)
    learner = StreamLearner(seed=0)
    learner.share_labelled()
    learner.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    kept = []
    for step in range(4):
        sharing.tick(learner)
        finish(sharing)
        kept.append(len(sharing.checkpoint(learner)["offers"]))
        sharing.written()  # our checkpoint, taken just now, is on disk
    # Rank 1 takes ours in round 0, has it on disk by round 2: forgotten at the tick after.
    assert kept == [1, 1, 1, 0]
    assert [p["durable"] for p in group.payloads] == [-1, -1, 0, 1]  # the rounds our learner had learned
