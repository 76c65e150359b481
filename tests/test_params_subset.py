"""params= blocks against the sub-block of the dense Hessian; per-layer extremes (issue 11)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import landscape as ls

F64 = torch.float64
EPS = torch.finfo(F64).eps


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    X = torch.randn(10, 3, dtype=F64)
    Y = torch.randn(10, 2, dtype=F64)
    full = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    return model, X, Y, full


def _index(full: ls.Objective, names) -> torch.Tensor:
    sl = full.spec.slices
    return torch.cat([torch.arange(sl[n].start, sl[n].stop) for n in names])


@pytest.mark.parametrize("params, names", [
    (["2.weight"], ("2.weight",)),
    ("*.bias", ("0.bias", "2.bias")),
    ("2", ("2.weight", "2.bias")),
    (lambda n, p: p.ndim == 2, ("0.weight", "2.weight")),
])
def test_block_hessian_is_the_dense_sub_block(params, names):
    model, X, Y, full = _setup()
    H = full.hessian(full.initial_point())
    sub = ls.Objective.from_module(model, nn.MSELoss(), (X, Y), params=params)
    assert sub.param_names == names
    idx = _index(full, names)
    H_sub = sub.hessian(sub.initial_point())
    assert float((H_sub - H[idx][:, idx]).norm() / H[idx][:, idx].norm()) < 1e3 * EPS
    g = full.grad(full.initial_point())
    assert float((sub.grad(sub.initial_point()) - g[idx]).norm() / g[idx].norm()) < 1e3 * EPS


def test_restrict_fixes_the_others_at_theta():
    model, X, Y, full = _setup()
    theta = full.initial_point() + 0.5 * torch.randn(full.dim, generator=torch.Generator().manual_seed(1), dtype=F64)
    sub = full.restrict("0.*", theta)
    idx = _index(full, sub.param_names)
    assert torch.equal(sub.initial_point(), theta[idx])
    assert sub.loss(sub.initial_point()) == pytest.approx(full.loss(theta), rel=1e-14)
    H = full.hessian(theta)
    assert float((sub.hessian(sub.initial_point()) - H[idx][:, idx]).norm() / H[idx][:, idx].norm()) < 1e3 * EPS


def test_per_block_extremes_match_dense_sub_blocks():
    model, X, Y, full = _setup()
    theta = full.initial_point()
    H = full.hessian(theta)
    res = ls.per_block_extremes(full, theta)
    assert [b["block"] for b in res.blocks] == ["0", "2"]
    scale = float(torch.linalg.eigvalsh(H).abs().max())
    for b in res.blocks:
        idx = _index(full, b["params"])
        lam = torch.linalg.eigvalsh(H[idx][:, idx])
        assert b["converged"]
        assert abs(b["smallest"] - float(lam[0])) < 1e-7 * scale
        assert abs(b["largest"] - float(lam[-1])) < 1e-7 * scale
    ggn = ls.per_block_extremes(full, theta, {"last": ["2.*"]}, curvature="ggn")
    assert ggn.blocks[0]["smallest"] >= -1e-8 * scale  # MSE: the GGN block is PSD


def test_bad_params_selection():
    model, X, Y, _ = _setup()
    with pytest.raises(ValueError, match="matches no parameter"):
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y), params="fc.*")
    with pytest.raises(ValueError, match="selects no parameter"):
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y), params=lambda n, p: False)
    with pytest.raises(TypeError, match="params must be"):
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y), params=[3])
