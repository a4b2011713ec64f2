"""The first events of the recorded Elec2 stream as numbers, for the benchmarks that time one
part of the learner on it (``batch_forest_speed.py``, ``forest_proba.py``)."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMSSL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def first_events(n: int) -> tuple[np.ndarray, list[str]]:
    """Elec2's first ``n`` events: their features, shape ``(n, 8)``, and their labels."""
    with gzip.open(DATA / "elec2.csv.gz", "rt") as f:
        reader = csv.reader(f)
        next(reader)
        rows = [line for _, line in zip(range(n), reader)]
    return np.array([[float(v) for v in line[:-1]] for line in rows]), [line[-1] for line in rows]
