"""Why MOA's forests led on luxembourg and the usenets, and whether MOA's leaves help ours.

    python benchmarks/moa_probe.py            # about 4 minutes on 2 cores; needs the capymoa extra and Java
    python benchmarks/moa_probe.py --no-moa   # the river and streamssl rows only

The suite's protocol (one label mask per seed, micro-batches of 64, ``streamssl.replay``) on
luxembourg, usenet1 and usenet2, at 1 % and 5 % labels, 3 seeds; one fresh process per row.

1. **The class order.** MOA takes the class set up front, breaks its leaves' ties toward the
   first class, and gives no votes at all before its first label and wherever its naive Bayes
   rules out every class (a Gaussian that never varied in a class gives density 0 to any other
   value). ``capymoa-arf`` with the classes sorted by name (the suite before 2026-12-04), in the
   order they first appear (since), and in the reverse of that; each scored with an event
   without votes counted as the first class (``first``, as MOA's own evaluation and the suite
   before did) or answered with the class shares of the labels learned (``prior``, the adapter
   since).
2. **MOA's leaves in river's forest.** River's naive Bayes leaves skip a feature for a class
   whose Gaussian has no variance (as if it said nothing), and credit the majority class of an
   empty leaf; MOA zeroes such a class unless the value is the one seen, and does not.
   ``river-arf`` (the tree member's forest) as it is and with MOA's leaf rules, at river's
   ``max_features`` (the square root) and at 60 % (the raw-tree member's).
3. **A naive Bayes member with MOA's rule** beside streamssl's default members (weighed by the
   combiner like the others).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from river import base

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import prepare, streams  # noqa: E402

STREAMS = ("luxembourg", "usenet1", "usenet2")
RATES = (0.01, 0.05)
SEEDS = (0, 1, 2)


class MoaNaiveBayes(base.Classifier):
    """Gaussian naive Bayes with MOA's rule: a class whose Gaussian for a feature has no
    variance yet rules itself out for any other value of that feature; the class prior answers
    where every class is ruled out."""

    def __init__(self) -> None:
        self.weights: dict = {}
        self.stats: dict = {}  # class -> feature -> [mean, sum of squared deviations]

    def _log_votes(self, x: dict) -> dict:
        total = sum(self.weights.values())
        votes = {}
        for c, w in self.weights.items():
            vote = math.log(w / total)
            for k, value in x.items():
                mean, m2 = self.stats[c].get(k, (value, 0.0))
                var = m2 / (w - 1) if w > 1 else 0.0
                if var > 0:
                    vote -= (value - mean) ** 2 / (2 * var) + 0.5 * math.log(2 * math.pi * var)
                elif value != mean:
                    vote = -math.inf
                    break
            votes[c] = vote
        return votes

    def predict_proba_one(self, x: dict) -> dict:
        if not self.weights:
            return {}
        votes = self._log_votes(x)
        top = max(votes.values())
        if top == -math.inf:
            total = sum(self.weights.values())
            return {c: w / total for c, w in self.weights.items()}
        norm = sum(math.exp(v - top) for v in votes.values())
        return {c: math.exp(v - top) / norm for c, v in votes.items()}

    def learn_one(self, x: dict, y, w: float = 1.0) -> None:
        self.weights[y] = self.weights.get(y, 0.0) + w
        n, stats = self.weights[y], self.stats.setdefault(y, {})
        for k, value in x.items():
            if k not in stats:
                stats[k] = [value, 0.0]
                continue
            s = stats[k]
            last = s[0]
            s[0] += w * (value - last) / n
            s[1] += w * (value - last) * (value - s[0])


def _moa_leaves() -> None:
    """Give river's naive-Bayes-adaptive leaves MOA's rules, in this process only."""
    from river.tree.nodes import htc_nodes

    def naive_bayes(x, stats, splitters):
        total = sum(stats.values())
        if not stats or total == 0:
            return {}
        votes = {}
        for c, w in stats.items():
            vote = math.log(w / total) if w > 0 else -math.inf
            for k, splitter in splitters.items():
                est = getattr(splitter, "_att_dist_per_class", {}).get(c)
                if k not in x or est is None or vote == -math.inf:
                    continue
                n, var = est._var.mean.n, est._var
                variance = var._S / (n - var.ddof) if n > var.ddof else 0.0
                if variance > 0:
                    vote -= (x[k] - var.mean._mean) ** 2 / (2 * variance) + 0.5 * math.log(2 * math.pi * variance)
                elif x[k] != var.mean._mean:
                    vote = -math.inf
            votes[c] = vote
        top = max(votes.values())
        if top == -math.inf:
            return {c: 0.0 for c in votes}
        norm = sum(math.exp(v - top) for v in votes.values())
        return {c: math.exp(v - top) / norm for c, v in votes.items()}

    leaf = htc_nodes.LeafNaiveBayesAdaptive

    def learn_one(self, x, y, *, w=1.0, tree=None):
        if self.is_active():
            if self.stats and max(self.stats, key=self.stats.get) == y:  # not credited on an empty leaf
                self._mc_correct_weight += w
            nb = naive_bayes(x, self.stats, self.splitters)
            if nb and max(nb.values()) > 0 and max(nb, key=nb.get) == y:
                self._nb_correct_weight += w
        super(leaf, self).learn_one(x, y, w=w, tree=tree)

    def prediction(self, x, *, tree=None):
        if self.is_active() and self._nb_correct_weight >= self._mc_correct_weight:
            return naive_bayes(x, self.stats, self.splitters)
        return super(leaf, self).prediction(x)

    leaf.learn_one, leaf.prediction = learn_one, prediction


class _Scored:
    """A CapyMOA adapter whose events without votes count as the first class (the old scoring)."""

    def __init__(self, model) -> None:
        self.model, self.classes_ = model, model.classes_

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        model = self.model
        out = np.zeros((len(X), len(self.classes_)))
        for r, row in enumerate(X):
            proba = model.model.predict_proba(model._instance(model.schema, row))
            if proba is not None and len(proba) == len(self.classes_) and np.sum(proba) > 0:
                out[r] = proba
            else:
                out[r, 0] = 1.0
        return out

    def learn_many(self, X, y=None):
        self.model.learn_many(X, y)

    def learn_late_labels(self, X, y):
        self.model.learn_late_labels(X, y)


def _model(name: str, seed: int, names: list[str], labels: list):
    from river import forest

    from streamssl.learner import StreamLearner
    from streamssl.replay.peers import CapyMOABatchAdapter, RiverBatchAdapter, _capymoa_arf

    if name.startswith("capymoa-arf"):  # capymoa-arf/<order>/<scoring>
        _, order, scoring = name.split("/")
        seen = list(dict.fromkeys(labels))
        classes = {"sorted": sorted(seen, key=lambda c: (str(type(c)), c)), "appearance": seen,
                   "reversed": seen[::-1]}[order]
        adapter = CapyMOABatchAdapter(_capymoa_arf, names, classes, seed)
        return adapter if scoring == "prior" else _Scored(adapter)
    if name.startswith("river-arf"):  # river-arf[/moa-leaves][/0.6]
        if "moa-leaves" in name:
            _moa_leaves()
        kwargs = {"max_features": 0.6} if name.endswith("0.6") else {}
        return RiverBatchAdapter(forest.ARFClassifier(seed=seed, **kwargs), names)
    if name == "streamssl+moa-nb":
        return StreamLearner(seed=seed, members={"moa-nb": MoaNaiveBayes()})
    return StreamLearner(seed=seed)


def _row(job: tuple[str, float, str]) -> tuple[str, float, str, list[float], float]:
    import torch

    from streamssl.replay.bench import BenchSettings
    from streamssl.replay.prequential import prequential

    torch.set_num_threads(1)
    stream_name, rate, name = job
    stream = {s.name: s for s in streams(False)}[stream_name]
    prepare(stream)
    start, accuracies = time.time(), []
    for seed in SEEDS:
        settings = BenchSettings(label_rate=rate, seed=seed, limit=stream.limit)
        source = settings.file.source(str(stream.path), batch_size=settings.batch_size, limit=settings.limit,
                                      on_bad=lambda bad: None)
        batches = list(source)
        labels = [v for b in batches for v in b.y if v is not None]
        model = _model(name, seed, source.feature_names, labels)
        for step in prequential(iter(batches), model, settings.label_rate, settings.label_delay, seed):
            summary = step.summary
        accuracies.append(summary.accuracy)
    return stream_name, rate, name, accuracies, time.time() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--no-moa", action="store_true", help="skip the CapyMOA rows (no capymoa extra or Java)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    names = [] if args.no_moa else [f"capymoa-arf/{order}/{scoring}" for order in ("sorted", "appearance", "reversed")
                                    for scoring in ("first", "prior")]
    names += ["river-arf", "river-arf/moa-leaves", "river-arf/0.6", "river-arf/moa-leaves/0.6",
              "streamssl", "streamssl+moa-nb"]
    jobs = [(s, r, n) for s in STREAMS for r in RATES for n in names]
    with Pool(args.workers, maxtasksperchild=1) as pool:
        rows = {(s, r, n): (acc, sec) for s, r, n, acc, sec in pool.imap_unordered(_row, jobs)}
    print(f"| model | {' | '.join(f'{s} {r:.0%}' for s in STREAMS for r in RATES)} | mean |")
    print(f"|---|{'---:|' * (len(STREAMS) * len(RATES) + 1)}")
    for n in names:
        means = [float(np.mean(rows[(s, r, n)][0])) for s in STREAMS for r in RATES]
        print(f"| {n} | {' | '.join(f'{m:.3f}' for m in means)} | {np.mean(means):.3f} |")
    print(f"\nmean over {len(SEEDS)} seeds; {sum(sec for _, sec in rows.values()):.0f} s of work")


if __name__ == "__main__":
    main()
