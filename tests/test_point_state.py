"""A point's state is computed once (issue 20): at most one Hessian operator per point θ in a classification.

Before the layout change a Lanczos-path classify_point built the Hessian operator at one θ up to
five times (the eigensolver, the Newton step, the curvature change, the probe, the Krylov
complement), each a full gradient pass that keeps its graph. The operator's constructor is
counted per distinct θ (by the bytes of θ).
"""
from __future__ import annotations

import collections

import pytest
import torch

import landscape as ls
from landscape.deep_linear import DeepLinearProblem
from landscape.operators import hessian as hessian_module
from landscape.point import PointState, loss_grad_dense_hessian

F64 = torch.float64


@pytest.fixture
def builds(monkeypatch):
    counts: collections.Counter = collections.Counter()
    real = hessian_module.HessianOperator.__init__

    def counting(self, obj, theta, **kw):
        real(self, obj, theta, **kw)
        counts[self.theta.cpu().numpy().tobytes()] += 1

    monkeypatch.setattr(hessian_module.HessianOperator, "__init__", counting)
    return counts


def _fn(f, dim):
    return ls.Objective.from_function(f, torch.zeros(dim, dtype=F64))


def _deep_linear_near_saddle():
    prob = DeepLinearProblem.random(4, 3, [3, 3], 32, seed=1)
    cp = prob.critical_point(prob.index_sets()[3], gauge_seed=0)
    noise = torch.randn(prob.dim, generator=torch.Generator().manual_seed(100), dtype=F64)
    return prob.objective(), cp.theta + 1e-7 * noise / noise.norm(), "strict_saddle"


CASES = {
    # Newton continuation with in-band eigenvalues judged at its end (x⁴ + y⁴ − 1.9x²y² + z² + z³ near 0)
    "continuation": lambda: (_fn(lambda v: v[0] ** 4 + v[1] ** 4 - 1.9 * v[0] ** 2 * v[1] ** 2 + v[2] ** 2
                                 + v[2] ** 3, 3), torch.tensor([2e-5, 0.0, 0.0], dtype=F64), None),
    # the classification redone at the continuation's end θ_K: ½x² + (x + a)y² at (−2a, 0), a minimum at 0
    "newton_end": lambda: (_fn(lambda v: 0.5 * v[0] ** 2 + (v[0] + 4e-6) * v[1] ** 2, 2),
                           torch.tensor([-8e-6, 0.0], dtype=F64), "minimum"),
    # probe + sphere search + reduced function on a Krylov complement (Peano's surface in 10-D)
    "probe_krylov": lambda: (_fn(lambda v: (v[1] - v[0] ** 2) * (v[1] - 2 * v[0] ** 2) + (v[2:] ** 2).sum()
                                 + 0.3 * v[1] * v[2], 10), torch.zeros(10, dtype=F64), "non_strict_saddle"),
    "deep_linear": _deep_linear_near_saddle,
    # not critical: the gradient-flatness estimate on the Lanczos path
    "flatness": lambda: (_fn(lambda v: v[0] ** 4 + v[1] ** 4, 2), torch.tensor([0.3, 0.1], dtype=F64), "not_critical"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lanczos_classification_builds_one_hessian_operator_per_point(case, builds):
    obj, theta, kind = CASES[case]()
    rep = ls.classify_point(obj, theta, method="lanczos")
    assert builds, "the Lanczos path uses the Hessian operator"
    assert max(builds.values()) == 1, dict(collections.Counter(builds.values()))
    if kind is not None:
        assert rep.kind == kind
    if case == "newton_end":
        assert rep.tolerances["classified_at_newton_end"] and len(builds) == 2  # θ and θ_K


def test_dense_classification_builds_no_operator(builds):
    obj = _fn(lambda v: v[0] ** 3 - 3 * v[0] * v[1] ** 2, 2)
    assert ls.classify_point(obj, torch.zeros(2, dtype=F64), method="dense").kind == "non_strict_saddle"
    assert not builds


def test_search_builds_one_operator_per_iterate(builds):
    prob = DeepLinearProblem.random(4, 3, [2], 32, seed=1)
    cp = prob.critical_point((0, 2), gauge_seed=0)
    noise = torch.randn(prob.dim, generator=torch.Generator().manual_seed(7), dtype=F64)
    res = ls.find_critical_point(prob.objective(), cp.theta + 1e-4 * noise / noise.norm())
    assert res.converged and max(builds.values()) == 1


def test_a_reused_operator_gives_the_bits_of_a_fresh_one():
    # rule 1 of the refactor: reusing an operator built at θ changes no bit of its products
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    g = torch.Generator().manual_seed(1)
    obj = ls.Objective.from_module(model, torch.nn.MSELoss(),
                                   (torch.randn(16, 3, generator=g, dtype=F64), torch.randn(16, 2, generator=g, dtype=F64)))
    th = obj.initial_point()
    V = torch.randn(obj.dim, 4, generator=g, dtype=F64)
    used = obj.hvp_operator(th)
    first = used.matmat(V)
    assert torch.equal(used.matmat(V), first)
    assert torch.equal(obj.hvp_operator(th).matmat(V), first)
    # and the products are the Hessian's (the stateless reverse-over-reverse path as the reference)
    assert torch.allclose(first, torch.stack([obj.hvp(th, V[:, j]) for j in range(4)], 1), rtol=1e-12, atol=1e-14)


def test_point_state_values_against_the_formula():
    # f = x²y + y³: g = (2xy, x² + 3y²), H = [[2y, 2x], [2x, 6y]]
    obj = _fn(lambda v: v[0] ** 2 * v[1] + v[1] ** 3, 2)
    th = torch.tensor([1.0, 2.0], dtype=F64)
    st = PointState.dense(obj, th)
    assert st.loss == 10.0 and st.grad.tolist() == [4.0, 13.0] and st.grad_norm == pytest.approx(13.601470508735444)
    assert torch.allclose(st.hessian, torch.tensor([[4.0, 2.0], [2.0, 12.0]], dtype=F64))
    ev = torch.linalg.eigvalsh(torch.tensor([[4.0, 2.0], [2.0, 12.0]], dtype=F64))
    assert torch.allclose(st.eigenvalues, ev) and st.spectral_scale == pytest.approx(float(ev[-1]))
    assert st.param_scale == pytest.approx(max(1.0, (5 / 2) ** 0.5))
    # the Lanczos spectrum shares the state's operator (built once), and agrees with the dense one
    lz = PointState.first_order(obj, th).with_lanczos_spectrum((1, 1), seed=0)
    assert lz.hessian_operator is lz.hessian_operator and lz.eig is not None
    assert torch.allclose(lz.eigenvalues, ev, atol=1e-10) and lz.loss == st.loss and torch.equal(lz.grad, st.grad)
    loss, g, H = loss_grad_dense_hessian(obj, th, True)
    assert loss == st.loss and torch.equal(g, st.grad) and torch.equal(H, st.hessian)
    with pytest.raises(ValueError, match="no dense Hessian"):
        PointState.first_order(obj, th).hessian_eigh()
