"""Mean ± std over seeds of the JSON files written by ``streamssl bench --json``.

    python benchmarks/summarize.py [--markdown] results/*.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np


def load(paths: list[str]) -> tuple[list[str], dict]:
    """Models in order of appearance, and ``{(stream, rate): {model: {key: [values over seeds]}}}``."""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    models: list[str] = []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or "runs" not in doc:  # e.g. the suite's passes.json beside them
            continue
        for run in doc["runs"]:
            cell = table[(doc["stream"].removesuffix(".csv.gz"), doc["label_rate"])][run["model"]]
            cell["accuracy"].append(run["accuracy"])
            cell["events_per_second"].append(run["events_per_second"])
            if run["model"] not in models:
                models.append(run["model"])
    return models, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = p.parse_args()
    models, table = load(args.paths)

    def acc(cell) -> str:
        v = cell.get("accuracy")
        return f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "-"

    def speed(cell) -> str:
        v = cell.get("events_per_second")
        return f"{np.mean(v):,.0f}" if v else "-"

    for title, fmt in (("accuracy, mean ± std over seeds", acc), ("events/s (steady state), mean over seeds", speed)):
        n_seeds = sorted({len(c.get("accuracy", [])) for row in table.values() for c in row.values()})
        print(f"\n{title} (seeds per cell: {', '.join(map(str, n_seeds))})\n")
        if args.markdown:
            print("| stream | label rate | " + " | ".join(models) + " |")
            print("|---|---:|" + "---:|" * len(models))
            for key in sorted(table):
                print(f"| {key[0]} | {key[1]:g} | " + " | ".join(fmt(table[key][m]) for m in models) + " |")
        else:
            print(f"{'stream':18} {'rate':>5} " + " ".join(f"{m:>22}" for m in models))
            for key in sorted(table):
                print(f"{key[0]:18} {key[1]:5g} " + " ".join(f"{fmt(table[key][m]):>22}" for m in models))


if __name__ == "__main__":
    main()
