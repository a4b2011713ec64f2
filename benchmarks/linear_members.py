"""The linear head alone, with each of its settings, against river's logistic regression.

    python benchmarks/linear_members.py                      # 7 streams, 1 % and 5 %, seeds 0-2 (about 6 minutes)
    python benchmarks/linear_members.py --streams spam_corpus --settings ovr,softmax

Each model runs through the suite's protocol (`benchmarks/suite.py`: micro-batches of 64, the
seeded label mask, labels right after their batch) as the learner's linear member would learn
if it answered alone: :class:`~streamssl.learner.linear.OnlineLinear` on the event's own
features, either standardised by its own statistics of the labelled events (``scale``, the
default) or by statistics of every event (what the learner's standardiser gives a member with
``scale=False``). Prints the mean accuracy over seeds per stream and rate, and the mean over
the streams.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import prepare, streams  # noqa: E402

from streamssl.learner.linear import OnlineLinear  # noqa: E402
from streamssl.learner.standardize import OnlineStandardizer  # noqa: E402
from streamssl.replay.bench import BenchSettings  # noqa: E402
from streamssl.replay.peers import PEERS, RiverBatchAdapter  # noqa: E402
from streamssl.replay.prequential import prequential  # noqa: E402

SETTINGS = {  # name: (OnlineLinear settings, standardised by the statistics of every event first)
    "ovr": ({}, False),  # the default: river's recipe
    "softmax": ({"link": "softmax"}, False),
    "ovr-all-events": ({"scale": False}, True),
    "softmax-all-events": ({"link": "softmax", "scale": False}, True),  # the head before 2026-12-05
}


class LinearAlone:
    """An :class:`OnlineLinear` in the prequential loop's batch interface."""

    def __init__(self, settings: dict, all_events: bool) -> None:
        self.model = OnlineLinear(**settings)
        self.events = OnlineStandardizer() if all_events else None  # the learner's standardiser
        self.classes_: list = []
        self.labels_used = 0

    def _rows(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) if self.events is None else self.events.transform(X)

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        if not self.classes_:
            return np.zeros((len(X), 0))
        return self.model.predict_proba(self._rows(X))

    def learn_many(self, X: np.ndarray, y: list | None = None) -> None:
        if self.events is not None:
            self.events.update(np.asarray(X, dtype=np.float64))
        if y is not None:
            self.learn_late_labels(X, y)

    def learn_late_labels(self, X: np.ndarray, y: list) -> None:
        rows = [i for i, label in enumerate(y) if label is not None]
        for i in rows:
            if y[i] not in self.classes_:
                self.classes_.append(y[i])
        self.model.add_classes(len(self.classes_))
        if rows:
            self.model.learn(self._rows(np.asarray(X)[rows]), np.array([self.classes_.index(y[i]) for i in rows]))
            self.labels_used += len(rows)


def accuracy(model_name: str, stream_name: str, rate: float, seed: int) -> float:
    stream = {s.name: s for s in streams(False)}[stream_name]
    prepare(stream)
    settings = BenchSettings(label_rate=rate, seed=seed, limit=stream.limit)
    path = str(stream.path)
    probe = settings.file.source(path, limit=1, on_bad=lambda bad: None)
    next(iter(probe), None)
    model = (RiverBatchAdapter(PEERS["river-lr"](seed), probe.feature_names) if model_name == "river-lr"
             else LinearAlone(*SETTINGS[model_name]))
    batches = settings.file.source(path, batch_size=settings.batch_size, limit=settings.limit, on_bad=lambda bad: None)
    summary = None
    for step in prequential(batches, model, rate, settings.label_delay, seed):
        summary = step.summary
    return summary.accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", default=",".join(s.name for s in streams(False)))
    p.add_argument("--settings", default=",".join(["river-lr", *SETTINGS]))
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    names, models = args.streams.split(","), args.settings.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| stream | rate | " + " | ".join(models) + " |\n|---|---:|" + "---:|" * len(models))
    means: dict = {}
    for rate in (0.01, 0.05):
        for name in names:
            row = {m: float(np.mean([accuracy(m, name, rate, s) for s in seeds])) for m in models}
            for m, a in row.items():
                means.setdefault((rate, m), []).append(a)
            print(f"| {name} | {rate:.0%} | " + " | ".join(f"{row[m]:.4f}" for m in models) + " |", flush=True)
    for rate in (0.01, 0.05):
        print(f"| **mean** | {rate:.0%} | " + " | ".join(f"{np.mean(means[rate, m]):.4f}" for m in models) + " |")


if __name__ == "__main__":
    main()
