"""Mean ± std over seeds of the JSON files written by ``replay_vs_peers.py --json``.

    python benchmarks/summarize.py results/*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np


def main(paths: list[str]) -> None:
    acc: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    speed: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    models: list[str] = []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        key = (doc["stream"], doc["label_rate"])
        for run in doc["runs"]:
            acc[key][run["model"]].append(run["accuracy"])
            speed[key][run["model"]].append(run["events_per_second"])
            if run["model"] not in models:
                models.append(run["model"])
    print("accuracy, mean ± std over seeds (n seeds)")
    print(f"{'stream':24} {'rate':>5} " + " ".join(f"{m:>26}" for m in models))
    for key in sorted(acc):
        cells = []
        for m in models:
            v = acc[key].get(m, [])
            cells.append(f"{np.mean(v):.4f} ± {np.std(v):.4f} ({len(v)})" if v else "-")
        print(f"{key[0]:24} {key[1]:5g} " + " ".join(f"{c:>26}" for c in cells))
    print("\nevents/s, mean over seeds")
    for key in sorted(speed):
        print(f"{key[0]:24} {key[1]:5g} " + " ".join(
            f"{np.mean(speed[key][m]):>26,.0f}" if speed[key].get(m) else f"{'-':>26}" for m in models))


if __name__ == "__main__":
    main(sys.argv[1:])
