"""Sharpness and the edge of stability (THEORY.md §8), read off the user's own optimizer.

Gradient descent with step η is stable on a quadratic only while the sharpness λ_max(H) < 2/η;
full-batch training rises to that threshold and hovers there (Cohen et al., ICLR 2021). The
threshold depends on the optimizer, so :func:`stability_rule` reads it from a
``torch.optim`` optimizer's parameter groups:

============================  ===========================  ======================================
optimizer                      quantity                     threshold
============================  ===========================  ======================================
SGD                            λ_max(H)                     2/η  (− weight decay, which adds to H)
SGD, heavy-ball momentum β     λ_max(H)                     (2 + 2β)/(η(1 − dampening))
SGD, Nesterov momentum β       λ_max(H)                     (2 + 2β)/(η(1 + 2β))
Adam / AdamW (β₁, β₂, ε)       λ_max(P⁻¹H), P = √v̂ + ε      (2 + 2β₁)/((1 − β₁)η)  (38/η at β₁ = 0.9)
RMSprop (momentum β)           λ_max(P⁻¹H), P = √v + ε      (2 + 2β)/η
Adagrad                        λ_max(P⁻¹H), P = √Σg² + ε    2/η_t
============================  ===========================  ======================================

For Adam the preconditioned sharpness is the one that settles at its threshold (Cohen et al.
2022, "Adaptive gradient methods at the edge of stability"): v̂ is the bias-corrected second
moment of the optimizer's state, and λ_max(P⁻¹H) = λ_max(P^{-1/2} H P^{-1/2}), the largest
eigenvalue of the symmetric operator :class:`Preconditioned`. Each threshold is that of the
update on a quadratic with P frozen, and the tests check every one against a simulation of the
update on a one-dimensional quadratic.

**Batch sharpness** (Andreyev & Beneventano 2024, "Edge of stochastic stability"): under
mini-batches the full-batch λ_max settles *below* the threshold; what reaches it is the expected
Rayleigh quotient of the mini-batch Hessian along the mini-batch gradient,
E_B[g_Bᵀ H_B g_B / ‖g_B‖²] (with a preconditioner: of P^{-1/2} H_B P^{-1/2} along P^{-1/2} g_B).
:func:`batch_sharpness` averages it over the batches it is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..data import to_device
from ..operators import CurvatureOperator

if TYPE_CHECKING:
    from ..objective import Objective

#: the optimizers :func:`stability_rule` knows (by class name; subclasses count as their base)
KNOWN_OPTIMIZERS: tuple[str, ...] = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")


@dataclass(frozen=True)
class StabilityRule:
    """Which sharpness an optimizer's stability depends on, and its threshold now.

    Args:
        optimizer: the optimizer's class name (or ``"none"``).
        quantity: ``"hessian"`` (λ_max(H)) or ``"preconditioned"`` (λ_max(P⁻¹H)).
        lr: the current learning rate η (None without an optimizer or with several).
        threshold: the stability threshold of ``quantity`` (curvature units), or None.
        rule: the formula, e.g. ``"(2+2β)/η, β=0.9"``.
        reason: why there is no threshold (None when there is one).
        state_key: the optimizer-state key of the preconditioner's second moments (None for SGD).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> r = stability_rule(opt)
        >>> r.quantity, round(r.threshold, 6), r.rule
        ('hessian', 38.0, '(2+2β)/η, β=0.9 (heavy ball)')
    """

    optimizer: str
    quantity: str
    lr: float | None
    threshold: float | None
    rule: str
    reason: str | None = None
    state_key: str | None = None


def _common(groups: list[dict], keys: tuple[str, ...]) -> dict[str, Any] | None:
    first = {k: groups[0].get(k) for k in keys}
    for g in groups[1:]:
        if any(g.get(k) != first[k] for k in keys):
            return None
    return first


def _float(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def stability_rule(optimizer: Any) -> StabilityRule:
    """The sharpness that governs ``optimizer``'s stability, and its threshold at the current lr.

    Args:
        optimizer: a ``torch.optim`` optimizer (SGD, Adam, AdamW, RMSprop, Adagrad; their
            subclasses), any other optimizer, or None.

    Returns:
        A :class:`StabilityRule` (see the module's table); ``threshold`` None with a ``reason``
        for an unknown optimizer, parameter groups with different settings, centered RMSprop or
        Adam's coupled weight decay (which is not a shift of P⁻¹H).

    Example:
        >>> import torch
        >>> w = [torch.zeros(2, requires_grad=True)]
        >>> r = stability_rule(torch.optim.Adam(w, lr=1e-3))
        >>> r.quantity, round(r.threshold), r.rule
        ('preconditioned', 38000, '(2+2β₁)/((1−β₁)η), β₁=0.9 (Adam)')
        >>> stability_rule(torch.optim.SGD(w, lr=0.5)).threshold
        4.0
    """
    if optimizer is None:
        return StabilityRule("none", "hessian", None, None, "", "no optimizer given")
    name = next((c.__name__ for c in type(optimizer).__mro__ if c.__name__ in KNOWN_OPTIMIZERS), type(optimizer).__name__)
    groups = list(getattr(optimizer, "param_groups", []))
    if not groups:
        return StabilityRule(name, "hessian", None, None, "", "the optimizer has no parameter groups")
    if name not in KNOWN_OPTIMIZERS:
        lr = _common(groups, ("lr",))
        return StabilityRule(name, "hessian", None if lr is None else _float(lr["lr"]), None, "",
                             f"no stability threshold known for {name}")
    keys = {"SGD": ("lr", "momentum", "dampening", "nesterov", "weight_decay"),
            "Adam": ("lr", "betas", "eps", "weight_decay"), "AdamW": ("lr", "betas", "eps", "weight_decay"),
            "RMSprop": ("lr", "alpha", "eps", "momentum", "centered"),
            "Adagrad": ("lr", "lr_decay", "eps")}[name]
    g = _common(groups, keys)
    if g is None:
        return StabilityRule(name, "hessian", None, None, "",
                             f"parameter groups differ in {', '.join(keys)}: no single threshold")
    lr = _float(g["lr"])
    if name == "SGD":
        beta, damp, wd = float(g.get("momentum") or 0.0), float(g.get("dampening") or 0.0), float(g.get("weight_decay") or 0.0)
        if beta == 0.0:
            thr, rule = 2.0 / lr, "2/η"
        elif g.get("nesterov"):
            thr, rule = (2 + 2 * beta) / (lr * (1 + 2 * beta)), f"(2+2β)/(η(1+2β)), β={beta:g} (Nesterov)"
        else:
            thr, rule = (2 + 2 * beta) / (lr * (1 - damp)), (f"(2+2β)/η, β={beta:g} (heavy ball)" if damp == 0
                                                             else f"(2+2β)/(η(1−d)), β={beta:g}, d={damp:g}")
        if wd:
            thr, rule = thr - wd, rule + f" − weight decay {wd:g}"
        return StabilityRule(name, "hessian", lr, thr, rule)
    if name in ("Adam", "AdamW"):
        b1 = float(g["betas"][0])
        reason = None
        if name == "Adam" and float(g.get("weight_decay") or 0.0):
            reason = "Adam's coupled weight decay is not a shift of P⁻¹H: threshold without it"
        key = "max_exp_avg_sq" if any(gr.get("amsgrad") for gr in groups) else "exp_avg_sq"
        return StabilityRule(name, "preconditioned", lr, (2 + 2 * b1) / ((1 - b1) * lr),
                             f"(2+2β₁)/((1−β₁)η), β₁={b1:g} ({name})", reason, key)
    if name == "RMSprop":
        if g.get("centered"):
            return StabilityRule(name, "preconditioned", lr, None, "", "centered RMSprop: no threshold", "square_avg")
        beta = float(g.get("momentum") or 0.0)
        return StabilityRule(name, "preconditioned", lr, (2 + 2 * beta) / lr,
                             "2/η" if beta == 0 else f"(2+2β)/η, β={beta:g}", None, "square_avg")
    steps = [_float(s["step"]) for s in optimizer.state.values() if "step" in s]
    t = max(steps) if steps else 0.0
    lr_t = lr / (1 + max(t - 1, 0.0) * float(g.get("lr_decay") or 0.0))
    return StabilityRule(name, "preconditioned", lr_t, 2.0 / lr_t, "2/η_t (Adagrad)", None, "sum")


def preconditioner(optimizer: Any, params: list[torch.Tensor], rule: StabilityRule, *,
                   dtype: torch.dtype, device: torch.device | str) -> torch.Tensor | None:
    """The diagonal P of a preconditioned rule, flat in the order of ``params``.

    Adam/AdamW: P = √(v / (1 − β₂^t)) + ε (bias-corrected second moments, as the update divides
    by them); RMSprop: √v + ε; Adagrad: √(Σg²) + ε. A parameter the optimizer does not update
    gets P = +inf (it does not move, so it takes no part in the stability).

    Args:
        optimizer: the optimizer.
        params: the parameter tensors in the objective's flat order.
        rule: :func:`stability_rule` of the optimizer (quantity ``"preconditioned"``).
        dtype, device: of the result.

    Returns:
        P, shape (dim,), or None when the optimizer holds no state yet (before its first step).

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> opt = torch.optim.Adam([w], lr=0.1, eps=0.0)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> preconditioner(opt, [w], stability_rule(opt), dtype=torch.float64, device="cpu").tolist()  # √v̂ = |g|
        [2.0, 4.0]
    """
    if rule.state_key is None:
        return None
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts = []
    for p in params:
        st = optimizer.state.get(p, {})
        g = groups.get(id(p))
        if g is None:
            parts.append(torch.full((p.numel(),), math.inf, dtype=dtype, device=device))
            continue
        if rule.state_key not in st:
            return None
        v = st[rule.state_key].detach().to(device=device, dtype=dtype).reshape(-1)
        if rule.optimizer in ("Adam", "AdamW"):
            t = _float(st["step"])
            v = v / (1 - float(g["betas"][1]) ** t) if t > 0 else v
        parts.append(v.sqrt() + float(g["eps"]))
    return torch.cat(parts) if parts else None


class Preconditioned(CurvatureOperator):
    """The symmetric operator P^{-1/2} A P^{-1/2} for a diagonal P > 0: its eigenvalues are those of P⁻¹A.

    Args:
        op: the operator A (e.g. the Hessian at a point).
        p: the diagonal of P, shape (dim,), positive (+inf: a frozen coordinate).

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> A = DiagonalOperator(torch.tensor([4.0, 1.0], dtype=torch.float64))
        >>> op = Preconditioned(A, torch.tensor([4.0, 0.25], dtype=torch.float64))
        >>> (op @ torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist()   # P⁻¹A = diag(1, 4)
        [1.0, 4.0]
    """

    def __init__(self, op: Any, p: torch.Tensor) -> None:
        super().__init__(op.dim if hasattr(op, "dim") else int(op.shape[0]), op.dtype, op.device)
        self.inner = op
        self.scale = p.to(device=op.device, dtype=op.dtype).rsqrt()
        self.curvature = f"preconditioned {getattr(op, 'curvature', 'operator')}"

    @property
    def gradient(self) -> torch.Tensor | None:
        """P^{-1/2} g, the gradient in the operator's frame (None when the inner operator has none):
        :func:`landscape.extreme_eigs` tilts its ``"auto"`` start towards it, as for the Hessian (the
        gradient leans on the top eigendirections; on the bench CNN under Adam a cold λ_max(P⁻¹H) at
        5e-2 then takes 3–7 products instead of 5–10)."""
        g = getattr(self.inner, "gradient", None)
        return None if g is None else self.scale * g.to(device=self.scale.device, dtype=self.scale.dtype)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * self.inner.matvec(self.scale * v)


@dataclass(frozen=True)
class BatchSharpness:
    """:func:`batch_sharpness`: the mean Rayleigh quotient and its per-batch values (curvature units).

    Args:
        value: the mean over the batches (None when every batch's gradient was zero).
        values: one Rayleigh quotient per batch (None for a zero gradient).
        n_batches: the batches used.

    Example: see :func:`batch_sharpness`.
    """

    value: float | None
    values: tuple[float | None, ...]
    n_batches: int


def batch_sharpness(obj: Objective, theta: torch.Tensor, batches: list[Any], *,
                    p: torch.Tensor | None = None) -> BatchSharpness:
    """Andreyev & Beneventano's batch sharpness at θ: mean over batches of g_Bᵀ H_B g_B / ‖g_B‖².

    With a preconditioner P (diagonal, shape (dim,)) the quotient is that of P^{-1/2} H_B P^{-1/2}
    along P^{-1/2} g_B, i.e. (g_Bᵀ P⁻¹ H_B P⁻¹ g_B) / (g_Bᵀ P⁻¹ g_B). Each batch costs one gradient
    and one Hessian-vector product of that batch's mean loss (the objective's ``batch_loss``).

    Args:
        obj: a model objective.
        theta: the point, shape (dim,).
        batches: batches as the loop feeds them (moved to the objective's dtype and device here).
        p: the preconditioner's diagonal, or None.

    Returns:
        A :class:`BatchSharpness`.

    Example:
        >>> import torch, landscape as ls
        >>> X = torch.eye(2, dtype=torch.float64); Y = torch.zeros(2, 1, dtype=torch.float64)
        >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss(), (X, Y))
        >>> bs = batch_sharpness(obj, torch.tensor([1.0, 1.0], dtype=torch.float64), [(X, Y)])
        >>> round(bs.value, 12)      # H = (2/n)·XᵀX = I for this batch of n = 2: every quotient is 1
        1.0
    """
    theta = obj.check_theta(theta).detach()
    pinv = None if p is None else (1.0 / p.to(device=theta.device, dtype=theta.dtype))  # 1/inf = 0: frozen
    values: list[float | None] = []
    for batch in batches:
        b = to_device(batch, obj.dtype, obj.device)
        th = theta.clone().requires_grad_(True)
        loss = obj.batch_loss_at(obj.spec.unflatten(th), b)
        (g,) = torch.autograd.grad(loss, th, create_graph=True)
        gd = g.detach()
        w = gd if pinv is None else pinv * gd         # P⁻¹g
        denom = float(torch.dot(gd, w))                # gᵀP⁻¹g
        if not (denom > 0 and math.isfinite(denom)) or not g.requires_grad:
            values.append(None if not denom > 0 else 0.0)
            continue
        (hw,) = torch.autograd.grad(g, th, w)
        values.append(float(torch.dot(w, hw)) / denom)
    good = [v for v in values if v is not None]
    return BatchSharpness(sum(good) / len(good) if good else None, tuple(values), len(values))
