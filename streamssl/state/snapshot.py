"""Copies of a state tree taken between batches, made into the buffers of the copy before.

A daemon's checkpoint copies the learner's state on the thread that serves events, so that the
learner can go on while another thread writes the copy. For a state of tens of megabytes, fresh
memory costs more than the copy itself: the kernel maps and zeroes every page (on our 2-core
machine a first copy of a 24 MB temporal-context recall buffer took about 0.2 s, a copy into
memory already held 4 ms). :class:`Snapshots` copies each array and tensor of the tree into the
one that held it in its previous copy, where shape and dtype match, so the copy before is
overwritten: take one only once nothing reads the last (one checkpoint write at a time).

>>> import numpy as np
>>> snapshots = Snapshots()
>>> state = {"w": np.zeros(3), "seen": [1, 2]}
>>> first = snapshots.copy(state)
>>> state["w"][0] = 5.0
>>> second = snapshots.copy(state)
>>> second["w"] is first["w"], second["w"].tolist(), second["w"] is state["w"]
(True, [5.0, 0.0, 0.0], False)
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import numpy as np
import torch


class Snapshots:
    """Deep copies of a state tree, each made into the arrays and tensors of the one before."""

    def __init__(self) -> None:
        self._last: Any = None

    def copy(self, state: Any) -> Any:
        """A deep copy of ``state``; it overwrites the arrays of the previous copy."""
        self._last = _copy(state, self._last)
        return self._last


def _copy(value: Any, last: Any) -> Any:
    if isinstance(value, np.ndarray):
        if isinstance(last, np.ndarray) and last.shape == value.shape and last.dtype == value.dtype \
                and last.flags.writeable and not np.shares_memory(last, value):
            np.copyto(last, value)
            return last
        return value.copy()
    if isinstance(value, torch.Tensor):
        if isinstance(last, torch.Tensor) and last.shape == value.shape and last.dtype == value.dtype \
                and last.device == value.device and last.data_ptr() != value.data_ptr():
            with torch.no_grad():
                return last.copy_(value)
        return value.detach().clone()
    if type(value) in (dict, OrderedDict):
        before = last if isinstance(last, dict) else {}
        out = type(value)((k, _copy(v, before.get(k))) for k, v in value.items())
        if hasattr(value, "_metadata"):  # a torch state_dict's module versions
            out._metadata = copy.deepcopy(value._metadata)
        return out
    if type(value) in (list, tuple):
        before = last if type(last) is type(value) and len(last) == len(value) else [None] * len(value)
        return type(value)(_copy(v, b) for v, b in zip(value, before))
    return copy.deepcopy(value)
