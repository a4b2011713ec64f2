"""Self-supervised losses as pure functions of tensors.

Each takes embeddings (or logits) of one batch, rows aligned across views, and returns a scalar.
The objectives in :mod:`streamssl.ssl.objectives` own the networks and call these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (n, d) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between a reconstruction and its clean target; with ``weight`` (0/1 or
    any non-negative mask of the same shape), the mean over the weighted entries only.

    >>> reconstruction_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item()
    2.5
    >>> reconstruction_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), torch.tensor([[0.0, 1.0]])).item()
    4.0
    """
    if reconstruction.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(reconstruction.shape)} vs {tuple(target.shape)}")
    if weight is None:
        return torch.mean((reconstruction - target) ** 2)
    return torch.sum(weight * (reconstruction - target) ** 2) / weight.sum().clamp_min(1.0)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2,
             negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Contrastive InfoNCE (NT-Xent), symmetric in the two views.

    Row ``i`` of ``z1`` must pick out row ``i`` of ``z2`` among all rows of ``z2`` (in-batch
    negatives) and the rows of ``negatives`` (a memory bank), by cosine similarity divided by
    ``temperature``; and the same with the views swapped. Invariant to the scale of the
    embeddings.

    Two orthogonal pairs at temperature 1: each row sees logits (1, 0), so the loss is
    log(1 + e⁻¹):

    >>> z = torch.eye(2)
    >>> round(info_nce(z, z, temperature=1.0).item(), 4)
    0.3133
    """
    _check_pair(z1, z2)
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    target = torch.arange(len(a), device=a.device)
    extra = None if negatives is None or len(negatives) == 0 else F.normalize(negatives, dim=1)

    def one_way(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        logits = q @ k.T
        if extra is not None:
            logits = torch.cat([logits, q @ extra.T], dim=1)
        return F.cross_entropy(logits / temperature, target)

    return 0.5 * (one_way(a, b) + one_way(b, a))


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss: ``2 − 2·cos(p, z)``, averaged over rows (0 when aligned, 4 when
    opposite). The caller decides where the gradient stops (``z.detach()``).

    >>> negative_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [0.0, -1.0]])).item()
    2.0
    """
    _check_pair(p, z)
    return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """The three VICReg terms, each averaged over the two views where it applies:

    - ``invariance``: mean squared distance between the views' embeddings;
    - ``variance``: hinge ``max(0, gamma − std)`` of each dimension's std over the batch, averaged;
    - ``covariance``: squared off-diagonal entries of each view's covariance matrix, summed and
      divided by the dimension.

    The first dimension has std √2 (no hinge), the second std 0 (hinge ≈ 1 − √eps = 0.99):

    >>> z1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    >>> t = vicreg_terms(z1, z1)
    >>> {k: round(v.item(), 3) for k, v in t.items()}
    {'invariance': 0.0, 'variance': 0.495, 'covariance': 0.0}
    """
    _check_pair(z1, z2)
    if len(z1) < 2:
        raise ValueError("VICReg needs at least two rows (a standard deviation over the batch)")
    d = z1.shape[1]

    def variance(z: torch.Tensor) -> torch.Tensor:
        return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()

    def covariance(z: torch.Tensor) -> torch.Tensor:
        z = z - z.mean(dim=0)
        cov = (z.T @ z) / (len(z) - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return (off ** 2).sum() / d

    return {
        "invariance": F.mse_loss(z1, z2),
        "variance": 0.5 * (variance(z1) + variance(z2)),
        "covariance": 0.5 * (covariance(z1) + covariance(z2)),
    }


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, invariance: float = 25.0, variance: float = 25.0,
                covariance: float = 1.0, gamma: float = 1.0) -> torch.Tensor:
    """VICReg: the weighted sum of :func:`vicreg_terms` (weights as in the paper by default).

    >>> z1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    >>> round(vicreg_loss(z1, z1).item(), 3)
    12.375
    """
    t = vicreg_terms(z1, z2, gamma)
    return invariance * t["invariance"] + variance * t["variance"] + covariance * t["covariance"]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
                      student_temperature: float = 0.1, teacher_temperature: float = 0.04) -> torch.Tensor:
    """DINO's cross-entropy between the teacher's centred, sharpened distribution (no gradient)
    and the student's: ``−Σ softmax((t − c)/τₜ) · log softmax(s/τₛ)``, averaged over rows.

    Uniform teacher over two prototypes, student certain of the first: half of the mass
    costs ``log(1 + e⁻¹⁰)``, the other half ``10 + log(1 + e⁻¹⁰)``:

    >>> s = torch.tensor([[1.0, 0.0]])
    >>> round(distillation_loss(s, torch.zeros(1, 2), torch.zeros(2)).item(), 4)
    5.0
    """
    _check_pair(student, teacher)
    if student_temperature <= 0 or teacher_temperature <= 0:
        raise ValueError("temperatures must be positive")
    target = F.softmax((teacher - center) / teacher_temperature, dim=1).detach()
    return -(target * F.log_softmax(student / student_temperature, dim=1)).sum(dim=1).mean()


def latent_prediction_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """JEPA's loss: mean squared error between predicted and target latents, each layer-normalised
    (so the scale of the target cannot shrink to zero to please the predictor); the target
    carries no gradient.

    >>> round(latent_prediction_loss(torch.tensor([[1.0, -1.0]]), torch.tensor([[5.0, -5.0]])).item(), 6)
    0.0
    """
    _check_pair(predicted, target)
    d = predicted.shape[1]
    return F.mse_loss(F.layer_norm(predicted, (d,)), F.layer_norm(target.detach(), (d,)))
