"""float32 Lanczos that certifies, bounded basis memory (thick restart), and the curvature switch.

Truth: diagonal operators with chosen eigenvalues (exact in float32), float64 runs of the same MLP,
and dense eigvalsh.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import landscape as ls
from landscape.linalg import dot64, norm64

F64, F32 = torch.float64, torch.float32


class DiagOperator:
    """H = diag(d): the eigenvalues are d, the eigenvectors the unit vectors."""

    def __init__(self, d: torch.Tensor) -> None:
        self.d, self.n_matvec, self.dtype, self.device = d, 0, d.dtype, d.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_matvec += 1
        return self.d * v


def _diag_problem(dim: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(dim, generator=g, dtype=F64) * 2.0 - 0.5)        # bulk in [-0.5, 1.5]
    idx = torch.randperm(dim, generator=g)[:4]
    d[idx] = torch.tensor([3.0, 2.6, -1.5, -1.2], dtype=F64)           # separated extremes
    obj = ls.Objective.from_function(lambda x: (x * x).sum(), torch.zeros(dim, dtype=dtype))
    return obj, d.to(dtype)


def test_float32_large_diag_certifies_with_bounded_basis():
    dim = 400_000  # above the 2^23-number basis allowance for k = 2: the k + 30 cap applies
    obj, d = _diag_problem(dim, F32)
    op = DiagOperator(d)
    r = ls.extreme_eigs(obj, obj.initial_point(), k=1, which="both", operator=op)
    assert r.max_basis <= 2 + 26
    assert r.all_converged and r.tol == 1e-4
    assert torch.allclose(r.values.double(), torch.tensor([-1.5, 3.0], dtype=F64), rtol=0, atol=1e-5 * 3.0)
    # the certificate is honest: residuals recomputed in float64 from the returned float32 vectors
    V = r.vectors.double()
    R = torch.linalg.vector_norm(d.double()[:, None] * V - V * r.values.double(), dim=0)
    assert float(R.max()) <= r.tol * r.scale
    assert float((torch.linalg.vector_norm(V, dim=0) - 1).abs().max()) <= 1e-6


def test_float32_mlp_matches_float64_reference():
    """A small MLP (the ~1M case is measured by ``landscape bench --scaling``): the float32 run's
    eigenvalues lie within 1e-5·|λ_max| of the float64 run's, through thick restarts."""
    def objective(dtype):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 40), nn.Tanh(), nn.Linear(40, 60), nn.Tanh(), nn.Linear(60, 5)).to(dtype)
        g = torch.Generator().manual_seed(1)
        X = torch.randn(64, 32, generator=g, dtype=F64).to(dtype)
        Y = torch.randint(0, 5, (64,), generator=g)
        return ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, Y))

    o32, o64 = objective(F32), objective(F64)
    r32 = ls.extreme_eigs(o32, o32.initial_point(), k=1, which="both", max_basis=16)
    assert r32.n_restarts >= 1
    r64 = ls.extreme_eigs(o64, o64.initial_point(), k=1, which="both")
    assert r32.all_converged and r64.all_converged
    scale = float(r64.values.abs().max())
    assert float((r32.values.double() - r64.values).abs().max()) <= 1e-5 * scale


def test_blocked_float64_accumulation_beats_float32_reductions():
    g = torch.Generator().manual_seed(3)
    w = torch.rand(3_000_000, generator=g, dtype=F64)
    exact = float(torch.linalg.vector_norm(w))
    w32 = w.to(F32)
    exact32 = float(torch.linalg.vector_norm(w32.double()))  # exact norm of the float32 numbers
    assert abs(norm64(w32) - exact32) <= 1e-7 * exact32
    Q = torch.randn(4, w.numel(), generator=g, dtype=F64).to(F32)
    ref = Q.double() @ w32.double()
    assert float((dot64(Q, w32) - ref).abs().max()) <= 1e-6 * float((Q.double().abs() @ w32.double()).max())
    assert abs(exact - exact32) <= 1e-6 * exact


@pytest.mark.parametrize("max_basis", [12, 20])
def test_thick_restart_converges_and_matches_truth(max_basis):
    n = 300
    eigs = torch.cat([torch.tensor([-3.0, -2.8], dtype=F64), torch.linspace(-1.0, 1.0, n - 5, dtype=F64),
                      torch.tensor([2.0, 2.2, 2.5], dtype=F64)])
    g = torch.Generator().manual_seed(4)
    Qm, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    A = Qm @ torch.diag(eigs) @ Qm.T
    A = 0.5 * (A + A.T)
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(n, dtype=F64))
    r = ls.extreme_eigs(obj, obj.initial_point(), k=(2, 3), max_basis=max_basis)
    truth = torch.tensor([-3.0, -2.8, 2.0, 2.2, 2.5], dtype=F64)
    assert r.n_restarts >= 1 and r.max_basis == max_basis
    assert r.all_converged
    assert float((r.values - truth).abs().max()) <= 1e-8 * 3.0
    R = torch.linalg.vector_norm(A @ r.vectors - r.vectors * r.values, dim=0)
    assert float(R.max()) <= r.tol * r.scale


def test_repeated_copy_found_through_restarts():
    """λ = 5 twice, next 4.9: a single Krylov space sees 5 once; verification after convergence adds the copy."""
    n = 120
    eigs = torch.tensor([5.0, 5.0, 4.9] + torch.linspace(-1.0, 1.0, n - 3).tolist(), dtype=F64)
    g = torch.Generator().manual_seed(6)
    Qm, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    A = 0.5 * (Qm @ torch.diag(eigs) @ Qm.T + (Qm @ torch.diag(eigs) @ Qm.T).T)
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(n, dtype=F64))
    r = ls.extreme_eigs(obj, obj.initial_point(), k=2, which="largest", max_basis=14)
    assert torch.allclose(r.values, torch.tensor([5.0, 5.0], dtype=F64), rtol=0, atol=1e-8 * 5)
    assert r.n_copies_found >= 1 and r.verify_steps > 0
    skip = ls.extreme_eigs(obj, obj.initial_point(), k=2, which="largest", max_basis=14, verify_steps=0)
    assert skip.verify_steps == 0 and skip.n_hvp < r.n_hvp


def test_curvature_switch_and_validation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(2)
    X, Y = torch.randn(10, 3, generator=g, dtype=F64), torch.randn(10, 2, generator=g, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    th = obj.initial_point()
    ev = torch.linalg.eigvalsh(obj.hessian(th))
    # independent GGN: MSE over the 10 x 2 outputs has ∇²_f ℓ = (2 / 20)·I, so G = JᵀJ / 10
    def outputs(t):
        return torch.func.functional_call(obj.module, obj.to_module_params(t), (X,)).reshape(-1)

    J = torch.func.jacrev(outputs)(th)
    ggn = torch.linalg.eigvalsh(J.T @ J / 10.0)
    r = ls.extreme_eigs(obj, th, k=1, curvature="ggn")
    assert r.curvature == "ggn"
    assert torch.allclose(r.values, torch.stack([ggn[0], ggn[-1]]), rtol=0, atol=1e-7 * float(ggn.abs().max()))
    # any operator, alone: here 2·H by operator arithmetic
    twice = ls.extreme_eigs(2.0 * obj.hvp_operator(th), k=1)
    assert twice.curvature == "2 * hessian"
    assert torch.allclose(twice.values, 2 * torch.stack([ev[0], ev[-1]]), rtol=0, atol=1e-7 * float(ev.abs().max()))
    # a duck-typed operator through the older operator= form (dim, dtype from the objective)
    op = obj.hvp_operator(th)

    class Twice:
        n_matvec = 0

        def matvec(self, v):
            Twice.n_matvec += 1
            return 2 * op.matvec(v)

    duck = ls.extreme_eigs(obj, th, k=1, operator=Twice())
    assert torch.equal(duck.values, twice.values) and duck.n_hvp == Twice.n_matvec
    h = ls.extreme_eigs(obj, th, k=1)
    assert h.curvature == "hessian" and torch.allclose(h.values, torch.stack([ev[0], ev[-1]]), atol=1e-7)
    with pytest.raises(ValueError, match="curvature"):
        ls.extreme_eigs(obj, th, curvature="fisher")
    with pytest.raises(ValueError, match="max_basis"):
        ls.extreme_eigs(obj, th, k=2, max_basis=5)
    with pytest.raises(ValueError, match="verify_steps"):
        ls.extreme_eigs(obj, th, verify_steps=-1)
    with pytest.raises(TypeError, match="by keyword"):
        ls.extreme_eigs(op, 3)
    assert math.isfinite(r.scale)


def test_budget_ending_right_after_the_lock_is_consistent():
    """max_iter runs out exactly when verification starts: the result is the locked pairs."""
    eigs = [4.0, 3.0] + torch.linspace(-1.0, 1.0, 28).tolist()
    g = torch.Generator().manual_seed(9)
    Qm, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=F64))
    A = Qm @ torch.diag(torch.tensor(eigs, dtype=F64)) @ Qm.T
    A = 0.5 * (A + A.T)
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(30, dtype=F64))
    full = ls.extreme_eigs(obj, obj.initial_point(), k=1, which="largest", verify_steps=0)
    for extra in (0, 1, 3):
        r = ls.extreme_eigs(obj, obj.initial_point(), k=1, which="largest", max_iter=full.n_iter + extra)
        assert r.values.shape == (1,) and abs(float(r.values[0]) - 4.0) <= 1e-8 * 4.0
        R = torch.linalg.vector_norm(A @ r.vectors - r.vectors * r.values, dim=0)
        assert torch.allclose(R, r.residuals, rtol=1e-6, atol=1e-14)
