"""Issue 22 item 7 (classification cost): the gradient test before the spectrum, the flatness from T̄, the
default budgets above AUTO_DENSE_MAX_DIM and a search cut to its budget.

References are independent of the code under test: the dense path's eigendecomposition, closed-form
spectra of diagonal quadratics, and products counted where they are computed (``calls``, tests/conftest.py).
"""
import json
import math

import pytest
import torch

import landscape as ls
from analyses.bench import cli as bench_cli
from analyses.cli import build_parser
from landscape.classify.gradient_test import gradient_flatness
from landscape.defaults import (AUTO_DENSE_MAX_DIM, CLASSIFY_MAX_HVP, FLATNESS_KRYLOV_STEPS, GRADIENT_TEST_STEPS,
                                NEAREST_MAX_HVP, SCALE_BOUND_FACTOR)
from landscape.point import PointState

F64 = torch.float64


def _diag_cubic(a: torch.Tensor):
    """f = ½Σ a_i v_i² + ⅓Σ v_i³: H(θ) = diag(a + 2θ), g = a⊙θ + θ²."""
    return ls.Objective.from_function(lambda v: 0.5 * (a * v * v).sum() + (v ** 3).sum() / 3, torch.zeros_like(a))


def test_a_point_that_is_not_critical_is_decided_before_the_spectrum(calls):
    dim = 400
    a = torch.linspace(-3.0, 5.0, dim, dtype=F64)
    obj = _diag_cubic(a)
    theta = 0.01 * torch.cos(torch.arange(dim, dtype=F64))
    lam = a + 2 * theta                                  # the exact spectrum at θ
    rep = ls.classify_point(obj, theta, method="lanczos")
    assert rep.kind == "not_critical" and rep.tolerances["gradient_test"] == "early"
    assert rep.n_hvp == calls[0] == GRADIENT_TEST_STEPS + FLATNESS_KRYLOV_STEPS
    # Ritz values lie inside the spectrum: λ_min / λ_max reported are bounds, the index a lower bound
    assert float(lam.min()) - 1e-12 <= rep.lambda_min and rep.lambda_max <= float(lam.max()) + 1e-12
    assert 0 <= rep.index <= int((lam < 0).sum()) and not rep.index_exact
    # the bound that decided holds against the true scale, and the dense path agrees
    assert SCALE_BOUND_FACTOR * rep.tolerances["spectral_scale"] >= float(lam.abs().max())
    assert ls.classify_point(obj, theta, method="dense").kind == "not_critical"


def test_near_critical_points_fall_through_to_the_full_recipe_with_the_dense_verdict():
    dim = 60
    a = torch.linspace(-1.0, 2.0, dim, dtype=F64)
    a[a.abs() < 0.05] = 0.5
    obj = _diag_cubic(a)
    g = torch.Generator().manual_seed(3)
    for scale in (1e-9, 1e-2):        # critical by the relative test (strict saddle) / not critical
        theta = scale * torch.randn(dim, generator=g, dtype=F64)
        lz = ls.classify_point(obj, theta, method="lanczos")
        dn = ls.classify_point(obj, theta, method="dense")
        assert lz.kind == dn.kind, (scale, lz.kind, dn.kind)
    assert lz.kind == "not_critical"
    assert ls.classify_point(obj, 1e-9 * torch.ones(dim, dtype=F64), method="lanczos").kind == "strict_saddle"


def test_gradient_flatness_from_the_tridiagonal_is_the_exact_share_outside_the_range():
    # f = Σ_{i<4} c_i v_i² + v_4⁴ + v_5⁴ at θ = (1, …, 1): H = diag(2c, 12, 12) … at θ_4 = θ_5 = 0 the last two
    # directions are null and the gradient there is what we put: f += b·v_4 (g_4 = b, H_44 = 0)
    c = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=F64)
    b = 0.7
    obj = ls.Objective.from_function(lambda v: (c * v[:4] ** 2).sum() + v[4] ** 4 + v[5] ** 4 + b * v[4],
                                     torch.zeros(6, dtype=F64))
    theta = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0], dtype=F64)
    g = torch.cat([2 * c, torch.tensor([b, 0.0], dtype=F64)])
    exact = b / float(g.norm())          # the share of g in ker H = span(e_4, e_5)
    st = PointState.first_order(obj, theta)
    assert gradient_flatness(st, 1e-10, []) == pytest.approx(exact, rel=1e-10)
    assert ls.classify_point(obj, theta, method="lanczos").gradient_flatness == pytest.approx(exact, rel=1e-10)


def test_the_default_budget_applies_above_auto_dense_max_dim_and_says_so(calls):
    dim = AUTO_DENSE_MAX_DIM + 10
    a = torch.linspace(-1.0, 2.0, dim, dtype=F64)
    obj = _diag_cubic(a)
    theta = 1e-10 * torch.ones(dim, dtype=F64)          # critical: the spectrum would be needed
    rep = ls.classify_point(obj, theta)
    assert rep.kind == "inconclusive" and f"HVP budget of {CLASSIFY_MAX_HVP} spent" in rep.reason
    assert rep.n_hvp == calls[0] <= CLASSIFY_MAX_HVP
    calls[0] = 0
    # not critical: decided within the budget, at the cost of the gradient test and the flatness estimate
    far = 1e-2 * torch.ones(dim, dtype=F64)
    rep = ls.classify_point(obj, far)
    assert rep.kind == "not_critical" and rep.n_hvp == calls[0] == GRADIENT_TEST_STEPS + FLATNESS_KRYLOV_STEPS
    nc = ls.nearest_critical(obj, far)
    assert nc.n_hvp_total <= NEAREST_MAX_HVP


def test_a_search_given_60_products_takes_a_step_with_a_minres_cut_to_what_is_left(calls):
    dim = 300
    a = torch.linspace(0.5, 2.0, dim, dtype=F64)
    obj = _diag_cubic(a)
    theta = 0.05 * torch.ones(dim, dtype=F64)
    res = ls.find_critical_point(obj, theta, max_hvp=60)
    assert res.n_hvp == calls[0] <= 60 and res.n_iter >= 1 and not res.converged
    assert "HVP budget of 60 spent" in res.message
    assert res.grad_norm < res.start_grad_norm     # the truncated Newton step made progress
    # unlimited: converges to the minimum at 0 (H = diag(a) > 0 there; the other critical points are at −a)
    full = ls.find_critical_point(obj, theta, max_hvp=None)
    # near 0, H ⪰ 0.5·I, so the distance to the minimum is at most ‖g‖/0.5 (to first order)
    assert full.converged and float(full.theta.norm()) <= 2.01 * full.grad_norm
    assert math.isfinite(full.grad_tol) and full.grad_tol <= 1e-5


def test_bench_classify_cnn_plumbing_prints_seconds_and_products(monkeypatch, tmp_path, capsys):
    rows = [{"point": "init", "steps": 0, "analysis": a, "kind": k, "reason": r, "grad_norm": 0.128, "wall_s": w,
             "cpu_s": c, "n_hvp": n, "n_grad": ng}
            for a, k, r, w, c, n, ng in (("classify_point", "not_critical", None, 9.6, 5.5, 62, None),
                                         ("nearest_critical", "inconclusive", "HVP budget of 400 spent", 40.0, 31.0,
                                          400, 7))]
    fake = {"threads": 1, "loadavg": "1.0", "dim": 3818, "targets": {"classify_point": 10.0, "nearest_critical": 30.0},
            "rows": rows}
    seen = {}
    monkeypatch.setattr(bench_cli, "bench_classify_cnn", lambda **kw: seen.update(kw) or fake)
    out = tmp_path / "c.json"
    args = build_parser(["bench"]).parse_args(["bench", "--classify-cnn", "--quick", "--json", str(out)])
    assert bench_cli.run(args) == 0
    text = capsys.readouterr().out
    assert "3818 parameters" in text and "<= 10 s CPU: ok" in text and "<= 30 s CPU: OVER" in text
    assert seen == {"late_steps": 0, "threads": 1} and json.loads(out.read_text())["rows"][1]["n_hvp"] == 400
