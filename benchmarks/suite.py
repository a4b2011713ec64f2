"""The benchmark suite: `streamssl bench` over the real recorded streams, label rates and seeds,
written up as benchmarks/RESULTS.md with tables and plots.

    python benchmarks/suite.py                 # the whole suite: 1 % and 5 % labels, 3 seeds (about 64 minutes)
    python benchmarks/suite.py --quick --out /tmp/quick   # CI's smoke run (about a minute)
    python benchmarks/suite.py --held-out      # two recorded streams kept out of the suite (results/held-out/)
    python benchmarks/suite.py --river-streams # river's bundled datasets and drift generators (results/river-streams/)
    python benchmarks/suite.py --models streamssl --tag cap64 --part mlp.max_steps=64   # a probe, as a tagged pass

Every cell (stream, label rate, seed) runs each model in a fresh process through the same
prequential protocol and seeded label mask (`streamssl.replay.bench`). `--workers 2` runs two
cells at a time (one torch thread each); speed ratios compare models of the same cells.
"""

from __future__ import annotations

import argparse
import json
import pickle
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from streamssl.replay.bench import BenchSettings, bench, bench_json
from streamssl.replay.run import bundled_sample

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("STREAMSSL_SHARED_DATA", HERE.parent.parent / "shared" / "data"))


@dataclass(frozen=True)
class Stream:
    name: str
    path: Path
    limit: int | None = None
    known_drifts: tuple[int, ...] = ()
    note: str = ""
    made: str = ""  # how prepare() writes the file once when it is missing: "hashed" or "river"; "" is recorded


def streams(quick: bool) -> list[Stream]:
    if quick:
        return [Stream("elec2_sample", bundled_sample(), 3000), Stream("usenet1", SHARED / "usenet1.csv.gz",
                known_drifts=(300, 600, 900, 1200))]
    return [
        Stream("elec2", SHARED / "elec2.csv.gz"),
        Stream("outdoor_objects", SHARED / "outdoor_objects.csv.gz"),
        Stream("kddcup99_10pct", SHARED / "kddcup99_10pct.csv.gz", 100_000,
               note="first 100,000 of 494,021 events (ARF with all labels on the whole stream alone would take "
                    "about 20 minutes per seed)"),
        Stream("luxembourg", SHARED / "luxembourg.csv.gz"),
        Stream("usenet1", SHARED / "usenet1.csv.gz", known_drifts=(300, 600, 900, 1200)),
        Stream("usenet2", SHARED / "usenet2.csv.gz", known_drifts=(300, 600, 900, 1200)),
        Stream("spam_corpus", HERE / ".cache" / "spam_corpus.hashed1024.csv.gz", made="hashed",
               note="39,916 word-presence columns folded into 1,024 by a fixed feature hash "
                    "(streamssl.sources.hashing), the same input for every model"),
    ]


def held_out() -> list[Stream]:
    """Real streams kept out of the suite, so that no setting is chosen on them: a check of how the
    defaults chosen on the suite do on streams they were not chosen on (``--held-out``). Their
    report goes to ``results/held-out/RESULTS.md`` and is never part of the suite's means."""
    return [
        Stream("weather_noaa", SHARED / "weather_noaa.csv.gz",
               note="rain or not from 8 daily readings, Bellevue (Nebraska) 1949–1999; seasonal and long-term drift"),
        Stream("powersupply", SHARED / "powersupply.csv.gz",
               note="the hour of the day (24 classes) from 2 power-supply readings, Italy, over three years"),
    ]


def river_streams() -> list[Stream]:
    """River's bundled real datasets and its drift generators (``benchmarks/river_streams.py``),
    also kept out of the suite (``--river-streams``): written as CSV once, under ``.cache/river``."""
    from river_streams import STREAMS

    return [Stream(name, HERE / ".cache" / "river" / f"{name}.csv.gz", note=s.note, made="river")
            for name, s in STREAMS.items()]


QUICK_MODELS = ["streamssl", "river-arf", "river-arf+context", "river-nb", "no-change"]
# The default; without its temporal context and without its tree member (the two parts the
# peers' gaps turn on); one MLP on the raw features (release 0.1); with the mission's
# pseudo-labels on; and river's peers on the same features, raw and with the same context.
FULL_MODELS = ["streamssl", "streamssl-no-temporal", "streamssl-no-trees", "streamssl-baseline", "streamssl-pseudo",
               "river-arf", "river-arf+context", "river-lr", "river-lr+context", "river-nb", "river-nb+context"]


def prepare(stream: Stream) -> None:
    """Write a stream that is made, not recorded, once: spam_corpus folded into hashed columns,
    river's streams as CSV."""
    if not stream.made or stream.path.exists():
        return
    stream.path.parent.mkdir(parents=True, exist_ok=True)
    if stream.made == "hashed":
        from streamssl.sources.hashing import hash_csv

        print(f"folding {stream.name} into 1,024 hashed columns (once) ...", file=sys.stderr)
        hash_csv(SHARED / f"{stream.name}.csv.gz", stream.path, dims=1024)
    else:
        from river_streams import write_csv

        print(f"writing river's {stream.name} as CSV (once) ...", file=sys.stderr)
        write_csv(stream.name, stream.path)


def run_cell(stream: Stream, rate: float, seed: int, models: list[str], out: Path, plot: bool, tag: str = "",
             parts: dict | None = None, label_delay: int = 0) -> dict:
    settings = BenchSettings(label_rate=rate, label_delay=label_delay, seed=seed, limit=stream.limit,
                             window=200 if (stream.limit or 10**9) <= 5000 or "usenet" in stream.name
                             or "lux" in stream.name else 1000, parts=parts or {})
    start = time.time()
    runs = bench(stream.path, models, settings)
    doc = bench_json(stream.path, settings, runs)
    doc["stream"] = stream.name
    doc["errors"] = {r.model: r.error.splitlines()[0] for r in runs if r.error}
    (out / f"{stream.name}.{rate:g}.{seed}{'.' + tag if tag else ''}.json").write_text(json.dumps(doc, indent=1))
    if plot and not tag:
        from streamssl.replay.plot import accuracy_plot

        ok = [r for r in runs if r.error is None]
        accuracy_plot(ok, out / "plots" / f"{stream.name}.{rate:g}.png",
                      f"{stream.name} · labels {pct(rate)} · seed {seed}", settings.window, stream.known_drifts)
    print(f"  {stream.name:16} rate {rate:<5g} seed {seed}: {time.time() - start:5.0f} s", file=sys.stderr, flush=True)
    return doc


def replay_default(stream_name: str, rate: float, seed: int, part: str, recorder, served):
    """Today's default ``streamssl`` on one suite cell, as the suite runs it (same label mask,
    batches, threads), for the replay benchmarks: the learner's ``part`` (an attribute) is
    wrapped in ``recorder(part)``, and the run talks to ``served(model, recorder)``, whose
    ``truths`` list is set to each batch's labels before the batch is served. Returns the
    recorder and the run's summary."""
    import torch

    from streamssl.replay.bench import build_model
    from streamssl.replay.prequential import prequential

    stream = {s.name: s for s in [*streams(False), *held_out(), *river_streams()]}[stream_name]
    prepare(stream)
    settings = BenchSettings(label_rate=rate, seed=seed, limit=stream.limit)
    torch.set_num_threads(settings.threads)
    path = str(stream.path)
    probe = settings.file.source(path, limit=1, on_bad=lambda bad: None)
    next(iter(probe), None)
    model = build_model("streamssl", seed, probe.feature_names)
    wrapped = recorder(getattr(model, part))
    setattr(model, part, wrapped)
    served = served(model, wrapped)

    def batches():
        for batch in settings.file.source(path, batch_size=settings.batch_size, limit=settings.limit,
                                          on_bad=lambda bad: None):
            served.truths = list(batch.y)
            yield batch

    summary = None
    for step in prequential(batches(), served, settings.label_rate, settings.label_delay, settings.seed):
        summary = step.summary
    return wrapped, summary


def write_record(out: str, stream_name: str, rate: float, seed: int, result: dict) -> Path:
    """A replay benchmark's record of one cell, pickled to ``out/STREAM.RATE.SEED.pkl``."""
    file = Path(out) / f"{stream_name}.{rate}.{seed}.pkl"
    file.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return file


STREAM_SETS = {"suite": lambda: streams(False), "held-out": held_out, "river-streams": river_streams}


def record_cells(record, directory: Path, workers: int, sets: Sequence[str] = ("suite",)) -> None:
    """``record((stream, rate, seed, directory))`` for the cells of the stream ``sets`` of
    :data:`STREAM_SETS` (the suite's 42: 7 streams, 1 % and 5 %, seeds 0-2), longest streams
    first, each in a fresh process; prints what each returns."""
    from multiprocessing import Pool

    directory.mkdir(parents=True, exist_ok=True)
    chosen = [s for name in sets for s in STREAM_SETS[name]()]
    for s in chosen:
        prepare(s)
    jobs = [(s.name, rate, seed, str(directory)) for s in sorted(chosen, key=lambda s: -(s.limit or 50_000))
            for rate in (0.01, 0.05) for seed in (0, 1, 2)]
    with Pool(workers, maxtasksperchild=1) as pool:
        for line in pool.imap_unordered(record, jobs):
            print(line, flush=True)


def _delays(docs: list[dict]) -> str:
    """When the passes' labels were revealed, in the words of the report's protocol."""
    delays = sorted({d.get("label_delay", 0) for d in docs})
    said = {0: "right after its batch"}
    return " or ".join(said.get(n, f"{n:,} events after its event") for n in delays) or said[0]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import river
    import torch

    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, no GPU used, Python {platform.python_version()}, "
            f"torch {torch.__version__}, river {river.__version__}")


def fmt(values: list[float], digits: int = 3) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if values else "-"


def pct(rate: float) -> str:
    return f"{rate * 100:g} %"


def write_report(docs: list[dict], stream_list: list[Stream], models: list[str], command: str, out: Path,
                 report: Path, seconds: float) -> None:
    cells: dict = {}
    for doc in docs:
        for run in doc["runs"]:
            cells.setdefault((doc["stream"], doc["label_rate"]), {}).setdefault(run["model"], []).append(run)
            if run["model"] not in models:
                models = [*models, run["model"]]
    models = [m for m in models if any(m in row for row in cells.values())]  # a partial pass lists its own
    rates = sorted({k[1] for k in cells})
    names = [s.name for s in stream_list]
    passes_file = out / "passes.json"
    passes = json.loads(passes_file.read_text()) if passes_file.exists() else []
    if command is not None:
        passes = [p for p in passes if p["command"] != command] + [
            {"command": command, "minutes": round(seconds / 60, 1), "date": time.strftime("%Y-%m-%d")}]
    passes_file.write_text(json.dumps(passes, indent=1))
    lines = ["# Benchmark results", "",
             f"Made on {machine()}, by:", ""]
    lines += [f"- `{p['command']}` ({p['date']}, {p['minutes']:.0f} minutes)" for p in passes]
    lines += ["",
             "Protocol: prequential test-then-train over micro-batches of 64 (each batch predicted, then learned); "
             "the label of a seeded random share of events (`numpy.random.default_rng(seed).random(n) < rate`, the "
             f"same for every model) is revealed {_delays(docs)}; the rest are learned unlabelled. Each model "
             "runs in a fresh process, with one torch thread. Cells are mean ± std over seeds "
             f"{sorted({d['seed'] for d in docs})}; **bold** is the best mean of the row. Events/s is steady-state "
             "(timed from the second batch).", ""]
    for s in stream_list:
        if s.note:
            lines.append(f"- `{s.name}`: {s.note}.")
    lines.append("")
    wins, cells_n = {}, 0
    for rate in rates:
        lines += [f"## Accuracy at {pct(rate)} labels", "", "| stream | " + " | ".join(models) + " |",
                  "|---|" + "---:|" * len(models)]
        for name in names:
            row = cells.get((name, rate))
            if not row:
                continue
            means = {m: np.mean([r["accuracy"] for r in row[m]]) for m in models if m in row}
            best = max(means.values())
            cells_n += 1
            winner = max(means, key=means.get)
            wins[winner] = wins.get(winner, 0) + 1
            lines.append(f"| {name} | " + " | ".join(
                ("**" + fmt([r["accuracy"] for r in row[m]]) + "**") if m in row and means[m] == best
                else fmt([r["accuracy"] for r in row.get(m, [])]) for m in models) + " |")
        lines.append("")
    lines += ["## Events/s (steady state, mean over seeds)", "", "| stream | rate | " + " | ".join(models) + " |",
              "|---|---:|" + "---:|" * len(models)]
    for rate in rates:
        for name in names:
            row = cells.get((name, rate))
            if row:
                lines.append(f"| {name} | {pct(rate)} | " + " | ".join(
                    f"{np.mean([r['events_per_second'] for r in row[m]]):,.0f}" if m in row else "-"
                    for m in models) + " |")
    pseudo = [m for m in ("streamssl-pseudo", "streamssl-cotrain") if m in models]  # those that take them
    lines += ["", "## Peak RSS (MiB, max over seeds)" + (" and pseudo-label precision" if pseudo else ""), "",
              "| stream | rate | " + " | ".join([f"{m} RSS" for m in models] + [f"{m} precision" for m in pseudo]) + " |",
              "|---|---:|" + "---:|" * (len(models) + len(pseudo))]
    for rate in rates:
        for name in names:
            row = cells.get((name, rate))
            if row:
                precision = []
                for variant in pseudo:
                    prec = [r["pseudo_label_precision"] for r in row.get(variant, [])
                            if r["pseudo_label_precision"] is not None]
                    precision.append(fmt(prec) if prec else "none accepted")
                lines.append(f"| {name} | {pct(rate)} | " + " | ".join(
                    [f"{max(r['peak_rss_mb'] for r in row[m]):,.0f}" if m in row else "-" for m in models]
                    + precision) + " |")
    lines += ["", "## streamssl (defaults) against the best peer, on raw and on the same features", "",
              "Accuracy points of `streamssl` minus the best peer of the cell (mean over seeds), first against "
              "peers on the raw features, then against peers given streamssl's temporal context stage "
              "(`NAME+context`, `--peer-features same`); positive is a win.", "",
              "| stream | " + " | ".join(f"{pct(r)} vs raw | {pct(r)} vs same" for r in rates) + " |",
              "|---|" + "---:|---:|" * len(rates)]
    for name in names:
        gaps = []
        for rate in rates:
            row = cells.get((name, rate), {})
            mine = np.mean([r["accuracy"] for r in row["streamssl"]]) if "streamssl" in row else None
            for same in (False, True):
                peers = {m: np.mean([r["accuracy"] for r in runs]) for m, runs in row.items()
                         if not m.startswith("streamssl") and m.endswith("+context") == same}
                if mine is None or not peers:
                    gaps.append("-")
                    continue
                best = max(peers, key=peers.get)
                gaps.append(f"{100 * (mine - peers[best]):+.1f} ({best} {peers[best]:.3f})")
        lines.append(f"| {name} | " + " | ".join(gaps) + " |")
    ablations = [m for m in models if m.startswith("streamssl-")]
    if ablations:
        lines += ["", "## What each part is worth", "",
                  "Accuracy points of `streamssl` (the defaults) minus each variant, per stream (mean over seeds); "
                  "positive means the default's choice earned its place on that stream.", "",
                  "| variant | rate | " + " | ".join(names) + " | mean |", "|---|---:|" + "---:|" * (len(names) + 1)]
        for m in ablations:
            for rate in rates:
                diffs = []
                for name in names:
                    row = cells.get((name, rate), {})
                    if "streamssl" in row and m in row:
                        diffs.append(100 * (np.mean([r["accuracy"] for r in row["streamssl"]])
                                            - np.mean([r["accuracy"] for r in row[m]])))
                    else:
                        diffs.append(None)
                known = [d for d in diffs if d is not None]
                lines.append(f"| {m} | {pct(rate)} | " + " | ".join("-" if d is None else f"{d:+.1f}" for d in diffs)
                             + (f" | {np.mean(known):+.1f} |" if known else " | - |"))
    lines += combiner_regret(cells, names, rates, max((d.get("label_delay", 0) for d in docs), default=0))
    lines += ["", "## Best model per (stream, label rate)", ""]
    lines += [f"- `{m}`: {n} of {cells_n}" for m, n in sorted(wins.items(), key=lambda kv: -kv[1])]
    errors = [(d["stream"], d["label_rate"], d["seed"], m, e) for d in docs for m, e in d.get("errors", {}).items()]
    if errors:
        lines += ["", "## Failed runs", ""] + [f"- {s} {r:g} seed {sd}, {m}: {e}" for s, r, sd, m, e in errors]
    plots = sorted((out / "plots").glob("*.png")) if (out / "plots").exists() else []
    if plots:
        lines += ["", "## Accuracy over time (seed 0)", "",
                  "Seed 0, the models of the main pass (tagged passes add no plots). Dashed lines "
                  "are known drift points, triangles the drifts streamssl detected.", ""]
        for p in plots:
            lines += [f"![{p.stem}]({os.path.relpath(p, report.parent)})", ""]
    report.write_text("\n".join(lines) + "\n")


def combiner_regret(cells: dict, names: list[str], rates: list[float], label_delay: int = 0) -> list[str]:
    """The default's answer against its best member: accuracy points of the served answer minus
    the prequential accuracy, on the labelled events, of the member with the best mean after the
    fact (the best of several noisy estimates: an optimistic yardstick where labels are few).
    With labels late, a member is scored on a label by its answer when the label came; the
    report says so.

    >>> run = {"accuracy": 0.8, "labels_used": 50, "experts": {"mlp": {"accuracy": 0.85}, "tree": {"accuracy": 0.7}}}
    >>> cells = {("s", 0.05): {"streamssl": [run]}}
    >>> combiner_regret(cells, ["s"], [0.05])[-1]
    '| s | -5.0 (mlp 0.850, 50 labels) |'
    >>> "100 events late" in " ".join(combiner_regret(cells, ["s"], [0.05], label_delay=100))
    True
    """
    late = (f" Here the labels came {label_delay:,} events late, and a member is scored on a label by its answer "
            "when the label came (it learned from the labels between), not by what it answered for the event; "
            "scored on what it answered then, the members' accuracies move by 0.1-5 points and the table "
            "hardly at all (`results/late-served/RESULTS.md`).") if label_delay else ""
    lines = ["", "## The combiner against its best member", "",
             "Accuracy points of `streamssl`'s served answer minus the prequential accuracy (on the labelled "
             "events, each scored before it was learned) of the member whose mean over seeds was best after the "
             "fact, and the labelled events per seed; negative is what combining cost against always answering "
             "with that member. With a few dozen labels the best of six members' estimates is mostly luck, and "
             "this yardstick flatters the member: scored on every event, with every member's answers replayed "
             "(`benchmarks/combiner_replay.py`, `results/combiner/replay-2026-12-04.md`), the default is 0.39 / "
             "0.31 points below the best member of each cell at 1 % / 5 % on average (luxembourg 5 %: −2.1)." + late, "",
             "| stream | " + " | ".join(f"{pct(r)}" for r in rates) + " |", "|---|" + "---:|" * len(rates)]
    rows = 0
    for name in names:
        gaps = []
        for rate in rates:
            runs = [r for r in cells.get((name, rate), {}).get("streamssl", []) if r.get("experts")]
            members = {m for r in runs for m in r["experts"]}
            scored = {m: [r["experts"][m]["accuracy"] for r in runs if r["experts"].get(m, {}).get("accuracy") is not None]
                      for m in members}
            scored = {m: a for m, a in scored.items() if len(a) == len(runs)}
            if not runs or not scored:
                gaps.append("-")
                continue
            best = max(scored, key=lambda m: np.mean(scored[m]))
            regret = np.mean([r["accuracy"] for r in runs]) - np.mean(scored[best])
            labels = np.mean([r["labels_used"] for r in runs])
            gaps.append(f"{100 * regret:+.1f} ({best} {np.mean(scored[best]):.3f}, {labels:,.0f} labels)")
        rows += any(g != "-" for g in gaps)
        lines.append(f"| {name} | " + " | ".join(gaps) + " |")
    return lines if rows else []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI smoke run: 2 short streams, 1 rate, 1 seed, 4 models")
    p.add_argument("--out", type=Path, default=None, help="where JSON and plots go (default results/)")
    p.add_argument("--report", type=Path, default=None, help="Markdown report (default: RESULTS.md in --out's parent "
                   "for the full suite, OUT/RESULTS.md with --quick)")
    p.add_argument("--workers", type=int, default=2, help="cells run at a time (default 2)")
    p.add_argument("--seeds", default=None, help="comma-separated (default 0,1,2; 0 with --quick)")
    p.add_argument("--rates", default=None, help="comma-separated (default 0.01,0.05; 0.05 with --quick)")
    p.add_argument("--held-out", action="store_true", help="the streams kept out of the suite (held_out()) "
                   "instead of its own; JSON and report under results/held-out/ unless --out is given")
    p.add_argument("--river-streams", action="store_true", help="river's bundled datasets and drift generators "
                   "(river_streams.py), also kept out of the suite; JSON and report under results/river-streams/")
    p.add_argument("--streams", default=None, help="comma-separated subset of the suite's streams")
    p.add_argument("--models", default=None, help="comma-separated models instead of the suite's own")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the JSON in --out, run nothing")
    p.add_argument("--tag", default="", help="name of an extra pass (e.g. capymoa): its JSON files sit beside "
                   "the main ones and the report merges them")
    p.add_argument("--part", action="append", default=[], metavar="NAME.SETTING=VALUE",
                   help="a setting of the learner's parts for every streamssl model (as streamssl bench --part); "
                   "give the pass a --tag")
    p.add_argument("--label-delay", type=int, default=0, metavar="N",
                   help="each label revealed N events after its event (default 0: right after its micro-batch); "
                   "give the pass a --tag or an --out of its own")
    args = p.parse_args()
    from streamssl.cli import checked_parts, parse_part_setting

    if args.part and not args.tag:
        p.error("--part needs --tag: the pass's JSON files must not take the place of the main pass's")
    if args.label_delay < 0:
        p.error("--label-delay must be >= 0")
    if args.label_delay and not (args.tag or args.out):
        p.error("--label-delay needs --tag or --out: the pass's JSON files must not take the place of the main pass's")
    try:
        parts = checked_parts([parse_part_setting(text) for text in args.part])
    except argparse.ArgumentTypeError as exc:
        p.error(f"--part: {exc}")
    except Exception as exc:  # the parts' own errors (an InputError that names --part)
        p.error(str(exc))

    if args.held_out and args.river_streams:
        p.error("--held-out and --river-streams are two separate reports: give one")
    kept_out = "held-out" if args.held_out else "river-streams" if args.river_streams else ""
    stream_list = held_out() if args.held_out else river_streams() if args.river_streams else streams(args.quick)
    args.out = args.out or HERE / "results" / kept_out
    if args.streams:
        wanted = set(args.streams.split(","))
        stream_list = [s for s in stream_list if s.name in wanted]
    missing = [str(s.path) for s in stream_list if not s.made and not s.path.exists()]
    if missing:
        sys.exit(f"suite: missing recorded streams: {', '.join(missing)} (set STREAMSSL_SHARED_DATA)")
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    rates = [float(r) for r in (args.rates or ("0.05" if args.quick else "0.01,0.05")).split(",")]
    models = args.models.split(",") if args.models else (QUICK_MODELS if args.quick else FULL_MODELS)
    report = args.report or (args.out / "RESULTS.md" if args.quick or kept_out else args.out.parent / "RESULTS.md")
    (args.out / "plots").mkdir(parents=True, exist_ok=True)
    for s in stream_list:
        prepare(s)

    start = time.time()
    jobs = [] if args.report_only else [(s, r, seed, models, args.out, seed == seeds[0] and r in (0.05, rates[0]), args.tag,
                                         parts, args.label_delay) for seed in seeds for r in rates for s in stream_list]
    # Longest cells first, so that two workers finish together.
    jobs.sort(key=lambda j: -(j[0].limit or 50_000) * (4 if j[1] == 1.0 else 1))
    if jobs:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(run_cell, *zip(*jobs)))
    command = "python benchmarks/suite.py" + (" --quick" if args.quick else "") + (
        f" --{kept_out}" if kept_out else "") + "".join(
        f" --{k} {v}" for k, v in (("seeds", args.seeds), ("rates", args.rates), ("streams", args.streams),
                                   ("models", args.models), ("tag", args.tag), ("label-delay", args.label_delay)) if v) + "".join(
        f" --part {text}" for text in args.part)
    # The report covers every pass whose JSON is in --out (the main one and any tagged extras).
    names = {s.name for s in stream_list}
    docs = [json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")) if p.name != "passes.json"]
    docs = [d for d in docs if d["stream"] in names]
    write_report(docs, stream_list, FULL_MODELS if not args.quick else QUICK_MODELS,
                 None if args.report_only else command, args.out, report, time.time() - start)
    print(f"wrote {report} ({time.time() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
