"""find_critical_point / nearest_critical against analytic critical points (THEORY.md §1, §4)."""
import math

import pytest
import torch

import landscape as ls
from landscape.deep_linear import DeepLinearProblem


def _fn_obj(f, dim=2):
    return ls.Objective.from_function(f, torch.zeros(dim, dtype=torch.float64))


def _frye(v):
    return v[0] ** 4 / 4 - 3 * v[0] ** 2 + 9 * v[0] + 0.9 * v[1] ** 4 + 5 * v[1] ** 2 + 40


def _perturbed(prob, S, scale, seed):
    cp = prob.critical_point(S, gauge_seed=seed)
    noise = torch.randn(prob.dim, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    return cp, cp.theta + scale * noise / torch.linalg.vector_norm(noise)


@pytest.mark.parametrize("widths", [[2], [3, 3]])
def test_refinement_lands_on_an_analytic_critical_value(widths):
    prob = DeepLinearProblem.random(4, 3, widths, 32, seed=1)
    obj = prob.objective()
    values = [prob.critical_value(S) for S in prob.index_sets()]
    for i, S in enumerate(prob.index_sets()):
        cp, start = _perturbed(prob, S, 1e-4, i)
        res = ls.find_critical_point(obj, start)
        assert res.converged and res.method == "newton-mr" and not res.gradient_flat
        # Frye's absolute cut-off and the relative one at the point reached (the smaller of the two)
        assert res.grad_norm ** 2 <= 1e-10 and 0 < res.grad_tol <= 1e-5 and res.grad_norm <= res.grad_tol
        # the loss is an analytic critical value ½(tr YᵀY − Σ_{i∈S} λ_i), to 1e-9 relative
        gap = min(abs(res.loss - v) for v in values)
        assert gap <= 1e-9 * abs(cp.loss), S
        assert res.distance == pytest.approx(float(torch.linalg.vector_norm(res.theta - start)))
        # independent check of criticality: the gradient by finite differences of the loss formula
        assert float(torch.linalg.vector_norm(obj.grad(res.theta))) == pytest.approx(res.grad_norm, rel=1e-6, abs=1e-14)
        d = res.to_dict()
        assert "theta" not in d and d["converged"] is True


def test_gradient_norm_method_converges_on_a_strict_saddle():
    prob = DeepLinearProblem.random(4, 3, [2], 32, seed=1)
    cp, start = _perturbed(prob, (0, 2), 1e-4, 0)
    res = ls.find_critical_point(prob.objective(), start, method="gradient-norm", max_iter=5000)
    assert res.converged and res.method == "gradient-norm"
    assert abs(res.loss - cp.loss) <= 1e-9 * cp.loss


@pytest.mark.parametrize("method", ["newton-mr", "gradient-norm"])
def test_frye_gradient_flat_point_is_reported_not_converged(method):
    obj = _fn_obj(_frye)
    res = ls.find_critical_point(obj, torch.tensor([math.sqrt(2.0), 0.0], dtype=torch.float64), method=method)
    assert not res.converged and res.gradient_flat
    assert res.grad_norm == pytest.approx(9 - 4 * math.sqrt(2))
    assert res.flatness == pytest.approx(1.0, abs=1e-6)
    assert "gradient-flat" in res.message
    # away from it the search finds the true critical point (−3, 0), a strict minimum
    res = ls.find_critical_point(obj, torch.tensor([-2.0, 1.0], dtype=torch.float64), method=method)
    assert res.converged and not res.gradient_flat
    assert torch.allclose(res.theta, torch.tensor([-3.0, 0.0], dtype=torch.float64), atol=1e-5)


def test_minres_matches_the_pseudo_inverse():
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64)).Q
    lam = torch.tensor([5, 3, 2, -1, -4, 1e-3, 0, 0, 0, 0.5, 7, -2], dtype=torch.float64)
    H = Q @ torch.diag(lam) @ Q.T
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x, resid, k = ls.critical.minres_solve(lambda v: H @ v, b, scale=7.0)
    ref = torch.linalg.pinv(H, rtol=1e-10) @ b   # minimum-norm least-squares solution
    assert torch.allclose(x, ref, atol=1e-9)
    assert resid == pytest.approx(float(torch.linalg.vector_norm(H @ ref - b) / torch.linalg.vector_norm(b)), abs=1e-9)


def test_bad_input():
    obj = _fn_obj(_frye)
    z = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="method"):
        ls.find_critical_point(obj, z, method="bfgs")
    with pytest.raises(ValueError, match="grad_tol"):
        ls.find_critical_point(obj, z, grad_tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ls.find_critical_point(obj, z, max_iter=-1)
    with pytest.raises(ValueError, match="non-finite"):
        ls.find_critical_point(obj, torch.tensor([math.nan, 0.0], dtype=torch.float64))


def test_nearest_critical_of_perturbed_h1_points_has_the_predicted_index():
    prob = DeepLinearProblem.random(4, 3, [2], 32, seed=1)
    obj = prob.objective()
    for i, S in enumerate(prob.index_sets()):
        cp, start = _perturbed(prob, S, 1e-4, i)
        nc = ls.nearest_critical(obj, start, global_min=prob.global_min(), seed=i)
        kind, index, _ = prob.predicted(S)
        assert nc.converged and not nc.gradient_flat
        assert nc.loss == pytest.approx(cp.loss, rel=1e-9)
        assert (nc.kind, nc.index) == (kind, index), S
        assert nc.loss_gap == pytest.approx(prob.loss_of(start) - nc.loss, rel=1e-6, abs=1e-14)
        d = nc.to_dict()
        for key in ("kind", "index", "loss", "distance", "grad_norm", "converged", "gradient_flat", "probe_radius",
                    "degenerate", "tolerances"):
            assert key in d
        assert d["tolerances"]["search_grad_tol"] == pytest.approx(1e-5)


def test_nearest_critical_of_the_h2_zero_plateau_is_non_strict():
    # 1e-2 from W = 0 of an H = 2 net the Hessian is indefinite (λ_min ~ −ε) while ‖g‖ ~ ε²: the point
    # itself looks like a strict saddle, the critical point it approaches is the non-strict W = 0.
    prob = DeepLinearProblem.random(4, 3, [3, 3], 32, seed=1)
    obj = prob.objective()
    for seed in range(3):
        _, start = _perturbed(prob, (), 1e-2, seed)
        nc = ls.nearest_critical(obj, start, global_min=prob.global_min(), seed=seed)
        assert nc.converged and nc.kind == "non_strict_saddle" and nc.index == 0
        assert nc.probe_order == pytest.approx(3.0, abs=0.1)
        assert nc.loss == pytest.approx(prob.critical_value(()), rel=1e-9)
        assert nc.degenerate and nc.probe_radius > 0


def test_nearest_critical_at_a_gradient_flat_point_is_inconclusive():
    obj = _fn_obj(_frye)
    nc = ls.nearest_critical(obj, torch.tensor([math.sqrt(2.0), 0.0], dtype=torch.float64))
    assert nc.kind == "inconclusive" and not nc.converged and nc.gradient_flat
    assert "did not converge" in nc.reason and "gradient-flat" in nc.reason
    nc = ls.nearest_critical(obj, torch.tensor([-2.5, 0.3], dtype=torch.float64))
    assert nc.kind == "minimum" and nc.converged and nc.lambda_min == pytest.approx(10.0, rel=1e-6)


def test_a_point_at_the_global_value_is_a_global_minimum_whatever_the_probe_resolves():
    # A GD stall of relu_teacher (a realizable two-unit ReLU teacher under MSE: L* = 0; seed 4,
    # step 977). Its refined point has loss 1.7e-32 and ‖g‖ 8e-17 (round-off: no Newton step lowers
    # it). Nothing lies below L*, so it is a global minimiser whatever the probe resolves at the
    # 1e-32 scale. (This test used to assert the note of the "descent is bounded by the gap" rule and
    # that the local tests alone do not say "minimum": both rested on the probe reading the removed
    # ½t²·dᵀHd of a round-off-level curvature as "order-2 descent" of the last 1e-32 — a machine-
    # dependent outcome (issue 21 item 5) and a wrong one: the probe's second-order threshold now
    # covers the round-off band, and a loss ≥ 0 at 1.7e-32 is a minimum.)
    from analyses.problems import get_problem

    theta = torch.tensor([float.fromhex(h) for h in (
        "0x1.ff8da1206b482p-1", "0x1.ff8da1206b465p-2", "-0x1.336f523442986p-1", "0x1.003219d637801p+0",
        "0x1.993e1a8055d45p-3", "-0x1.99e9c2f058ca8p-4", "0x1.00393c38ce0e3p+0", "0x1.ff9bdfebefd69p-1")],
        dtype=torch.float64)
    p = get_problem("relu_teacher")
    obj = p.objective(4)
    assert p.global_min == 0.0
    nc = ls.nearest_critical(obj, theta, global_min=0.0, seed=4)
    assert nc.converged and nc.loss < 1e-30
    assert nc.kind == "global_minimum"
    # without the global value: a minimum or, where the probe cannot resolve a direction, inconclusive;
    # never a saddle (the loss is a mean of squares: nothing lies below 0)
    local = ls.classify_point(obj, nc.theta, seed=4)
    assert local.kind in ("minimum", "inconclusive") and local.index == 0

def test_descent_below_global_tol_at_the_global_value_is_a_global_minimum_with_a_note():
    # x² − 1e-10·y⁴ at 0 with global_min = 0: the probe resolves order-4 descent along y, far above
    # round-off (at radius t the loss is exactly −1e-10·t⁴: no cancellation) but below global_tol
    # (1e-10·0.1⁴ = 1e-14 within the probe's largest radius, against 10·√ε·Λ·s² ≈ 3e-7). The local
    # tests say non_strict_saddle; at the global value that descent is bounded by the gap: a
    # global minimum, and the note says why.
    obj = _fn_obj(lambda v: v[0] ** 2 - 1e-10 * v[1] ** 4)
    z = torch.zeros(2, dtype=torch.float64)
    local = ls.classify_point(obj, z)
    assert local.kind == "non_strict_saddle" and local.probe_order == pytest.approx(4.0, abs=0.05)
    rep = ls.classify_point(obj, z, global_min=0.0)
    assert rep.kind == "global_minimum"
    assert any("any descent is bounded by that gap" in n for n in rep.notes)
