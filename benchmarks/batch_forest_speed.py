"""Time of :class:`~streamssl.learner.forest.BatchForest` alone: asking and learning.

Learns the first 10,000 events of Elec2 (every label, batches of 64) twice, timing the second
forest (the first pays numba's start), then times ``proba_batch`` on 1, 64 and 256 rows (mean
of 200 calls). Compare commits with a worktree of the old one on ``PYTHONPATH``.

    python benchmarks/batch_forest_speed.py
"""

from __future__ import annotations

import csv
import gzip
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMSSL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    from streamssl.learner.forest import BatchForest

    with gzip.open(DATA / "elec2.csv.gz", "rt") as f:
        reader = csv.reader(f)
        next(reader)
        rows = [line for _, line in zip(range(11_000), reader)]
    X = np.array([[float(v) for v in r[:-1]] for r in rows])
    classes = {c: i for i, c in enumerate(dict.fromkeys(r[-1] for r in rows))}
    y = np.array([classes[r[-1]] for r in rows])
    print(f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    for attempt in ("first (pays the start)", "second"):
        forest = BatchForest(seed=0)
        start = time.perf_counter()
        for i in range(0, 10_000, 64):
            forest.learn_batch(X[i:i + 64], y[i:i + 64])
        print(f"learn 10,000 labelled rows, {attempt}: {time.perf_counter() - start:.3f} s, {forest.size:,} nodes")
    for n in (1, 64, 256):
        rows_n = X[10_000:10_000 + n]
        forest.proba_batch(rows_n, len(classes))
        start = time.perf_counter()
        for _ in range(200):
            forest.proba_batch(rows_n, len(classes))
        print(f"proba_batch, {n} rows: {(time.perf_counter() - start) / 200 * 1e6:,.1f} µs")


if __name__ == "__main__":
    main()
