"""One model of two suite passes side by side: accuracy, events/s and ECE per stream and rate.

    python benchmarks/compare_passes.py OLD_DIR streamssl NEW_DIR streamssl-batch-forest --new-tag batch-forest

Reads ``STREAM.RATE.SEED[.TAG].json`` as ``benchmarks/suite.py`` writes them (a tagged pass
adds ``.TAG``), averages each cell over the seeds both passes hold, and prints new minus old in
accuracy points, the ratio of events/s and both ECEs, with the mean over streams per rate. Use
it for a change that was run as a tagged pass against the main pass it would replace (an old
pass from git: ``git worktree add /tmp/old COMMIT``, then ``/tmp/old/benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

STREAMS = ["elec2", "outdoor_objects", "kddcup99_10pct", "luxembourg", "usenet1", "usenet2", "spam_corpus"]


def _run(path: Path, model: str) -> dict | None:
    if not path.exists():
        return None
    return next((r for r in json.loads(path.read_text())["runs"] if r["model"] == model), None)


def compare(old: Path, old_model: str, new: Path, new_model: str, old_tag: str = "", new_tag: str = "",
            seeds: range = range(3)) -> str:
    lines = ["| rate | stream | old | new | points | events/s old → new | ECE old → new |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for rate in ("0.01", "0.05"):
        diffs = []
        for stream in STREAMS:
            pairs = [(_run(old / f"{stream}.{rate}.{s}{'.' + old_tag if old_tag else ''}.json", old_model),
                      _run(new / f"{stream}.{rate}.{s}{'.' + new_tag if new_tag else ''}.json", new_model))
                     for s in seeds]
            pairs = [(a, b) for a, b in pairs if a and b]
            if not pairs:
                continue
            mean = {k: [np.mean([p[i][k] or 0.0 for p in pairs]) for i in (0, 1)]
                    for k in ("accuracy", "events_per_second", "calibration_error")}
            points = 100 * (mean["accuracy"][1] - mean["accuracy"][0])
            diffs.append(points)
            speed = mean["events_per_second"]
            lines.append(f"| {float(rate):.0%} | {stream} | {mean['accuracy'][0]:.4f} | {mean['accuracy'][1]:.4f} | "
                         f"{points:+.2f} | {speed[0]:,.0f} → {speed[1]:,.0f} ({speed[1] / speed[0]:.2f}×) | "
                         f"{mean['calibration_error'][0]:.3f} → {mean['calibration_error'][1]:.3f} |")
        if diffs:
            lines.append(f"| {float(rate):.0%} | **mean** | | | **{np.mean(diffs):+.2f}** | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("old_model")
    parser.add_argument("new", type=Path)
    parser.add_argument("new_model")
    parser.add_argument("--old-tag", default="")
    parser.add_argument("--new-tag", default="")
    args = parser.parse_args()
    print(compare(args.old, args.old_model, args.new, args.new_model, args.old_tag, args.new_tag))


if __name__ == "__main__":
    main()
