"""One model of two suite passes side by side: accuracy, events/s and ECE per stream and rate.

    python benchmarks/compare_passes.py OLD_DIR streamssl NEW_DIR streamssl-batch-forest --new-tag batch-forest

Reads ``STREAM.RATE.SEED[.TAG].json`` as ``benchmarks/suite.py`` writes them (a tagged pass
adds ``.TAG``), averages each cell over the seeds both passes hold, and prints new minus old in
accuracy points, the ratio of events/s and both ECEs, with the mean over streams per rate. Use
it for a change that was run as a tagged pass against the main pass it would replace (an old
pass from git: ``git worktree add /tmp/old COMMIT``, then ``/tmp/old/benchmarks/results``).

Each row also counts the seeds on which the new pass is above / level with / below the old,
and each mean row gives the mean over streams *per seed* and its standard error over the seeds:
on these streams a mean change of a few tenths of a point can turn over on other seeds (a
variance prior in the forests' leaves, 2026-12-06: +0.08 points at 1 % over seeds 0-2, -0.45
over seeds 3-5), so a change worth keeping is run on a second set of seeds (``--seeds 3,4,5``
on both passes) before it is taken.

``--streams held-out`` or ``river-streams`` reads the streams kept out of the suite (their
passes lie in ``results/held-out`` and ``results/river-streams``). ``--pseudo`` adds, per cell,
the pseudo-labels accepted and their precision, and how many cells with 100 or more accepted
reach 0.99:

    python benchmarks/compare_passes.py benchmarks/results/river-streams streamssl-pseudo \
        NEW_DIR streamssl-pseudo --new-tag audit --streams river-streams --pseudo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from suite import STREAM_SETS

STREAMS = [s.name for s in STREAM_SETS["suite"]()]


def _run(path: Path, model: str) -> dict | None:
    if not path.exists():
        return None
    return next((r for r in json.loads(path.read_text())["runs"] if r["model"] == model), None)


def _aligned(old: Path, old_model: str, new: Path, new_model: str, old_tag: str, new_tag: str,
             stream: str, rate: str, seeds: Sequence[int]) -> list[tuple[dict | None, dict | None]]:
    """Each seed's (old run, new run) of one cell, ``None`` where a pass lacks it."""
    return [(_run(old / f"{stream}.{rate}.{s}{'.' + old_tag if old_tag else ''}.json", old_model),
             _run(new / f"{stream}.{rate}.{s}{'.' + new_tag if new_tag else ''}.json", new_model)) for s in seeds]


def compare(old: Path, old_model: str, new: Path, new_model: str, old_tag: str = "", new_tag: str = "",
            seeds: Sequence[int] = range(3), streams: list[str] = STREAMS) -> str:
    lines = ["| rate | stream | old | new | points | seeds up / level / down | events/s old → new | ECE old → new |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for rate in ("0.01", "0.05"):
        diffs = []
        by_seed: dict[int, list[float]] = {seed: [] for seed in seeds}  # each seed's points, stream by stream
        for stream in streams:
            aligned = _aligned(old, old_model, new, new_model, old_tag, new_tag, stream, rate, seeds)
            pairs = [(a, b) for a, b in aligned if a and b]
            if not pairs:
                continue
            mean = {k: [np.mean([p[i][k] or 0.0 for p in pairs]) for i in (0, 1)]
                    for k in ("accuracy", "events_per_second", "calibration_error")}
            points = 100 * (mean["accuracy"][1] - mean["accuracy"][0])
            diffs.append(points)
            seed_points = []
            for seed, (a, b) in zip(seeds, aligned):
                if a and b:
                    seed_points.append(100 * (b["accuracy"] - a["accuracy"]))
                    by_seed[seed].append(seed_points[-1])
            moves = (sum(d > 0 for d in seed_points), sum(d == 0 for d in seed_points), sum(d < 0 for d in seed_points))
            speed = mean["events_per_second"]
            lines.append(f"| {float(rate):.0%} | {stream} | {mean['accuracy'][0]:.4f} | {mean['accuracy'][1]:.4f} | "
                         f"{points:+.2f} | {' / '.join(map(str, moves))} | "
                         f"{speed[0]:,.0f} → {speed[1]:,.0f} ({speed[1] / speed[0]:.2f}×) | "
                         f"{mean['calibration_error'][0]:.3f} → {mean['calibration_error'][1]:.3f} |")
        if diffs:
            lines.append(f"| {float(rate):.0%} | **mean** | | | **{np.mean(diffs):+.2f}** | {_per_seed(by_seed, len(diffs))} | | |")
    return "\n".join(lines)


def _per_seed(by_seed: dict[int, list[float]], n_streams: int) -> str:
    """The mean over streams on each seed that holds them all, and its standard error over seeds."""
    means = {seed: float(np.mean(d)) for seed, d in by_seed.items() if len(d) == n_streams}
    if not means:
        return ""
    text = "per seed " + ", ".join(f"{seed}: {m:+.2f}" for seed, m in means.items())
    if len(means) > 1:
        text += f"; ± {np.std(list(means.values()), ddof=1) / np.sqrt(len(means)):.2f} (s.e.)"
    return text


def compare_pseudo(old: Path, old_model: str, new: Path, new_model: str, old_tag: str = "",
                   new_tag: str = "", seeds: Sequence[int] = range(3), streams: list[str] = STREAMS) -> str:
    """Pseudo-labels accepted · their precision per cell (✗: 100 or more accepted, under 0.99
    right), and per pass the cells with 100 or more, those of them at 0.99, the total and the
    pooled precision."""
    def cell(run: dict) -> str:
        n, p = run["pseudo_labels_accepted"], run["pseudo_label_precision"]
        return f"{n:,} · {'n/a' if p is None else f'{p:.4f}'}{' ✗' if n >= 100 and p is not None and p < 0.99 else ''}"

    lines = ["| stream | rate | seed | old | new |", "|---|---:|---:|---:|---:|"]
    runs: tuple[list[dict], list[dict]] = ([], [])
    for stream in streams:
        for rate in ("0.01", "0.05"):
            for seed, (a, b) in zip(seeds, _aligned(old, old_model, new, new_model, old_tag, new_tag, stream, rate, seeds)):
                if a and b:
                    runs[0].append(a)
                    runs[1].append(b)
                    lines.append(f"| {stream} | {float(rate):.0%} | {seed} | {cell(a)} | {cell(b)} |")
    lines += ["", "| pass | cells with ≥ 100 accepted | of them ≥ 0.99 | accepted | precision (pooled) |",
              "|---|---:|---:|---:|---:|"]
    for name, rs in zip(("old", "new"), runs):
        many = [r for r in rs if r["pseudo_labels_accepted"] >= 100]
        total = sum(r["pseudo_labels_accepted"] for r in rs)
        right = sum(r["pseudo_labels_accepted"] * (r["pseudo_label_precision"] or 0.0) for r in rs)
        lines.append(f"| {name} | {len(many)} | {sum((r['pseudo_label_precision'] or 0.0) >= 0.99 for r in many)} | "
                     f"{total:,} | {'n/a' if total == 0 else f'{right / total:.4f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("old_model")
    parser.add_argument("new", type=Path)
    parser.add_argument("new_model")
    parser.add_argument("--old-tag", default="")
    parser.add_argument("--new-tag", default="")
    parser.add_argument("--streams", choices=sorted(STREAM_SETS), default="suite",
                        help="which set of streams (default: the suite's)")
    parser.add_argument("--pseudo", action="store_true", help="add the pseudo-labels' table")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    streams = [s.name for s in STREAM_SETS[args.streams]()]
    passes = (args.old, args.old_model, args.new, args.new_model, args.old_tag, args.new_tag)
    print(compare(*passes, seeds=seeds, streams=streams))
    if args.pseudo:
        print()
        print(compare_pseudo(*passes, seeds=seeds, streams=streams))


if __name__ == "__main__":
    main()
