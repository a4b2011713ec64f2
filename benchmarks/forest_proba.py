"""Time of the tree members' batched prediction (streamssl.learner.trees.forest_proba).

Trains a StreamLearner with river's forests as its tree heads (``trees=forest.ARFClassifier()``;
the default's are :class:`~streamssl.learner.forest.BatchForest`, timed by
``batch_forest_speed.py``) on the first 20,000 events of Elec2 at 5 % labels (batches of 64),
then times each of its two forests predicting one batch of 64 (mean of 50), and checks the
answer against river's own ``predict_proba_one`` row by row.

    python benchmarks/forest_proba.py
"""

from __future__ import annotations

import time

import numpy as np
from elec2_rows import first_events


def main() -> None:
    from river import forest as river_forest

    from streamssl.learner import StreamLearner, trees

    X, y = first_events(20_000)
    rng = np.random.default_rng(0)
    learner = StreamLearner(seed=0, trees=river_forest.ARFClassifier())
    for i in range(0, len(X), 64):
        shown = rng.random(len(X[i:i + 64])) < 0.05
        learner.predict_proba_many(X[i:i + 64])
        learner.learn_many(X[i:i + 64], [v if s else None for v, s in zip(y[i:i + 64], shown)])
    A = learner.context.transform(learner._unfold(X[-64:])[1], None)  # (folded where the events are wide)
    n_classes = len(learner.classes_)
    for name in ("tree", "raw-tree"):
        forest = learner.heads[name].model
        rows = A if name == "tree" else A[:, : learner.n_own_]
        t0 = time.perf_counter()
        for _ in range(50):
            fast = trees.forest_proba(forest, rows, n_classes)
        batched = (time.perf_counter() - t0) / 50
        t0 = time.perf_counter()
        slow = trees._forest_proba_per_row(forest, rows, n_classes)
        per_row = time.perf_counter() - t0
        slow = slow / slow.sum(axis=1, keepdims=True)
        leaves = [t._n_active_leaves + t._n_inactive_leaves for t in forest]
        print(f"{name:8s} {len(forest)} trees, {min(leaves)}-{max(leaves)} leaves: a batch of 64 in "
              f"{batched * 1e3:.2f} ms batched, {per_row * 1e3:.2f} ms by river row by row; "
              f"largest difference {np.abs(fast - slow).max():.1e}")


if __name__ == "__main__":
    main()
