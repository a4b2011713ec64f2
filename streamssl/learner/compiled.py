"""Loops compiled with numba: the learner's inner loops whose work per step is a few arithmetic
operations, which as numpy calls cost a call per step whatever the size."""

from __future__ import annotations

import gc
import math

import numpy as np
from numba import njit
from numba.core.registry import cpu_target

COMPILED_VALUES = 2**14
"""On the CPU, rows of at most this many values in all (one event of 1,024 features, 256 of 64)
go through a compiled loop where the torch calls' own cost exceeds their arithmetic, more
through torch's matrix products: the nearest-neighbour memory's query (one row of 40 features
against 256 stored: 26 against 115 µs; 256 such rows: 0.50 against 0.93 ms; 256 rows of 658:
2.0 against 3.7 ms the other way), an MLP head's answer (of up to
:data:`~streamssl.learner.classifier.COMPILED_ROWS` rows) and the rows of its step (three heads,
45 rows: 255 against 398 µs at 40 inputs, about even at 300, 1.48 against 0.96 ms at 1,000)."""


def compiled(fn=None, *, inline: bool = False, reassociate: bool = False):
    """``fn`` compiled, cached where numba finds a writable place (beside its module, else the
    user's cache directory, or ``NUMBA_CACHE_DIR``); without one, compiled in each process.
    ``inline``: a helper compiled into each caller, which then neither calls it nor counts
    references to its arrays per call (a leaf's answer for 2,560 (tree, row) pairs: 166 against
    137 µs). ``reassociate``: sums may be reordered (and so run several lanes at once), which
    changes their rounding, never how infinities and NaN behave.

    >>> @compiled(inline=True)
    ... def twice(x):
    ...     return 2 * x
    >>> twice(3)
    6
    """
    if fn is None:
        return lambda f: compiled(f, inline=inline, reassociate=reassociate)
    options = {"nogil": True, "inline": "always" if inline else "never",
               "fastmath": {"reassoc", "contract"} if reassociate else False}
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # numba's "cannot cache function ...: no locator available"
        return njit(**options)(fn)


_started = False


def start() -> None:
    """Numba's one-time start in this process (its typing and lowering registries, loaded before
    the first compiled loop runs or loads), with Python's cyclic garbage collector paused.

    The start makes thousands of objects that live as long as the process. In a process that
    holds torch and river (about 300,000 objects the collector tracks) the full collections
    they set off cost as much as the start itself: 0.25 s with the collector, 0.12 s without
    (2 cores). A :class:`~streamssl.learner.StreamLearner` calls it on its first event; later
    calls do nothing, and the collector is as it was before.

    >>> start(); start()
    >>> gc.isenabled()
    True
    """
    global _started
    if _started:
        return
    was_on = gc.isenabled()
    gc.disable()
    try:
        cpu_target.target_context.refresh()  # numba's own call for loading registrations
    finally:
        if was_on:
            gc.enable()
    _started = True


@compiled(inline=True)
def softmax_(v: np.ndarray) -> None:
    """``v`` (1-D) replaced by its softmax: its largest value taken off before the exponentials,
    then each over their sum (the compiled loops' one softmax: the MLP heads', the linear
    member's and the calibrator's).

    >>> v = np.array([0.0, np.log(3.0)]); softmax_(v); v.round(6).tolist()
    [0.25, 0.75]
    """
    top = -np.inf
    for i in range(v.shape[0]):
        top = max(top, v[i])
    total = 0.0
    for i in range(v.shape[0]):
        v[i] = math.exp(v[i] - top)
        total += v[i]
    for i in range(v.shape[0]):
        v[i] /= total
