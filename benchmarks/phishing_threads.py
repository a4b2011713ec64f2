"""river's `progressive_val_score` on Phishing, one event at a time, with the learner's torch
threads and torch's own, next to busy processes (a shared machine), against river's ARF.

    python benchmarks/phishing_threads.py              # two busy processes beside it
    python benchmarks/phishing_threads.py --busy 0     # a quiet machine
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from river import datasets, evaluate, forest, metrics


def _spin() -> None:
    while True:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--busy", type=int, default=2, help="busy processes running beside it (default 2)")
    p.add_argument("--trees", action=argparse.BooleanOptionalAction, default=False,
                   help="the learner's tree head (default off: the torch part is what threads change)")
    args = p.parse_args()
    import torch

    from streamssl.learner import StreamLearner

    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for h in hogs:
        h.start()
    try:
        print(f"torch's default threads: {torch.get_num_threads()}; busy processes: {args.busy}")
        for name, model in [("river ARFClassifier(seed=0)", forest.ARFClassifier(seed=0)),
                            ("StreamLearner(threads=None): torch's setting",
                             StreamLearner(seed=0, trees=args.trees, threads=None)),
                            ("StreamLearner(): 1 thread (default)", StreamLearner(seed=0, trees=args.trees))]:
            t = time.perf_counter()
            score = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
            print(f"{name:48s} {score}  {time.perf_counter() - t:6.1f} s", flush=True)
    finally:
        for h in hogs:
            h.terminate()


if __name__ == "__main__":
    main()
