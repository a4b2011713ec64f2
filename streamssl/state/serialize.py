"""Serialising learner state without ever unpickling arbitrary objects.

A state is a tree of plain Python data, numpy arrays, torch tensors and river drift
detectors, trees and linear models. Tensors are turned into numpy arrays on the way out. Loading uses an
unpickler that resolves only an allow-list of globals (numpy's array reconstruction,
three containers from ``collections``, ``random.Random``, ``functools.partial`` over what
is allowed, ``float`` and ``int``, and classes defined in river's ``drift``, ``stats``,
``tree``, ``forest``, ``metrics``, ``proba``, ``linear_model``, ``optim`` and ``multiclass``
packages that are river estimators, running statistics, tree nodes or splitters, and river's
``VectorDict`` of weights, and the classes of the learner's parts named in its params), never a
dotted name; anything else in a file is refused.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ..errors import StreamSSLError

_TENSOR = "__tensor__"

_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"), ("collections", "deque"), ("collections", "defaultdict"),
    ("random", "Random"), ("functools", "partial"), ("builtins", "float"), ("builtins", "int"),
    ("river._river_rust.drift", "AdaptiveWindowing"), ("river._river_rust.stats", "RsEWMean"),
    ("river._river_rust.vectordict", "VectorDict"),  # a linear model's weights: numbers by feature
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    # Our drift detectors: plain-data state by construction (see their __getstate__).
    ("streamssl.drift.detectors", "PageHinkley"), ("streamssl.drift.detectors", "HDDM_W"),
    ("streamssl.drift.two_sample", "MMDTest"), ("streamssl.drift.cusum", "CUSUM"),
    # The learner's parts, named in its params as (class, settings): classes, built from settings.
    ("streamssl.learner.temporal", "TemporalContext"), ("streamssl.ssl.continual", "Encoder"),
    ("streamssl.learner.classifier", "MLPHead"), ("streamssl.learner.memory", "NearestNeighbourMemory"),
    ("streamssl.learner.combine", "EWA"), ("streamssl.learner.combine", "Select"),
    ("streamssl.learner.calibration", "TemperatureCalibrator"), ("streamssl.learner.pseudo", "PseudoLabelPolicy"),
    ("streamssl.learner.duel", "Duel"), ("streamssl.drift.monitor", "DriftMonitor"),
    ("streamssl.learner.linear", "OnlineLinear"), ("streamssl.learner.forest", "BatchForest"),
    ("streamssl.learner.fold", "FeatureFold"),
}


class UnsafeStateError(StreamSSLError):
    """A state file refers to something that loading will not build."""


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return {_TENSOR: obj.detach().cpu().numpy()}
    if isinstance(obj, dict):
        return type(obj)((k, _to_plain(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) else {
            k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_plain(v) for v in obj)
    return obj


def _from_plain(obj: Any, device: torch.device | None) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            t = torch.from_numpy(np.array(obj[_TENSOR]))
            return t if device is None else t.to(device)
        items = ((k, _from_plain(v, device)) for k, v in obj.items())
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, list):
        return [_from_plain(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_from_plain(v, device) for v in obj)
    return obj


_RIVER_STATE_MODULES = ("river.drift.", "river.stats.", "river.tree.", "river.forest.", "river.metrics.",
                        "river.proba.", "river.linear_model.", "river.optim.", "river.multiclass.")


def _is_river_state_class(module: str, obj: Any) -> bool:
    """River's estimators (drift detectors, trees, forests, linear models and their optimisers,
    one-vs-rest wrappers, metrics, distributions), running
    statistics, and the nodes and splitters trees are made of; nothing else from river."""
    from river import base, stats
    from river.tree.base import Branch, Leaf
    from river.tree.splitter.base import Splitter

    if not isinstance(obj, type) or getattr(obj, "__module__", None) != module:
        return False
    return issubclass(obj, (base.Base, base.DriftDetector, base.BinaryDriftDetector, stats.base.Statistic, Branch,
                            Leaf, Splitter))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        refused = UnsafeStateError(f"refusing to load {module}.{name}: not an allowed state type")
        if "." in name:  # protocol 4 resolves dotted names attribute by attribute: never
            raise refused
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(_RIVER_STATE_MODULES):
            obj = super().find_class(module, name)
            if _is_river_state_class(module, obj):
                return obj
        raise refused


def dumps(state: Any) -> bytes:
    """Bytes of a state tree (tensors become numpy arrays).

    >>> loads(dumps({"w": torch.ones(2), "n": 3}))
    {'w': tensor([1., 1.]), 'n': 3}
    """
    return pickle.dumps(_to_plain(state), protocol=5)


def loads(data: bytes, device: torch.device | None = None) -> Any:
    """The state tree from :func:`dumps`, with tensors back on ``device``; refuses other objects.

    >>> import os
    >>> loads(pickle.dumps(os.system))
    Traceback (most recent call last):
    ...
    streamssl.state.serialize.UnsafeStateError: refusing to load posix.system: not an allowed state type
    """
    try:
        tree = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafeStateError:
        raise
    except Exception as exc:  # any malformed payload: truncated, not a pickle, wrong shapes
        raise UnsafeStateError(f"unreadable state ({type(exc).__name__}: {exc})") from None
    return _from_plain(tree, device)
