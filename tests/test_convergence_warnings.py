"""Issue 22 item 7 (last sentence): an unconverged eigenpair, trace or density raises ONE warning per
call naming what and its residual; warn=False or the warnings filters silence it; no number changes."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import landscape as ls
from landscape.operators import DiagonalOperator

F64 = torch.float64


def caught(call):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = call()
    return out, [x for x in w if issubclass(x.category, ls.ConvergenceWarning)]


def test_unconverged_eigenpairs_warn_once_with_count_and_worst_residual():
    op = DiagonalOperator(torch.linspace(0.0, 1.0, 300, dtype=F64))
    res, ws = caught(lambda: ls.extreme_eigs(op, k=3, which="largest", max_iter=6))
    assert len(ws) == 1 and issubclass(ls.ConvergenceWarning, RuntimeWarning)
    msg = str(ws[0].message)
    assert not res.all_converged and "3 of 3 eigenpairs did not converge" in msg and "max_iter=6" in msg
    worst = float((res.residuals / res.scale).max())
    assert f"worst residual {worst:.2e}·‖H‖" in msg and f"vs tol {res.tol:.1e}" in msg
    # the same numbers without the warning, by keyword or by filter
    quiet, ws = caught(lambda: ls.extreme_eigs(op, k=3, which="largest", max_iter=6, warn=False))
    assert ws == [] and torch.equal(quiet.values, res.values) and torch.equal(quiet.residuals, res.residuals)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ls.ConvergenceWarning)
        ls.extreme_eigs(op, k=3, which="largest", max_iter=6)
    # converged: silent
    ends = DiagonalOperator(torch.cat([torch.linspace(0.0, 1.0, 100, dtype=F64), torch.tensor([-2.0, 3.0], dtype=F64)]))
    ok, ws = caught(lambda: ls.extreme_eigs(ends, k=1, which="both"))
    assert ok.all_converged and ws == []


def test_per_block_extremes_warns_once_for_all_its_blocks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 2)).double()
    X, Y = torch.randn(40, 6, dtype=F64), torch.randn(40, 2, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    res, ws = caught(lambda: ls.per_block_extremes(obj, obj.initial_point(), max_iter=4))
    bad = [b for b in res.blocks if not b["converged"]]
    assert len(bad) >= 2 and len(ws) == 1
    msg = str(ws[0].message)
    assert msg.startswith(f"per_block_extremes: {len(bad)} of 3 blocks did not converge") and "vs tol" in msg
    assert all(b["residual"] > res.tol for b in bad)
    _, ws = caught(lambda: ls.per_block_extremes(obj, obj.initial_point(), max_iter=4, warn=False))
    assert ws == []


def test_trace_without_a_significant_digit_warns():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(50, 50, generator=g, dtype=F64))
    A = Q @ torch.diag(torch.linspace(-1.0, 1.0, 50, dtype=F64)) @ Q.T   # trace 0: no sample count resolves it

    class Dense(ls.CurvatureOperator):
        def __init__(self):
            super().__init__(50, F64, "cpu")

        def _matvec(self, v):
            return A @ v

    est, ws = caught(lambda: ls.hessian_trace(Dense(), n_samples=20))
    assert len(ws) == 1 and not abs(est.estimate) > 1.96 * est.stderr
    assert f"{est.estimate:.4g} ± {est.stderr:.2g}" in str(ws[0].message) and "contains 0" in str(ws[0].message)
    again, ws = caught(lambda: ls.hessian_trace(Dense(), n_samples=20, warn=False))
    assert ws == [] and again.samples == est.samples
    # resolved (exact on a diagonal): silent; one probe has no error estimate: warned
    diag = DiagonalOperator(torch.linspace(1.0, 2.0, 50, dtype=F64))
    _, ws = caught(lambda: ls.hessian_trace(diag, n_samples=3))
    assert ws == []
    one, ws = caught(lambda: ls.hessian_trace(diag, n_samples=1))
    assert math.isinf(one.stderr) and len(ws) == 1


def test_density_with_sigma_finer_than_the_quadrature_warns():
    op = DiagonalOperator(torch.linspace(0.0, 1.0, 400, dtype=F64))
    sd, ws = caught(lambda: ls.spectral_density(op, n_runs=2, n_steps=20, sigma=1e-4))
    assert len(ws) == 1 and "below half the Ritz values' median spacing" in str(ws[0].message)
    _, ws = caught(lambda: ls.spectral_density(op, n_runs=2, n_steps=20, sigma=0.05))
    assert ws == []
    _, ws = caught(lambda: ls.spectral_density(op, n_runs=2, n_steps=20))
    assert ws == []


def test_half_precision_eigenpairs_say_they_did_not_converge():
    torch.manual_seed(0)
    X, Y = torch.randn(32, 4), torch.randn(32, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = ls.Objective.from_module(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), nn.MSELoss(),
                                       (X, Y), dtype=torch.float16)
    res, ws = caught(lambda: ls.extreme_eigs(obj, obj.initial_point(), k=1))
    assert not res.all_converged and len(ws) == 1 and "did not converge" in str(ws[0].message)
