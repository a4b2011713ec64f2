"""The combiners: the weighted average of the members' answers."""

from __future__ import annotations

import numpy as np

from streamssl.learner.combine import EWA


def test_the_compiled_weighted_mean_is_the_arrays_sum_in_members_order():
    """EWA.combine (one compiled loop) against the sum of the weighted arrays, rows normalised:
    to the bit for a few classes (numpy sums a row of more than 8 pairwise), and rows of
    zeros stay zeros."""
    rng = np.random.default_rng(0)
    mix = EWA(list("abcdef"))
    mix.update({name: list(rng.random(30) < 0.4 + 0.1 * i) for i, name in enumerate("abcdef")})
    weights = mix.weights
    for n, k in ((1, 2), (64, 5), (3, 40)):
        probas = {name: rng.dirichlet(np.ones(k), size=n) for name in "abcdef"}
        for p in probas.values():
            p[0] = 0.0  # a row no member answers
        want = sum(weights[name] * p for name, p in probas.items())
        want = want / want.sum(axis=1, keepdims=True).clip(min=1e-12)
        got = mix.combine(probas)
        if k <= 8:
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
        assert not got[0].any()
