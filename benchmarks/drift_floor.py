"""How soon a detector on the learner's residual could see a concept drift: a floor for the drift bar.

    python benchmarks/drift_floor.py        # 4 streams x 3 seeds and their stationary twins, 4 minutes on 2 cores

A change of the concept alone leaves the inputs as they were, so only labels show it, and at
5 % labels a stretch of 500 events holds about 25. A detector on the learner's error, or on its
residual (issue 18's design: right or wrong minus the served confidence, per labelled event),
sees of each label whether the learner was right, and how confident it was. Were the
distribution of that before and after the drift known exactly, the best sequential test (CUSUM
on the exact likelihood ratio) would gain on average KL(after || before) nats per label, and by
Lorden's bound no detector whose false alarms come at most once per ``gamma`` labels detects,
on average, in fewer than about ``ln(gamma) / KL`` labels. ``gamma`` is the bar's one false
alarm per 10,000 events: 500 labels at 5 %.

For each concept switch of ``benchmarks/drift_eval.py`` (river's Agrawal, SEA, STAGGER and
Sine; same seeds, positions and label mask; response off, as there), this runs the default
learner and measures on every event (the labelled ones are a random share of them) over the
2,000 events before each drift and the 500 after: the KL of right or wrong, and the KL of right
or wrong within five bands of served confidence (the quintiles before; weighted by the bands'
shares after). The larger of the two sets the floor. (How the confidence itself is spread moves
as the learner learns, drift or not, so it is not counted; the stationary twin, the first
concept alone, measured at the same points, checks that both KLs are near 0 without a drift.
The after-drift estimate from 500 events is noisy, which only raises the KL and lowers the
floor.) A floor above 500 events means that no detector on the error or the residual, however
built, meets "detected within 500 events" on that drift at that false-alarm rate. It is not a
floor for every conceivable detector: one that knew the old concept exactly could read a drift
from the labels themselves (on noise-free SEA, any label in the band of inputs whose class
flipped proves it), which a learner that has seen a few hundred labels does not know.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from drift_eval import SYNTH_DRIFTS  # noqa: E402

KINDS = ["agrawal-abrupt", "sea-abrupt", "stagger-abrupt", "sine-abrupt"]
BEFORE, AFTER, BANDS = 2000, 500, 5


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(p) || Bernoulli(q)), elementwise, nats.

    >>> round(float(bernoulli_kl(np.array(0.2), np.array(0.1))), 4)
    0.0444
    """
    p, q = np.clip(p, 1e-4, 1 - 1e-4), np.clip(q, 1e-4, 1 - 1e-4)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def information(confidence: np.ndarray, correct: np.ndarray, drift: int) -> dict:
    """What labels tell of a drift at ``drift``: the learner's error before and after, and per
    label the KL after against before of right or wrong, alone and within bands of served
    confidence (averaged over the bands as they come after)."""
    pre, post = slice(drift - BEFORE, drift), slice(drift, drift + AFTER)
    edges = np.quantile(confidence[pre], np.linspace(0, 1, BANDS + 1)[1:-1])
    band_pre, band_post = np.digitize(confidence[pre], edges), np.digitize(confidence[post], edges)
    kl = 0.0
    for b in range(BANDS):
        before, after = correct[pre][band_pre == b], correct[post][band_post == b]
        if len(after):
            a0 = (before.sum() + 1) / (len(before) + 2)  # one right and one wrong added: never 0 or 1
            kl += len(after) / AFTER * float(bernoulli_kl(np.array(after.mean()), np.array(a0)))
    e0, e1 = 1 - correct[pre].mean(), 1 - correct[post].mean()
    return {"error_before": float(e0), "error_after": float(e1), "kl_banded": kl,
            "kl_error": float(bernoulli_kl(np.array(e1), np.array((e0 * BEFORE + 1) / (BEFORE + 2))))}


def run(job: tuple) -> dict:
    """The learner on one drifting stream and on its stationary twin (the first concept only):
    :func:`information` at each drift point of both (the twin's should be near 0)."""
    from drift_eval import BATCH, synthetic

    from streamssl.drift.monitor import DriftMonitor
    from streamssl.learner import StreamLearner

    import torch

    torch.set_num_threads(1)
    kind, seed, rate = job
    out = {"kind": kind, "seed": seed}
    for name, drifting in (("drifts", True), ("twin", False)):
        X, y, _ = synthetic(kind, seed, drifting)
        model = StreamLearner(seed=seed, drift=DriftMonitor(respond=False))
        mask = np.random.default_rng(seed).random(len(y)) < rate
        confidence, correct = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
        for i in range(0, len(y), BATCH):
            Xb, yb = X[i:i + BATCH], y[i:i + BATCH]
            proba = model.predict_proba_many(Xb)
            if proba.shape[1]:
                confidence[i:i + len(yb)] = proba.max(1)
                correct[i:i + len(yb)] = np.array(model.classes_)[proba.argmax(1)] == yb
            model.learn_many(Xb, [int(v) if m else None for v, m in zip(yb, mask[i:i + BATCH])])
        out[name] = [information(confidence, correct, d) for d in SYNTH_DRIFTS]
    return out


def table(doc: dict) -> list[str]:
    """The floor per stream and drift (Markdown lines) from what :func:`main` measured."""
    gamma, rate = doc["gamma"], doc["rate"]
    lines = [f"Labels {rate:.0%}, at most {doc['false_alarms_per_10k']:g} false alarm per 10,000 events "
             f"(gamma = {gamma:.0f} labels). KL per label, nats, mean over seeds: of right or wrong, and of right "
             "or wrong within confidence bands; in brackets the same on the stationary twin at the same point. "
             "Floor: ln(gamma) / the larger KL, in events, per seed.", "",
             "| stream | drift | error before | error after (500 events) | KL, right or wrong | KL, within bands "
             "| floor, events (seed 0 / 1 / 2) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in KINDS:
        cells = [r for r in doc["runs"] if r["kind"] == kind]
        for d in range(len(SYNTH_DRIFTS)):
            f = {k: float(np.mean([c["drifts"][d][k] for c in cells])) for k in cells[0]["drifts"][d]}
            t = {k: float(np.mean([c["twin"][d][k] for c in cells])) for k in cells[0]["twin"][d]}
            floors = [math.log(gamma) / max(c["drifts"][d]["kl_error"], c["drifts"][d]["kl_banded"], 1e-9) / rate
                      for c in cells]
            lines.append(f"| {kind} | {d + 1} | {f['error_before']:.3f} | {f['error_after']:.3f} "
                         f"| {f['kl_error']:.3f} ({t['kl_error']:.3f}) | {f['kl_banded']:.3f} ({t['kl_banded']:.3f}) "
                         f"| {' / '.join(f'{x:,.0f}' for x in floors)} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.05, help="share of labels (default 0.05)")
    parser.add_argument("--false-alarms-per-10k", type=float, default=1.0, help="the bar's false-alarm rate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "drift" / "floor.json",
                        help="write the figures here (default benchmarks/results/drift/floor.json, which "
                        "drift_eval.py's report shows)")
    args = parser.parse_args(argv)
    gamma = 10_000 * args.rate / args.false_alarms_per_10k  # labels between false alarms
    jobs = [(k, int(s), args.rate) for k in KINDS for s in args.seeds.split(",")]
    with Pool(args.workers, maxtasksperchild=1) as pool:
        results = pool.map(run, jobs)
    doc = {"rate": args.rate, "gamma": gamma, "false_alarms_per_10k": args.false_alarms_per_10k, "runs": results}
    print("\n".join(table(doc)))
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
