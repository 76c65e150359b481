"""Two-unit ReLU teacher–student problems of the escape study: at the teacher (a global minimum
whose per-example gradients vanish), at a spurious local minimum with one dead unit (cancelling
gradients) and at the flat all-dead spurious minimum (vanishing gradients)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Problem, seeded_module, stall_detector
from .registry import register


def _relu_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs x ~ N(0, I₂) (n, 2) and the two-unit ReLU teacher y = Σ_k relu(t_k·x + c_k) (n, 1)."""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    T = torch.tensor([[1.0, 0.5], [-0.6, 1.0]], dtype=torch.float64)
    c = torch.tensor([0.2, -0.1], dtype=torch.float64)
    y = torch.relu(X @ T.T + c).sum(1, keepdim=True)
    return X, y, T, c


def relu_active_fit(X: torch.Tensor, y: torch.Tensor, start: torch.Tensor, max_iter: int = 50
                    ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The one-active-unit critical point of ``y ≈ a·relu(w·x + b)``: the fixed point of "fit
    u = a·(w, b) by least squares on the examples where u·(x, 1) > 0, recompute that set".

    Args:
        X: inputs (n, 2).
        y: targets (n, 1).
        start: the initial u (3,) whose active set starts the iteration.
        max_iter: at most this many active-set updates.

    Returns:
        ``(u (3,), active mask (n,), margin)`` with margin = min_i |u·(x_i, 1)| / ‖u‖ (the
        activation pattern cannot change under perturbations of θ smaller than about that).

    Raises:
        ValueError: the active set did not settle within ``max_iter`` updates.
    """
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
    mask = (Xt @ start) > 0
    for _ in range(max_iter):
        u = torch.linalg.lstsq(Xt[mask], y[mask], driver="gelsd").solution.reshape(-1)  # gelsy: not deterministic
        new = (Xt @ u) > 0
        if torch.equal(new, mask):
            margin = float((Xt @ u).abs().min() / u.norm())
            return u, mask, margin
        mask = new
    raise ValueError("the active-set iteration did not settle")


def _relu_problem(name: str, start: str, n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU student (Linear(2, 2) with biases → ReLU → Linear(2, 1) without bias) of the
    two-unit teacher :func:`_relu_data`, MSE (mean). Realizable: the global value is 0.

    ``start``: ``"teacher"`` the teacher's weights (global minimum; residuals and so every
    per-example gradient vanish); ``"spurious"`` unit 1 dead (w = 0, b = −1: relu is 0 on every
    example, so its three parameters get no gradient and small moves leave the loss unchanged) and
    unit 0 the least-squares fit on its own active set (:func:`relu_active_fit`): gradient 0, and
    the loss depends locally only on u = a·(w, b) through a convex quadratic, so the point is a
    (non-strict) local minimum with loss L_s = mean over examples of the residual² > 0 = L*: a
    spurious local minimum whose per-example gradients (residual × input on the active set) are
    large and cancel; ``"dead"`` both units dead: the loss is constant, mean y², on a
    neighbourhood (a flat spurious local minimum) and every per-example gradient is exactly 0.
    """
    X, y, T, c = _relu_data(n, seed)

    def make_model(seed: int = 0) -> nn.Module:
        return seeded_module(lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1, bias=False)),
                              seed, torch.float64)

    if start == "teacher":
        W, b, a = T.clone(), c.clone(), torch.ones(2, dtype=torch.float64)
        kind, cause, loss, margin = "global_minimum", "vanishing", 0.0, None
        cert = "the teacher's weights: loss 0 = L*, every residual and per-example gradient 0"
    elif start == "spurious":
        u, mask, margin = relu_active_fit(X, y, torch.cat([T[0], c[:1]]))
        s = float(u.norm()) ** 0.5
        W = torch.stack([u[:2] / s, torch.zeros(2, dtype=torch.float64)])
        b = torch.tensor([float(u[2]) / s, -1.0], dtype=torch.float64)
        a = torch.tensor([s, 0.5], dtype=torch.float64)
        Xt = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
        pred = torch.where(mask, Xt @ u, torch.zeros(n, dtype=torch.float64))
        loss = float(((pred - y.reshape(-1)) ** 2).mean())
        kind, cause = "minimum", "cancelling"
        cert = (f"unit 1 dead, unit 0 the least-squares fit on its {int(mask.sum())} active examples (pattern "
                f"margin {margin:.3g}): a spurious local minimum, loss {loss:.6g} > L* = 0")
    elif start == "dead":
        W = torch.zeros(2, 2, dtype=torch.float64)
        b = torch.tensor([-1.0, -1.0], dtype=torch.float64)
        a = torch.tensor([0.5, 0.5], dtype=torch.float64)
        loss, margin = float((y ** 2).mean()), 1.0
        kind, cause = "minimum", "vanishing"
        cert = f"both units dead: the loss is constant, mean y² = {loss:.6g}, near the point; every g_i = 0"
    else:
        raise ValueError(f"start must be 'teacher', 'spurious' or 'dead', got {start!r}")
    ref = torch.cat([W.reshape(-1), b, a])
    stall = {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}
    return Problem(
        name=name, description=f"two-unit ReLU teacher-student (biases), {n} Gaussian inputs in 2-D, MSE, started near "
                               f"{cert}",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, y), reference=lambda seed=0: ref.clone(),
        global_min=0.0, dtype=torch.float64, reduction="mean", reference_kind=kind, reference_loss=loss,
        hints={"lr": 0.15, "span": 1.0, "normalization": "none", "eps": 1e-3, "stall": stall_detector(**stall),
               "max_steps": 1100, "quick_steps": 800, "trainer": {"escape_horizon": 500},
               "study": {"kind": kind, "cause": cause, "certificate": cert, "critical_value": loss}},
        extra={"teacher": {"T": T, "c": c}, "margin": margin})


@register("relu_teacher")
def _relu_teacher(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near the teacher: a global minimum whose per-example gradients vanish."""
    p = _relu_problem("relu_teacher", "teacher", n, seed)
    # the loss decays geometrically to its round-off floor and the scale-free detector fires only
    # there (step ≈ 980): run long enough for that stall's horizon to end inside the run
    p.hints.update(max_steps=1600, quick_steps=1600)
    return p


@register("relu_spurious")
def _relu_spurious(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near a spurious local minimum (one dead unit): cancelling gradients."""
    return _relu_problem("relu_spurious", "spurious", n, seed)


@register("relu_dead")
def _relu_dead(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near the all-dead flat spurious local minimum: vanishing gradients."""
    return _relu_problem("relu_dead", "dead", n, seed)
