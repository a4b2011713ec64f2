import gzip

import numpy as np

from streamssl.sources.file import FileSource
from streamssl.sources.hashing import bucket_of, hash_csv


def test_folding_keeps_totals_and_is_the_same_everywhere(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((50, 300)) < 0.05).astype(int)
    y = rng.integers(0, 2, 50)
    src = tmp_path / "wide.csv"
    src.write_text(",".join([*(f"w{i}" for i in range(300)), "label"]) + "\n"
                   + "".join(",".join(map(str, [*row, label])) + "\n" for row, label in zip(X, y)))
    out = hash_csv(src, tmp_path / "folded.csv.gz", dims=32)
    batch = next(iter(FileSource(out, batch_size=100)))
    assert batch.X.shape == (50, 32) and batch.y == y.tolist()
    np.testing.assert_array_equal(batch.X.sum(axis=1), X.sum(axis=1))
    expected = np.zeros((50, 32))
    np.add.at(expected, (slice(None), bucket_of(300, 32)), X)
    np.testing.assert_array_equal(batch.X, expected)
    assert np.bincount(bucket_of(300, 32), minlength=32).min() > 0  # every bucket used


def test_a_malformed_row_stays_visible_to_the_reader(tmp_path):
    src = tmp_path / "wide.csv"
    src.write_text("a,b,c,label\n" + "1,0,1,1\n1,x,1,0\n" + "0,1,0,1\n" * 10)
    out = hash_csv(src, tmp_path / "f.csv.gz", dims=2)
    bad = []
    rows = sum(len(b.y) for b in FileSource(out, on_bad=bad.append))
    assert rows == 11 and len(bad) == 1 and bad[0].line == 3 and "'malformed'" in bad[0].reason
    assert gzip.open(out, "rt").readline().strip() == "h0,h1,label"
