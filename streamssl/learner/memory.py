"""A nearest-neighbour memory over recent labelled events: a head that needs no training."""

from __future__ import annotations

import math

import numpy as np
import torch
from river import base

from .compiled import COMPILED_VALUES, compiled


class NearestNeighbourMemory(base.Base):
    """The last ``capacity`` labelled events (as the heads see them) and their labels.

    A prediction is the distance-weighted vote of the ``k`` nearest stored events
    (weights ``1 / (distance + 1e-6)``), smoothed so that no class has probability zero. It
    learns instantly from each label, which is what a stream with few labels per class needs.

    Examples
    --------
    >>> m = NearestNeighbourMemory(capacity=3, k=1)
    >>> m.add(torch.tensor([[0.0], [1.0], [5.0], [6.0]]), torch.tensor([0, 0, 1, 1]))
    >>> len(m)   # the oldest event went
    3
    >>> m.predict_proba(torch.tensor([[0.4], [5.5]]), n_classes=2).argmax(1).tolist()
    [0, 1]
    """

    def __init__(self, capacity: int = 256, k: int = 5, smoothing: float = 0.01) -> None:
        self.capacity = capacity
        self.k = k
        self.smoothing = smoothing
        self._reset()

    def _reset(self) -> None:
        self.Z: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _on(self, device: torch.device) -> None:
        """Keep the stored events where the queries are (a checkpoint may be restored elsewhere)."""
        if self.Z is not None and self.Z.device != device:
            self.Z, self.y = self.Z.to(device), self.y.to(device)

    def add(self, Z: torch.Tensor, y: torch.Tensor) -> None:
        Z, y = Z.detach()[-self.capacity:], y.detach()[-self.capacity:]
        self._on(Z.device)
        if self.Z is None:
            self.Z = torch.zeros((self.capacity, Z.shape[1]), dtype=Z.dtype, device=Z.device)
            self.y = torch.zeros(self.capacity, dtype=torch.long, device=Z.device)
        idx = (self._next + torch.arange(len(Z), device=Z.device)) % self.capacity
        self.Z[idx] = Z
        self.y[idx] = y.long()
        self._next = (self._next + len(Z)) % self.capacity
        self._size = min(self.capacity, self._size + len(Z))

    def predict_proba(self, Z: torch.Tensor, n_classes: int) -> torch.Tensor:
        if self._size == 0 or n_classes == 0:
            return torch.full((len(Z), n_classes), 1.0 / max(n_classes, 1), device=Z.device)
        self._on(Z.device)
        k = min(self.k, self._size)
        if Z.device.type == "cpu" and Z.numel() <= COMPILED_VALUES:
            S, labels = self._arrays()
            return torch.from_numpy(_votes(Z.detach().numpy(), S[: self._size], labels[: self._size], k, n_classes,
                                           self.smoothing))
        return self._torch_votes(Z, k, n_classes)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored rows and labels as numpy arrays sharing the CPU tensors' memory (each add
        writes into them), made again when the tensors are replaced."""
        kept = getattr(self, "_views", None)
        if kept is None or kept[0] is not self.Z:
            kept = self._views = (self.Z, self.Z.numpy(), self.y.numpy())
        return kept[1], kept[2]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_views", None)  # views of these tensors: a copy makes its own of its own
        return state

    def _torch_votes(self, Z: torch.Tensor, k: int, n_classes: int) -> torch.Tensor:
        """The vote in torch calls, on the device of the rows (a GPU's)."""
        d, i = torch.cdist(Z, self.Z[: self._size]).topk(k, dim=1, largest=False)
        votes = torch.zeros((len(Z), n_classes), device=Z.device).scatter_add_(1, self.y[i], (d + 1e-6).reciprocal_())
        return votes.div_(votes.sum(1, keepdim=True)).mul_(1 - self.smoothing).add_(self.smoothing / n_classes)

    def familiar(self, Z: torch.Tensor, quantile: float) -> torch.Tensor:
        """Whether each row of ``Z`` lies within the stored events' support: as near to its
        nearest stored event as ``quantile`` of the stored events are to their own nearest other
        one (all ``True`` while fewer than two are stored).

        >>> m = NearestNeighbourMemory(capacity=4)
        >>> m.add(torch.tensor([[0.0], [1.0], [2.0], [3.0]]), torch.tensor([0, 0, 1, 1]))
        >>> m.familiar(torch.tensor([[1.5], [3.9], [9.0]]), quantile=0.95).tolist()
        [True, True, False]
        """
        if self._size < 2:
            return torch.ones(len(Z), dtype=torch.bool, device=Z.device)
        self._on(Z.device)
        stored = self.Z[: self._size]
        own = torch.cdist(stored, stored).fill_diagonal_(float("inf")).min(1).values
        radius = torch.quantile(own, quantile)
        return torch.cdist(Z, stored).min(1).values <= radius

    def state_dict(self) -> dict:
        return {"Z": None if self.Z is None else self.Z.clone(), "y": None if self.y is None else self.y.clone(),
                "next": self._next, "size": self._size}

    def load_state_dict(self, state: dict) -> None:
        self._reset()
        self.Z, self.y, self._next, self._size = state["Z"], state["y"], state["next"], state["size"]


@compiled(reassociate=True)
def _votes(Q: np.ndarray, S: np.ndarray, labels: np.ndarray, k: int, n_classes: int,
           smoothing: float) -> np.ndarray:
    """The smoothed, distance-weighted vote of each query row's ``k`` nearest stored rows ``S``
    (Euclidean, in the rows' float32; ties to the earlier slot), as
    :meth:`NearestNeighbourMemory._torch_votes` gives it on a GPU; float32."""
    out = np.empty((Q.shape[0], n_classes), dtype=np.float32)
    squared = np.empty(S.shape[0], dtype=S.dtype)
    near_d = np.empty(k)
    near_i = np.empty(k, dtype=np.int64)
    votes = np.empty(n_classes)
    for r in range(Q.shape[0]):
        for j in range(S.shape[0]):  # a sum per stored row: lanes of the features at once
            total = S.dtype.type(0.0)
            for c in range(S.shape[1]):
                diff = Q[r, c] - S[j, c]
                total += diff * diff
            squared[j] = total
        found = 0
        for j in range(S.shape[0]):  # the k nearest, by insertion
            d = squared[j]
            if found == k and d >= near_d[k - 1]:
                continue
            at = found if found < k else k - 1
            while at > 0 and near_d[at - 1] > d:
                near_d[at], near_i[at] = near_d[at - 1], near_i[at - 1]
                at -= 1
            near_d[at], near_i[at] = d, j
            found = min(found + 1, k)
        votes[:] = 0.0
        for m in range(found):
            votes[labels[near_i[m]]] += 1.0 / (math.sqrt(near_d[m]) + 1e-6)
        total_votes = votes.sum()
        for c in range(n_classes):
            out[r, c] = votes[c] / total_votes * (1.0 - smoothing) + smoothing / n_classes
    return out
