"""Issue 22 item 7 (the classifier's part): an analysis given an HVP budget stops within it and says so.

The products are counted independently of :mod:`landscape.budget`, by wrapping the Hessian
operator's own product (the ``calls`` fixture of tests/conftest.py).
"""
import pytest
import torch

import landscape as ls
from landscape.budget import BudgetExhausted, charge_hvp, hvp_budget

F64 = torch.float64


def _problem(dim: int, seed: int = 0):
    a = torch.linspace(-1.0, 2.0, dim, dtype=F64)
    obj = ls.Objective.from_function(lambda v: (a * v * v).sum() + (v * v).sum() ** 2, torch.zeros(dim, dtype=F64))
    theta = 1e-3 * torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return obj, theta


def test_a_classification_given_20_hvps_stops_at_20_and_says_so(calls):
    obj, theta = _problem(300)
    theta = 1e-5 * theta  # critical by the gradient test (‖g‖ ≈ 4e-7 < 1e-5·Λ): the spectrum is needed
    rep = ls.classify_point(obj, theta, method="lanczos", max_hvp=20)
    assert rep.kind == "inconclusive"
    assert "HVP budget of 20 spent" in rep.reason and rep.reason in rep.notes
    assert rep.n_hvp == calls[0] == 20
    # without the budget the same classification needs more (and decides)
    calls[0] = 0
    full = ls.classify_point(obj, theta, method="lanczos")
    assert full.kind != "inconclusive" and full.n_hvp == calls[0] > 20


def test_a_dense_hessian_larger_than_the_budget_is_refused_before_it_is_built():
    obj, theta = _problem(30)
    rep = ls.classify_point(obj, theta, method="dense", max_hvp=20)
    assert rep.kind == "inconclusive" and "a dense Hessian (30 products)" in rep.reason
    assert rep.n_hvp == 0 and rep.loss == pytest.approx(obj.loss(theta))
    # with room for it, a dense classification is charged dim per Hessian
    ok = ls.classify_point(obj, torch.zeros(30, dtype=F64), method="dense", max_hvp=1000)
    assert ok.kind == "strict_saddle" and ok.n_hvp % 30 == 0 and 30 <= ok.n_hvp <= 1000


def test_nearest_critical_spends_one_budget_on_search_and_classification(calls):
    obj, _ = _problem(300)
    theta = 0.3 * torch.ones(300, dtype=F64)
    nc = ls.nearest_critical(obj, theta, max_hvp=20)
    assert nc.kind == "inconclusive" and "HVP budget of 20 spent" in nc.reason
    assert nc.n_hvp_total == calls[0] <= 20 and nc.n_hvp <= nc.n_hvp_total
    assert "HVP budget of 20 spent" in nc.search.message


def test_budgets_nest_and_refuse_before_charging():
    with hvp_budget(5) as outer:
        with hvp_budget() as inner:
            charge_hvp(4)
            with pytest.raises(BudgetExhausted):
                charge_hvp(2)
        assert (outer.used, inner.used) == (4, 4)
    with pytest.raises(ValueError, match="max_hvp"):
        ls.classify_point(*_problem(3), max_hvp=-1)
