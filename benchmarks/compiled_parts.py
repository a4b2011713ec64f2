"""The learner's parts that run as compiled loops on the CPU, timed against their torch calls.

    python benchmarks/compiled_parts.py

For the few rows of an event, or of an MLP step, each torch call costs more than its arithmetic,
so on the CPU these parts run as one numba loop each and a GPU keeps torch's kernels:

- the nearest-neighbour memory's vote (``NearestNeighbourMemory.predict_proba`` against
  ``_torch_votes``; compiled up to ``compiled.COMPILED_VALUES`` query values);
- an MLP head's answer (``mlp_kernels.forward`` against the layers' torch kernels; compiled up to
  ``classifier.COMPILED_ROWS`` rows);
- the gradients of one step of three heads (``_compiled_gradients`` against ``_torch_gradients``;
  compiled for rows of up to ``COMPILED_VALUES`` inputs).

Each figure is the best of five rounds of 200 calls, in microseconds, one torch thread: the
crossovers of the two constants above were read off this table. It prints the machine first.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamssl.learner import mlp_kernels  # noqa: E402
from streamssl.learner.classifier import OnlineMLPClassifier, _compiled_gradients, _torch_gradients  # noqa: E402
from streamssl.learner.memory import NearestNeighbourMemory  # noqa: E402


def best_us(call, rounds: int = 5, calls: int = 200) -> float:
    for _ in range(20):
        call()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def row(what: str, compiled: float, torch_calls: float) -> None:
    print(f"| {what} | {compiled:,.1f} | {torch_calls:,.1f} | {torch_calls / compiled:.2f}× |")


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; best of 5 × 200 calls, µs\n")
    print("| call | compiled | torch calls | ratio |\n|---|---:|---:|---:|")
    with torch.no_grad():
        for width in (8, 40):
            memory = NearestNeighbourMemory()
            memory.add(torch.randn(256, width), torch.randint(0, 2, (256,)))
            for rows in (1, 64, 256):
                Q = torch.randn(rows, width)
                row(f"memory, {rows} rows of {width} against 256", best_us(lambda: memory.predict_proba(Q, 2)),
                    best_us(lambda: memory._torch_votes(Q, 5, 2)))
        for width in (9, 40):
            head = OnlineMLPClassifier(n_inputs=width, hidden=64)
            head.add_classes(2)
            first, last = head.net[0], head.net[2]
            for rows in (1, 16, 64, 256):
                H = torch.randn(rows, width)
                row(f"MLP answer, {rows} rows of {width} (64 hidden)",
                    best_us(lambda: mlp_kernels.forward(H.numpy(), first.weight.detach().numpy(),
                                                        first.bias.detach().numpy(), last.weight.detach().numpy(),
                                                        last.bias.detach().numpy(), 2)),
                    best_us(lambda: torch.softmax(head._logits(H), dim=1)))
        for width, rows in ((9, 33), (40, 45), (40, 96), (400, 45), (1000, 45)):
            heads = [OnlineMLPClassifier(n_inputs=width, hidden=64, seed=s) for s in range(3)]
            for head in heads:
                head.add_classes(2)
            Hs, y = [torch.randn(rows, width) for _ in heads], torch.randint(0, 2, (rows,))
            share = torch.full((rows, 1), 1.0 / rows)
            row(f"MLP step's gradients, 3 heads, {rows} rows of {width}",
                best_us(lambda: [_compiled_gradients(h, H, y, share) for h, H in zip(heads, Hs)]),
                best_us(lambda: _torch_gradients(heads, Hs, [y] * 3, share)))


if __name__ == "__main__":
    main()
