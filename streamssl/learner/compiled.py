"""Loops compiled with numba: the learner's inner loops whose work per step is a few arithmetic
operations, which as numpy calls cost a call per step whatever the size."""

from __future__ import annotations

from numba import njit


def compiled(fn):
    """``fn`` compiled, cached where numba finds a writable place (beside its module, else the
    user's cache directory, or ``NUMBA_CACHE_DIR``); without one, compiled in each process."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba's "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)
