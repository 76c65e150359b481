"""Hutchinson trace and SLQ spectral density against known spectra (float64)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import landscape as ls

F64 = torch.float64


def quadratic(eigs, seed: int = 0, rotate: bool = True):
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    D = torch.diag(torch.as_tensor(eigs, dtype=F64))
    if rotate:
        Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
        A = Q @ D @ Q.T
        A = 0.5 * (A + A.T)
    else:
        A = D
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(n, dtype=F64))
    return obj, A


def test_trace_exact_for_diagonal_hessian():
    eigs = np.linspace(-2.0, 5.0, 40).tolist()
    obj, A = quadratic(eigs, rotate=False)
    est = ls.hessian_trace(obj, obj.initial_point(), n_samples=5, seed=1)
    # vᵀDv = Σ d_i v_i² = tr D for every Rademacher v
    assert est.estimate == pytest.approx(float(np.sum(eigs)), abs=1e-12)
    assert est.stderr <= 1e-12
    assert est.n_samples == 5 and len(est.samples) == 5
    assert all(s == pytest.approx(float(np.sum(eigs)), abs=1e-12) for s in est.samples)


def test_trace_unbiased_with_correct_standard_error():
    eigs = np.concatenate([np.linspace(-1.0, 1.0, 50), [4.0, 6.0]]).tolist()
    obj, A = quadratic(eigs, seed=2)
    n = 400
    est = ls.hessian_trace(obj, obj.initial_point(), n_samples=n, seed=0)
    tr = float(np.sum(eigs))
    assert abs(est.estimate - tr) <= 4 * est.stderr
    # Var(vᵀAv) for Rademacher v is 2(‖A‖_F² − Σ A_ii²)
    var = 2 * (float((A ** 2).sum()) - float((torch.diagonal(A) ** 2).sum()))
    assert est.stderr == pytest.approx(math.sqrt(var / n), rel=0.2)
    json.dumps(est.to_dict(), allow_nan=False)
    # seeded: the same seed gives the same samples, another seed other samples
    assert ls.hessian_trace(obj, obj.initial_point(), n_samples=3, seed=0).samples == est.samples[:3]
    assert ls.hessian_trace(obj, obj.initial_point(), n_samples=3, seed=1).samples != est.samples[:3]


def test_slq_exact_on_diagonal_spectrum():
    """Diagonal H, Rademacher v: the weight of eigenvalue d_i is v_i²/dim = 1/dim exactly, so
    SLQ with n_steps = dim reproduces the empirical spectral measure."""
    eigs = np.linspace(-3.0, 7.0, 30)
    obj, _ = quadratic(eigs.tolist(), rotate=False)
    sd = ls.spectral_density(obj, obj.initial_point(), n_runs=3, n_steps=30, seed=0)
    assert sd.dim == 30
    for lo, hi in [(-3.5, 0.0), (0.0, 2.0), (2.0, 7.5), (-10, 10)]:
        share = float(((eigs >= lo) & (eigs <= hi)).mean())
        assert sd.mass_between(lo, hi) == pytest.approx(share, abs=1e-10)
    for p in (1, 2, 3):
        assert sd.moment(p) == pytest.approx(float(np.mean(eigs ** p)), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_two_cluster_spectrum(reorth):
    """70% of the eigenvalues near 1, 30% near 10 (random basis): mass per cluster ≈ its share."""
    g = np.random.default_rng(0)
    dim = 200
    eigs = np.concatenate([1.0 + 0.05 * g.standard_normal(140), 10.0 + 0.2 * g.standard_normal(60)])
    obj, A = quadratic(eigs.tolist(), seed=3)
    sd = ls.spectral_density(obj, obj.initial_point(), n_runs=10, n_steps=40, seed=0, reorth=reorth)
    grid, dens = sd.grid.numpy(), sd.density.numpy()
    assert sd.grid.shape == sd.density.shape == (1000,)
    assert bool((sd.density >= 0).all())
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-3)
    # first moment: E[vᵀHv]/dim = tr H / dim (stochastic; per-run sd ≈ sqrt(2 Σλ²)/dim)
    tol1 = 4 * math.sqrt(2 * float(np.sum(eigs ** 2))) / dim / math.sqrt(10)
    assert sd.moment(1) == pytest.approx(float(eigs.mean()), abs=tol1)
    assert np.trapezoid(grid * dens, grid) == pytest.approx(float(eigs.mean()), abs=tol1)
    # cluster shares from the quadrature and from the smoothed density
    assert sd.mass_between(0.0, 3.0) == pytest.approx(0.7, abs=0.05)
    assert sd.mass_between(8.0, 12.0) == pytest.approx(0.3, abs=0.05)
    low = (grid < 5.5)
    assert np.trapezoid(dens[low], grid[low]) == pytest.approx(0.7, abs=0.05)
    # the extreme nodes sit at the extreme eigenvalues (Lanczos finds the ends first)
    assert float(sd.nodes.max()) == pytest.approx(float(eigs.max()), rel=1e-6)
    assert float(sd.nodes.min()) == pytest.approx(float(eigs.min()), rel=1e-3)
    d = sd.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["dim"] == dim and len(d["density"]) == 1000


def test_slq_mlp_moment_matches_dense_trace():
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(30, 4, generator=g, dtype=F64), torch.randint(0, 3, (30,), generator=g)
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, Y))
    theta = obj.initial_point()
    H = obj.hessian(theta)
    ev = torch.linalg.eigvalsh(H)
    sd = ls.spectral_density(obj, theta, n_runs=8, n_steps=obj.dim, seed=2)
    # with n_steps = dim every run integrates polynomials exactly: moments of vᵀHᵖv/dim
    sd_f = float(torch.sqrt(2 * (H ** 2).sum())) / obj.dim / math.sqrt(8)
    assert sd.moment(1) == pytest.approx(float(torch.trace(H)) / obj.dim, abs=4 * sd_f)
    assert sd.mass_between(float(ev[0]) - 1e-6, float(ev[-1]) + 1e-6) == pytest.approx(1.0, abs=1e-10)
    est = ls.hessian_trace(obj, theta, n_samples=100, seed=0)
    assert abs(est.estimate - float(torch.trace(H))) <= 4 * est.stderr


def test_spectrum_bad_arguments():
    obj, _ = quadratic([1.0, 2.0, 3.0], rotate=False)
    x = obj.initial_point()
    with pytest.raises(ValueError, match="n_samples"):
        ls.hessian_trace(obj, x, n_samples=0)
    with pytest.raises(ValueError, match="n_runs"):
        ls.spectral_density(obj, x, n_runs=0)
    with pytest.raises(ValueError, match="sigma"):
        ls.spectral_density(obj, x, n_runs=1, n_steps=3, sigma=-1.0)
    with pytest.raises(ValueError, match="dtype|length"):
        ls.hessian_trace(obj, torch.zeros(4, dtype=F64))
