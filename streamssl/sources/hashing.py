"""Fold a very wide numeric CSV (e.g. word presence over a 40k-word vocabulary) into a fixed
number of hashed columns, streaming, so that dense learners can replay it.

Column ``j`` of the source goes to bucket ``h(j) mod dims`` and buckets sum their values (the
"hashing trick"). The hash is fixed, so the folding is the same on every machine; it uses no
label, so it leaks nothing.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .file import open_maybe_gzip


def bucket_of(n_columns: int, dims: int) -> np.ndarray:
    """The bucket of each source column (Knuth's multiplicative hash).

    >>> bucket_of(5, 4).tolist()
    [0, 1, 2, 3, 0]
    """
    j = np.arange(n_columns, dtype=np.uint64)
    return ((j * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(dims)).astype(np.int64)


def fold(X: np.ndarray, buckets: np.ndarray, dims: int) -> np.ndarray:
    """Rows ``X`` folded into ``dims`` columns, column ``j`` added into ``buckets[j]``: one
    bincount over every row's (row, bucket) cells, each row's sums in its columns' order.

    >>> fold(np.array([[1.0, 0.0, 0.0, 0.0, 1.0]]), bucket_of(5, 4), 4).tolist()
    [[2.0, 0.0, 0.0, 0.0]]
    """
    n = len(X)
    cells = (np.arange(n)[:, None] * dims + buckets).ravel()
    return np.bincount(cells, weights=X.ravel(), minlength=n * dims).reshape(n, dims)


def hash_csv(src: str | os.PathLike, dst: str | os.PathLike, dims: int = 1024) -> Path:
    """Write ``dst`` (gzip CSV): ``dims`` hashed feature columns ``h0..`` and the source's last
    column as ``label``. Rows that do not parse as numbers are written unchanged in width with
    the text ``malformed`` as their features, so the replay reader still rejects them by line.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(f"{d}/w.csv", "w").write("a,b,c,d,e,label\\n1,0,0,0,1,1\\n0,1,1,0,0,0\\n")
    >>> out = hash_csv(f"{d}/w.csv", f"{d}/h.csv.gz", dims=4)
    >>> gzip.open(out, "rt").read().splitlines()
    ['h0,h1,h2,h3,label', '2,0,0,0,1', '0,1,1,0,0']
    """
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    with open_maybe_gzip(src, "rt") as f, gzip.open(tmp, "wt") as out:
        n_features = len(f.readline().rstrip("\n").split(",")) - 1
        buckets = bucket_of(n_features, dims)
        out.write(",".join([*(f"h{i}" for i in range(dims)), "label"]) + "\n")
        for line in f:
            if not line.strip():
                continue
            head, _, label = line.rstrip("\n").rpartition(",")
            try:
                values = np.fromstring(head, sep=",")
            except ValueError:
                values = np.zeros(0)
            if len(values) != n_features:
                out.write(",".join(["malformed"] * dims) + f",{label.strip()}\n")
                continue
            folded = fold(values[None, :], buckets, dims)[0]
            out.write(",".join(f"{v:g}" for v in folded) + f",{label.strip()}\n")
    os.replace(tmp, dst)
    return dst
