"""Cancellation statistics on constructed per-example gradients with hand-computed values.

Construction: a bias-free linear model with the loss ℓ_i = w·x_i (``loss_fn = out.mean()``) has
per-example gradient g_i = x_i exactly, whatever w is; so the rows of X *are* the per-example
gradients. With a bias, the bias gradient of every example is 1.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import landscape as ls

F64 = torch.float64


def objective_with_grads(G: torch.Tensor, bias: bool = False) -> ls.Objective:
    n, d = G.shape
    model = nn.Linear(d, 1, bias=bias).double()
    return ls.Objective.from_module(model, lambda out, y: out.mean(), (G.to(F64), torch.zeros(n, 1, dtype=F64)))


def test_construction_gives_the_rows():
    G = torch.tensor([[1.0, 2.0, 2.0], [2.0, 1.0, -2.0]], dtype=F64)
    obj = objective_with_grads(G)
    assert torch.equal(obj.per_example_grads(obj.initial_point()), G)


def test_identical_gradients():
    n = 6
    G = torch.tensor([[0.5, -2.0, 0.0, 1.0]], dtype=F64).repeat(n, 1)
    obj = objective_with_grads(G)
    s = ls.cancellation_stats(obj, obj.initial_point())
    assert s.n == n and s.dim == 4
    assert s.kappa == pytest.approx(1.0, rel=1e-14)
    assert s.alpha == pytest.approx(1.0, rel=1e-14)
    assert s.m_coherence == pytest.approx(n, rel=1e-14)
    assert s.diversity == pytest.approx(1.0 / n, rel=1e-14)
    assert s.grad_norm == pytest.approx(math.sqrt(0.25 + 4 + 1), rel=1e-14)
    assert s.mean_example_grad_norm == pytest.approx(s.grad_norm, rel=1e-14)
    # coordinate 2 is zero for all examples: excluded from κ_j; the others have κ_j = 1
    assert s.kappa_j_mean == pytest.approx(1.0) and s.kappa_j_median == pytest.approx(1.0)
    assert s.frac_kappa_j_below == 0.0
    # zero variance with non-zero mean: GSNR infinite
    assert math.isinf(s.gsnr_max) and math.isinf(s.gsnr_mean)
    # sign agreement: 1 on the three non-zero coordinates, 0 on the zero one
    assert s.sign_agreement_mean == pytest.approx(0.75)
    assert s.sign_agreement_median == pytest.approx(1.0)
    d = s.to_dict()
    json.dumps(d, allow_nan=False)  # inf became None
    assert d["gsnr_max"] is None and d["kappa"] == pytest.approx(1.0)


def test_two_opposite_gradients():
    G = torch.tensor([[3.0, -1.0, 2.0], [-3.0, 1.0, -2.0]], dtype=F64)
    obj = objective_with_grads(G)
    s = ls.cancellation_stats(obj, obj.initial_point())
    assert s.kappa == 0.0 and s.alpha == 0.0 and s.grad_norm == 0.0
    assert s.m_coherence == 0.0 and math.isinf(s.diversity)
    assert s.mean_example_grad_norm == pytest.approx(math.sqrt(14.0), rel=1e-14)
    assert s.kappa_j_mean == 0.0 and s.frac_kappa_j_below == 1.0
    assert s.gsnr_mean == 0.0 and s.gsnr_max == 0.0
    assert s.sign_agreement_mean == 0.0
    json.dumps(s.to_dict(), allow_nan=False)


# g1 = (1, 2, 2), g2 = (2, 1, −2), g3 = (2, −2, 1): every ‖g_i‖ = 3, μ = (5, 1, 1)/3, ‖μ‖ = √3.
HAND = torch.tensor([[1.0, 2.0, 2.0], [2.0, 1.0, -2.0], [2.0, -2.0, 1.0]], dtype=F64)
HAND_STATS = dict(
    kappa=math.sqrt(3) / 3,                 # √3 / 3
    alpha=1 / 3,                            # 3 / 9
    m_coherence=1.0,                        # n α
    diversity=1.0,                          # 1 / (n α)
    grad_norm=math.sqrt(3),
    mean_example_grad_norm=3.0,
    # a_j = 5/3 for all j: κ_j = (1, 1/5, 1/5)
    kappa_j_mean=(1 + 0.2 + 0.2) / 3, kappa_j_median=0.2, frac_kappa_j_below=0.0,
    # s_j² = 3, μ_j² = (25, 1, 1)/9, variance (2, 26, 26)/9: r_j = (25/2, 1/26, 1/26)
    gsnr_mean=(12.5 + 2 / 26) / 3, gsnr_median=1 / 26, gsnr_max=12.5,
    # signs: (+,+,+), (+,+,−), (+,−,+): q_j = (1, 1/3, 1/3)
    sign_agreement_mean=5 / 9, sign_agreement_median=1 / 3,
)


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_hand_computed_case(chunk):
    obj = objective_with_grads(HAND)
    s = ls.cancellation_stats(obj, obj.initial_point(), chunk_size=chunk)
    for name, value in HAND_STATS.items():
        assert getattr(s, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_per_layer_with_bias():
    """Weight block = the hand case; bias block: every example's gradient is 1 (κ = 1)."""
    obj = objective_with_grads(HAND, bias=True)
    s = ls.cancellation_stats(obj, obj.initial_point(), chunk_size=2)
    assert set(s.per_layer) == {"weight", "bias"}
    w = s.per_layer["weight"]
    for name, value in HAND_STATS.items():
        assert getattr(w, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name
    b = s.per_layer["bias"]
    assert b.dim == 1 and b.kappa == pytest.approx(1.0) and b.alpha == pytest.approx(1.0)
    assert b.diversity == pytest.approx(1 / 3) and b.sign_agreement_mean == 1.0
    # global: g_i = (x_i, 1), ‖g_i‖ = √10, μ = (5/3, 1/3, 1/3, 1), ‖μ‖² = 4
    assert s.kappa == pytest.approx(2 / math.sqrt(10), rel=1e-12)
    assert s.alpha == pytest.approx(0.4, rel=1e-12)
    assert s.diversity == pytest.approx(1 / 1.2, rel=1e-12)
    assert s.per_layer["weight"].per_layer == {}


def _reference(G: torch.Tensor) -> dict[str, float]:
    """Direct formulas of SYNAPRUNE.md on a full matrix (numpy-style, no streaming)."""
    n = G.shape[0]
    mu = G.mean(0)
    norms = G.norm(dim=1)
    a = G.abs().mean(0)
    var = (G ** 2).mean(0) - mu ** 2
    kj = (mu.abs() / a)[a > 0]
    q = torch.sign(G).mean(0).abs()
    alpha = float(mu.norm() ** 2 / (norms ** 2).mean())
    return dict(kappa=float(mu.norm() / norms.mean()), alpha=alpha, diversity=1 / (n * alpha),
                kappa_j_mean=float(kj.mean()), frac_kappa_j_below=float((kj < 0.1).double().mean()),
                gsnr_mean=float((mu ** 2 / var).mean()), gsnr_max=float((mu ** 2 / var).max()),
                sign_agreement_mean=float(q.mean()), grad_norm=float(mu.norm()),
                mean_example_grad_norm=float(norms.mean()))


def test_mlp_global_and_per_layer_match_direct_formulas():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    g = torch.Generator().manual_seed(2)
    X, Y = torch.randn(17, 3, generator=g, dtype=F64), torch.randn(17, 2, generator=g, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    theta = obj.initial_point()
    G = obj.per_example_grads(theta)
    s = ls.cancellation_stats(obj, theta)
    s_chunked = ls.cancellation_stats(obj, theta, chunk_size=4)
    assert s.grad_norm == pytest.approx(float(obj.grad(theta).norm()), rel=1e-12)
    for name, value in _reference(G).items():
        assert getattr(s, name) == pytest.approx(value, rel=1e-10), name
        assert getattr(s_chunked, name) == pytest.approx(value, rel=1e-10), name
    assert list(s.per_layer) == list(obj.param_names)
    for layer, sl in obj.spec.slices.items():
        for name, value in _reference(G[:, sl]).items():
            assert getattr(s.per_layer[layer], name) == pytest.approx(value, rel=1e-10), (layer, name)
            assert getattr(s_chunked.per_layer[layer], name) == pytest.approx(value, rel=1e-10), (layer, name)
    # bounds: 0 ≤ α ≤ κ² ≤ 1 (Jensen: mean‖g‖² ≥ (mean‖g‖)²)
    assert 0 <= s.alpha <= s.kappa ** 2 <= 1
    json.dumps(s.to_dict(), allow_nan=False)


def test_cancellation_needs_examples():
    obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="per-example"):
        ls.cancellation_stats(obj, obj.initial_point())
    obj = objective_with_grads(HAND)
    with pytest.raises(ValueError, match="chunk_size"):
        ls.cancellation_stats(obj, obj.initial_point(), chunk_size=0)


def test_even_count_medians():
    """g1 = (3, 4), g2 = (−3, 4): μ = (0, 4), κ = 4/5, α = 16/25; κ_j = (0, 1), q_j = (0, 1)."""
    obj = objective_with_grads(torch.tensor([[3.0, 4.0], [-3.0, 4.0]], dtype=F64))
    s = ls.cancellation_stats(obj, obj.initial_point())
    assert s.kappa == pytest.approx(0.8, rel=1e-14) and s.alpha == pytest.approx(0.64, rel=1e-14)
    assert s.diversity == pytest.approx(1 / 1.28, rel=1e-14)
    assert s.kappa_j_mean == pytest.approx(0.5) and s.kappa_j_median == pytest.approx(0.5)
    assert s.frac_kappa_j_below == pytest.approx(0.5)
    assert s.sign_agreement_median == pytest.approx(0.5)
    # GSNR: coordinate 0 has μ = 0, variance 9 → 0; coordinate 1 has variance 0 → inf
    assert s.gsnr_max == math.inf and s.gsnr_mean == math.inf
