"""Try calibrators on the suite in seconds: record the default learner's answers once, replay them.

    python benchmarks/calibration_replay.py --record DIR   # the 42 suite cells (~8 minutes, 2 workers)
    python benchmarks/calibration_replay.py --record DIR --sets held-out,river-streams  # 66 more (~5 minutes)
    python benchmarks/calibration_replay.py DIR            # every calibrator below against them

A temperature never moves an answer's class, and with pseudo-labels off (the default) the
learner reads the calibrated confidence only in the drift channel on the residual (correct -
confidence), so the learner's answers before calibration are the same whatever calibrator
serves them, up to where a different temperature would move a residual drift signal (then the
replay is an approximation from that point of the cell on). ``--record`` runs the default ``streamssl`` on each cell of
``benchmarks/suite.py`` (same streams, seeds, label masks, batches of 64) and keeps, in order,
every served batch's combined probabilities with the correctness of its answers, and every
labelled batch the calibrator is given. Replaying that log through a calibrator gives the ECE and
|estimated - realised accuracy| that the learner would have shown with it; the calibrator the
run served with reproduces its figures exactly (checked on each cell; ``constant`` for logs
recorded before the trend).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from streamssl.learner.calibration import Reliability, TemperatureCalibrator  # noqa: E402


class Recorder:
    """Stands in for the learner's calibrator: passes every call on, and logs, in order, what is
    served (set by :meth:`serve`) and what is observed."""

    def __init__(self, inner: TemperatureCalibrator) -> None:
        self.inner, self.log, self.serving = inner, [], None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        if self.serving is not None:
            self.serving[1] = np.array(proba, dtype=np.float64)
        return self.inner.apply(proba)

    def observe(self, proba: np.ndarray, y: np.ndarray) -> None:
        self.log.append(["observe", np.array(proba, dtype=np.float64), np.asarray(y).copy()])
        self.inner.observe(proba, y)

    def serve(self, model, X: np.ndarray, truths: list, **kw) -> np.ndarray:
        """``model.predict_proba_many(X)``, logged with the correctness of its answers (its
        probabilities before calibration; ``None`` before the calibrator had anything to do)."""
        self.serving = entry = ["serve", None]
        try:
            proba = model.predict_proba_many(X, **kw)
        finally:
            self.serving = None
        scored = np.array([t is not None for t in truths])
        answers = [model.classes_[i] for i in proba.argmax(axis=1)] if proba.shape[1] else [None] * len(truths)
        confidence = proba.max(axis=1) if proba.shape[1] else np.zeros(len(truths))
        entry += [np.array([a == t for a, t in zip(answers, truths)]), scored, confidence]
        self.log.append(entry)
        return proba

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class _Served:
    """The learner, its answers served through a :class:`Recorder` with the batch's truths."""

    def __init__(self, model, recorder: Recorder) -> None:
        self.model, self.recorder, self.truths = model, recorder, []

    def predict_proba_many(self, X, **kw):
        return self.recorder.serve(self.model, X, self.truths, **kw)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def record(job: tuple) -> str:
    """Run one suite cell with a :class:`Recorder`; write its log to ``out``."""
    from suite import replay_default, write_record

    stream_name, rate, seed, out = job
    recorder, summary = replay_default(stream_name, rate, seed, "calibrator", Recorder, _Served)
    file = write_record(out, stream_name, rate, seed, {
        "log": recorder.log, "accuracy": summary.accuracy, "ece": summary.calibration_error,
        "estimated": summary.estimated_accuracy, "trend": recorder.inner.trend,
        "floor": recorder.inner.floor})
    return f"{file.name}: accuracy {summary.accuracy:.4f}, ECE {summary.calibration_error:.4f}"


class PriorTemperature(TemperatureCalibrator):
    """A temperature with a Gaussian prior on log T (mean 0: the answer as it is), worth
    ``strength`` labels, fitted from the first label on."""

    def __init__(self, strength: float, **kw) -> None:
        super().__init__(min_labels=1, refit=4, **kw)
        self.strength = strength

    def _fit(self) -> float:
        L, y = self._window()
        picked, n = L[np.arange(len(y)), y], len(y)
        grid = np.linspace(-math.log(self.bounds), math.log(self.bounds), 241)

        def loss(log_t: float) -> float:
            S = L / math.exp(log_t)
            top = S.max(axis=1)
            nll = np.sum(top + np.log(np.exp(S - top[:, None]).sum(axis=1)) - picked / math.exp(log_t))
            return float(nll + self.strength * log_t * log_t / 2) / n

        return math.exp(min(grid, key=loss))


class MatchedTemperature(TemperatureCalibrator):
    """The temperature at which the window's mean confidence equals its accuracy (moment
    matching rather than log-loss, which a few confident mistakes pull high)."""

    def _fit(self) -> float:
        L, y = self._window()
        accuracy = float(np.mean(L.argmax(axis=1) == y))

        def confidence(log_t: float) -> float:
            S = L / math.exp(log_t)
            S = np.exp(S - S.max(axis=1, keepdims=True))
            return float(np.mean(S.max(axis=1) / S.sum(axis=1)))

        lo, hi = -math.log(self.bounds), math.log(self.bounds)  # confidence falls as log T rises
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if confidence(mid) > accuracy else (lo, mid)
        return math.exp((lo + hi) / 2)


VARIANTS = {
    "default": TemperatureCalibrator,
    "none": lambda: None,
    "prior4": lambda: PriorTemperature(4),
    "prior8": lambda: PriorTemperature(8),
    "prior16": lambda: PriorTemperature(16),
    "first16": lambda: TemperatureCalibrator(min_labels=16, refit=8),
    "window64": lambda: TemperatureCalibrator(window=64),
    "window256": lambda: TemperatureCalibrator(window=256),
    "refit4": lambda: TemperatureCalibrator(refit=4),
    "matched": MatchedTemperature,
    "matched-first8": lambda: MatchedTemperature(min_labels=8, refit=4),
    "constant": lambda: TemperatureCalibrator(trend=None),
    "no-floor": lambda: TemperatureCalibrator(floor=None),
    "trend-prior0": lambda: TemperatureCalibrator(trend=0.0),
    "trend-prior4": lambda: TemperatureCalibrator(trend=4.0),
    "trend-prior16": lambda: TemperatureCalibrator(trend=16.0),
    "trend-prior32": lambda: TemperatureCalibrator(trend=32.0),
}


def served(log: list, calibrator):
    """Each served batch of ``log`` through ``calibrator`` (``None``: as it was), in order: its
    scored events' confidences and correctness (the calibrator learning as the learner's did)."""
    for entry in log:
        if entry[0] == "observe":
            if calibrator is not None:
                calibrator.observe(entry[1], entry[2])
            continue
        _, proba, correct, scored, confidence = entry
        if proba is not None:
            out = proba if calibrator is None else calibrator.apply(proba)
            confidence = out.max(axis=1) if out.shape[1] else np.zeros(len(out))
        yield confidence[scored], correct[scored]


def replay(log: list, calibrator) -> Reliability:
    """The reliability of the answers in ``log`` served through ``calibrator``."""
    reliability = Reliability()
    for confidence, correct in served(log, calibrator):
        reliability.add(confidence, correct)
    return reliability


def phases(log: list) -> tuple[float, float, float]:
    """With the default calibrator: the share of scored events served before its first fit,
    and mean confidence minus accuracy before and after it."""
    calibrator, before, after = TemperatureCalibrator(), Reliability(), Reliability()
    for confidence, correct in served(log, calibrator):
        (before if calibrator.fitted_at == 0 else after).add(confidence, correct)

    def bias(r: Reliability) -> float:
        return float((r.confidence.sum() - r.correct.sum()) / r.n) if r.n else 0.0

    return before.n / max(before.n + after.n, 1), bias(before), bias(after)


def report(directory: Path, names: list[str]) -> None:
    cells: dict = defaultdict(lambda: defaultdict(list))
    for file in sorted(directory.glob("*.pkl")):
        stream, rest = file.stem.split(".", 1)
        rate = rest.rsplit(".", 1)[0]
        data = pickle.loads(file.read_bytes())
        cells[(rate, stream)]["phases"].append(phases(data["log"]))
        # The calibrator the run served with (logs from before the trend: one temperature) must
        # give back the run's own ECE.
        served_with = TemperatureCalibrator(trend=data.get("trend"), floor=data.get("floor"))
        check = replay(data["log"], served_with).calibration_error
        if abs(check - data["ece"]) > 1e-9:
            raise SystemExit(f"{file.name}: the replay gives ECE {check}, the run {data['ece']}")
        for name in names:
            rel = replay(data["log"], VARIANTS[name]())
            cells[(rate, stream)][name].append((rel.calibration_error, abs(rel.mean_confidence - data["accuracy"])))
    for rate in sorted({r for r, _ in cells}):
        print(f"\n### {float(rate):.0%} labels: ECE · |estimated − realised| (mean over seeds)\n")
        print("| stream | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        means: dict = defaultdict(list)
        for (r, stream), by in sorted(cells.items()):
            if r == rate:
                row = []
                for name in names:
                    m = np.mean(by[name], axis=0)
                    means[name].append(m)
                    row.append(f"{m[0]:.4f} · {m[1]:.4f}")
                print(f"| {stream} | " + " | ".join(row) + " |")
        print("| **mean** | " + " | ".join("{:.4f} · {:.4f}".format(*np.mean(means[n], axis=0)) for n in names) + " |")
        print(f"\nThe default, before its first fit (the {TemperatureCalibrator().min_labels}th label) and after: "
              "share of the scored events · mean confidence − accuracy before · after\n")
        print("| stream | share before | bias before | bias after |\n|---|---:|---:|---:|")
        for (r, stream), by in sorted(cells.items()):
            if r == rate:
                print(f"| {stream} | " + " | ".join(f"{v:+.3f}" if i else f"{v:.0%}"
                                                    for i, v in enumerate(np.mean(by["phases"], axis=0))) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="where the logs are (or go, with --record)")
    parser.add_argument("--record", action="store_true", help="run the suite's cells and record their logs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sets", default="suite", help="with --record, the stream sets of benchmarks/suite.py to "
                        "record, comma-separated: suite, held-out, river-streams")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if args.record:
        from suite import record_cells

        record_cells(record, directory, args.workers, sets=args.sets.split(","))
    report(directory, args.variants.split(","))


if __name__ == "__main__":
    main()
