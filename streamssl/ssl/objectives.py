"""Self-supervised objectives: modules that turn a batch of events into a loss.

Each objective owns the encoder it trains plus whatever extra networks it needs (a decoder,
projector, predictor, momentum target, prototypes), declares how many augmented ``views`` of a
batch it uses, and keeps the online embedding of the last batch (``embedding``, detached) and,
where the loss works in another space, the online projection there (``projection``) for the
collapse measures. One training step is::

    loss = objective(x, generator)        # forward: views, networks, loss
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    objective.after_step(step)            # momentum targets, centres

:data:`OBJECTIVES` names them for the command line and config (``--objective``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import OBJECTIVE_NAMES, losses
from .augment import Mask, Resample, View, default_view
from .encoder import MLPEncoder, mlp
from .heads import BYOLProjectionHead, DINOHead, ExpanderHead
from .memory_bank import MemoryBank
from .momentum import ema_update, frozen_copy, momentum_schedule


class Objective(nn.Module):
    """The common part: the encoder, the view, the last embedding, a no-op ``after_step``."""

    views = 1
    """Augmented views of each batch the loss compares."""

    def __init__(self, encoder: MLPEncoder, view: View | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.view = view if view is not None else default_view()
        self.embedding: torch.Tensor | None = None
        self.projection: torch.Tensor | None = None

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        self.embedding = h.detach()
        return h

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        self.projection = z.detach()
        return z

    def after_step(self, step: int) -> None:
        """Called after each optimiser step (``step`` counts from 0)."""


class DenoisingAutoencoder(Objective):
    """Corrupt the input (SCARF resampling, then masking), encode it through the bottleneck,
    decode it, and score the reconstruction of the *clean* input (MSE over all entries).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> dae = DenoisingAutoencoder(MLPEncoder(4, hidden=8, dim=2))
    >>> loss = dae(torch.randn(16, 4))
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """

    def __init__(self, encoder: MLPEncoder, corruption: float = 0.3, mask: float = 0.1,
                 view: View | None = None) -> None:
        if not 0.0 <= corruption <= 1.0 or not 0.0 <= mask <= 1.0:
            raise ValueError("corruption and mask are probabilities in [0, 1]")
        super().__init__(encoder, view if view is not None else View([Resample(corruption), Mask(mask)]))
        self.decoder = mlp([encoder.dim, encoder.hidden, encoder.n_features])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return losses.reconstruction_loss(self.decoder(self._embed(self.view(x, generator))), x)


class MaskedAutoencoder(Objective):
    """Hide a share of the entries (set to their running mean, 0), encode and decode, and score
    the reconstruction of the hidden entries only.

    >>> _ = torch.manual_seed(0)
    >>> MaskedAutoencoder(MLPEncoder(4, hidden=8, dim=2), ratio=0.5)(torch.randn(16, 4)).item() > 0
    True
    """

    def __init__(self, encoder: MLPEncoder, ratio: float = 0.3) -> None:
        if not 0.0 < ratio < 1.0:
            raise ValueError("ratio is the share of entries hidden, in (0, 1)")
        super().__init__(encoder, View([]))
        self.ratio = ratio
        self.decoder = mlp([encoder.dim, encoder.hidden, encoder.n_features])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        hidden = (torch.rand(x.shape, generator=generator, device=x.device) < self.ratio).to(x.dtype)
        reconstruction = self.decoder(self._embed(x * (1 - hidden)))
        return losses.reconstruction_loss(reconstruction, x, weight=hidden)


class InfoNCE(Objective):
    """Contrastive: two augmented views of each event, projected, must pick each other out among
    the batch's other events (in-batch negatives) and, with ``bank_size > 0``, a memory bank of
    past projections.

    >>> _ = torch.manual_seed(0)
    >>> obj = InfoNCE(MLPEncoder(4, hidden=8, dim=2), bank_size=32)
    >>> obj(torch.randn(16, 4)).item() > 0, len(obj.bank.negatives())
    (True, 16)
    """

    views = 2

    def __init__(self, encoder: MLPEncoder, temperature: float = 0.2, bank_size: int = 0,
                 projection: int = 32, view: View | None = None) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        super().__init__(encoder, view)
        self.temperature = temperature
        self.projector = BYOLProjectionHead(encoder.dim, encoder.hidden, projection)
        self.bank = MemoryBank(bank_size, projection) if bank_size > 0 else None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z1 = self._project(self.projector(self._embed(self.view(x, generator))))
        z2 = self.projector(self.encoder(self.view(x, generator)))
        negatives = self.bank.negatives() if self.bank is not None else None
        loss = losses.info_nce(z1, z2, self.temperature, negatives)
        if self.bank is not None and self.training:
            self.bank.add(F.normalize(z2.detach(), dim=1))
        return loss


class BYOL(Objective):
    """Non-contrastive: an online network (encoder, projector, predictor) regresses, for each
    view, the target network's projection of the other view (:func:`~.losses.negative_cosine`).

    The target is an EMA of the online encoder and projector (momentum from
    :func:`~.momentum.momentum_schedule`), and carries no gradient. ``ema=False`` is SimSiam:
    the target is the online network itself, behind a stop-gradient. ``predictor=False`` and
    ``stop_gradient=False`` remove the two parts that keep the method from collapsing (without
    the stop-gradient the target side is the online network, gradient flowing through both).

    >>> _ = torch.manual_seed(0)
    >>> obj = BYOL(MLPEncoder(4, hidden=8, dim=2))
    >>> loss = obj(torch.randn(16, 4)); obj.after_step(0)
    >>> 0 <= loss.item() <= 4
    True
    """

    views = 2

    def __init__(self, encoder: MLPEncoder, projection: int = 32, predictor: bool = True,
                 stop_gradient: bool = True, ema: bool = True, momentum: tuple[float, float] = (0.99, 0.999),
                 momentum_steps: int = 2000, view: View | None = None) -> None:
        super().__init__(encoder, view)
        self.projector = BYOLProjectionHead(encoder.dim, encoder.hidden, projection)
        self.predictor = BYOLProjectionHead(projection, encoder.hidden, projection) if predictor else nn.Identity()
        self.stop_gradient, self.ema = stop_gradient, ema and stop_gradient
        self.momentum, self.momentum_steps = momentum, momentum_steps
        if self.ema:
            self.target_encoder = frozen_copy(encoder)
            self.target_projector = frozen_copy(self.projector)

    def _target(self, v: torch.Tensor) -> torch.Tensor:
        if self.ema:
            with torch.no_grad():
                return self.target_projector(self.target_encoder(v))
        z = self.projector(self.encoder(v))
        return z.detach() if self.stop_gradient else z

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        v1, v2 = self.view(x, generator), self.view(x, generator)
        p1 = self.predictor(self._project(self.projector(self._embed(v1))))
        p2 = self.predictor(self.projector(self.encoder(v2)))
        return 0.5 * (losses.negative_cosine(p1, self._target(v2)) + losses.negative_cosine(p2, self._target(v1)))

    def after_step(self, step: int) -> None:
        if self.ema:
            m = momentum_schedule(step, *self.momentum, steps=self.momentum_steps)
            ema_update(self.target_encoder, self.encoder, m)
            ema_update(self.target_projector, self.projector, m)


class SimSiam(BYOL):
    """BYOL without the momentum target: the stop-gradient alone keeps it from collapsing.

    >>> hasattr(SimSiam(MLPEncoder(4, hidden=8, dim=2)), "target_encoder")
    False
    """

    def __init__(self, encoder: MLPEncoder, projection: int = 32, view: View | None = None) -> None:
        super().__init__(encoder, projection, ema=False, view=view)


class VICReg(Objective):
    """Two views, expanded, pulled together (invariance) while each dimension keeps a spread over
    the batch (variance) and dimensions stay decorrelated (covariance).

    >>> _ = torch.manual_seed(0)
    >>> VICReg(MLPEncoder(4, hidden=8, dim=2))(torch.randn(16, 4)).item() > 0
    True
    """

    views = 2

    def __init__(self, encoder: MLPEncoder, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0, expansion: int = 64, view: View | None = None) -> None:
        super().__init__(encoder, view)
        self.weights = {"invariance": invariance, "variance": variance, "covariance": covariance}
        self.expander = ExpanderHead(encoder.dim, encoder.hidden, expansion)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z1 = self._project(self.expander(self._embed(self.view(x, generator))))
        z2 = self.expander(self.encoder(self.view(x, generator)))
        return losses.vicreg_loss(z1, z2, **self.weights)


class JEPA(Objective):
    """Joint-embedding prediction: the features are split into ``groups`` groups (a seeded random
    partition, fixed at construction, so that neighbouring columns are not always together); for
    each event one group is hidden, the online encoder embeds the visible rest (the context),
    and a predictor, told which group was hidden, predicts the latent that an EMA target
    encoder gives the hidden group alone. Nothing is reconstructed in input space.

    >>> _ = torch.manual_seed(0)
    >>> obj = JEPA(MLPEncoder(8, hidden=8, dim=4), groups=4)
    >>> loss = obj(torch.randn(16, 8)); obj.after_step(0)
    >>> sorted(obj.group_of.tolist()), loss.item() > 0
    ([0, 0, 1, 1, 2, 2, 3, 3], True)
    """

    def __init__(self, encoder: MLPEncoder, groups: int = 4, momentum: tuple[float, float] = (0.99, 0.999),
                 momentum_steps: int = 2000, view: View | None = None) -> None:
        super().__init__(encoder, view if view is not None else View([]))
        self.groups = max(1, min(groups, encoder.n_features))
        order = torch.randperm(encoder.n_features)  # seeded by the caller's torch seed
        self.register_buffer("group_of", order % self.groups)
        self.predictor = mlp([encoder.dim + self.groups, encoder.hidden, encoder.dim])
        self.target_encoder = frozen_copy(encoder)
        self.momentum, self.momentum_steps = momentum, momentum_steps

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        hide = torch.randint(0, self.groups, (len(x),), generator=generator, device=x.device)
        hidden = (self.group_of[None, :] == hide[:, None]).to(x.dtype)
        context = self._embed(self.view(x * (1 - hidden), generator))
        with torch.no_grad():
            target = self.target_encoder(x * hidden)
        which = F.one_hot(hide, self.groups).to(x.dtype)
        return losses.latent_prediction_loss(self.predictor(torch.cat([context, which], dim=1)), target)

    def after_step(self, step: int) -> None:
        ema_update(self.target_encoder, self.encoder, momentum_schedule(step, *self.momentum, steps=self.momentum_steps))


class DINO(Objective):
    """Self-distillation: a student (encoder + prototype head) matches, for each view, the
    teacher's distribution over prototypes for the other view. The teacher is an EMA of the
    student; its logits are centred (a running mean, against one prototype taking over) and
    sharpened (low temperature, against a uniform answer).

    >>> _ = torch.manual_seed(0)
    >>> obj = DINO(MLPEncoder(4, hidden=8, dim=2), prototypes=8)
    >>> loss = obj(torch.randn(16, 4)); obj.after_step(0)
    >>> loss.item() > 0, obj.center.shape
    (True, torch.Size([8]))
    """

    views = 2

    def __init__(self, encoder: MLPEncoder, prototypes: int = 64, student_temperature: float = 0.1,
                 teacher_temperature: float = 0.04, center_momentum: float = 0.9,
                 momentum: tuple[float, float] = (0.99, 0.999), momentum_steps: int = 2000,
                 view: View | None = None) -> None:
        super().__init__(encoder, view)
        self.head = DINOHead(encoder.dim, encoder.hidden, prototypes=prototypes)
        self.teacher_encoder, self.teacher_head = frozen_copy(encoder), frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(prototypes))
        self.temperatures = (student_temperature, teacher_temperature)
        self.center_momentum = center_momentum
        self.momentum, self.momentum_steps = momentum, momentum_steps

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        v1, v2 = self.view(x, generator), self.view(x, generator)
        s1, s2 = self._project(self.head(self._embed(v1))), self.head(self.encoder(v2))
        with torch.no_grad():
            t1, t2 = self.teacher_head(self.teacher_encoder(v1)), self.teacher_head(self.teacher_encoder(v2))
        loss = 0.5 * (losses.distillation_loss(s1, t2, self.center, *self.temperatures)
                      + losses.distillation_loss(s2, t1, self.center, *self.temperatures))
        if self.training:
            with torch.no_grad():
                batch_center = torch.cat([t1, t2]).mean(dim=0)
                self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
        return loss

    def after_step(self, step: int) -> None:
        m = momentum_schedule(step, *self.momentum, steps=self.momentum_steps)
        ema_update(self.teacher_encoder, self.encoder, m)
        ema_update(self.teacher_head, self.head, m)


OBJECTIVES: dict[str, type[Objective]] = {
    "denoising": DenoisingAutoencoder,
    "masked": MaskedAutoencoder,
    "infonce": InfoNCE,
    "byol": BYOL,
    "simsiam": SimSiam,
    "vicreg": VICReg,
    "jepa": JEPA,
    "dino": DINO,
}
"""Objectives by the name ``--objective`` and ``learner.objective`` take."""
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES


def make_objective(name: str, encoder: MLPEncoder, **settings) -> Objective:
    """The objective called ``name`` around ``encoder``, with its settings.

    >>> make_objective("vicreg", MLPEncoder(4, hidden=8, dim=2), invariance=10.0).weights["invariance"]
    10.0
    >>> make_objective("sgd", MLPEncoder(4))
    Traceback (most recent call last):
    ...
    ValueError: unknown objective 'sgd'; choose one of denoising, masked, infonce, byol, simsiam, vicreg, jepa, dino
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](encoder, **settings)
