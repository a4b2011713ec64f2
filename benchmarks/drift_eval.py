"""How well the drift signals find known drifts, and whether responding to them pays.

    python benchmarks/drift_eval.py                 # the full run (about 10 minutes on 2 cores)
    python benchmarks/drift_eval.py --report-only   # rebuild benchmarks/DRIFT.md from the JSON

Streams with known drift points:

- ``rbf-abrupt`` / ``rbf-gradual``: river's ``RandomRBF`` (6 features, 4 classes) whose
  centroids are redrawn at 10,000 and 20,000 (``ConceptDriftStream``, width 150 or 2,000):
  inputs and concept change together;
- ``agrawal-abrupt``, ``sea-abrupt``, ``stagger-abrupt``, ``sine-abrupt``: river's ``Agrawal``,
  ``SEA``, ``STAGGER`` and ``Sine`` switching their classification function at the same
  points: the inputs do not change at all, only the concept (only labels can show it);
- ``usenet1`` / ``usenet2`` (../shared/data): drifts at rows 300, 600, 900 and 1,200.

Each synthetic stream is also run without drift (the first generator only, as long), which
is where false alarms are counted. The learner sees 5 % of the labels (a seeded mask); every
channel listens at once, with the response off so that detections do not disturb each
other. Beside them, the usual supervised baseline: ADWIN on the error of *every* event (all
labels known to the evaluator, none to the learner). A drift is caught when a channel
detects within ``--horizon`` events after it (and before the next one); the delay is from
the drift point to that detection.

Then the response: the learner with ADWIN on the labelled error and MMD on the features,
with and without the response, accuracy over time (``drift_response.png``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from suite import SHARED, machine  # noqa: E402

from streamssl.drift.monitor import Channel, DriftMonitor  # noqa: E402
from streamssl.learner import StreamLearner  # noqa: E402
from streamssl.sources.file import FileSource  # noqa: E402

OUT = HERE / "results" / "drift"
REPORT = HERE / "DRIFT.md"
CHANNELS = (
    "error:ADWIN",  # the learner's own, on the 5 % of labels
    "residual:CUSUM",  # correct - calibrated confidence of the same labelled events
    "confidence:ADWIN",
    "confidence:PageHinkley:threshold=1",
    "entropy:PageHinkley:threshold=1",
    "features:MMD",
    "embedding:MMD",
)
BASELINE = "error (all labels):ADWIN"
STREAMS = ["rbf-abrupt", "rbf-gradual", "agrawal-abrupt", "sea-abrupt", "stagger-abrupt", "sine-abrupt",
           "usenet1", "usenet2"]
SYNTH_DRIFTS = (10_000, 20_000)
SYNTH_N = 30_000
BATCH = 50


def synthetic(name: str, seed: int, drifting: bool) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    from river.datasets import synth

    kind, shape = name.split("-")
    # "Abrupt" is as narrow as river's ConceptDriftStream allows here: below about 4 * position / 709
    # events its sigmoid overflows a float.
    width = 150 if shape == "abrupt" else 2000

    def gen(k: int):
        if kind == "rbf":
            return synth.RandomRBF(seed_model=100 + k, seed_sample=seed, n_classes=4, n_features=6, n_centroids=8)
        if kind == "sea":
            return synth.SEA(variant=(0, 2, 1)[k], seed=seed)
        if kind == "stagger":
            return synth.STAGGER(classification_function=(0, 1, 2)[k], seed=seed)
        if kind == "sine":
            return synth.Sine(classification_function=(0, 1, 2)[k], seed=seed)
        return synth.Agrawal(classification_function=(0, 2, 5)[k], seed=seed)

    stream = gen(0)
    if drifting:
        stream = synth.ConceptDriftStream(
            synth.ConceptDriftStream(gen(0), gen(1), position=SYNTH_DRIFTS[0], width=width, seed=seed),
            gen(2), position=SYNTH_DRIFTS[1], width=width, seed=seed)
    rows = list(stream.take(SYNTH_N))
    X = np.array([[float(v) for v in x.values()] for x, _ in rows])
    y = np.array([int(v) for _, v in rows])
    return X, y, SYNTH_DRIFTS if drifting else ()


def recorded(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    batch = next(iter(FileSource(SHARED / f"{name}.csv.gz", batch_size=10**6)))
    return batch.X.astype(np.float64), np.array([int(v) for v in batch.y]), (300, 600, 900, 1200)


def replay(X: np.ndarray, y: np.ndarray, seed: int, channels: tuple[str, ...], response: bool,
           rate: float = 0.05) -> dict:
    """Prequential run at ``rate`` labels; detections of every channel, plus the baseline's."""
    model = StreamLearner(seed=seed, drift=DriftMonitor(channels, respond=response))
    baseline = Channel.from_spec("error:ADWIN")
    mask = np.random.default_rng(seed).random(len(y)) < rate
    correct = np.zeros(len(y), dtype=bool)
    base_hits: list[int] = []
    start = time.perf_counter()
    for i in range(0, len(y), BATCH):
        Xb, yb = X[i:i + BATCH], y[i:i + BATCH]
        proba = model.predict_proba_many(Xb)
        if proba.shape[1]:
            predicted = np.array(model.classes_)[proba.argmax(1)]
            correct[i:i + len(yb)] = predicted == yb
        for j, ok in enumerate(correct[i:i + len(yb)]):
            if baseline.feed(float(not ok)) == "drift":
                base_hits.append(i + j + 1)
        model.learn_many(Xb, [int(v) if m else None for v, m in zip(yb, mask[i:i + BATCH])])
    seconds = time.perf_counter() - start
    by_name = {tuple(c.split(":")[:2]): c for c in channels}
    assert len(by_name) == len(channels), "one channel per signal and detector"
    hits: dict[str, list[int]] = {c: [] for c in channels}
    for e in model.drift_events:
        if e.level == "drift":
            hits[by_name[(e.signal, e.detector)]].append(e.position)
    hits[BASELINE] = base_hits
    return {"hits": hits, "correct": correct.tolist(), "seconds": seconds}


def score(hits: list[int], drifts: tuple[int, ...], n: int, horizon: int) -> dict:
    """Caught drifts, their delays, misses, and detections that match no drift."""
    caught, delays, matched = 0, [], set()
    ends = list(drifts[1:]) + [n]
    for d, end in zip(drifts, ends):
        window = [h for h in hits if d < h <= min(d + horizon, end)]
        if window:
            caught += 1
            delays.append(window[0] - d)
        matched.update(h for h in hits if d < h <= end)  # later detections of the same drift are not false
    return {"detections": len(hits), "caught": caught, "missed": len(drifts) - caught,
            "mean_delay": float(np.mean(delays)) if delays else None,
            "unmatched": len([h for h in hits if h not in matched])}


def run(args) -> dict:
    results: dict = {"streams": {}, "command": " ".join(["python", "benchmarks/drift_eval.py", *sys.argv[1:]]),
                     "machine": machine(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
                     "horizon": args.horizon, "seeds": args.seeds, "channels": list(CHANNELS) + [BASELINE]}
    started = time.perf_counter()
    for name in args.streams:
        per_seed = []
        for seed in args.seeds:
            if name.startswith("usenet"):
                X, y, drifts = recorded(name)
                quiet = None
            else:
                X, y, drifts = synthetic(name, seed, drifting=True)
                Xq, yq, _ = synthetic(name, seed, drifting=False)
                quiet = replay(Xq, yq, seed, CHANNELS, response=False)
            run_ = replay(X, y, seed, CHANNELS, response=False)
            cell = {"n": len(y), "drifts": list(drifts), "channels": {}}
            # A gradual drift is centred on its point and spreads 1,000 events either side.
            horizon = args.horizon + (1000 if name.endswith("gradual") else 0)
            for c, hits in run_["hits"].items():
                s = score(hits, drifts, len(y), horizon)
                # False alarms: every detection on the stationary twin; on the recorded streams
                # (no twin) the detections that match no drift, over the whole stream.
                if quiet is not None:
                    s["false_alarms_per_10k"] = len(quiet["hits"][c]) * 10_000 / len(yq)
                else:
                    s["false_alarms_per_10k"] = s["unmatched"] * 10_000 / len(y)
                s["hits"] = hits
                cell["channels"][c] = s
            per_seed.append(cell)
            print(f"{name} seed {seed}: " + ", ".join(
                f"{c.split(':')[0]}/{c.split(':')[1]} {s['caught']}/{len(drifts)}"
                for c, s in cell["channels"].items()), flush=True)
        results["streams"][name] = per_seed
    # The response, with and without, on the abrupt RBF stream and usenet1.
    results["response"] = {}
    for name in () if args.skip_response else ("rbf-abrupt", "usenet1"):
        curves = {}
        for response in (True, False):
            accs = []
            for seed in args.seeds:
                X, y, drifts = recorded(name) if name.startswith("usenet") else synthetic(name, seed, True)
                r = replay(X, y, seed, ("error:ADWIN", "features:MMD"), response=response)
                accs.append(r["correct"])
            curves["with" if response else "without"] = np.mean(np.array(accs, dtype=float), axis=0).tolist()
        results["response"][name] = {"drifts": list(drifts), "accuracy": curves}
        print(f"response on {name}: with {np.mean(curves['with']):.4f}, without {np.mean(curves['without']):.4f}",
              flush=True)
    results["seconds"] = time.perf_counter() - started
    return results


def recovery(acc: list[float], drifts: list[int], span: int) -> float:
    """Mean accuracy over the ``span`` events after each drift."""
    return float(np.mean([np.mean(acc[d:d + span]) for d in drifts]))


def report_path(out: Path) -> Path:
    """benchmarks/DRIFT.md for the JSON of record; beside the JSON for any other ``--out``."""
    return REPORT if out.resolve() == OUT.resolve() else out / "DRIFT.md"


def write_report(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = results["horizon"]
    lines = ["# Drift detection and response, measured", "",
             f"Made by `{results['command']}` on {results['machine']} in {results['seconds'] / 60:.0f} minutes "
             f"({results['date']}); seeds {', '.join(map(str, results['seeds']))}; JSON in "
             f"`{'benchmarks/results/drift' if report_path(out) == REPORT else out}/drift.json`.", "",
             "Labels at 5 % (seeded mask, no delay), micro-batches of 50, every channel listening at once with the "
             "response off. *Caught*: a detection within "
             f"{horizon:,} events after the drift point ({horizon + 1000:,} for the gradual ones, whose change "
             "spreads 1,000 events either side of it), and before the next one, summed over seeds; *delay*: mean "
             "events from the drift to that detection; *false alarms*: detections per 10,000 events on the same "
             "generator without drift (synthetic streams), or detections matching no drift (usenet). The last row "
             "of each stream is the supervised baseline: ADWIN on the error of every event, all labels known.", ""]
    for name, cells in results["streams"].items():
        drifts = cells[0]["drifts"]
        lines += [f"## {name}", "", f"{cells[0]['n']:,} events, drifts at {', '.join(f'{d:,}' for d in drifts)}.", "",
                  "| signal : detector | caught | missed | mean delay | false alarms / 10k |", "|---|---|---|---|---|"]
        for c in results["channels"]:
            ss = [cell["channels"][c] for cell in cells]
            delays = [s["mean_delay"] for s in ss if s["mean_delay"] is not None]
            delay = f"{np.mean(delays):,.0f}" if delays else "–"
            alarms = np.mean([s["false_alarms_per_10k"] for s in ss])
            lines.append(f"| `{c}` | {sum(s['caught'] for s in ss)} / {len(drifts) * len(ss)} | "
                         f"{sum(s['missed'] for s in ss)} | {delay} | {alarms:.2f} |")
        lines.append("")
    if results["response"]:
        lines += ["## The response", "",
                  "The learner with ADWIN on its labelled error and MMD on the features, with the response (background "
                  "head on a warning or drift, pseudo-label pause, fresh MMD reference) and without. Mean accuracy over "
                  "the 1,000 (usenet: 150) events after each drift, and over the whole stream:", "",
                  "| stream | after drifts, with | after drifts, without | whole, with | whole, without |",
                  "|---|---|---|---|---|"]
        fig, axes = plt.subplots(len(results["response"]), 1, figsize=(11, 3.4 * len(results["response"])))
        for ax, (name, r) in zip(np.atleast_1d(axes), results["response"].items()):
            span = 150 if name.startswith("usenet") else 1000
            w, wo = r["accuracy"]["with"], r["accuracy"]["without"]
            lines.append(f"| {name} | {recovery(w, r['drifts'], span):.3f} | {recovery(wo, r['drifts'], span):.3f} | "
                         f"{np.mean(w):.3f} | {np.mean(wo):.3f} |")
            k = 50 if name.startswith("usenet") else 500
            kernel = np.ones(k) / k
            for label, curve, colour in (("with response", w, "#1f77b4"), ("without", wo, "#999999")):
                ax.plot(np.arange(k, len(curve) + 1), np.convolve(curve, kernel, mode="valid"), label=label, color=colour)
            for d in r["drifts"]:
                ax.axvline(d, color="#d62728", linestyle="--", linewidth=1)
            ax.set_title(f"{name}: accuracy over the last {k} events (known drifts dashed)")
            ax.set_ylim(0, 1)
            ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "drift_response.png", dpi=110)
        lines += ["", "![accuracy with and without the response](results/drift/drift_response.png)", ""]
    floor = HERE / "results" / "drift" / "floor.json"
    if floor.exists():  # python benchmarks/drift_floor.py
        from drift_floor import table

        lines += ["## How soon labels can show a concept drift", "",
                  "`python benchmarks/drift_floor.py` (JSON in `benchmarks/results/drift/floor.json`): by Lorden's bound, "
                  "no detector on the learner's error or residual (right or wrong, and how confident) detects a drift "
                  "in fewer events, on average, at the bar's false-alarm rate, than the floor below; the script's "
                  "docstring says how it is measured. Where the floor is above 500 events (SEA: the concept moves a "
                  "threshold, and few of the learner's answers turn wrong), the bar's 500 events are out of reach of "
                  "such detectors.", "", *table(json.loads(floor.read_text())), ""]
    report_path(out).write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--horizon", type=int, default=500, help="events after a drift a detection may take")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--streams", nargs="+", default=STREAMS, choices=STREAMS)
    ap.add_argument("--skip-response", action="store_true", help="only the detection tables")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "drift.json"
    if args.report_only:
        results = json.loads(path.read_text())
    else:
        results = run(args)
        path.write_text(json.dumps(results))
    write_report(results, args.out)
    print(report_path(args.out).read_text())


if __name__ == "__main__":
    main()
