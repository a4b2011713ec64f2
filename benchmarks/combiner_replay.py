"""Try combiners on the suite in seconds: record every member's answers once, replay them.

    python benchmarks/combiner_replay.py DIR --record   # the 42 suite cells (~10 minutes, 2 workers)
    python benchmarks/combiner_replay.py DIR --record --streams held-out,river-streams   # the streams kept out
    python benchmarks/combiner_replay.py DIR            # every combiner below against them

What the members learn does not depend on the combiner (each learns every label; with
pseudo-labels off, the default, nothing learns from the served answer), so the members'
answers are the same whatever combiner serves them. ``--record`` runs the default ``streamssl``
on each cell of ``benchmarks/suite.py`` (same streams, seeds, label masks, batches of 64),
asking every member of every batch, and keeps in order each served batch's member
probabilities with its truths and each labelled batch's member outcomes. Replaying that log
through a combiner gives the accuracy the learner would have had with it; the default combiner
gives back the run's own accuracy exactly (checked on each cell).

The report gives, per stream and label rate (mean over seeds), each combiner's accuracy, and
for reference the member best in hindsight (its answers alone) and the mean regret against it.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections import defaultdict, deque
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from streamssl.learner.calibration import TemperatureCalibrator  # noqa: E402
from streamssl.learner.combine import EWA, Select  # noqa: E402


class Recorder:
    """Stands in for the learner's combiner: every member is asked, the answer is the inner
    combiner's; logs in order each served batch's probabilities (with the truths set by
    :class:`_Served`) and each update's outcomes."""

    def __init__(self, inner) -> None:
        self.inner, self.log, self.truths = inner, [], None

    def asked(self) -> list[str]:
        return list(self.inner.members)

    def combine(self, probas: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.truths is not None:  # a served batch (not the combination a labelled batch is scored on)
            self.log.append(["serve", {k: np.array(v, dtype=np.float32) for k, v in probas.items()}, self.truths])
            self.truths = None
        return self.inner.combine({name: probas[name] for name in self.inner.asked()})

    def update(self, outcomes: Mapping[str, Sequence[bool]]) -> None:
        self.log.append(["update", {k: np.asarray(v, dtype=bool) for k, v in outcomes.items()}])
        self.inner.update(outcomes)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class _Served:
    """The learner, each served batch's truths (as indices of its classes then, -1 for none or
    a class not yet seen) handed to the :class:`Recorder` first."""

    def __init__(self, model, recorder: Recorder) -> None:
        self.model, self.recorder, self.truths = model, recorder, []

    def predict_proba_many(self, X, **kw):
        index = {c: i for i, c in enumerate(self.model.classes_)}
        self.recorder.truths = np.array([index.get(t, -1) if t is not None else -1 for t in self.truths])
        scored = np.array([t is not None for t in self.truths])
        try:
            proba = self.model.predict_proba_many(X, **kw)
        finally:
            if self.recorder.truths is not None:  # nothing to combine yet: no answer
                self.recorder.log.append(["serve", None, self.recorder.truths])
            self.recorder.truths = None
        self.recorder.log[-1].append(scored)
        return proba

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def record(job: tuple) -> str:
    """Run one suite cell with a :class:`Recorder`; write its log to ``out``."""
    from suite import replay_default, write_record

    stream_name, rate, seed, out = job
    recorder, summary = replay_default(stream_name, rate, seed, "mix", Recorder, _Served)
    file = write_record(out, stream_name, rate, seed, {
        "log": recorder.log, "accuracy": summary.accuracy, "members": list(recorder.inner.members)})
    return f"{file.name}: accuracy {summary.accuracy:.4f}"


class Margin:
    """The member that answers changes only when another beats it by a paired sign test: over
    the last ``window`` labelled events on which the two disagreed (one right, one wrong), the
    challenger's wins minus the incumbent's exceed ``z`` standard deviations of that difference
    under no difference (``z * sqrt(disagreements)``). The incumbent at the start is the first member."""

    def __init__(self, members: Sequence[str], window: int = 200, z: float = 1.0) -> None:
        self.members = list(members)
        self.window, self.z = window, z
        self.outcomes: deque = deque(maxlen=window)
        self.selected = self.members[0]

    @property
    def weights(self) -> dict[str, float]:
        return {n: float(n == self.selected) for n in self.members}

    def asked(self) -> list[str]:
        return [self.selected]

    def combine(self, probas):
        return probas[self.selected]

    def update(self, outcomes) -> None:
        names = [n for n in self.members if n in outcomes]
        for row in zip(*(outcomes[n] for n in names)):
            self.outcomes.append(dict(zip(names, row)))
        if not self.outcomes:
            return
        best, best_score = self.selected, 0.0
        for name in self.members:
            if name == self.selected:
                continue
            wins = losses = 0
            for o in self.outcomes:
                if name in o and self.selected in o and o[name] != o[self.selected]:
                    wins += o[name]
                    losses += o[self.selected]
            n = wins + losses
            score = (wins - losses) / math.sqrt(n) if n else 0.0
            if score > self.z and score > best_score:
                best, best_score = name, score
        self.selected = best


class HardEWA(EWA):
    """EWA's weights, but the member of the largest weight answers alone."""

    def asked(self) -> list[str]:
        w = self.weights
        return [max(self.members, key=lambda n: w[n])]

    def combine(self, probas):
        (p,) = probas.values()
        return p


class LogPool(EWA):
    """EWA's weights, the members' probabilities pooled geometrically (the weighted mean of their
    logarithms, floored at 1e-6, renormalised) instead of arithmetically."""

    def combine(self, probas):
        weights = self.weights
        total = sum(weights[name] for name in probas)
        logp = sum((weights[name] / total) * np.log(np.clip(p, 1e-6, 1.0)) for name, p in probas.items())
        out = np.exp(logp - logp.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)


class Vote(EWA):
    """EWA's weights, each member voting for its argmax with its weight (ties to the pooled
    probabilities), instead of averaging the members' probabilities: an over-confident member
    of small weight cannot outvote the others."""

    def combine(self, probas):
        weights = self.weights
        pooled = super().combine(probas)
        votes = sum(weights[name] * np.eye(p.shape[1])[p.argmax(axis=1)] for name, p in probas.items())
        out = votes + 1e-6 * pooled
        return out / out.sum(axis=1, keepdims=True)


class AdaHedge(EWA):
    """EWA whose rate is AdaHedge's (de Rooij et al., 2014): ln(K) over the mixability gap the
    mix has incurred so far, so it starts at follow-the-leader and softens as the members
    prove hard to tell apart; the same fixed share after each labelled event."""

    def __init__(self, members, share: float = 0.02, min_weight: float = 1e-3) -> None:
        super().__init__(members, share=share, min_weight=min_weight)
        self.gap = 0.0

    def update(self, outcomes) -> None:
        losses = self.losses(outcomes)
        if losses is None:
            return
        w = np.array(list(self.weights.values()))
        k = len(w)
        for t in range(losses.shape[1]):
            loss = losses[:, t]
            eta = math.log(k) / self.gap if self.gap > 0 else math.inf
            h = float(w @ loss)
            if math.isinf(eta):
                support = w > 0
                m = float(loss[support].min())
                new = np.where(loss == loss[support].min(), w, 0.0)
            else:
                lmin = loss.min()
                z = w * np.exp(-eta * (loss - lmin))
                m = lmin - math.log(z.sum()) / eta
                new = z
            self.gap += max(h - m, 0.0)
            w = (1.0 - self.share) * new / new.sum() + self.share / k
        self.logw = dict(zip(self.members, np.log(w).tolist()))


class AnytimeEWA(EWA):
    """EWA whose rate falls with the labelled events seen, sqrt(8 ln K / t) (the anytime Hedge
    rate), floored at ``floor``; the same fixed share."""

    def __init__(self, members, floor: float = 0.1, share: float = 0.02) -> None:
        super().__init__(members, share=share)
        self.floor, self.t = floor, 0

    def update(self, outcomes) -> None:
        losses = self.losses(outcomes)
        if losses is None:
            return
        w = np.array(list(self.weights.values()))
        k = len(w)
        for t in range(losses.shape[1]):
            self.t += 1
            eta = max(math.sqrt(8 * math.log(k) / self.t), self.floor)
            w = w * np.exp(-eta * losses[:, t])
            w = (1.0 - self.share) * w / w.sum() + self.share / k
        self.logw = dict(zip(self.members, np.log(w).tolist()))


class Informative(EWA):
    """EWA whose step and fixed share come only with the labelled events on which the members'
    outcomes differ: an event every member got right (or wrong) says nothing of who is better,
    and with the share after every label, weights cannot gather on a member better by a few
    points (hyperplane 5 %: the linear head, right 0.87 of the time against 0.78-0.84, held
    0.3-0.6 of the weight)."""

    def update(self, outcomes) -> None:
        losses = self.losses(outcomes)
        if losses is None:
            return
        w = np.array(list(self.weights.values()))
        for t in range(losses.shape[1]):
            loss = losses[:, t]
            if loss.max() == loss.min():
                continue
            w = w * np.exp(-self.rate * loss)
            w = (1.0 - self.share) * w / w.sum() + self.share / len(w)
        self.logw = dict(zip(self.members, np.log(w).tolist()))


class MemberTemperatures(EWA):
    """EWA over the members' probabilities each through a temperature of its own, fitted as the
    learner's calibrator is (:class:`TemperatureCalibrator`'s defaults) on that member's answers
    to the labelled events: in an average of probabilities a member's say is its confidence, and
    the linear head is right more often than it says (hyperplane 5 %: 0.87 right at a mean
    confidence of 0.67), the MLPs less (0.81 at 0.89). ``sharpen``: a temperature above 1 is
    not used (only under-confident members are changed)."""

    def __init__(self, members, sharpen: bool = False) -> None:
        super().__init__(members)
        self.sharpen = sharpen
        self.calibrators = {name: TemperatureCalibrator() for name in self.members}

    def observe(self, probas: Mapping[str, np.ndarray], y: np.ndarray) -> None:
        for name, cal in self.calibrators.items():
            if name in probas:
                cal.observe(probas[name], y)
                if self.sharpen:
                    cal.temperature = min(cal.temperature, 1.0)

    def combine(self, probas):
        return super().combine({name: self.calibrators[name].apply(p) for name, p in probas.items()})


class Equalized(EWA):
    """EWA over the members' probabilities each tempered to the same typical confidence, learned
    without labels: a member's spread is its mean, over the events it served, of the gap
    between its largest log-probability and the mean of them (floored at 1e-6); a temperature
    scales that gap exactly, so each member's log-probabilities are scaled by the members'
    geometric-mean spread over its own (clipped to [1/4, 4]) before the weighted average. A
    member's say on an event is then its weight and how sure it is *for it*, not its habit of
    certainty (the forests' pure leaves answer 1.0, the linear head rarely above 0.7)."""

    def __init__(self, members, horizon: int = 1000) -> None:
        super().__init__(members)
        self.horizon, self.seen = horizon, dict.fromkeys(self.members, 0)
        self.spread = dict.fromkeys(self.members, 0.0)

    def combine(self, probas):
        logs = {name: np.log(np.clip(p, 1e-6, 1.0)) for name, p in probas.items()}
        known = [n for n in probas if self.seen[n] and self.spread[n] > 0]
        tempered = dict(probas)
        if len(known) > 1:
            ref = math.exp(np.mean([math.log(self.spread[n]) for n in known]))
            for n in known:
                scale = min(max(ref / self.spread[n], 0.25), 4.0)
                z = logs[n] * scale
                e = np.exp(z - z.max(axis=1, keepdims=True))
                tempered[n] = e / e.sum(axis=1, keepdims=True)
        for n, lp in logs.items():
            if lp.shape[1] < 2:
                continue
            gap = (lp.max(axis=1) - lp.mean(axis=1))
            for g in gap:
                self.seen[n] += 1
                self.spread[n] += (float(g) - self.spread[n]) / min(self.seen[n], self.horizon)
        return super().combine(tempered)


class SoftLoss(EWA):
    """EWA whose loss for a member on a labelled event is not 0/1 but ``1 - p`` (``p``: its
    probability of the event's class; ``brier``: half the Brier score): each label says how far
    each member was from it, not only whether its top class was it."""

    def __init__(self, members, brier: bool = False, rate: float = 0.5) -> None:
        super().__init__(members, rate=rate)
        self.brier = brier

    def observe(self, probas, y) -> None:
        if not len(y):
            return
        rows = np.arange(len(y))
        losses = []
        for name in self.members:
            p = probas[name]
            if self.brier:
                onehot = np.zeros_like(p)
                onehot[rows, y] = 1.0
                losses.append(0.5 * ((p - onehot) ** 2).sum(axis=1))
            else:
                losses.append(1.0 - p[rows, y])
        decay = np.exp(-self.rate * np.stack(losses))
        w = np.array(list(self.weights.values()))
        for t in range(decay.shape[1]):
            w *= decay[:, t]
            w = (1.0 - self.share) * w / w.sum() + self.share / len(w)
        self.logw = dict(zip(self.members, np.log(w).tolist()))

    def update(self, outcomes) -> None:
        pass


VARIANTS = {
    "default": lambda m: EWA(m),
    "ewa-r0.25": lambda m: EWA(m, rate=0.25),
    "ewa-r1": lambda m: EWA(m, rate=1.0),
    "ewa-r2": lambda m: EWA(m, rate=2.0),
    "ewa-s0.005": lambda m: EWA(m, share=0.005),
    "ewa-s0.05": lambda m: EWA(m, share=0.05),
    "ewa-r1-s0.005": lambda m: EWA(m, rate=1.0, share=0.005),
    "hard-ewa": lambda m: HardEWA(m),
    "select50": lambda m: Select(m, 50),
    "select200": lambda m: Select(m, 200),
    "margin-z1": lambda m: Margin(m, 200, 1.0),
    "margin-z2": lambda m: Margin(m, 200, 2.0),
    "logpool": lambda m: LogPool(m),
    "vote": lambda m: Vote(m),
    "adahedge": lambda m: AdaHedge(m),
    "adahedge-s0.005": lambda m: AdaHedge(m, share=0.005),
    "anytime": lambda m: AnytimeEWA(m),
    "anytime-f0.25": lambda m: AnytimeEWA(m, floor=0.25),
    "informative": lambda m: Informative(m),
    "informative-r1": lambda m: Informative(m, rate=1.0),
    "member-temperature": lambda m: MemberTemperatures(m),
    "member-sharpen": lambda m: MemberTemperatures(m, sharpen=True),
    "equalized": lambda m: Equalized(m),
    "equalized-h200": lambda m: Equalized(m, horizon=200),
    "absolute": lambda m: SoftLoss(m),
    "absolute-r1": lambda m: SoftLoss(m, rate=1.0),
    "brier": lambda m: SoftLoss(m, brier=True),
}


def make(name: str, members: list[str]):
    """The combiner called ``name`` over ``members``: one of :data:`VARIANTS`, or ``drop:A+B``,
    the default over the members but A and B (what the members left would have given)."""
    if name.startswith("drop:"):
        gone = set(name[5:].split("+"))
        return EWA([m for m in members if m not in gone])
    return VARIANTS[name](members)


def replay(log: list, members: list[str], combiner, revealed: np.ndarray | None = None) -> tuple[float, dict[str, float]]:
    """Accuracy over the scored events of ``log`` served through ``combiner``, and each member's
    alone. A combiner with ``observe`` is also given, before each update, the members'
    probabilities of the labelled events and their classes: the events of the batch just served
    that ``revealed`` (the run's label mask, one per event in stream order) marks, whose labels
    were known then (the learner's own answers, as nothing learned between serving and learning)."""
    right, n, start, last = 0, 0, 0, None
    alone = dict.fromkeys(members, 0)
    for entry in log:
        if entry[0] == "update":
            if combiner is not None and hasattr(combiner, "observe") and last is not None:
                probas, truths, shown = last
                y = truths[shown]
                if probas is not None and len(y) == len(next(iter(entry[1].values()))):
                    known = y >= 0  # (a class first met in this batch had no column when served)
                    combiner.observe({k: p[shown][known] for k, p in probas.items()}, y[known])
            if combiner is not None:
                combiner.update(entry[1])
            continue
        _, probas, truths, scored = entry
        if revealed is not None:
            last = (probas, truths, revealed[start:start + len(truths)])
        start += len(truths)
        n += int(scored.sum())
        if probas is None:
            continue
        truth = truths[scored]
        if combiner is not None:
            out = combiner.combine({name: probas[name] for name in combiner.asked()})
            right += int((out.argmax(axis=1)[scored] == truth).sum())
        for name, p in probas.items():
            alone[name] += int((p.argmax(axis=1)[scored] == truth).sum())
    return right / max(n, 1), {k: v / max(n, 1) for k, v in alone.items()}


def report(directory: Path, names: list[str]) -> None:
    cells: dict = defaultdict(lambda: defaultdict(list))
    for file in sorted(directory.glob("*.pkl")):
        stream, rest = file.stem.split(".", 1)
        rate, seed = rest.rsplit(".", 1)
        data = pickle.loads(file.read_bytes())
        members = data["members"]
        events = sum(len(entry[2]) for entry in data["log"] if entry[0] == "serve")
        revealed = np.random.default_rng(int(seed)).random(events) < float(rate)  # the suite's mask
        check, alone = replay(data["log"], members, EWA(members))
        if abs(check - data["accuracy"]) > 1e-9:
            raise SystemExit(f"{file.name}: the replay gives accuracy {check}, the run {data['accuracy']}")
        cells[(rate, stream)]["alone"].append(alone)
        for name in names:
            cells[(rate, stream)][name].append(replay(data["log"], members, make(name, members), revealed)[0])
    for rate in sorted({r for r, _ in cells}):
        print(f"\n### {float(rate):.0%} labels: accuracy (mean over seeds); last columns: the member best "
              "in hindsight alone, and the default's regret against it (points)\n")
        print("| stream | " + " | ".join(names) + " | best member | regret |")
        print("|---|" + "---:|" * (len(names) + 2))
        means: dict = defaultdict(list)
        for (r, stream), by in sorted(cells.items()):
            if r != rate:
                continue
            members = by["alone"][0].keys()
            best = max(members, key=lambda k: np.mean([a[k] for a in by["alone"]]))
            best_acc = float(np.mean([a[best] for a in by["alone"]]))
            row = [float(np.mean(by[name])) for name in names]
            for name, v in zip(names, row):
                means[name].append(v)
            means["best"].append(best_acc)
            print(f"| {stream} | " + " | ".join(f"{v:.4f}" for v in row)
                  + f" | {best} {best_acc:.4f} | {100 * (row[0] - best_acc):+.1f} |")
        print("| **mean** | " + " | ".join(f"{np.mean(means[n]):.4f}" for n in names)
              + f" | {np.mean(means['best']):.4f} | |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="where the logs are (or go, with --record)")
    parser.add_argument("--record", action="store_true", help="run the suite's cells and record their logs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--streams", default="suite", help="with --record, comma-separated stream sets of "
                        "suite.py: suite (the default), held-out, river-streams")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"of {', '.join(VARIANTS)}, or drop:MEMBER[+MEMBER...] (the default without them)")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if args.record:
        from suite import record_cells

        record_cells(record, directory, args.workers, args.streams.split(","))
    report(directory, args.variants.split(","))


if __name__ == "__main__":
    main()
