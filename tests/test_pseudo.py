"""The pseudo-label audit: what the labels must show before a confidence is trusted."""

import numpy as np

from streamssl.learner.pseudo import PseudoLabelPolicy


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
    assert cuts[0] > 1.0 and cuts[4] > 1.0  # 100 answers without an error do not prove 0.99
    assert cuts[-1] == 0.99  # 500 do, down to the threshold itself
    rows, _ = policy.select(np.array([[0.995, 0.005]]), position=0)
    assert len(rows) == 0  # the warm-up, another guard, is still on: no true labels seen


def test_an_errorful_top_tail_keeps_the_cut_above_it():
    policy = PseudoLabelPolicy(threshold=0.99)
    # 400 answers at 0.9995 all right, 200 at 0.993 of which 1 in 20 wrong.
    policy.observe_answers(np.r_[np.full(400, 0.9995), np.full(200, 0.993)],
                           np.r_[np.ones(400), np.arange(200) % 20 != 0])
    assert policy.cut == 0.9995


def test_the_cut_follows_the_audited_answers_through_a_state():
    policy = PseudoLabelPolicy(threshold=0.99)
    _feed(policy, 1.0, 600, seed=1)
    again = PseudoLabelPolicy(threshold=0.99)
    again.load_state_dict(policy.state_dict())
    assert again.cut == policy.cut <= 1.0
    assert PseudoLabelPolicy(audit=None, threshold=0.99).cut == 0.99  # no audit: the threshold alone
