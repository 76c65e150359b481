"""The XOR 2-2-1 sigmoid net near W = 0: a degenerate critical point and a long plateau."""
from __future__ import annotations

import torch
from torch import nn

from .base import Problem, seeded_module, stall_detector
from .registry import register


@register("xor")
def _xor(dtype: torch.dtype = torch.float64) -> Problem:
    """The XOR 2-2-1 sigmoid net (with biases) under MSE, started near all-zero weights.

    W = 0 is a critical point (every hidden unit outputs ½, the output ½; the four errors ±½ sum to
    zero and the hidden units carry no signal) with loss ¼ and a PSD Hessian of rank 1 (eigenvalue
    3/16, along the output offset b₂ + ½(v₁ + v₂)): a degenerate point. Near W = 0 the output is, to
    leading order, ½ plus an affine function of x (σ(z) = ½ + z/4 + O(z³)), and no affine function fits
    XOR better than the constant ½, so the loss can fall only through higher-order terms: a long
    plateau. The XOR surface is known for such plateaus and saddles (Sprinkhuizen-Kuyper & Boers
    1999; Hamey 1998: the 2-2-1 XOR surface has no strict local minima at finite weights, its traps
    lie at infinity). Global value: the infimum 0, approached as the
    weights grow (a sigmoid output never reaches 0 or 1 exactly).
    """
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)

    def make_model(seed: int = 0) -> nn.Module:
        return seeded_module(lambda: nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()),
                              seed, dtype)

    return Problem(
        name="xor", description="XOR 2-2-1 sigmoid net (biases), 4 examples, MSE, started near W = 0 (loss ¼, a "
                                "plateau); global value 0 (an infimum, reached only as weights grow)",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=lambda seed=0: torch.zeros(9, dtype=torch.float64), global_min=0.0, dtype=dtype,
        reduction="mean", reference_kind="degenerate", reference_loss=0.25,
        hints={"lr": 2.0, "span": 4.0, "normalization": "none", "eps": 0.1,
               "stall": stall_detector(**{"window": 50, "rel_tol": 1e-3, "grad_tol": 1e-3}), "max_steps": 2000,
               "quick_steps": 1000})
