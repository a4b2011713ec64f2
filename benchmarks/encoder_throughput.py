"""Encoder-update throughput of every self-supervised objective, by batch size.

    python benchmarks/encoder_throughput.py                       # this machine's CPU, 2 threads
    python benchmarks/encoder_throughput.py --device cuda --threads 1 --json out.json

One update is what the learner does for each ``every`` events: draw a batch from the replay
buffer, move it to the device (one copy per batch), build the objective's views, forward,
backward, an Adam step, the momentum/centre updates and the collapse window. The encoder is the
learner's (a 2-layer MLP, 64 hidden units, a 16-d embedding) on 32 inputs (8 features with their
temporal context, as on Elec2). Events/s = batch size × updates per second, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from streamssl.device import resolve_device
from streamssl.ssl import OBJECTIVE_NAMES
from streamssl.ssl.continual import ContinualEncoder


def measure(objective: str, batch: int, device: torch.device, features: int, seconds: float) -> dict:
    enc = ContinualEncoder(features, hidden=64, dim=16, batch_size=batch, every=batch, device=device,
                           buffer_size=max(2048, 2 * batch), objective=objective)
    enc.buffer.add(np.random.default_rng(0).normal(size=(max(2048, 2 * batch), features)))
    for _ in range(10):  # warm-up: allocator, kernels, lazy imports
        enc.step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            enc.step()
        steps += 10
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {"objective": objective, "batch": batch, "steps": steps, "ms_per_update": 1000 * elapsed / steps,
            "events_per_second": batch * steps / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objectives", default=",".join(OBJECTIVE_NAMES))
    ap.add_argument("--batches", default="64,256,1024,4096")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2: this machine's cores)")
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per cell")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    objectives = args.objectives.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, {args.threads} CPU thread(s), "
          f"{args.features} inputs, {args.seconds:g} s per cell")
    print(f"{'objective':<10}" + "".join(f"{f'batch {b}':>14}" for b in batches) + "   (events/s)")
    rows = []
    for objective in objectives:
        line = f"{objective:<10}"
        for batch in batches:
            r = measure(objective, batch, device, args.features, args.seconds)
            rows.append(r)
            line += f"{r['events_per_second']:>14,.0f}"
            if sys.stdout.isatty():
                print(line, end="\r", flush=True)
        print(line)
    if args.json:
        doc = {"device": str(device), "device_name": name, "torch": torch.__version__, "threads": args.threads,
               "features": args.features, "python": platform.python_version(),
               "rows": rows}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)


if __name__ == "__main__":
    main()
