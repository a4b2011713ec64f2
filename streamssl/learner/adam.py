"""Adam for the MLP heads: its state held as torch's ``Adam`` holds it, updated by one kernel.

The heads write out their gradients (:func:`~streamssl.learner.classifier._step_together`), so
they need no ``torch.optim.Adam`` for its ``step()``, only for its state; and building one costs a
process its first import of ``torch._dynamo``: 1.0-1.4 s on this 2-core machine, which a river
user paid on the first ``learn_one`` of a :class:`~streamssl.learner.StreamLearner`. :class:`Adam`
holds the same state (a step count, ``exp_avg`` and ``exp_avg_sq`` per parameter), reads and
writes torch's ``state_dict`` format, so checkpoints are unchanged, and :func:`adam_step` updates
several heads' parameters at once.
"""

from __future__ import annotations

from typing import Sequence

import torch


class Adam:
    """Adam's settings and state for ``params`` (no weight decay, no AMSGrad), as torch's
    ``Adam(params, lr=lr)`` would hold them; stepped by :func:`adam_step`.

    >>> w = torch.zeros(2)
    >>> opt = Adam([w], lr=0.1)
    >>> adam_step([opt], [[torch.tensor([1.0, -1.0])]])  # Adam's first step: lr against the sign
    >>> [round(v, 4) for v in w.tolist()], float(opt.state[0]["step"])
    ([-0.1, 0.1], 1.0)
    >>> theirs = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.1)
    >>> theirs.load_state_dict(opt.state_dict())  # the same format both ways
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]  # per parameter, once stepped

    def settings(self) -> tuple:
        """What heads stepped in one call must share."""
        return self.lr, self.betas, self.eps

    def _start(self) -> None:
        for param, state in zip(self.params, self.state):  # as torch's Adam starts it
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=param.device)  # (fused: there)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def state_dict(self) -> dict:
        """torch's ``Adam.state_dict()`` format (``state`` by parameter index, one group)."""
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0.0, "amsgrad": False,
                 "maximize": False, "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in enumerate(self.state) if s}, "param_groups": [group]}

    def load_state_dict(self, state: dict) -> None:
        """Take a state of :meth:`state_dict`'s or torch's ``Adam.state_dict()`` format."""
        group = state["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"a state for {len(group['params'])} parameters, not {len(self.params)}")
        self.lr, self.betas, self.eps = group["lr"], tuple(group["betas"]), group["eps"]
        saved = state["state"]
        self.state = [{name: torch.as_tensor(value, dtype=torch.float32 if name == "step" else None).to(param.device, copy=True)
                       for name, value in saved.get(key, {}).items()}
                      for key, param in zip(group["params"], self.params)]


def adam_step(optimizers: Sequence[Adam], grads: Sequence[Sequence[torch.Tensor]]) -> None:
    """Adam's update of each optimizer's parameters by its ``grads`` (in its ``params``' order),
    all in one call of torch's fused Adam kernel (``Adam(fused=True)``'s: 9 µs for three heads'
    twelve tensors on this machine, against 137 µs for the eight ``_foreach`` kernels of
    ``Adam(foreach=True)``, which it falls back to where there is no fused kernel; the two differ
    in the last bits). Each tensor's bias corrections come from its own step count; the
    optimizers share their settings (:meth:`Adam.settings`), not their counts."""
    global _FUSED
    lr, (beta1, beta2), eps = optimizers[0].settings()
    params, states, flat = [], [], []
    for opt, own_grads in zip(optimizers, grads):
        if not opt.state[0]:
            opt._start()
        params += opt.params
        states += opt.state
        flat += own_grads
    counts = [state["step"] for state in states]
    exp_avg = [state["exp_avg"] for state in states]
    exp_avg_sq = [state["exp_avg_sq"] for state in states]
    torch._foreach_add_(counts, 1.0)
    if _FUSED:
        try:
            torch._fused_adam_(params, flat, exp_avg, exp_avg_sq, [], counts, lr=lr, beta1=beta1, beta2=beta2,
                               weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
            return
        except (AttributeError, NotImplementedError, RuntimeError):  # no fused kernel for this device/build
            _FUSED = False
    per_tensor = [count.item() for count in counts]
    torch._foreach_lerp_(exp_avg, flat, 1 - beta1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, flat, flat, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sq)
    torch._foreach_div_(denom, [(1 - beta2 ** step) ** 0.5 for step in per_tensor])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avg, denom, [-(lr / (1 - beta1 ** step)) for step in per_tensor])


_FUSED = True  # torch's fused Adam kernel is used until a call finds none
