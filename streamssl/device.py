"""Choosing the torch device, once."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` inside the block and restored after (``None``: left as
    they are). torch's setting is the process's; a library that changed it for good would change
    its user's other work.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when present, otherwise the CPU; anything else is taken as given.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_tensor(X, device: torch.device) -> torch.Tensor:
    """A float32 tensor on ``device`` from a numpy array: one host-to-device copy per micro-batch.
    On the CPU a float32 array is shared, as ``torch.as_tensor`` shares it (converted by numpy:
    a few µs less per event than torch's conversion)."""
    if isinstance(X, np.ndarray) and X.ndim and X.flags.writeable:
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    else:
        t = torch.as_tensor(X, dtype=torch.float32)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a generator's state; a state saved on another device type (CPU vs CUDA
    generators differ) is skipped, leaving the generator as seeded: a run then continues
    correctly but not bit-for-bit."""
    try:
        generator.set_state(state.cpu())
    except RuntimeError:
        pass


class GeneratorPickling:
    """For objects that keep a ``torch.Generator`` in ``self.generator``: it is pickled as its
    device and state bytes. A generator pickles a fresh state tensor whose storage is named by
    its address, so pickling one object twice gave different bytes (river's checks compare them).

    >>> class Holder(GeneratorPickling):
    ...     def __init__(self):
    ...         self.generator = torch.Generator().manual_seed(0)
    >>> h = Holder()
    >>> h.__getstate__() == h.__getstate__()
    True
    >>> copy = Holder.__new__(Holder)
    >>> copy.__setstate__(h.__getstate__())
    >>> bool((copy.generator.get_state() == h.generator.get_state()).all())
    True
    """

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        g = state["generator"]
        state["generator"] = (str(g.device), g.get_state().cpu().numpy().tobytes())
        return state

    def __setstate__(self, state: dict) -> None:
        device, data = state["generator"]
        generator = torch.Generator(device=device)
        restore_generator(generator, torch.frombuffer(bytearray(data), dtype=torch.uint8))
        self.__dict__.update({**state, "generator": generator})
