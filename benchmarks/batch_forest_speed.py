"""Time of :class:`~streamssl.learner.forest.BatchForest` alone: asking and learning.

Learns the first 10,000 events of Elec2 (every label, batches of 64) four times (the first pays
numba's start; the best of the other three), 2,000 of them one at a time as
``StreamLearner.learn_one`` gives them (the best of three), then times ``proba_batch`` on 1, 64
and 256 rows (the best of five means of 200 calls). Compare commits with a worktree of the old one on ``PYTHONPATH``.

    python benchmarks/batch_forest_speed.py
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from elec2_rows import first_events


def main() -> None:
    from streamssl.learner.forest import BatchForest

    X, labels = first_events(11_000)
    classes = {c: i for i, c in enumerate(dict.fromkeys(labels))}
    y = np.array([classes[c] for c in labels])
    print(f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    # The machine's speed moves from one second to the next: each figure is the best of a few.
    for attempt, repeats in (("first (pays the start)", 1), ("then, best of 3", 3)):
        best = np.inf
        for _ in range(repeats):
            forest = BatchForest(seed=0)
            start = time.perf_counter()
            for i in range(0, 10_000, 64):
                forest.learn_batch(X[i:i + 64], y[i:i + 64])
            best = min(best, time.perf_counter() - start)
        print(f"learn 10,000 labelled rows in batches of 64, {attempt}: {best:.3f} s, {forest.size:,} nodes")
    best = np.inf
    for _ in range(3):
        one = BatchForest(seed=0)
        start = time.perf_counter()
        for i in range(2_000):  # as StreamLearner.learn_one gives them: held for a chunk
            one.learn_batch(X[i:i + 1], y[i:i + 1], wait=True)
        best = min(best, time.perf_counter() - start)
    print(f"learn 2,000 labelled rows one at a time, best of 3: {best / 2_000 * 1e6:,.1f} µs a row")
    for n in (1, 64, 256):
        rows_n = X[10_000:10_000 + n]
        forest.proba_batch(rows_n, len(classes))
        best = np.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(200):
                forest.proba_batch(rows_n, len(classes))
            best = min(best, (time.perf_counter() - start) / 200)
        print(f"proba_batch, {n} rows, best of 5: {best * 1e6:,.1f} µs")

if __name__ == "__main__":
    main()
