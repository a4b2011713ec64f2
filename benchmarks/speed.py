"""Speed of streamssl against river's ARF and HAT, measured in one run on the same machine.

Two parts:

1. micro-batches: `streamssl bench` on recorded streams at 1 % and 5 % labels, streamssl's
   default, without its tree heads and with river's ARF as them against river's ARF and
   Hoeffding adaptive tree (raw features), each model in a fresh process one after the other; prints events/s and the ratio
   to ARF of the same run;
2. one event at a time: river's `evaluate.progressive_val_score` on river's bundled Phishing
   (every label known) with `StreamLearner()` as a user builds it, against
   `forest.ARFClassifier(seed=0)`; also with river's forests as its tree heads, with a torch step per label (`one_batch=1`) and with
   torch's own thread setting (`threads=None`). `--busy N` runs N busy processes beside it, as
   on a shared machine. Nothing is warmed up before: the first `StreamLearner()` pays what a
   user's first one pays in a fresh process (its heads hold their own Adam state, so torch's
   ``torch._dynamo``, 1-2 s to import, is not loaded; until 2026-12-06 it was, and was paid
   before the timings).

    python benchmarks/speed.py                          # Elec2, kdd (first 20,000), Luxembourg; Phishing
    python benchmarks/speed.py --streams elec2 --rates 0.05 --busy 2
    python benchmarks/speed.py --skip-bench --repeat 3      # Phishing three times each: started and not
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMSSL_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODELS = ["streamssl", "streamssl-no-trees", "streamssl-river-forest", "river-arf", "river-hat"]
LIMITS = {"kddcup99_10pct": 20_000}  # ARF on all of kdd's 23 classes would take most of the run


def micro_batches(stream: str, rate: float, seed: int) -> dict[str, float]:
    """events/s of each model of MODELS on ``stream`` at ``rate`` labels, from one bench run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "streamssl.cli", "bench", str(DATA / f"{stream}.csv.gz"), "--models",
               ",".join(MODELS), "--peer-features", "raw", "--label-rate", str(rate), "--seed", str(seed),
               "--quiet", "--json", str(out)]
        if stream in LIMITS:
            cmd += ["--limit", str(LIMITS[stream])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        runs = json.loads(out.read_text())["runs"]
    return {r["model"]: (r["events_per_second"], r["accuracy"]) for r in runs}


def _spin() -> None:
    while True:
        pass


def one_at_a_time(busy: int, repeat: int = 1) -> list[tuple[str, str, list[float]]]:
    """Each model's progressive_val_score on Phishing, ``repeat`` times in turn (each time a new
    model): its score and the seconds of each run. The first run of the process's first
    ``StreamLearner()`` pays numba's start; the rounds after show the learners once started."""
    from river import datasets, evaluate, forest, metrics

    from streamssl.learner import StreamLearner

    models = [("river forest.ARFClassifier(seed=0)", lambda: forest.ARFClassifier(seed=0)),
              ("StreamLearner()", StreamLearner),
              ("StreamLearner(trees=forest.ARFClassifier()): river's forests",
               lambda: StreamLearner(trees=forest.ARFClassifier())),
              ("StreamLearner(trees=False)", lambda: StreamLearner(trees=False)),
              ("StreamLearner(one_batch=1): a torch step per label", lambda: StreamLearner(one_batch=1)),
              ("StreamLearner(threads=None): torch's threads", lambda: StreamLearner(threads=None))]
    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(busy)]
    for h in hogs:
        h.start()
    scores, seconds = {}, {name: [] for name, _ in models}
    try:
        for _ in range(repeat):
            for name, make in models:
                model = make()
                t = time.perf_counter()
                scores[name] = str(evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy()))
                seconds[name].append(time.perf_counter() - t)
    finally:
        for h in hogs:
            h.terminate()
    return [(name, scores[name], seconds[name]) for name, _ in models]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", default="elec2,kddcup99_10pct,luxembourg", help="recorded streams in ../shared/data")
    p.add_argument("--rates", default="0.01,0.05", help="label rates (default 0.01,0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--busy", type=int, default=0, help="busy processes beside the one-event-at-a-time part")
    p.add_argument("--skip-bench", action="store_true", help="only the one-event-at-a-time part")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of the one-event-at-a-time part (each model new each round; default 1)")
    args = p.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    if not args.skip_bench:
        print("\nmicro-batches of 64 (streamssl bench), events/s and accuracy; ratio to river ARF in the same run")
        print(f"{'stream':18s} {'rate':>5s} " + " ".join(f"{m:>24s}" for m in MODELS))
        for stream in args.streams.split(","):
            for rate in (float(r) for r in args.rates.split(",")):
                res = micro_batches(stream, rate, args.seed)
                arf = res["river-arf"][0]
                cells = [f"{res[m][0]:7,.0f} {res[m][0] / arf:4.2f}x {res[m][1]:.3f}" for m in MODELS]
                print(f"{stream:18s} {rate:5.2f} " + " ".join(f"{c:>24s}" for c in cells), flush=True)
    print(f"\none event at a time: progressive_val_score on river's Phishing, {args.busy} busy processes beside it"
          + (f"; {args.repeat} rounds, seconds of each, the best after the first" if args.repeat > 1 else ""))
    for name, score, seconds in one_at_a_time(args.busy, args.repeat):
        rounds = " ".join(f"{s:5.2f}" for s in seconds)
        best = f"  best after the first {min(seconds[1:]):5.2f} s" if len(seconds) > 1 else ""
        print(f"  {name:52s} {score:18s} {rounds} s{best}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
