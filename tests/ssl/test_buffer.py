import numpy as np

from streamssl.ssl.buffer import ReplayBuffer


def test_memory_is_bounded_and_samples_come_from_both_parts():
    buf = ReplayBuffer(n_features=1, recent=50, reservoir=50, seed=0)
    for start in range(0, 10_000, 100):
        buf.add(np.arange(start, start + 100, dtype=float)[:, None])
    assert len(buf) == 100
    sample = buf.sample(2000)[:, 0]
    recent = sample >= 9950
    # Half of each sample comes from the newest 50 rows, half from the reservoir, which
    # covers the whole stream uniformly (so mostly old rows).
    assert 0.45 < recent.mean() < 0.6
    old = sample[~recent]
    assert old.min() < 2000 and np.median(old) < 7000


def test_reservoir_is_uniform_over_the_stream():
    counts = np.zeros(10)
    for seed in range(200):
        buf = ReplayBuffer(n_features=1, recent=1, reservoir=10, seed=seed)
        buf.add(np.arange(1000, dtype=float)[:, None])
        counts += np.histogram(buf._res[:, 0], bins=10, range=(0, 1000))[0]
    # 2000 kept rows spread over 10 deciles of the stream: about 200 each.
    assert counts.min() > 140 and counts.max() < 260


def test_state_round_trip_repeats_sampling():
    a = ReplayBuffer(n_features=2, recent=8, reservoir=8, seed=3)
    a.add(np.random.default_rng(0).normal(size=(40, 2)))
    b = ReplayBuffer(n_features=2, recent=8, reservoir=8, seed=99)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.sample(16), b.sample(16))


def test_empty_buffer_samples_nothing():
    assert ReplayBuffer(n_features=3).sample(5).shape == (0, 3)
