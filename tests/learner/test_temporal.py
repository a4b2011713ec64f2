import numpy as np
import pytest

from streamssl.learner.temporal import TemporalContext


def test_features_are_the_event_minus_the_averages_of_its_past():
    X = np.random.default_rng(0).normal(size=(50, 3))
    out = TemporalContext(spans=(4, 16)).update(X)
    assert out.shape == (50, 9) and np.array_equal(out[:, :3], X)
    # By hand: EMA with smoothing 2/(s+1), started at the first event, taken before each event.
    for j, s in enumerate((4, 16)):
        a, ema = 2 / (s + 1), X[0].copy()
        for t in range(50):
            assert out[t, 3 * (1 + j): 3 * (2 + j)] == pytest.approx(X[t] - ema)
            ema = a * X[t] + (1 - a) * ema


def test_causal_the_future_does_not_change_the_past():
    X = np.random.default_rng(1).normal(size=(40, 2))
    Y = X.copy()
    Y[25:] += 100.0
    a, b = TemporalContext().update(X), TemporalContext().update(Y)
    assert np.array_equal(a[:25], b[:25]) and not np.allclose(a[25:], b[25:])


def test_batches_give_what_one_pass_gives_and_peek_does_not_move_the_averages():
    X = np.random.default_rng(2).normal(size=(100, 4))
    whole = TemporalContext().update(X)
    ctx = TemporalContext()
    parts = []
    for i in range(0, 100, 32):
        peek = ctx.transform(X[i:i + 32])
        assert np.array_equal(ctx.transform(X[i:i + 32]), peek)  # twice the same: nothing moved
        parts.append(ctx.update(X[i:i + 32]))
        assert np.array_equal(parts[-1], peek)
    assert np.allclose(np.vstack(parts), whole)
    ctx, single = TemporalContext(), []  # one event at a time (one compiled step each), the first one too
    for i in range(100):
        peek = ctx.transform(X[i:i + 1])
        single.append(ctx.update(X[i:i + 1]))
        assert np.array_equal(single[-1], peek)
    np.testing.assert_allclose(np.vstack(single), whole, rtol=1e-12, atol=1e-12)


def test_each_key_has_its_own_past():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 10
    mixed = np.empty((40, 2))
    mixed[0::2], mixed[1::2] = A, B
    keys = ["a", "b"] * 20
    out = TemporalContext().update(mixed, keys)
    assert np.allclose(out[0::2], TemporalContext().update(A)) and np.allclose(out[1::2], TemporalContext().update(B))
    bounded = TemporalContext(max_keys=1)
    bounded.update(mixed, keys)
    assert list(bounded.state) == ["b"]


def test_recall_gives_an_events_features_from_when_it_was_new_also_after_a_restore():
    X = np.random.default_rng(4).normal(size=(64, 3))
    ctx = TemporalContext()
    first = ctx.update(X[:32])
    ctx.update(X[32:])
    restored = TemporalContext()
    restored.load_state_dict(ctx.state_dict())
    assert np.allclose(restored.recall(X[5:9]), first[5:9])
    assert np.allclose(restored.transform(X[:4]), ctx.transform(X[:4]))


def test_a_state_keeps_only_the_remembered_rows_in_use_and_its_restore_remembers_on_as_the_original():
    X = np.random.default_rng(5).normal(size=(30, 2))
    ctx = TemporalContext(spans=(4,), recall_values=40)  # a ring of 10 events of 4 features
    ctx.update(X[:6])
    state = ctx.state_dict()
    assert state["recall_X"].shape == (6, 2) and state["recall_F"].shape == (6, 4)
    restored = TemporalContext(spans=(4,), recall_values=40)
    restored.load_state_dict(state)
    for start in (6, 13, 20):  # on past the ring's end, both wrap alike
        ctx.update(X[start:start + 7])
        restored.update(X[start:start + 7])
    assert np.array_equal(restored.state_dict()["recall_F"], ctx.state_dict()["recall_F"])
    assert ctx.state_dict()["recall_X"].shape == (10, 2)  # full: the whole ring
    assert np.allclose(restored.recall(X[18:27]), ctx.recall(X[18:27]))


def test_one_event_at_a_time_remembers_as_a_batch_does_through_a_full_ring():
    """The ring of remembered events filled and overwritten one event at a time (its own short
    path) holds what batches leave, repeated rows included: the same rows, slots and recalls."""
    X = np.round(np.random.default_rng(1).normal(size=(60, 2)), 1)
    X[30:40] = X[20:30]  # rows seen again, while their older copies leave the ring
    single, batched = TemporalContext(recall_values=56), TemporalContext(recall_values=56)  # 7 events
    for i in range(60):
        single.update(X[i:i + 1])
    for start in range(0, 60, 6):
        batched.update(X[start:start + 6])
    assert single._rec_index == batched._rec_index and len(single._rec_index) > 0
    np.testing.assert_array_equal(single._rec_X, batched._rec_X)
    assert (single._rec_next, single._rec_size) == (batched._rec_next, batched._rec_size) == (4, 7)
    np.testing.assert_allclose(single.recall(X[-7:]), batched.recall(X[-7:]), rtol=1e-6)
