"""Analytic certificates of the escape study's problem set: each problem's reference point has the
critical value, kind and stall cause its hints claim, computed here independently (numpy SVD / least
squares, closed-form curves, exact zeros), and its step size is stable (lr·λ_max < 2)."""

import numpy as np
import pytest
import torch

from analyses.escape import default_problems
from analyses.problems import get_problem


def _per_example(p, theta):
    obj = p.objective()
    G = obj.per_example_grads(theta)
    return obj, G, G.norm(dim=1).mean().item(), G.sum(0).norm().item() / (1 if p.reduction == "sum" else G.shape[0])


def _init_scale(p):
    """mean‖g_i‖ at the model's seeded default initialisation: the scale "large" and "small" refer to."""
    obj = p.objective()
    return obj.per_example_grads(obj.initial_point()).norm(dim=1).mean().item()


def _sym_eigs(X, Y):
    S = Y.T @ X @ np.linalg.solve(X.T @ X, X.T @ Y)
    return np.sort(np.linalg.eigvalsh(0.5 * (S + S.T)))[::-1]


def test_every_cell_of_cause_x_kind_has_a_certified_problem():
    cells = {(get_problem(n).hints["study"]["kind"], get_problem(n).hints["study"]["cause"]) for n in
             default_problems()}
    assert cells == {(k, c) for k in ("strict_saddle", "non_strict_saddle", "minimum", "global_minimum")
                     for c in ("vanishing", "cancelling")}


def test_deep_linear_h1_zero_strict_vanishing():
    p = get_problem("deep_linear_h1_zero")
    X, Y = (t.numpy() for t in p.data)
    th = p.reference(0)
    obj, G, scale, _ = _per_example(p, th)
    assert obj.loss(th) == pytest.approx(0.5 * (Y ** 2).sum(), rel=1e-12)
    assert float(G.abs().max()) == 0.0  # every per-example gradient is exactly 0: vanishing
    ev = np.sort(torch.linalg.eigvalsh(obj.hessian(th)).numpy())
    s = np.linalg.svd(X.T @ Y, compute_uv=False)
    d1 = p.extra["deep_linear"].widths[0]
    expect = np.sort(np.concatenate([np.repeat(s, d1), -np.repeat(s, d1), np.zeros(len(ev) - 2 * d1 * len(s))]))
    np.testing.assert_allclose(ev, expect, atol=1e-12 * s[0])  # ±σ_i(XᵀY), each d_1 times: strict saddle
    assert p.hints["study"] == {**p.hints["study"], "kind": "strict_saddle", "cause": "vanishing"}


def test_deep_linear_h1_saddle_strict_cancelling():
    p = get_problem("deep_linear_h1_saddle")
    X, Y = (t.numpy() for t in p.data)
    th = p.reference(0)
    obj, G, scale, mean_g = _per_example(p, th)
    lam = _sym_eigs(X, Y)
    assert obj.loss(th) == pytest.approx(0.5 * ((Y ** 2).sum() - lam[0] - lam[2]), rel=1e-10)
    assert obj.grad(th).norm().item() <= 1e-10 * scale  # critical: the per-example gradients cancel
    assert scale >= 1e-2 * _init_scale(p)  # and they are not small themselves
    ev = torch.linalg.eigvalsh(obj.hessian(th))
    assert ev[0] < -1e-3 * ev[-1] and int((ev < -1e-8 * ev[-1]).sum()) == 1


def test_deep_linear_h2_zero_non_strict_vanishing():
    p = get_problem("deep_linear_h2_zero")
    X, Y = (t.numpy() for t in p.data)
    th = p.reference(0)
    obj, G, _, _ = _per_example(p, th)
    assert float(G.abs().max()) == 0.0 and float(obj.hessian(th).abs().max()) == 0.0
    # cubic descent along W_k = t·A_k with A built from the top singular pair of XᵀY:
    # L(t) = L(0) − t³ σ₁ + ½ t⁶ ‖X v uᵀ‖² exactly (A₃A₂A₁ = u vᵀ)
    U, s, Vt = np.linalg.svd(X.T @ Y)
    v, u = U[:, 0], Vt[0]  # XᵀY v-side: (d_x,), Y-side: (d_y,)
    shapes = p.extra["deep_linear"].shapes
    A1 = np.zeros(shapes[0]); A1[0] = v
    A2 = np.zeros(shapes[1]); A2[0, 0] = 1.0
    A3 = np.zeros(shapes[2]); A3[:, 0] = u
    D = torch.as_tensor(np.concatenate([A1.ravel(), A2.ravel(), A3.ravel()]))
    for t in (0.1, 0.3):
        expect = 0.5 * (Y ** 2).sum() - t ** 3 * s[0] + 0.5 * t ** 6 * float(((X @ v) ** 2).sum())
        assert obj.loss(th + t * D) == pytest.approx(expect, rel=1e-12)
    assert obj.loss(th + 0.1 * D) < obj.loss(th) < obj.loss(th - 0.1 * D)


def test_deep_linear_h2_padded_non_strict_cancelling():
    p = get_problem("deep_linear_h2_padded")
    X, Y = (t.numpy() for t in p.data)
    th = p.reference(0)
    obj, G, scale, _ = _per_example(p, th)
    lam = _sym_eigs(X, Y)
    L0 = obj.loss(th)
    assert L0 == pytest.approx(0.5 * ((Y ** 2).sum() - lam[0] - lam[1]), rel=1e-10)
    assert obj.grad(th).norm().item() <= 1e-10 * scale and scale >= 1e-2 * _init_scale(p)
    ev = torch.linalg.eigvalsh(obj.hessian(th))
    assert ev[0] >= -1e-10 * ev[-1]  # PSD: no negative curvature
    # the padded hidden unit (index 2 of both hidden layers) is zero; moving it along a cubic curve
    # changes the product by t³ c aᵀ, so L(t) = L0 − t³ σ₁(K) + ½ t⁶ ‖X a‖², K = (Y − X Pᵀ)ᵀ X
    sh = p.extra["deep_linear"].shapes
    n1, n2 = sh[0][0] * sh[0][1], sh[1][0] * sh[1][1]
    W1, W2, W3 = (th[:n1].reshape(sh[0]).numpy(), th[n1:n1 + n2].reshape(sh[1]).numpy(),
                  th[n1 + n2:].reshape(sh[2]).numpy())
    assert not W1[2].any() and not W2[2].any() and not W2[:, 2].any() and not W3[:, 2].any()
    P = W3 @ W2 @ W1
    K = (Y - X @ P.T).T @ X
    Uk, sk, Vkt = np.linalg.svd(K)
    c, a = Uk[:, 0], Vkt[0]
    D1 = np.zeros(sh[0]); D1[2] = a
    D2 = np.zeros(sh[1]); D2[2, 2] = 1.0
    D3 = np.zeros(sh[2]); D3[:, 2] = c
    D = torch.as_tensor(np.concatenate([D1.ravel(), D2.ravel(), D3.ravel()]))
    assert sk[0] > 1e-3 * np.linalg.norm(X.T @ Y, 2)
    for t in (0.05, 0.2):
        expect = L0 - t ** 3 * sk[0] + 0.5 * t ** 6 * float(((X @ a) ** 2).sum())
        assert obj.loss(th + t * D) == pytest.approx(expect, rel=1e-10)


def test_noisy_regression_global_minimum_cancelling():
    p = get_problem("noisy_regression")
    X, y = (t.numpy() for t in p.data)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    assert p.global_min == pytest.approx(float(((A @ sol - y) ** 2).mean()), rel=1e-12)
    th = torch.as_tensor(sol.ravel())  # [weight (5), bias]
    obj, G, scale, _ = _per_example(p, th)
    assert obj.loss(th) == pytest.approx(p.global_min, rel=1e-12)
    assert obj.grad(th).norm().item() <= 1e-10 * scale and scale >= 0.1 * _init_scale(p)
    assert torch.linalg.eigvalsh(obj.hessian(th))[0] > 0  # convex, PD: the only critical point


def test_relu_teacher_global_minimum_vanishing():
    p = get_problem("relu_teacher")
    th = p.reference(0)
    obj, G, scale, _ = _per_example(p, th)
    assert obj.loss(th) <= 1e-28 and p.global_min == 0.0
    assert scale <= 1e-12 * _init_scale(p)  # residuals vanish, so does every per-example gradient


def test_relu_spurious_local_minimum_cancelling():
    p = get_problem("relu_spurious")
    X, y = (t.numpy() for t in p.data)
    th = p.reference(0)
    obj, G, scale, _ = _per_example(p, th)
    L = obj.loss(th)
    # independent check of the critical value: least squares of y on (x, 1) over the examples the point's
    # own unit 0 activates, the rest predicted 0
    W1, b1 = th[:4].reshape(2, 2).numpy(), th[4:6].numpy()
    pre = X @ W1.T + b1
    assert (pre[:, 1] < -0.5).all()  # unit 1 dead with margin: it gets no gradient, small moves change nothing
    act = pre[:, 0] > 0
    A = np.hstack([X, np.ones((len(X), 1))])[act]
    u, *_ = np.linalg.lstsq(A, y[act], rcond=None)
    expect = (((A @ u - y[act]) ** 2).sum() + (y[~act] ** 2).sum()) / len(y)
    assert L == pytest.approx(expect, rel=1e-10) and L > 0.05 > p.global_min  # spurious: above L* = 0
    assert obj.grad(th).norm().item() <= 1e-10 * scale and scale >= 0.1 * _init_scale(p)  # cancelling
    # a local minimum: no random perturbation inside the pattern's margin lowers the loss
    margin = p.extra["margin"]
    g = torch.Generator().manual_seed(0)
    r = 0.2 * margin / (1 + float(np.abs(np.hstack([X, np.ones((len(X), 1))])).max()))
    for _ in range(200):
        d = torch.randn(th.shape, generator=g, dtype=torch.float64)
        assert obj.loss(th + r * d / d.norm()) >= L * (1 - 1e-13)


def test_relu_dead_flat_local_minimum_vanishing():
    p = get_problem("relu_dead")
    y = p.data[1].numpy()
    th = p.reference(0)
    obj, G, _, _ = _per_example(p, th)
    assert obj.loss(th) == pytest.approx(float((y ** 2).mean()), rel=1e-14) and obj.loss(th) > 0 == p.global_min
    assert float(G.abs().max()) == 0.0
    g = torch.Generator().manual_seed(1)
    X = p.data[0]
    r = 0.5 / (1 + float(X.abs().max()) * 2)  # every pre-activation stays below −1 + 1/2 < 0
    for _ in range(50):
        d = torch.randn(th.shape, generator=g, dtype=torch.float64)
        assert obj.loss(th + r * d / d.norm()) == obj.loss(th)  # constant nearby: a flat local minimum


@pytest.mark.parametrize("name", sorted(["deep_linear_h1_zero", "deep_linear_h1_saddle", "deep_linear_h2_zero",
                                         "deep_linear_h2_padded", "noisy_regression", "relu_teacher", "relu_spurious",
                                         "relu_dead"]))
def test_step_size_is_stable_along_a_gd_run(name):
    """lr·λ_max < 2 at the reference point and every 100 steps along a GD run of the study's length
    (λ_max of the dense Hessian; the runs' curvature peaks near the minima they reach)."""
    p = get_problem(name)
    assert name in default_problems()
    obj = p.objective()
    lr = p.hints["lr"]
    tr = p.trainer("gd", 0, classify=False, cancellation=False)
    along = []
    res = tr.fit(p.hints["max_steps"], theta0=p.init(0, p.hints["eps"]),
                 callback=lambda t, state: along.append(state["theta"].clone()) if t % 100 == 0 else None)
    assert len(along) >= p.hints["max_steps"] // 100
    for th in (p.reference(0), *along, res.final_theta):
        lam_max = float(torch.linalg.eigvalsh(obj.hessian(th))[-1])
        assert lr * lam_max < 2.0, (name, lr * lam_max)
    losses = np.asarray(res.losses)
    # stable GD never raises the loss beyond round-off: relative 1e-12, plus the loss's absolute floor
    # ε²·(½)Σ‖y‖² (residuals carry round-off ε·|y|) for losses that reach 0
    Y = p.data[1].numpy()
    floor = np.finfo(np.float64).eps ** 2 * float((Y ** 2).sum() if p.reduction == "sum" else (Y ** 2).mean())
    assert (np.diff(losses) <= 1e-12 * np.abs(losses[:-1]) + 100 * floor).all()
