"""The methods of the plateau study as torch optimisers for the plain loop (:func:`.core.train`).

Baselines are torch's own (:func:`.core.make_optimizer`): ``gd`` (the case's plain GD or SGD),
``momentum`` (heavy ball, β = 0.9, at lr·(1 − β): the same step as GD once the velocity settles,
so a difference is momentum's, not a larger step) and ``adam`` (lr per case, not tuned).

The SynaPrune rules run **always on** (every step, SYNAPRUNE.md "Report both the always-on and the
at-stalls modes"), on the per-example gradients of the step's batch (the whole data for a
full-batch case, the minibatch for an online one):

- ``rms``: θ ← θ − lr·A, A_j = sign(μ_j)·(mean_i g_ij²)^{1/2} (tie-break: the sign of the largest
  |g_ij|, :func:`synaprune.rules.aggregate`);
- ``devarg``: A_j = g_{i*j}, i* = argmax_i |g_ij| (signed);
- ``gd-len-rms`` and ``gd-len-devarg`` (the step-length controls): a GD step along −∇L/‖∇L‖ of the
  length the rule's step would have at the same point, lr·‖A‖, at every step. A faster escape of
  the rule that its control matches is explained by step length; one it does not match is a
  direction effect.
  (The project's ``gd-matched`` control belongs to the Trainer's escape phases, which this plain
  loop does not run; this is its always-on counterpart.)

With one example per step (the committee machine's online SGD) A = g for both rules: rms and
devarg *are* SGD there, so the study does not run them on that case.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from landscape.errors import NonFiniteError
from landscape.fast_stats import fast_aggregate
from synaprune.rules import aggregate

from .core import Batch, make_optimizer

RULES = ("rms", "devarg", "gd-len-rms", "gd-len-devarg")
BASELINES = ("gd", "momentum", "adam")
MOMENTUM = 0.9


def per_example_grads(model: nn.Module, loss_fn: Callable, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Unscaled per-example gradients of ``loss_fn(model(x_i), y_i)`` (vmap), float64.

    Args:
        model: the model (its parameters in ``named_parameters()`` order).
        loss_fn: a mean-reduced criterion ``(outputs, targets)``.
        X, Y: the batch, n examples along dimension 0.

    Returns:
        G, shape (n, dim), float64.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(1, 1, bias=False).double()
        >>> _ = m.weight.data.fill_(0.0)
        >>> X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> per_example_grads(m, torch.nn.MSELoss(), X, X).flatten().tolist()   # d/dw (w x - x)^2 at w = 0
        [-2.0, -2.0]
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, p, (x.unsqueeze(0),)), y.unsqueeze(0))

    g = vmap(grad(one), in_dims=(None, 0, 0))(params, X, Y)
    return torch.cat([g[k].reshape(X.shape[0], -1) for k in params], 1).to(torch.float64)


def rule_direction(model: nn.Module, loss_fn: Callable, batch: Batch, rule: str) -> torch.Tensor:
    """The aggregated direction A of ``rule`` (``"rms"``, ``"devarg"`` or ``"gd"``) on ``batch``:
    the matrix-product path of :func:`landscape.fast_stats.fast_aggregate` when the model is
    eligible, else per-example gradients (:func:`per_example_grads`) and
    :func:`synaprune.rules.aggregate` (both agree to round-off).

    Args:
        model: the model. loss_fn: mean-reduced criterion. batch: (X, Y).
        rule: ``"rms"`` (p = 2), ``"devarg"`` or ``"gd"``.

    Returns:
        A, shape (dim,), float64, on the per-example (mean) scale.
    """
    X, Y = batch
    names = tuple(k for k, _ in model.named_parameters())
    shapes = tuple(p.shape for _, p in model.named_parameters())
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    A = fast_aggregate(model, names, shapes, loss_fn, X, Y, theta, rule, p=2.0)
    if A is None:
        A = aggregate(per_example_grads(model, loss_fn, X, Y), rule, p=2)
    return A


class RuleOptimizer(torch.optim.Optimizer):
    """An always-on SynaPrune rule (or its step-length control) as a torch optimiser.

    ``step()`` reads the batch the loop used from ``holder["batch"]`` (the study's loop wraps the
    case's ``batch(t)`` to put it there) and the parameters' ``.grad`` (the batch gradient, for
    the controls' direction).

    Args:
        model: the model trained. loss_fn: its mean-reduced criterion.
        holder: a dict whose ``"batch"`` is the current step's (X, Y).
        lr: the step size. rule: one of :data:`RULES`.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(1, 1, bias=False).double(); _ = m.weight.data.fill_(0.0)
        >>> X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64); h = {"batch": (X, -X)}
        >>> opt = RuleOptimizer(m, torch.nn.MSELoss(), h, lr=0.1, rule="devarg")
        >>> opt.step(); m.weight.item()    # both examples' gradient is +2: θ ← 0 − 0.1·2
        -0.2
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, holder: dict, *, lr: float, rule: str) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        super().__init__(list(model.parameters()), {"lr": float(lr)})
        self.model, self.loss_fn, self.holder, self.rule = model, loss_fn, holder, rule
        self.last_length = math.nan

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 - documented on the class
        params = list(self.model.parameters())
        lr = self.param_groups[0]["lr"]
        if not all(bool(torch.isfinite(p).all()) for p in params):
            return   # a diverged run: the loop sees the non-finite loss and records it as diverged
        try:
            with torch.enable_grad():
                A = rule_direction(self.model, self.loss_fn, self.holder["batch"], self.rule.removeprefix("gd-len-"))
        except NonFiniteError:   # per-example gradients overflowed: the step is not finite
            for p in params:
                p.fill_(math.nan)
            self.last_length = math.inf
            return
        if self.rule.startswith("gd-len-"):
            g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
            g = g.to(torch.float64)
            gn = float(g.norm())
            d = g * (float(A.norm()) / gn) if gn > 0 else torch.zeros_like(g)
        else:
            d = A
        self.last_length = lr * float(d.norm())
        i = 0
        for p in params:
            k = p.numel()
            p.add_(d[i:i + k].view_as(p).to(p.dtype), alpha=-lr)
            i += k


def make_method(name: str, model: nn.Module, loss_fn: Callable, holder: dict, settings: dict[str, Any]
                ) -> torch.optim.Optimizer:
    """The optimiser of method ``name`` for a case whose base settings are ``settings``.

    Args:
        name: one of :data:`BASELINES` or :data:`RULES`.
        model, loss_fn, holder: as for :class:`RuleOptimizer`.
        settings: the case's optimiser settings (``lr``; ``adam_lr`` for Adam).

    Returns:
        A torch optimiser over ``model.parameters()``.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 1)
        >>> type(make_method("momentum", m, None, {}, {"lr": 0.1})).__name__
        'SGD'
    """
    lr = float(settings["lr"])
    if name == "gd":
        return make_optimizer(model.parameters(), {"name": "sgd", "lr": lr})
    if name == "momentum":
        return make_optimizer(model.parameters(), {"name": "momentum", "lr": lr * (1 - MOMENTUM),
                                                   "momentum": MOMENTUM})
    if name == "adam":
        return make_optimizer(model.parameters(), {"name": "adam", "lr": float(settings["adam_lr"])})
    return RuleOptimizer(model, loss_fn, holder, lr=lr, rule=name)
