"""The self-supervised objectives side by side: accuracy, pseudo-label precision, speed, collapse.

    python benchmarks/objectives.py                  # Elec2 and outdoor_objects, 5 % labels, seeds 0,1,2
    python benchmarks/objectives.py --report-only    # rebuild benchmarks/OBJECTIVES.md from the JSON

Each cell (stream, seed) runs `streamssl bench` (fresh process per model, same seeded label
mask) over the learner with the encoder trained by each objective and pseudo-labels on
(`streamssl-ssl-pseudo-OBJECTIVE`), next to the default learner (`streamssl`: no encoder, no
pseudo-labels) and the same learner with pseudo-labels but no encoder (`streamssl-pseudo`). The
report also carries the encoder-update throughput table of benchmarks/encoder_throughput.py
when its JSON is in the results folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from streamssl.ssl import OBJECTIVE_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import HERE, machine, run_cell, streams  # noqa: E402

REFERENCES = ["streamssl", "streamssl-pseudo"]
MODELS = REFERENCES + [f"streamssl-ssl-pseudo-{o}" for o in OBJECTIVE_NAMES]
OUT = HERE / "results" / "objectives"


def shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def mean_sd(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def write_report(out: Path, report: Path) -> None:
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.0.05.*.json"))]
    lines = ["# The self-supervised objectives compared", ""]
    run = out / "run.json"
    if run.exists():
        r = json.loads(run.read_text())
        lines += [f"Made by `{r['command']}` on {r['machine']} in {r['seconds'] / 60:.0f} minutes "
                  f"({r['date']}); JSON per cell in `{shown(out)}/`.", ""]
    lines += [
        "Labels at 5 %, no delay, batches of 64, three seeds (mean ± sd over seeds). `streamssl` is the default "
        "learner (temporal context, three heads, no encoder, no pseudo-labels); `streamssl-pseudo` adds "
        "pseudo-labels (threshold 0.99); `streamssl-ssl-pseudo-X` adds the encoder trained with objective X on top "
        "of that (its 16-d embedding joins the main MLP head's input). Precision is that of accepted pseudo-labels, "
        "scored against the true labels the learner never saw. Events/s is the whole learner's replay speed "
        "(one torch thread). Rank is the effective rank of the encoder's embeddings over the last steps (16 at "
        "most; near 1 is collapse), at the end of the stream.", ""]
    for stream in sorted({d["stream"] for d in docs}):
        cells = [d for d in docs if d["stream"] == stream]
        lines += [f"## {stream}", "",
                  "| model | accuracy | pseudo-labels accepted | pseudo-label precision | events/s | rank (encoder · projection) |",
                  "|---|---|---|---|---|---|"]
        rows = []
        for model in MODELS:
            runs = [r for d in cells for r in d["runs"] if r["model"] == model]
            if not runs:
                continue
            acc = [r["accuracy"] for r in runs]
            ssl = [r.get("ssl") or {} for r in runs]
            rank = "–"
            if ssl[0].get("effective_rank") is not None:
                rank = f"{np.mean([s['effective_rank'] for s in ssl]):.1f}"
                if ssl[0].get("projection_effective_rank") is not None:
                    rank += f" · {np.mean([s['projection_effective_rank'] for s in ssl]):.1f}"
            rows.append((np.mean(acc), model, mean_sd(acc), f"{np.mean([r['pseudo_labels_accepted'] for r in runs]):,.0f}",
                         mean_sd([r["pseudo_label_precision"] for r in runs]),
                         f"{np.mean([r['events_per_second'] for r in runs]):,.0f}", rank))
        best = max(r[0] for r in rows)
        for mean, model, acc, accepted, precision, eps, rank in rows:
            acc = f"**{acc}**" if mean == best else acc
            lines.append(f"| {model} | {acc} | {accepted} | {precision} | {eps} | {rank} |")
        lines.append("")
    lines += wider_check(out.parent / "objectives-suite", "0.05",
                         "Wider check: three objectives (encoder and pseudo-labels) on all seven streams")
    for rate in ("0.01", "0.05"):
        lines += wider_check(out.parent / "encoder-default", rate,
                             f"Should the encoder be on by default? InfoNCE, at {float(rate):.0%} labels")
    for path in sorted(out.glob("encoder_throughput_*.json")):
        doc = json.loads(path.read_text())
        batches = sorted({r["batch"] for r in doc["rows"]})
        lines += [f"## Encoder-update throughput, {doc['device']} ({doc['device_name']})", "",
                  f"`python benchmarks/encoder_throughput.py --device {doc['device']} --threads {doc['threads']} "
                  f"--json {shown(path)}`: torch {doc['torch']}, {doc['threads']} CPU thread(s), "
                  f"{doc['features']} inputs, 2-layer MLP encoder (64 hidden, 16-d). Events/s = batch × updates/s; "
                  "an update is one replayed batch through the objective's views, forward, backward, Adam, "
                  "momentum targets.", "",
                  "| objective | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|" + "---|" * len(batches)]
        for objective in OBJECTIVE_NAMES:
            cells = {r["batch"]: r for r in doc["rows"] if r["objective"] == objective}
            if cells:
                lines.append(f"| {objective} | " + " | ".join(
                    f"{cells[b]['events_per_second']:,.0f}" if b in cells else "–" for b in batches) + " |")
        lines.append("")
    report.write_text("\n".join(lines))


def wider_check(folder: Path, rate: str, title: str) -> list[str]:
    """A section from a `suite.py` pass over all seven streams (its JSON in ``folder``)."""
    docs = [json.loads(p.read_text()) for p in sorted(folder.glob(f"*.{rate}.*.json"))]
    if not docs:
        return []
    models = [r["model"] for r in docs[0]["runs"]]
    others = [m for m in models if m != "streamssl"]
    rates = sorted({json.loads(p.read_text())["label_rate"] for p in folder.glob("*.json") if p.name != "passes.json"})
    lines = [f"## {title}", "",
             f"`python benchmarks/suite.py --rates {','.join(f'{r:g}' for r in rates)} --models {','.join(models)} "
             f"--out {shown(folder)}` (same protocol, {float(rate):.0%} labels, seeds 0,1,2). "
             "Points of accuracy over the default learner, mean over seeds (per seed in brackets, paired: same "
             "label mask); events/s of the default and of each variant, mean over seeds.", "",
             "| stream | streamssl | " + " | ".join(others) + " |", "|---|---|" + "---|" * len(others)]
    gains: dict[str, list[float]] = {m: [] for m in others}
    for stream in sorted({d["stream"] for d in docs}):
        acc: dict[str, list[float]] = {m: [] for m in models}
        eps: dict[str, list[float]] = {m: [] for m in models}
        for d in sorted((d for d in docs if d["stream"] == stream), key=lambda d: d["seed"]):
            for r in d["runs"]:
                acc[r["model"]].append(r["accuracy"])
                eps[r["model"]].append(r["events_per_second"])
        base = np.array(acc["streamssl"])
        cells = []
        for m in others:
            diff = 100 * (np.array(acc[m]) - base)
            gains[m].append(float(diff.mean()))
            cells.append(f"{diff.mean():+.2f} ({' '.join(f'{v:+.1f}' for v in diff)}) · {np.mean(eps[m]):,.0f}/s")
        lines.append(f"| {stream} | {base.mean():.3f} · {np.mean(eps['streamssl']):,.0f}/s | " + " | ".join(cells) + " |")
    lines.append("| **mean over streams** | | " + " | ".join(f"**{np.mean(gains[m]):+.2f}**" for m in others) + " |")
    return lines + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--streams", default="elec2,outdoor_objects")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--report", type=Path, default=HERE / "OBJECTIVES.md")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if not args.report_only:
        wanted = set(args.streams.split(","))
        stream_list = [s for s in streams(False) if s.name in wanted]
        models = args.models.split(",")
        jobs = [(s, 0.05, int(seed), models, args.out, False) for seed in args.seeds.split(",") for s in stream_list]
        jobs.sort(key=lambda j: -(j[0].limit or 50_000))
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(run_cell, *zip(*jobs)))
        command = "python benchmarks/objectives.py" + "".join(
            f" --{k} {v}" for k, v in (("seeds", args.seeds), ("streams", args.streams), ("models", args.models))
            if v != p.get_default(k))
        (args.out / "run.json").write_text(json.dumps({"command": command, "machine": machine(),
                                                       "seconds": time.time() - start, "date": time.strftime("%Y-%m-%d")}))
    write_report(args.out, args.report)
    print(f"wrote {args.report} ({time.time() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
