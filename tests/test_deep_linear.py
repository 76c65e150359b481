"""Deep linear networks: objective, closed forms and analytic critical points against independent math."""
import math

import numpy as np
import pytest
import torch

from landscape.deep_linear import DeepLinearProblem


def _np(prob):
    return prob.X.numpy(), prob.Y.numpy()


def _sigma_eigs_np(X, Y):
    """λ (descending) and U of Σ = YᵀX(XᵀX)⁻¹XᵀY, computed here with NumPy."""
    XtY = X.T @ Y
    Sig = XtY.T @ np.linalg.solve(X.T @ X, XtY)
    lam, U = np.linalg.eigh(0.5 * (Sig + Sig.T))
    return lam[::-1], U[:, ::-1]


def _direct_loss(prob, weights):
    X, Y = _np(prob)
    P = np.eye(X.shape[1])
    for W in weights:
        P = np.asarray(W) @ P
    return 0.5 * float(((X @ P.T - Y) ** 2).sum())


def _hessian_eigs(prob, theta):
    obj = prob.objective()
    return torch.linalg.eigvalsh(obj.hessian(theta)).numpy()


@pytest.mark.parametrize("widths", [[2], [5], [3, 2], [2, 3, 2]])
def test_objective_is_half_sum_of_squares_with_w1_first_row_major(widths):
    prob = DeepLinearProblem.random(4, 3, widths, 20, seed=3)
    obj = prob.objective()
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(shape) for shape in prob.shapes]
    theta = torch.cat([torch.from_numpy(w).reshape(-1) for w in weights])
    assert torch.equal(prob.flatten([torch.from_numpy(w) for w in weights]), theta)
    assert obj.dim == prob.dim == theta.numel()
    assert obj.loss(theta) == pytest.approx(_direct_loss(prob, weights), rel=1e-12)
    for W, back in zip(weights, prob.unflatten(theta)):
        np.testing.assert_array_equal(back.numpy(), W)
    # module parameter order is W_1 first
    mod = prob.module(seed=1)
    assert [tuple(p.shape) for p in mod.parameters()] == prob.shapes
    assert all(not isinstance(m, torch.nn.Linear) or m.bias is None for m in mod)


def test_per_example_gradients_match_analytic_and_sum_to_gradient():
    prob = DeepLinearProblem.random(4, 3, [2], 10, seed=1)
    obj = prob.objective()
    rng = np.random.default_rng(1)
    W1, W2 = rng.standard_normal((2, 4)), rng.standard_normal((3, 2))
    theta = prob.flatten([torch.from_numpy(W1), torch.from_numpy(W2)])
    G = obj.per_example_grads(theta)
    X, Y = _np(prob)
    for i in (0, 7):
        r = W2 @ W1 @ X[i] - Y[i]                      # residual of example i
        g1 = np.outer(W2.T @ r, X[i])                  # ∂/∂W1 ½‖W2 W1 x − y‖²
        g2 = np.outer(r, W1 @ X[i])                    # ∂/∂W2
        np.testing.assert_allclose(G[i].numpy(), np.concatenate([g1.ravel(), g2.ravel()]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(G.sum(0).numpy(), obj.grad(theta).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("widths", [[2], [5], [2, 2], [5, 5, 5]])
def test_global_min_equals_reduced_rank_regression(widths):
    prob = DeepLinearProblem.random(4, 3, widths, 25, seed=2)
    X, Y = _np(prob)
    B = np.linalg.lstsq(X, Y, rcond=None)[0]
    ols = 0.5 * float(((X @ B - Y) ** 2).sum())        # best linear map: unrestricted residual
    lam, _ = _sigma_eigs_np(X, Y)
    p = min(widths)
    expected = ols + 0.5 * float(lam[p:].sum())        # rank-p restriction drops λ_{p+1..}
    assert prob.global_min() == pytest.approx(expected, rel=1e-12)
    lam_code, U = prob.sigma_eigs()
    np.testing.assert_allclose(lam_code.numpy(), lam, rtol=1e-12)
    assert np.all(np.diff(lam_code.numpy()) < 0)


def test_zero_point_h1_hessian_is_plus_minus_singular_values():
    d_x, d_y, d1 = 4, 3, 2
    prob = DeepLinearProblem.random(d_x, d_y, [d1], 20, seed=4)
    X, Y = _np(prob)
    s = np.linalg.svd(X.T @ Y, compute_uv=False)
    expected = np.sort(np.concatenate([np.repeat(s, d1), -np.repeat(s, d1), np.zeros(d1 * (d_x - d_y))]))
    np.testing.assert_allclose(_hessian_eigs(prob, prob.zero_point()), expected, atol=1e-12)


def test_zero_point_h2_hessian_zero_and_cubic_descent():
    prob = DeepLinearProblem.random(4, 3, [3, 2], 20, seed=5)
    obj = prob.objective()
    assert torch.count_nonzero(obj.hessian(prob.zero_point())) == 0
    rng = np.random.default_rng(2)
    A = [rng.standard_normal(shape) for shape in prob.shapes]
    X, Y = _np(prob)
    c = float(np.sum((X.T @ Y) * (A[2] @ A[1] @ A[0]).T))    # ⟨XᵀY, (A3A2A1)ᵀ⟩
    L0 = 0.5 * float((Y ** 2).sum())
    for t in (1e-2, 2e-2):
        theta = prob.flatten([torch.from_numpy(t * a) for a in A])
        assert obj.loss(theta) - L0 == pytest.approx(-t ** 3 * c, rel=1e-3)


@pytest.mark.parametrize("widths,whiten", [([2], True), ([3], False), ([2, 2], False), ([3, 2, 3], True)])
def test_enumerated_points_are_critical_with_formula_loss(widths, whiten):
    prob = DeepLinearProblem.random(4, 3, widths, 20, seed=6, whiten=whiten)
    obj = prob.objective()
    X, Y = _np(prob)
    lam, _ = _sigma_eigs_np(X, Y)
    trYY = float((Y ** 2).sum())
    r = min(min(widths), 3)
    pts = prob.enumerate_critical_points(gauge_seed=11)
    assert len(pts) == sum(math.comb(3, s) for s in range(r + 1))
    for cp in pts:
        g = obj.grad(cp.theta)
        assert float(torch.linalg.vector_norm(g)) < 1e-10, cp.S
        expected = 0.5 * (trYY - float(lam[list(cp.S)].sum()))
        assert cp.loss == pytest.approx(expected, rel=1e-12)
        assert obj.loss(cp.theta) == pytest.approx(expected, rel=1e-11, abs=1e-12)
        assert cp.leading == (cp.S == tuple(range(len(cp.S))))


@pytest.mark.parametrize("whiten", [True, False])
def test_baldi_hornik_index_and_nullity(whiten):
    d_x, d_y, p = 5, 3, 2
    prob = DeepLinearProblem.random(d_x, d_y, [p], 20, seed=7, whiten=whiten)
    X, Y = _np(prob)
    lam, _ = _sigma_eigs_np(X, Y)
    for cp in prob.enumerate_critical_points(gauge_seed=3):
        S, s = cp.S, len(cp.S)
        swaps = sum(1 for i in S for j in range(d_y) if j not in S and lam[j] > lam[i])
        index = swaps + (p - s) * (d_y - s)                   # + ±σ(K) block per padded unit
        nullity = s * s + (p - s) * (d_x - d_y + 2 * s)      # GL(s) gauge + padded units' zeros
        ev = _hessian_eigs(prob, cp.theta)
        tol = 1e-9 * np.abs(ev).max()
        assert int((ev < -tol).sum()) == index == cp.index, S
        assert int((np.abs(ev) <= tol).sum()) == nullity == cp.nullity, S
        assert cp.kind == ("global_minimum" if S == tuple(range(p)) else "strict_saddle")


def test_deep_rank_deficient_leading_point_is_psd():
    prob = DeepLinearProblem.random(4, 3, [3, 3], 20, seed=8)
    cp = prob.critical_point((0,))
    assert cp.kind == "non_strict_saddle" and cp.index == 0 and cp.padded
    ev = _hessian_eigs(prob, cp.theta)
    assert ev.min() > -1e-9 * np.abs(ev).max()


def test_whitened_random_data():
    prob = DeepLinearProblem.random(4, 2, [3], 12, seed=0, whiten=True)
    np.testing.assert_allclose((prob.X.T @ prob.X).numpy(), np.eye(4), atol=1e-12)
    assert not prob.assumption_errors


def test_bad_input_errors():
    prob = DeepLinearProblem.random(4, 3, [2, 2], 20, seed=0)
    with pytest.raises(ValueError, match="length 18"):
        prob.unflatten(torch.zeros(19, dtype=torch.float64))
    good = [torch.zeros(s, dtype=torch.float64) for s in prob.shapes]
    with pytest.raises(ValueError, match="do not chain"):
        prob.flatten([good[0], torch.zeros(2, 3, dtype=torch.float64), good[2]])
    with pytest.raises(ValueError, match="expected H\\+1 = 3"):
        prob.flatten(good[:2])
    with pytest.raises(ValueError, match="shape"):
        prob.flatten([torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, 2), torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="at least one"):
        DeepLinearProblem(prob.X, prob.Y, [])
    with pytest.raises(ValueError, match="positive integer"):
        DeepLinearProblem(prob.X, prob.Y, [2, 0])
    with pytest.raises(ValueError, match="examples"):
        DeepLinearProblem(prob.X[:5], prob.Y, [2])
    with pytest.raises(ValueError, match=r"indices must lie"):
        prob.critical_point((3,))
    with pytest.raises(ValueError, match="r = min"):
        prob.critical_point((0, 1, 2))
    with pytest.raises(ValueError, match="repeated"):
        prob.critical_point((1, 1))


def test_data_violating_assumptions_are_rejected():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    with pytest.raises(ValueError, match="d_y = 4 exceeds d_x = 3"):
        DeepLinearProblem(X, rng.standard_normal((20, 4)), [2])
    Xs = np.concatenate([X, X[:, :1]], 1)                       # duplicated feature: XᵀX singular
    with pytest.raises(ValueError, match="XᵀX has rank 3"):
        DeepLinearProblem(Xs, rng.standard_normal((20, 2)), [2])
    Q, _ = np.linalg.qr(rng.standard_normal((20, 3)))          # whitened X
    O, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    with pytest.raises(ValueError, match="repeated eigenvalues"):
        DeepLinearProblem(Q, Q @ O, [2])                         # Σ = OᵀO = I
    with pytest.raises(ValueError, match="XᵀY has rank"):
        DeepLinearProblem(X, np.outer(X[:, 0], [1.0, 2.0]), [2])
    prob = DeepLinearProblem(Q, Q @ O, [2], check=False)        # opt-out still builds
    assert prob.assumption_errors
    with pytest.raises(ValueError, match="m = 2 < d_x = 3"):
        DeepLinearProblem.random(3, 2, [2], 2)
    with pytest.raises(ValueError, match="d_y = 3 exceeds"):
        DeepLinearProblem.random(2, 3, [2], 10)


def test_gauge_preserves_loss_criticality_and_inertia():
    prob = DeepLinearProblem.random(4, 3, [3, 3], 20, seed=9)
    a, b = prob.critical_point((0, 2)), prob.critical_point((0, 2), gauge_seed=5)
    assert not torch.allclose(a.theta, b.theta)
    obj = prob.objective()
    assert float(torch.linalg.vector_norm(obj.grad(b.theta))) < 1e-10
    assert obj.loss(b.theta) == pytest.approx(a.loss, rel=1e-12)
    ea, eb = _hessian_eigs(prob, a.theta), _hessian_eigs(prob, b.theta)
    ta, tb = 1e-9 * np.abs(ea).max(), 1e-9 * np.abs(eb).max()
    assert (ea < -ta).sum() == (eb < -tb).sum() >= 1
    assert (np.abs(ea) <= ta).sum() == (np.abs(eb) <= tb).sum()
