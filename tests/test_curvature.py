"""GGN and empirical Fisher against dense references built independently (issue 11)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import hessian, jacobian

import landscape as ls
from landscape.spectrum import _rademacher

F64 = torch.float64
EPS = torch.finfo(F64).eps


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def _data(n: int = 11, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def _flat_model(model: nn.Module):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def f(theta, x):
        ps = {n: t.view(s) for n, t, s in zip(names, torch.split(theta, sizes), shapes)}
        return torch.func.functional_call(model, ps, (x,))
    return f


def dense_ggn(model: nn.Module, theta: torch.Tensor, batches, loss_of_out, weights) -> torch.Tensor:
    """Σ_b w_b J_bᵀ ∇²_f ℓ_b J_b with J by torch.autograd.functional.jacobian and ∇²_f ℓ by its hessian."""
    f = _flat_model(model)
    G = torch.zeros(theta.numel(), theta.numel(), dtype=F64)
    for (x, y), w in zip(batches, weights):
        out = f(theta, x).detach()
        J = jacobian(lambda t: f(t, x), theta).reshape(out.numel(), -1)
        Hf = hessian(lambda o: loss_of_out(o.view_as(out), y), out.reshape(-1))
        G += w * J.T @ Hf @ J
    return G


@pytest.mark.parametrize("kind", ["ce", "mse"])
def test_ggn_matches_dense_jt_h_j(kind):
    model = _net()
    X, y = _data()
    if kind == "ce":
        loss = nn.CrossEntropyLoss()
        Y = y
    else:
        loss = nn.MSELoss()
        Y = torch.randn(11, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    batches = [(X[:4], Y[:4]), (X[4:], Y[4:])]
    obj = ls.Objective.from_module(model, loss, batches)
    theta = obj.initial_point() + 0.3 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(3), dtype=F64)
    G_ref = dense_ggn(model, theta, batches, loss, [4 / 11, 7 / 11])
    op = obj.curvature_operator(theta, "ggn")
    G = torch.stack([op.matvec(e) for e in torch.eye(obj.dim, dtype=F64)], dim=1)
    assert float((G - G_ref).norm() / G_ref.norm()) < 1e3 * EPS
    assert op.n_matvec == obj.dim
    if kind == "mse":  # MSE: the GGN is 2/k JᵀJ-type and the Hessian differs by the residual term
        H = obj.hessian(theta)
        assert float((H - G).norm() / H.norm()) > 1e-6
    # GGN is PSD for both (convex losses in the output).
    assert float(torch.linalg.eigvalsh(0.5 * (G + G.T))[0]) >= -1e3 * EPS * float(G.norm())


def test_ggn_of_a_linear_model_with_mse_equals_the_hessian():
    torch.manual_seed(4)
    model = nn.Linear(3, 2).double()
    X = torch.randn(9, 3, dtype=F64)
    Y = torch.randn(9, 2, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    theta = obj.initial_point()
    op = obj.curvature_operator(theta, "ggn")
    G = torch.stack([op.matvec(e) for e in torch.eye(obj.dim, dtype=F64)], dim=1)
    H = obj.hessian(theta)
    assert float((G - H).norm() / H.norm()) < 1e3 * EPS


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_empirical_fisher_matches_per_example_outer_products(reduction):
    model = _net(5)
    X, y = _data(10, 6)
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), [(X[:3], y[:3]), (X[3:], y[3:])], reduction=reduction)
    theta = obj.initial_point()
    params = list(model.parameters())
    g = torch.stack([torch.cat([t.reshape(-1) for t in torch.autograd.grad(F.cross_entropy(model(X[i:i + 1]), y[i:i + 1]),
                                                                        params)]) for i in range(10)])
    c = 1 / 10 if reduction == "mean" else 1.0
    F_ref = c * g.T @ g
    op = obj.curvature_operator(theta, "ef")
    Fm = torch.stack([op.matvec(e) for e in torch.eye(obj.dim, dtype=F64)], dim=1)
    assert float((Fm - F_ref).norm() / F_ref.norm()) < 1e3 * EPS


def test_trace_and_density_take_the_curvature():
    model = _net(7)
    X, y = _data(8, 8)
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, y))
    theta = obj.initial_point()
    ops = {c: obj.curvature_operator(theta, c) for c in ("hessian", "ggn", "ef")}
    dense = {c: torch.stack([op.matvec(e) for e in torch.eye(obj.dim, dtype=F64)], dim=1) for c, op in ops.items()}
    dense["hessian"] = obj.hessian(theta)
    for c, M in dense.items():
        tr = ls.hessian_trace(obj, theta, n_samples=5, seed=3, curvature=c)
        gen = torch.Generator().manual_seed(3)
        probes = [_rademacher(obj.dim, gen, F64, obj.device) for _ in range(5)]
        expect = [float(v @ M @ v) for v in probes]
        assert tr.samples == pytest.approx(expect, rel=1e-10)
        sd = ls.spectral_density(obj, theta, n_runs=2, n_steps=obj.dim, seed=0, curvature=c)
        # A full-length Lanczos run integrates polynomials exactly: the first moment is tr(M)/dim in expectation
        # over probes, and per probe vᵀMv/dim (Rademacher, ‖v‖² = dim).
        assert sd.moment(0) == pytest.approx(1.0, rel=1e-12)
        lam = torch.linalg.eigvalsh(0.5 * (M + M.T))
        assert float(sd.nodes.max()) <= float(lam[-1]) * (1 + 1e-8) + 1e-10 * float(lam.abs().max())
    with pytest.raises(ValueError, match="curvature"):
        ls.hessian_trace(obj, theta, curvature="fisher")


def test_nongg_split_at_a_saddle_like_point():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    X = torch.randn(12, 2, dtype=F64)
    Y = torch.randn(12, 1, dtype=F64) * 3
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    theta = obj.initial_point()
    H = obj.hessian(theta)
    op = obj.curvature_operator(theta, "ggn")
    G = torch.stack([op.matvec(e) for e in torch.eye(obj.dim, dtype=F64)], dim=1)
    lam_h = torch.linalg.eigvalsh(H)
    assert float(lam_h[0]) < 0  # the point has negative curvature (large targets, small net)
    res = ls.nongg_negative_curvature(obj, theta)
    scale = float(lam_h.abs().max())
    assert abs(res.hessian_min - float(lam_h[0])) < 1e-7 * scale
    assert abs(res.ggn_along + res.residual_along - res.hessian_min) < 1e-9 * scale
    assert res.ggn_along >= -1e-9 * scale and res.residual_share >= 1 - 1e-9
    assert abs(res.ggn_min - float(torch.linalg.eigvalsh(0.5 * (G + G.T))[0])) < 1e-7 * scale
    assert abs(res.residual_min - float(torch.linalg.eigvalsh(H - 0.5 * (G + G.T))[0])) < 1e-7 * scale
    assert all(res.converged.values())
    import json
    assert json.loads(res.to_json())["converged"] == {"hessian": True, "ggn": True, "residual": True}
