"""Operators (issue 20): one base for every curvature operator, one chooser, algorithms that take an operator.

Truth: diagonal operators (known spectra), a quadratic objective (H = A exactly) and the
(objective, θ) form of each algorithm, which must give the same bits as the operator form.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import landscape as ls
from landscape.operators import (CURVATURES, CurvatureOperator, DiagonalOperator, EmpiricalFisherOperator,
                                 GGNOperator, HessianOperator, as_operator, make_operator)

F64 = torch.float64


def _mlp_objective(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(seed + 1)
    X, Y = torch.randn(12, 3, generator=g, dtype=F64), torch.randn(12, 2, generator=g, dtype=F64)
    return ls.Objective.from_module(model, nn.MSELoss(), [(X[:7], Y[:7]), (X[7:], Y[7:])])


def test_every_operator_shares_the_one_base():
    obj = _mlp_objective()
    th = obj.initial_point()
    for curvature, cls in zip(CURVATURES, (HessianOperator, GGNOperator, EmpiricalFisherOperator)):
        op = obj.curvature_operator(th, curvature)
        assert isinstance(op, cls) and isinstance(op, CurvatureOperator)
        assert op.curvature == curvature and op.shape == (obj.dim, obj.dim) and op.dtype == F64
        V = torch.eye(obj.dim, dtype=F64)[:, :3]
        M = op @ V
        assert torch.equal(M, op.matmat(V)) and op.n_matvec == 6
        assert torch.equal(M[:, 0], op @ V[:, 0])
        with pytest.raises(ValueError, match="shape"):
            op.matvec(torch.ones(obj.dim + 1, dtype=F64))
    assert type(obj.hvp_operator(th)) is HessianOperator
    with pytest.raises(ValueError, match="'hessian', 'ggn' or 'ef'"):
        make_operator(obj, th, "fisher")


def test_operator_arithmetic_matches_the_matrices():
    a = torch.tensor([3.0, -1.0, 0.5], dtype=F64)
    b = torch.tensor([1.0, 2.0, -4.0], dtype=F64)
    A, B = DiagonalOperator(a), DiagonalOperator(b)
    v = torch.tensor([1.0, 10.0, 100.0], dtype=F64)
    assert torch.equal((A + B) @ v, (a + b) * v)
    assert torch.equal((A - B) @ v, (a - b) * v)
    assert torch.equal((2.5 * A) @ v, 2.5 * a * v) and torch.equal((A * 2.5) @ v, 2.5 * a * v)
    assert torch.equal((-A) @ v, -a * v)
    assert (A - B).curvature == "diagonal - diagonal" and A.n_matvec == 5 and B.n_matvec == 2
    S = (A - B).to_scipy()
    assert np.allclose(S.matvec(np.ones(3)), (a - b).numpy()) and S.shape == (3, 3)
    with pytest.raises(ValueError, match="different dimensions"):
        A + DiagonalOperator(torch.ones(4, dtype=F64))


def test_algorithms_take_an_operator_and_agree_with_the_objective_form_bit_for_bit():
    obj = _mlp_objective(3)
    th = obj.initial_point()
    for curvature in CURVATURES:
        op = make_operator(obj, th, curvature)
        by_op = ls.extreme_eigs(op, k=2, seed=1)
        by_obj = ls.extreme_eigs(obj, th, k=2, seed=1, curvature=curvature)
        assert torch.equal(by_op.values, by_obj.values) and torch.equal(by_op.residuals, by_obj.residuals)
        assert by_op.curvature == by_obj.curvature == curvature
        tr_op = ls.hessian_trace(make_operator(obj, th, curvature), n_samples=5, seed=2)
        tr_obj = ls.hessian_trace(obj, th, n_samples=5, seed=2, curvature=curvature)
        assert tr_op.samples == tr_obj.samples
        sd_op = ls.spectral_density(make_operator(obj, th, curvature), n_runs=2, n_steps=10, n_grid=20)
        sd_obj = ls.spectral_density(obj, th, n_runs=2, n_steps=10, n_grid=20, curvature=curvature)
        assert torch.equal(sd_op.nodes, sd_obj.nodes) and torch.equal(sd_op.density, sd_obj.density)
    with pytest.raises(TypeError, match="operator alone"):
        ls.hessian_trace(make_operator(obj, th), th)


def test_known_spectrum_through_the_operator_form():
    d = torch.linspace(-2.0, 5.0, 40, dtype=F64)
    op = DiagonalOperator(d)
    r = ls.extreme_eigs(op, k=(2, 3))
    assert torch.allclose(r.values, torch.cat([d[:2], d[-3:]]), atol=1e-10) and r.all_converged
    assert r.curvature == "diagonal" and r.n_hvp == op.n_matvec
    tr = ls.hessian_trace(op, n_samples=3)
    assert tr.estimate == pytest.approx(float(d.sum()), rel=1e-12)  # Rademacher probes are exact on a diagonal
    sd = ls.spectral_density(op, n_runs=3, n_steps=40)
    assert sd.moment(1) == pytest.approx(float(d.mean()), rel=1e-10) and sd.dim == 40


def test_as_operator_is_the_one_resolution():
    obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=F64))
    op = DiagonalOperator(torch.ones(2, dtype=F64))
    assert as_operator(op) is op and as_operator(obj, obj.initial_point(), operator=op) is op
    H = as_operator(obj, obj.initial_point())
    assert isinstance(H, HessianOperator) and (H @ torch.ones(2, dtype=F64)).tolist() == [2.0, 2.0]


def test_the_objective_operator_api():
    obj = _mlp_objective()
    th = obj.initial_point()
    rows = [(j, n, w) for j, _, n, w in obj.iter_indexed_batches()]
    assert rows == [(0, 7, 7 * (1 / 12)), (1, 5, 5 * (1 / 12))] and obj.data_in_memory  # w_b = n_b · (1/N)
    assert obj.example_range(1) == range(7, 12) and obj.batch_location(1) == "batch 1 (examples 7..11)"
    v = torch.ones(obj.dim, dtype=F64)
    hv, err = obj.local_hvp(th, v)
    assert err is None and torch.equal(obj.all_reduce(hv), obj.hvp(th, v))
    assert obj.nonfinite_error(v, "x", "here") is None
    bad = v.clone()
    bad[5] = float("nan")
    assert "first in parameter '0.weight' (flat index 5)" in obj.nonfinite_error(bad, "x", "here")
    f = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=F64))
    assert f.batch_location(0) == "the function" and f.example_range(0) == range(0, 0)
    with pytest.raises(ValueError, match="plain function"):
        f.require_examples()
