import numpy as np

from streamssl.learner.standardize import OnlineStandardizer


def test_running_statistics_match_numpy_over_uneven_chunks():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[3.0, -2.0, 100.0], scale=[1.0, 0.01, 50.0], size=(1000, 3))
    s = OnlineStandardizer()
    for chunk in np.array_split(X, [1, 2, 10, 300, 301, 999]):
        s.update(chunk)
    assert s.n == 1000
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(s.std, X.std(axis=0), rtol=1e-10)


def test_constant_columns_get_unit_scale_and_z_is_clipped():
    s = OnlineStandardizer(clip=8.0)
    s.update(np.array([[1.0, 5.0], [1.0, 6.0], [1.0, 7.0]]))
    assert s.std[0] == 1.0
    z = s.transform(np.array([[1.0, 1e9], [2.0, -1e9]]))
    assert z[0, 0] == 0.0 and z[1, 0] == 1.0
    assert z[0, 1] == 8.0 and z[1, 1] == -8.0


def test_transform_before_any_data_is_zero_and_width_is_checked():
    s = OnlineStandardizer()
    assert (s.transform(np.ones((2, 3))) == 0).all()
    s.update(np.ones((2, 3)))
    try:
        s.update(np.ones((2, 4)))
    except ValueError as exc:
        assert "expected 3 features" in str(exc)
    else:
        raise AssertionError("width change accepted")


def test_the_std_computed_once_follows_every_change_of_the_statistics():
    rng = np.random.default_rng(1)
    s, other = OnlineStandardizer(), OnlineStandardizer()
    s.update(rng.normal(size=(5, 3)))
    assert s.std is s.std  # one state, computed once
    seen = rng.normal(size=(5, 3))
    other.update(seen)
    for change in (lambda: s.update(rng.normal(size=(4, 3)) * 3), lambda: s.merge(*other.moments()),
                   lambda: s.load_state_dict(other.state_dict()), s._reset, lambda: s.update(seen)):
        change()
        if s.mean is not None:
            assert np.allclose(s.std, np.sqrt(s.moments()[2] / s.n))
    assert np.allclose(s.std, seen.std(axis=0))


def test_one_row_at_a_time_is_merge_and_the_formula_to_the_bit():
    """A row alone is merged and standardised by compiled loops: the same statistics and
    z-scores, to the bit, as merge's and transform's array formulas (clipped rows included)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 6)) * [1.0, 1e3, 1e-3, 5.0, 0.0, 1.0] + [0.0, 1e5, 0.0, 1.0, 3.0, 0.0]
    X[::13, 3] = 1e4  # z-scores past the clip
    rowwise, merged = OnlineStandardizer(), OnlineStandardizer()
    for m in (rowwise, merged):
        m.update(X[:3])
    for i in range(3, len(X)):
        rowwise.update(X[i:i + 1])
        merged.merge(1, X[i], np.zeros(X.shape[1]))
        if i % 13 == 0:
            want = np.clip((X[i:i + 1] - merged.mean) / merged.std, -merged.clip, merged.clip)
            np.testing.assert_array_equal(rowwise.transform(X[i:i + 1]), want)
    assert rowwise.n == merged.n == len(X)
    np.testing.assert_array_equal(rowwise.mean, merged.mean)
    np.testing.assert_array_equal(rowwise._m2, merged._m2)
