import numpy as np
import pytest

from streamssl.learner.pseudo import PseudoLabelPolicy


def random_proba(rng, n, k, sharpness):
    logits = rng.normal(scale=sharpness, size=(n, k))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_no_pseudo_label_is_ever_accepted_below_the_threshold():
    rng = np.random.default_rng(0)
    for threshold in (0.6, 0.9, 0.99):
        policy = PseudoLabelPolicy(threshold=threshold, warmup=0, slack=10.0, audit=None)
        policy.observe_labels(rng.integers(0, 3, 300), n_classes=3)
        accepted = 0
        for _ in range(200):
            proba = random_proba(rng, 64, 3, sharpness=6.0)
            rows, labels = policy.select(proba, position=10_000)
            assert (proba[rows].max(1) >= threshold).all()
            assert (proba[rows].argmax(1) == labels).all()
            accepted += len(rows)
        assert accepted > 0  # the test would be empty otherwise


def test_warmup_then_acceptance():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=10, audit=None)
    proba = np.array([[0.99, 0.01], [0.01, 0.99]])
    policy.observe_labels(np.array([0, 1] * 4), n_classes=2)
    assert len(policy.select(proba, position=100)[0]) == 0
    assert policy.rejected["warmup"] == 2
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    assert len(policy.select(proba, position=100)[0]) == 2


def test_pause_after_drift_lasts_the_cooldown():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=0, cooldown=500, audit=None)
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    proba = np.array([[0.99, 0.01], [0.01, 0.99]])
    policy.pause(position=1000)
    assert len(policy.select(proba, position=1499)[0]) == 0
    assert policy.rejected["cooldown"] == 2
    assert len(policy.select(proba, position=1500)[0]) == 2


def test_class_balance_caps_a_class_the_head_overpredicts():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=0, slack=1.5, audit=None)
    policy.observe_labels(np.array([0] * 50 + [1] * 50), n_classes=2)
    # The head is confident about class 0 only; without the cap every event becomes a 0.
    proba = np.tile([[0.999, 0.001]], (1000, 1))
    rows, labels = policy.select(proba, position=10_000)
    share = len(rows) / 1000
    assert 0 < share <= 0.75 + 1e-9
    assert policy.rejected["class_balance"] == 1000 - len(rows)
    # Later batches are held to the same share.
    for _ in range(20):
        policy.select(proba[:64], position=10_000)
    assert policy._given[0] / (policy.accepted + 1e-9) <= 1.0


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"weight": 0.0}, {"weight": 2.0}])
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        PseudoLabelPolicy(**kwargs)


def _offered(rng, n, bad_below, good):
    """Answers offered at 0.99-1.0: right 96 % of the time below ``bad_below``, ``good`` above."""
    conf = rng.uniform(0.99, 1.0, n)
    return conf, rng.random(n) < np.where(conf >= bad_below, good, 0.96)


def _stream(policy, rng, batches, bad_below, rate=0.05, good=0.999):
    """5 % of each batch labelled (audited), the rest offered; the accepted ones' correctness."""
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    right_accepted = []
    for _ in range(batches):
        conf, right = _offered(rng, 64, bad_below, good)
        labelled = rng.random(64) < rate
        policy.observe_answers(conf[labelled], right[labelled])
        rows, _ = policy.select(np.stack([conf, 1 - conf], axis=1)[~labelled], position=10_000)
        right_accepted += right[~labelled][rows].tolist()
    return np.array(right_accepted)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_audit_keeps_accepted_pseudo_labels_right_as_often_as_the_threshold_says(seed):
    # A tail more confident than it is right: answers at 0.99-0.993 are right 96 % of the time,
    # those above 99.9 %. The threshold alone accepts them all (about 98.7 % right).
    alone = _stream(PseudoLabelPolicy(threshold=0.99, warmup=0, slack=10.0, audit=None),
                    np.random.default_rng(seed), 400, bad_below=0.993)
    policy = PseudoLabelPolicy(threshold=0.99, warmup=0, slack=10.0)
    audited = _stream(policy, np.random.default_rng(seed), 400, bad_below=0.993)
    # It takes from the top 70 % of the confidences while the labels prove them.
    assert alone.mean() < 0.99 <= audited.mean() and len(alone) / 6 < len(audited) < len(alone) * 0.7
    assert policy.rejected["audit"] > 0
    # Once the labels show every answer at 0.99 right, the cut comes down to the threshold.
    restored = PseudoLabelPolicy(threshold=0.99)
    restored.load_state_dict(policy.state_dict())
    assert restored.cut == policy.cut and list(restored._audited) == list(policy._audited)
    _stream(restored, np.random.default_rng(seed + 10), 400, bad_below=0.99, good=1.0)
    assert restored.cut == 0.99


def test_with_every_answer_right_the_audit_takes_all_that_the_threshold_does_once_proved():
    alone = _stream(PseudoLabelPolicy(threshold=0.99, warmup=0, slack=10.0, audit=None),
                    np.random.default_rng(3), 400, bad_below=0.99, good=1.0)
    policy = PseudoLabelPolicy(threshold=0.99, warmup=0, slack=10.0)
    audited = _stream(policy, np.random.default_rng(3), 400, bad_below=0.99, good=1.0)
    # 330 labelled answers (about 100 batches at 5 %) prove 0.99; from then on, the threshold decides.
    assert policy.cut == 0.99 and 0.6 * len(alone) < len(audited) < 0.85 * len(alone)


def test_unfamiliar_events_are_not_labelled_and_are_counted():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=0, slack=10.0, audit=None)
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    proba = np.array([[0.99, 0.01], [0.02, 0.98], [0.995, 0.005]])
    rows, _ = policy.select(proba, position=100, familiar=np.array([True, False, True]))
    assert sorted(rows.tolist()) == [0, 2] and policy.rejected["unfamiliar"] == 1


def test_a_new_class_far_from_every_label_is_not_pseudo_labelled_as_an_old_one():
    """Two classes split at 0 for 3,000 events, then 640 of a class never labelled, far away:
    the MLPs extrapolate and answer them confidently as class 1, and the threshold alone takes
    nearly all. The guard takes a few, late: the standardiser moves towards the new events, and
    the memory's events were stored standardised as they came."""
    from streamssl.learner import StreamLearner

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(3000, 3)), rng.normal(loc=6.0, size=(640, 3))]
    truth = np.r_[(X[:3000, 0] > 0).astype(int), np.full(640, 2)]
    known = np.r_[rng.random(3000) < 0.2, np.zeros(640, dtype=bool)]  # the new class: no label yet

    def taken(support):
        model = StreamLearner(seed=0, pseudo_labels=PseudoLabelPolicy(threshold=0.9, warmup=50, support=support),
                              trees=False)
        new = 0
        for i in range(0, len(X), 64):
            model.learn_many(X[i:i + 64], [int(t) if k else None for t, k in zip(truth[i:i + 64], known[i:i + 64])])
            rows, _ = model.last_pseudo_labels
            new += int((i + rows >= 3000).sum())
        assert model.policy.accepted - new > 300  # the old classes' events are still labelled
        return new, model.policy.rejected["unfamiliar"]

    alone, _ = taken(None)
    guarded, unfamiliar = taken(0.95)
    assert alone > 0.9 * 640 and guarded < 0.1 * 640 and unfamiliar > 500


def _feed(policy: PseudoLabelPolicy, precision: float, n: int, seed: int) -> list[float]:
    """Labelled answers offered at 0.99-1.0, right with ``precision``, 20 at a time; the cut
    after each batch."""
    rng = np.random.default_rng(seed)
    cuts = []
    for _ in range(n // 20):
        policy.observe_answers(rng.uniform(0.99, 1.0, 20), rng.random(20) < precision)
        cuts.append(policy.cut)
    return cuts


def test_answers_right_955_times_in_1000_are_never_trusted_at_099():
    # River's Hyperplane flips 5 % of its labels: however confident, an answer is right ~95.5 %.
    for seed in range(3):
        cuts = _feed(PseudoLabelPolicy(threshold=0.99), 0.955, 5_000, seed)
        assert min(cuts) > 1.0  # nothing accepted, at any moment


def test_clean_answers_are_trusted_once_the_labels_prove_them_and_not_before():
    policy = PseudoLabelPolicy(threshold=0.99)
    cuts = _feed(policy, 1.0, 2_000, seed=0)
    assert cuts[0] > 1.0 and cuts[14] > 1.0  # 300 answers without an error do not prove 0.99
    assert cuts[-1] == 0.99  # 500 do, down to the threshold itself
    rows, _ = policy.select(np.array([[0.995, 0.005]]), position=0)
    assert len(rows) == 0  # the warm-up, another guard, is still on: no true labels seen


def test_an_errorful_top_tail_keeps_the_cut_above_it():
    policy = PseudoLabelPolicy(threshold=0.99)
    # 350 answers at 0.9995 all right, 150 at 0.993 of which 1 in 20 wrong.
    policy.observe_answers(np.r_[np.full(350, 0.9995), np.full(150, 0.993)],
                           np.r_[np.ones(350), np.arange(150) % 20 != 0])
    assert policy.cut == 0.9995


def test_the_cut_follows_the_audited_answers_through_a_state():
    policy = PseudoLabelPolicy(threshold=0.99)
    _feed(policy, 1.0, 600, seed=1)
    again = PseudoLabelPolicy(threshold=0.99)
    again.load_state_dict(policy.state_dict())
    assert again.cut == policy.cut <= 1.0
    assert PseudoLabelPolicy(audit=None, threshold=0.99).cut == 0.99  # no audit: the threshold alone
