"""What calibration error a perfectly calibrated model would still show on each suite cell.

    python benchmarks/calibration_floor.py                    # benchmarks/results, model streamssl
    python benchmarks/calibration_floor.py DIR --model NAME

ECE (15 equal-width bins, as the replay reports it) and |estimated - realised accuracy| are
measured on a finite stream, so even answers that are right exactly as often as they say show
some of both. For each cell of a suite run this draws, 4,000 times, the correctness of every
scored event as a coin with the event's confidence (the mean confidence of its reliability bin,
from the run's JSON) and reports the mean and 95th percentile of the ECE that results, the
share of draws at or under 0.02 (issue 18's bar), and the mean |estimated - realised|. A
measured figure well above its floor is miscalibration; one near it is the stream's length.
(Each event taking its bin's mean confidence makes the floor a little high: events of unequal
confidence in one bin vary a little less than as many equal coins.)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DRAWS = 4000


def floor(bins: list[dict], rng: np.random.Generator) -> dict[str, float]:
    """ECE and |estimated - realised| of a calibrated model with this run's confidences."""
    n = np.array([b["events"] for b in bins])
    c = np.array([b["confidence"] for b in bins])
    right = rng.binomial(np.tile(n, (DRAWS, 1)), np.tile(c, (DRAWS, 1)))
    ece = np.abs(right - n * c).sum(axis=1) / n.sum()
    gap = np.abs(right.sum(axis=1) - (n * c).sum()) / n.sum()
    return {"ece": float(ece.mean()), "ece95": float(np.quantile(ece, 0.95)),
            "under": float((ece <= 0.02).mean()), "gap": float(gap.mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "results"), help="a suite's JSON files")
    parser.add_argument("--model", default="streamssl")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    cells: dict[tuple, list] = defaultdict(list)
    for path in sorted(Path(args.results).glob("*.json")):
        data = json.loads(path.read_text())
        run = next((r for r in data.get("runs", []) if r.get("model") == args.model), None) \
            if isinstance(data, dict) else None
        if run is None or not run.get("reliability"):
            continue
        measured = {"ece": run["calibration_error"], "gap": abs(run["estimated_accuracy"] - run["accuracy"]),
                    "events": sum(b["events"] for b in run["reliability"])}
        cells[(data["label_rate"], data["stream"])].append((measured, floor(run["reliability"], rng)))
    print(f"{args.model} in {args.results}: mean over seeds; floor = a perfectly calibrated model "
          f"with the same confidences ({DRAWS} draws)\n")
    print("| stream | labels | scored events | ECE | its floor (mean · 95th pct) | floor ≤ 0.02 | "
          "abs(est − real) | its floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (rate, stream), runs in sorted(cells.items()):
        m = {k: np.mean([r[0][k] for r in runs]) for k in ("ece", "gap", "events")}
        f = {k: np.mean([r[1][k] for r in runs]) for k in ("ece", "ece95", "under", "gap")}
        print(f"| {stream} | {rate:.0%} | {m['events']:,.0f} | {m['ece']:.4f} | {f['ece']:.4f} · {f['ece95']:.4f} | "
              f"{f['under']:.0%} | {m['gap']:.4f} | {f['gap']:.4f} |")


if __name__ == "__main__":
    main()
