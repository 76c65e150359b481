"""Issue 22 item 7: the critical-point search's cut-off is relative at the point reached.

Analytic truth: mean logistic loss on linearly separable data has no finite critical point (the loss falls
to 0 only as ‖w‖ → ∞ along a separating direction); on non-separable data it is strictly convex and
coercive, with exactly one critical point, its minimum — found here independently by plain Newton's
method with the closed-form gradient and Hessian. A degenerate critical point (x⁴ + y²) is still found:
the Newton steps contract by 2/3 there.
"""
import pytest
import torch

import landscape as ls

F64 = torch.float64


def _logistic(separable: bool):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=F64)
    y = torch.sign(X @ torch.tensor([1.0, -2.0, 0.5], dtype=F64))
    if not separable:
        y[:6] = -y[:6]   # six labels flipped: no separating hyperplane through 0 is left
    obj = ls.Objective.from_function(lambda w: torch.nn.functional.softplus(-y * (X @ w)).mean(),
                                     torch.zeros(3, dtype=F64))
    return obj, X, y


def _newton_reference(X, y, steps=60):
    w = torch.zeros(X.shape[1], dtype=F64)
    for _ in range(steps):
        m = y * (X @ w)
        s = torch.sigmoid(-m)
        grad = -(X * (y * s)[:, None]).mean(0)
        H = (X[:, :, None] * X[:, None, :] * (s * (1 - s))[:, None, None]).mean(0)
        w = w - torch.linalg.solve(H, grad)
    return w


def test_separable_logistic_has_no_critical_point_and_the_search_says_diverging():
    obj, X, y = _logistic(separable=True)
    assert bool((y * (X @ torch.tensor([1.0, -2.0, 0.5], dtype=F64)) > 0).all())     # separable indeed
    nc = ls.nearest_critical(obj, torch.zeros(3, dtype=F64))
    assert nc.kind == "inconclusive" and not nc.converged
    assert nc.search.diverging and "no critical point found, diverging" in nc.reason
    # Frye's absolute cut-off alone was met (that is what used to accept the point "at infinity") ...
    assert nc.grad_norm < 1e-5
    # ... and the loss kept falling towards its infimum 0 far from the start
    assert nc.loss < 1e-3 * nc.search.start_loss and nc.distance > 10


def test_non_separable_logistic_converges_to_the_newton_reference_minimum():
    obj, X, y = _logistic(separable=False)
    w_ref = _newton_reference(X, y)
    nc = ls.nearest_critical(obj, torch.zeros(3, dtype=F64))
    assert nc.converged and not nc.search.diverging and nc.kind == "minimum"
    # H ⪰ λ_min·I near the minimum: ‖w − w*‖ ≤ ‖g‖/λ_min (plus the reference's own round-off)
    assert float((nc.theta - w_ref).norm()) <= nc.grad_norm / nc.lambda_min + 1e-12
    assert nc.grad_norm <= nc.search.grad_tol <= 1e-5


def test_a_degenerate_critical_point_is_still_found():
    obj = ls.Objective.from_function(lambda v: v[0] ** 4 + v[1] ** 2, torch.zeros(2, dtype=F64))
    res = ls.find_critical_point(obj, torch.tensor([0.1, 0.1], dtype=F64))
    assert res.converged and not res.diverging
    assert res.rate == pytest.approx(2 / 3, abs=0.05)       # Newton's contraction at an order-4 point
    # the geometric extrapolation of the remaining distance is exact here: x_k shrinks by 2/3 per step
    assert res.est_distance == pytest.approx(float(res.theta.norm()), rel=1e-3)
