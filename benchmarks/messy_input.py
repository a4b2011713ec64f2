"""Events as they really come: does a stream with text categories, empty cells and its label
first learn as well as the same stream integer-coded and complete?

    python benchmarks/messy_input.py                       # Elec2, 5 % labels, seeds 0-2 (about 4 minutes)
    python benchmarks/messy_input.py --stream weather_noaa --missing 0.2

From a suite stream (../shared/data) it writes a messy copy: the label moved to the first
column and spelled as words (``class_0``, ``class_1``...), one integer column turned into text
categories (Elec2's ``day`` becomes ``mon``..``sun``; elsewhere the column with the fewest
distinct integer values), and a seeded share ``--missing`` of the numeric cells emptied or
written ``NA``. Both files are then benched with the same models, seeds and label mask; the
messy one with ``--label-column label`` through the schema inference of ``streamssl replay``.
Every row of the messy file must be predicted and scored (no row rejected).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from suite import SHARED, machine  # noqa: E402

from streamssl.replay.bench import BenchSettings, bench  # noqa: E402
from streamssl.sources.file import FileOptions, open_maybe_gzip  # noqa: E402

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def make_messy(src: Path, dst: Path, missing: float, seed: int = 0, complete_dst: Path | None = None) -> dict:
    """Write the messy copy of ``src`` to ``dst`` (and to ``complete_dst`` the rows of ``src``
    that kept every cell); returns what was changed."""
    rng = np.random.default_rng(seed)
    with open_maybe_gzip(src, "rt") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    features = header[:-1]
    columns = list(zip(*[r[:-1] for r in body]))
    integer = [j for j, col in enumerate(columns)
               if all(float(v).is_integer() for v in col[:2000]) and 2 <= len(set(col[:2000])) <= 32]
    cat = features.index("day") if "day" in features else (
        min(integer, key=lambda j: len(set(columns[j]))) if integer else None)
    blank = 0
    complete = []  # the rows with no cell emptied
    with gzip.open(dst, "wt", newline="") as out:
        w = csv.writer(out)
        w.writerow(["label", *features])
        for r in body:
            cells = r[:-1]
            whole = True
            for j in range(len(cells)):
                if j == cat:
                    value = int(float(cells[j]))
                    cells[j] = DAYS[(value - 1) % 7] if "day" in features else f"c{value}"
                elif rng.random() < missing:
                    cells[j] = "" if rng.random() < 0.5 else "NA"
                    blank += 1
                    whole = False
            complete.append(whole)
            label = r[-1].strip()
            w.writerow([f"class_{label}" if label else "", *cells])
    if complete_dst is not None:  # what a user had to do before: integer codes, incomplete rows dropped
        with gzip.open(complete_dst, "wt", newline="") as out:
            w = csv.writer(out)
            w.writerow(header)
            w.writerows(r for r, whole in zip(body, complete) if whole)
    return {"rows": len(body), "categorical": features[cat] if cat is not None else None, "blank_cells": blank,
            "complete": np.array(complete)}


class _Recorder:
    """A model that keeps what it predicted for each micro-batch (and the classes then known)."""

    def __init__(self, model) -> None:
        self.model = model
        self.predicted: list = []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba_many(X)
        classes = list(self.model.classes_)
        if proba.shape[1] == 0:  # nothing learned yet: no class to predict
            self.predicted += [None] * len(proba)
        else:
            self.predicted += [classes[i] for i in proba.argmax(axis=1)]
        return proba


def row_correct(path: Path, model_name: str, settings: BenchSettings) -> np.ndarray:
    """Per row of ``path``, whether the model's prequential prediction was right (same protocol
    and label mask as ``bench``), run in this process."""
    import torch

    from streamssl.replay.bench import build_model
    from streamssl.replay.prequential import prequential

    torch.set_num_threads(settings.threads)
    probe = settings.file.source(path, limit=1)
    next(iter(probe), None)
    labels = [y for batch in settings.file.source(path, batch_size=4096) for y in batch.y]
    classes = sorted({y for y in labels if y is not None}, key=lambda c: (str(type(c)), c))
    model = _Recorder(build_model(model_name, settings.seed, probe.feature_names, lambda: classes))
    for _ in prequential(settings.file.source(path, batch_size=settings.batch_size), model, settings.label_rate,
                         settings.label_delay, settings.seed):
        pass
    return np.array([p == y for p, y in zip(model.predicted, labels)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stream", default="elec2")
    p.add_argument("--missing", type=float, default=0.1, help="share of numeric cells emptied (default 0.1)")
    p.add_argument("--label-rate", type=float, default=0.05)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default="streamssl,river-arf,river-lr")
    args = p.parse_args()

    src = SHARED / f"{args.stream}.csv.gz"
    models = [m.strip() for m in args.models.split(",")]
    print(f"# {args.stream}: clean against messy (label first, text categories, {args.missing:.0%} cells missing)")
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        messy, complete = Path(tmp) / f"{args.stream}-messy.csv.gz", Path(tmp) / f"{args.stream}-complete.csv.gz"
        changed = make_messy(src, messy, args.missing, complete_dst=complete)
        whole = changed["complete"]
        print(f"# {changed['rows']:,} rows; categorical: {changed['categorical']}; "
              f"{changed['blank_cells']:,} numeric cells emptied; {whole.mean():.0%} of the rows complete")
        table: dict[tuple[str, str], list[float]] = {}
        started = time.perf_counter()
        for seed in range(args.seeds):
            for name, path in (("clean", src), ("complete only", complete)):
                for run in bench(path, models, BenchSettings(args.label_rate, 0, seed)):
                    if run.error:
                        print(f"{run.model} failed on {name}: {run.error}")
                        return 1
                    table.setdefault((run.model, name), []).append(run.result["accuracy"])
            settings = BenchSettings(args.label_rate, 0, seed, file=FileOptions("label"))
            for model in models:
                right = row_correct(messy, model, settings)
                assert len(right) == changed["rows"], (model, len(right))  # every row predicted and scored
                table.setdefault((model, "messy"), []).append(right.mean())
                table.setdefault((model, "messy, complete rows"), []).append(right[whole].mean())
        print("\n| model | clean, all rows | messy, all rows | integer-coded, complete rows only "
              "| messy, scored on those rows | difference |\n|---|---|---|---|---|---|")
        for model in models:
            m = {k: float(np.mean(table[(model, k)])) for k in ("clean", "messy", "complete only", "messy, complete rows")}
            print(f"| {model} | {m['clean']:.4f} | {m['messy']:.4f} | {m['complete only']:.4f} "
                  f"| {m['messy, complete rows']:.4f} | {m['messy, complete rows'] - m['complete only']:+.4f} |")
        print(f"\nmean of {args.seeds} seeds at {args.label_rate:g} labels; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
