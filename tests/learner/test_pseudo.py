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
        policy = PseudoLabelPolicy(threshold=threshold, warmup=0, slack=10.0)
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
    policy = PseudoLabelPolicy(threshold=0.9, warmup=10)
    proba = np.array([[0.99, 0.01], [0.01, 0.99]])
    policy.observe_labels(np.array([0, 1] * 4), n_classes=2)
    assert len(policy.select(proba, position=100)[0]) == 0
    assert policy.rejected["warmup"] == 2
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    assert len(policy.select(proba, position=100)[0]) == 2


def test_pause_after_drift_lasts_the_cooldown():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=0, cooldown=500)
    policy.observe_labels(np.array([0, 1]), n_classes=2)
    proba = np.array([[0.99, 0.01], [0.01, 0.99]])
    policy.pause(position=1000)
    assert len(policy.select(proba, position=1499)[0]) == 0
    assert policy.rejected["cooldown"] == 2
    assert len(policy.select(proba, position=1500)[0]) == 2


def test_class_balance_caps_a_class_the_head_overpredicts():
    policy = PseudoLabelPolicy(threshold=0.9, warmup=0, slack=1.5)
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
