"""Noisy linear regression: the escape study's control, a global minimum whose per-example
gradients are large and cancel."""
from __future__ import annotations

import torch
from torch import nn

from .base import Problem, init_reference, seeded_module, stall_detector
from .registry import register


@register("noisy_regression")
def _noisy_regression(d: int = 5, n: int = 200, noise: float = 1.0, seed: int = 0) -> Problem:
    """Linear regression y = w·x + b + noise·ε with heavy noise: at the least-squares optimum the
    mean gradient is 0 but every example's gradient is large (cancellation κ ≈ 0 at a true global
    minimum) — the failure-mode control. Loss: MSE (mean of (ŷ − y)²); global value in closed form
    (least squares on [X, 1]): ‖r‖²/n with r the least-squares residual. Convex: the only stall is
    the global minimum."""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, 1, generator=g, dtype=torch.float64)
    y = X @ w + 0.5 + noise * torch.randn(n, 1, generator=g, dtype=torch.float64)
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(A, y, driver="gelsd").solution  # gelsy (the default) is not deterministic
    L_star = float(((A @ sol - y) ** 2).mean())

    def make_model(seed: int = 0) -> nn.Module:
        return seeded_module(lambda: nn.Sequential(nn.Linear(d, 1)), seed, torch.float64)

    return Problem(
        name="noisy_regression",
        description=(f"noisy linear regression, d = {d}, {n} examples, noise σ = {noise}, MSE; convex, global value "
                     "by least squares; at the optimum the per-example gradients are large and cancel (κ ≈ 0)"),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, y), reference=init_reference(make_model),
        global_min=L_star, dtype=torch.float64, reduction="mean", reference_kind="init",
        hints={"lr": 0.1, "span": 1.0, "normalization": "none", "eps": 0.0,
               "stall": stall_detector(**{"window": 20, "rel_tol": 1e-4, "grad_tol": 1e-3}),
               # the escape study's run length (the zoo's was 400 / 250 steps)
               "max_steps": 700, "quick_steps": 600, "trainer": {"escape_horizon": 500},
               "study": {"kind": "global_minimum", "cause": "cancelling",
                         "certificate": "least-squares optimum of a noisy regression: loss ‖r‖²/n = L*, "
                                        "per-example gradients 2 r_i (x_i, 1) large",
                         "critical_value": L_star}},
        extra={"lstsq": sol.reshape(-1)},
    )
