"""SynaPrune rules and baselines against hand computations and analytic values."""
import math

import pytest
import torch
from torch import nn

from landscape.deep_linear import DeepLinearProblem, half_sq_error
from synaprune import Aggregator, StallDetector, Trainer, aggregate
from synaprune.baselines import PGDFixed
from synaprune.base import StepContext

# Hand-made per-example gradients: 3 examples × 3 coordinates.
#   coord 0: 1, 3, -1  -> μ = 1/3 · 3 = 1     (positive)
#   coord 1: -3, 1, 1  -> μ = -1/3            (negative)
#   coord 2: 2, -2, 0  -> μ = 0 exactly       (tie; |2| = |-2|, example 0 comes first)
G = torch.tensor([[1.0, -3.0, 2.0], [3.0, 1.0, -2.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)


def test_rms_sign_and_magnitude_p_family():
    rms = aggregate(G, "rms", p=2)
    assert rms.tolist() == pytest.approx([math.sqrt(11 / 3), -math.sqrt(11 / 3), math.sqrt(8 / 3)], rel=1e-15)
    p1 = aggregate(G, "rms", p=1)
    assert p1.tolist() == pytest.approx([5 / 3, -5 / 3, 4 / 3], rel=1e-15)
    pinf = aggregate(G, "rms", p="inf")
    assert pinf.tolist() == [3.0, -3.0, 2.0]
    assert aggregate(G, "gd").tolist() == pytest.approx([1.0, -1 / 3, 0.0], abs=1e-15)


def test_mu_zero_tie_break():
    # argmax (default): sign of the largest-magnitude g_ij; on |2| = |-2| the first example wins (+).
    assert float(aggregate(G, "rms", p=2, tie_break="argmax")[2]) == pytest.approx(math.sqrt(8 / 3))
    flipped = G[[1, 0, 2]]  # now -2 comes first
    assert float(aggregate(flipped, "rms", p=2, tie_break="argmax")[2]) == pytest.approx(-math.sqrt(8 / 3))
    assert float(aggregate(G, "rms", p=2, tie_break="zero")[2]) == 0.0
    r = [float(aggregate(G, "rms", p=2, tie_break="random", generator=torch.Generator().manual_seed(s))[2])
         for s in range(8)]
    assert all(abs(abs(v) - math.sqrt(8 / 3)) < 1e-14 for v in r) and {math.copysign(1, v) for v in r} == {1, -1}
    # the tie-break touches only μ_j = 0: coordinates 0 and 1 keep sign(μ_j)
    assert aggregate(G, "rms", tie_break="zero")[:2].tolist() == pytest.approx([math.sqrt(11 / 3), -math.sqrt(11 / 3)])
    # all-zero column: magnitude 0 whatever the tie-break
    assert aggregate(torch.zeros(4, 2, dtype=torch.float64), "rms").tolist() == [0.0, 0.0]


def test_devarg_signed_max_magnitude_and_streaming():
    assert aggregate(G, "devarg").tolist() == [3.0, -3.0, 2.0]
    # streamed in chunks: same result, earliest example still wins ties across chunks
    agg = Aggregator("devarg")
    agg.update(G[:1])
    agg.update(G[1:])
    assert agg.result().tolist() == [3.0, -3.0, 2.0]
    agg = Aggregator("rms", p=2)
    for i in range(3):
        agg.update(G[i:i + 1])
    assert agg.result().tolist() == pytest.approx([math.sqrt(11 / 3), -math.sqrt(11 / 3), math.sqrt(8 / 3)])
    with pytest.raises(ValueError, match="p must be"):
        aggregate(G, "rms", p=0.5)


def test_hebbian_matches_hand_computation_two_layer_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2)).double()
    W1 = [[0.5, -1.0], [0.3, 0.8]]; b1 = [0.1, -0.2]
    W2 = [[1.2, -0.7], [0.4, 0.9]]; b2 = [0.05, -0.1]
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(W1, dtype=torch.float64)); model[0].bias.copy_(torch.tensor(b1, dtype=torch.float64))
        model[2].weight.copy_(torch.tensor(W2, dtype=torch.float64)); model[2].bias.copy_(torch.tensor(b2, dtype=torch.float64))
    xs = [[1.0, 2.0], [-1.0, 0.5]]
    ys = [[0.3, -0.5], [-0.2, 1.5]]
    lr, eps = 0.1, 1e-12

    def norm(v):
        s = sum(abs(a) for a in v) + eps
        return [a / s for a in v]

    per_example = []  # (dW1, db1, dW2, db2) for each example, by hand
    for x, y in zip(xs, ys):
        h = [math.tanh(sum(W1[a][k] * x[k] for k in range(2)) + b1[a]) for a in range(2)]
        out = [sum(W2[c][a] * h[a] for a in range(2)) + b2[c] for c in range(2)]
        e = [y[c] - out[c] for c in range(2)]
        estar = e[0] if abs(e[0]) >= abs(e[1]) else e[1]
        nx, nh = norm(x), norm(h)
        dW1 = [[lr * estar * nh[a] * nx[k] for k in range(2)] for a in range(2)]
        db1 = [lr * estar * nh[a] for a in range(2)]
        dW2 = [[lr * e[c] * nh[a] for a in range(2)] for c in range(2)]  # last layer: input of layer 2 is h
        db2 = [lr * e[c] for c in range(2)]
        per_example.append([v for M in (dW1, db1, dW2, db2) for v in (sum(M, []) if isinstance(M[0], list) else M)])
    expected = [max((ex[j] for ex in per_example), key=abs) for j in range(len(per_example[0]))]

    X, Y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    tr = Trainer(model, nn.MSELoss(), (X, Y), method="synaprune-hebbian", mode="always", lr=lr,
                 classify=False, cancellation=False, progress=False)
    res = tr.fit(1)
    delta = (res.final_theta - res.initial_theta).tolist()
    assert delta == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert model[0].weight.tolist() == W1  # the user's model is untouched


def _ctx(step, theta, loss, grad_norm, lr=0.1):
    g = torch.zeros_like(theta)
    g[0] = grad_norm
    return StepContext(step=step, theta=theta, loss=loss, grad=g, lr=lr, access=None,
                       generator=torch.Generator().manual_seed(step), info={})


def test_pgd_perturbs_only_when_its_conditions_hold():
    pgd = PGDFixed(g_thres=0.1, t_thres=5, radius=0.01, f_thres=1e-3)
    theta = torch.zeros(3, dtype=torch.float64)
    # large gradient: a plain gradient step, no perturbation
    c = _ctx(0, theta, 1.0, 1.0)
    new = pgd.step(c)
    assert not c.info.get("perturbed") and new.tolist() == pytest.approx([-0.1, 0.0, 0.0])
    # small gradient, never perturbed: perturb inside the ball of radius 0.01
    c = _ctx(1, theta, 1.0, 0.01)
    new = pgd.step(c)
    assert c.info.get("perturbed") and 0 < float(torch.linalg.vector_norm(new - theta)) <= 0.01
    # small gradient again within t_thres steps of the perturbation: no perturbation
    for t in range(2, 6):
        c = _ctx(t, theta, 1.0 - 0.5 * (t - 1), 0.01)
        pgd.step(c)
        assert not c.info.get("perturbed") and not c.info.get("stop")
    # t_thres steps later the loss had dropped by more than f_thres: no stop, θ̃ forgotten; the
    # next perturbation needs t − t_noise > t_thres (Jin et al.), so none at step 6 ...
    c = _ctx(6, theta, -1.0, 0.01)
    pgd.step(c)
    assert not c.info.get("stop") and not c.info.get("perturbed")
    # ... and one at step 7
    c = _ctx(7, theta, -1.0, 0.01)
    pgd.step(c)
    assert c.info.get("perturbed")
    snapshot = theta.clone()
    # another t_thres steps with no decrease: θ̃ is declared second-order stationary and returned
    for t in range(8, 12):
        c = _ctx(t, theta + 1.0, -1.0, 0.01)
        pgd.step(c)
        assert not c.info.get("perturbed") and not c.info.get("stop")
    c = _ctx(12, theta + 1.0, -1.0 + 1e-4, 0.01)
    pgd.step(c)
    assert c.info.get("stop") == "second_order_stationary" and torch.equal(c.info["return_theta"], snapshot)
    # large gradient long after: no perturbation
    c = _ctx(30, theta, 0.0, 0.5)
    pgd.step(c)
    assert not c.info.get("perturbed")


def test_ncd_moves_along_negative_eigenvector_at_w0_h1():
    pb = DeepLinearProblem.random(3, 2, [2], 8, seed=3)
    sigma1 = float(torch.linalg.svdvals(pb.XtY)[0])  # at W = 0 (H = 1): λ_min = −σ_1(XᵀY)
    tr = Trainer(pb.module(seed=None), half_sq_error, (pb.X, pb.Y), method="ncd", lr=0.01, reduction="sum",
                 classify=False, cancellation=False, progress=False)
    res = tr.fit(1)
    d = res.final_theta - res.initial_theta
    assert float(torch.linalg.vector_norm(d)) > 1e-3
    Hm = tr.obj.hessian(pb.zero_point())
    u = d / torch.linalg.vector_norm(d)
    assert float(torch.linalg.vector_norm(Hm @ u + sigma1 * u)) < 1e-6 * sigma1  # H u = −σ_1 u
    assert res.losses[1] < res.losses[0] - 1e-3
    assert res.losses[0] == pytest.approx(0.5 * pb.trYY, rel=1e-12)
    assert res.n_hvp > 0


def test_stall_detector_plateau_vs_steady_descent():
    det = StallDetector(window=20, rel_tol=1e-3, grad_tol=1e-3)
    fired = [t for t in range(60) if det.update(t, 1.0 + 1e-9 * (t % 3), 1e-5)]
    assert fired == [20]  # first full window; then disarmed until re-armed
    det.rearm()
    assert [t for t in range(60, 100) if det.update(t, 1.0, 1e-5)] == [80]

    det = StallDetector(window=20, rel_tol=1e-3, grad_tol=1e-3)
    assert not any(det.update(t, math.exp(-0.01 * t), 1e-5) for t in range(500))  # steady descent
    det = StallDetector(window=20, rel_tol=1e-3, grad_tol=1e-3)
    assert not any(det.update(t, 1.0, 0.5) for t in range(100))  # flat loss but large gradient
    with pytest.raises(ValueError, match="window"):
        StallDetector(window=0)


# ---------------------------------------------------------------------- the rules no test ran before
def _linreg(n=6, d=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    Y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return X, Y


def _mse_grad(theta, X, Y):
    """Closed-form gradient of MSE(Xw + b, y) = mean_i (x_i·w + b − y_i)², θ = (w, b)."""
    w, b = theta[:-1], theta[-1]
    r = X @ w + b - Y[:, 0]
    return torch.cat([2 * (r[:, None] * X).mean(0), (2 * r.mean()).reshape(1)])


def _one_step(method, X, Y, model=None, steps=1, **kw):
    model = model if model is not None else nn.Linear(X.shape[1], 1).double()
    tr = Trainer(model, nn.MSELoss(), (X, Y), method=method, classify=False, cancellation=False, progress=False, **kw)
    seen = []
    res = tr.fit(steps, callback=lambda t, s: seen.append(s["theta"].clone()))
    return seen + [res.final_theta], tr


def test_sgd_step_is_a_minibatch_gradient_step():
    import itertools
    X, Y = _linreg()
    lr = 0.1
    th, _ = _one_step("sgd", X, Y, lr=lr, batch_size=2, steps=2, momentum=0.5)
    subsets = list(itertools.combinations(range(6), 2))

    g = {S: _mse_grad(th[0], X[list(S)], Y[list(S)]) for S in subsets}
    first = [S for S in subsets if float((th[1] - (th[0] - lr * g[S])).abs().max()) < 1e-14]
    assert len(first) == 1  # exactly one minibatch of 2 explains the step
    # second step with heavy ball: θ2 = θ1 − lr·(0.5·g_B0(θ0) + g_B1(θ1))
    second = [S for S in subsets
              if float((th[2] - (th[1] - lr * (0.5 * g[first[0]] + _mse_grad(th[1], X[list(S)], Y[list(S)])))).abs().max())
              < 1e-14]
    assert len(second) == 1


def test_adam_first_step_is_lr_times_sign_and_second_by_hand():
    X, Y = _linreg()
    lr, eps = 0.01, 1e-8
    th, _ = _one_step("adam", X, Y, lr=lr, steps=2)
    g0 = _mse_grad(th[0], X, Y)
    d0 = th[1] - th[0]
    # m̂ = g, v̂ = g²: Δ = −lr·g/(|g| + eps) = −lr·sign(g) up to lr·eps/|g|
    assert torch.allclose(d0, -lr * torch.sign(g0), rtol=0, atol=float(lr * eps / g0.abs().min()) * 2)
    assert torch.allclose(d0, -lr * g0 / (g0.abs() + eps), rtol=1e-13, atol=0)
    g1 = _mse_grad(th[1], X, Y)
    m = 0.9 * 0.1 * g0 + 0.1 * g1
    v = 0.999 * 0.001 * g0 ** 2 + 0.001 * g1 ** 2
    expected = th[1] - lr * (m / (1 - 0.9 ** 2)) / ((v / (1 - 0.999 ** 2)).sqrt() + eps)
    assert torch.allclose(th[2], expected, rtol=1e-13, atol=1e-16)


def test_noise_perturbation_statistics_and_fixed_zeros():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(32, 60, generator=gen, dtype=torch.float64)
    X[:, 0] = 0.0  # weights on this input get no gradient: θ_j − lr·g_j = 0 stays 0 under the noise
    Y = torch.randn(32, 30, generator=gen, dtype=torch.float64)
    model = nn.Linear(60, 30, bias=False).double()
    with torch.no_grad():
        model.weight[:, 0] = 0.0
    lr, sigma = 0.01, 0.3
    th, tr = _one_step("synaprune-noise", X, Y, model=model, lr=lr, mode="always", sigma=sigma)
    W0 = th[0].reshape(30, 60)
    r = X @ W0.T - Y
    grad = (2 * r.T @ X / r.numel()).reshape(-1)  # MSELoss: mean over 32·30 entries
    gd = th[0] - lr * grad
    z = (th[1] - gd) / (sigma * gd.abs())
    zero = gd == 0
    assert int(zero.sum()) == 30 and bool((th[1][zero] == 0).all())
    z = z[~zero]
    d = z.numel()  # 1770 standard normal draws: mean and variance within 5 standard errors
    assert abs(float(z.mean())) < 5 / math.sqrt(d)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / d)
    from scipy import stats
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-4


def test_penalty_step_matches_closed_form_penalised_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    Y = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    a, b, lr = 0.7, 0.3, 0.05
    th, _ = _one_step("synaprune-penalty", X, Y, model=model, lr=lr, mode="always", a=a, b=b)

    def penalised(p):
        W1, b1 = p[:12].reshape(4, 3), p[12:16]
        W2, b2 = p[16:24].reshape(2, 4), p[24:26]
        y1 = X @ W1.T + b1
        h = torch.tanh(y1)
        y2 = h @ W2.T + b2
        loss = ((y2 - Y) ** 2).mean()
        d2 = 2 * (y2 - Y) / 2  # ∂ℓ_i/∂y2, ℓ_i = mean over the 2 outputs
        d1 = (d2 @ W2) * (1 - h ** 2)  # ∂ℓ_i/∂y1
        m1, m2 = (d1 ** 2).mean(), (d2 ** 2).mean()
        return loss + a * (m1 + m2) / 2 + b * (m1 - m2).abs() / 2  # population std of two values

    p = th[0].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(penalised(p), p)
    assert torch.allclose(th[1], th[0] - lr * g, rtol=1e-12, atol=1e-15)


class _Quadratic(nn.Module):
    def __init__(self, A, bvec, w0):
        super().__init__()
        self.A, self.b = A, bvec
        self.w = nn.Parameter(w0.clone())

    def forward(self, x):
        return (0.5 * self.w @ self.A @ self.w - self.b @ self.w) * torch.ones_like(x[:, :1])


def test_sfn_step_matches_dense_saddle_free_newton():
    Q = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[0]
    lam = torch.tensor([3.0, 1.0, -2.0, -0.5], dtype=torch.float64)
    A = Q @ torch.diag(lam) @ Q.T
    bvec = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64)
    w0 = torch.tensor([0.2, 0.1, -0.3, 0.4], dtype=torch.float64)
    X = torch.zeros(3, 1, dtype=torch.float64)
    lr = 0.5
    tr = Trainer(_Quadratic(A, bvec, w0), lambda out, y: out.mean(), (X, X), method="sfn", lr=lr, classify=False,
                 cancellation=False, progress=False, krylov_dim=4)
    res = tr.fit(1)

    def f(w):
        return float(0.5 * w @ A @ w - bvec @ w)

    g = A @ w0 - bvec
    best, best_f = None, f(w0)
    for d in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        step = -(Q @ ((Q.T @ g) / (lam.abs() + d * 3.0)))
        cand = w0 + lr * step
        if f(cand) < best_f:
            best, best_f = cand, f(cand)
    assert best is not None
    assert torch.allclose(res.final_theta, best, rtol=1e-9, atol=1e-12)


def test_mode_always_rms_step_by_hand():
    X, Y = _linreg(n=7, d=3, seed=4)
    lr = 0.02
    th, tr = _one_step("synaprune-rms", X, Y, lr=lr, mode="always", steps=2)
    for k in range(2):
        w, b0 = th[k][:-1], th[k][-1]
        r = X @ w + b0 - Y[:, 0]
        G = torch.cat([2 * r[:, None] * X, 2 * r[:, None]], dim=1)  # per-example gradients of (x·w + b − y)²
        A = torch.sign(G.mean(0)) * G.pow(2).mean(0).sqrt()
        assert torch.allclose(th[k + 1], th[k] - lr * A, rtol=1e-12, atol=1e-15)
    assert tr.mode == "always"


# ---------------------------------------------------------------------- the trainer's fast path
def _access(model, loss, X, Y):
    import landscape as ls
    from synaprune.access import DataAccess

    obj = ls.Objective.from_module(model, loss, [(X[:20], Y[:20]), (X[20:], Y[20:])])
    return obj, DataAccess(obj, loss, torch.Generator().manual_seed(0))


_CASES = [("gd", 2, "argmax"), ("rms", 1, "argmax"), ("rms", 2, "argmax"), ("rms", 2, "zero"),
          ("rms", 2, "random"), ("rms", "inf", "argmax"), ("devarg", 2, "argmax")]


@pytest.mark.parametrize("rule,p,tb", _CASES)
def test_aggregate_direction_fast_path_equals_per_example_path(rule, p, tb):
    """The trainer's aggregation by the matrix-product path equals the vmap + Aggregator path to
    1e-12 (float64), counts the same per-example gradients, and is bit-reproducible."""
    from synaprune.rules import aggregate_direction

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    g = torch.Generator().manual_seed(11)
    X, Y = torch.randn(41, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (41,), generator=g)
    obj, acc = _access(model, nn.CrossEntropyLoss(), X, Y)
    theta = obj.initial_point()
    for idx in (None, torch.tensor([0, 3, 4, 9, 20, 21, 30, 40])):
        kw = dict(idx=idx, p=p, tie_break=tb, chunk_size=3)
        before = acc.cost.n_per_example_grads
        ref = aggregate_direction(acc, theta, rule, fast=False, generator=torch.Generator().manual_seed(5), **kw)
        n_ref = acc.cost.n_per_example_grads - before
        got = aggregate_direction(acc, theta, rule, fast=True, generator=torch.Generator().manual_seed(5), **kw)
        assert acc.cost.n_per_example_grads - before - n_ref == n_ref == (41 if idx is None else 8)
        again = aggregate_direction(acc, theta, rule, generator=torch.Generator().manual_seed(5), **kw)
        assert torch.equal(got, again)  # the default takes the fast path, deterministically
        assert got.dtype == theta.dtype and got.shape == (obj.dim,)
        assert float((got - ref).abs().max()) <= 1e-12 * float(ref.abs().max()), (rule, p, tb, idx)


@pytest.mark.parametrize("rule,p,tb", _CASES)
def test_aggregate_direction_fast_path_ties_and_signs_bit_exact(rule, p, tb):
    """A ReLU MLP on dyadic data with every sum exact: layer-1 weights cancel exactly (μ_j = 0,
    inputs come in ± pairs, every unit but a dead one active), |g_ij| ties between the pair members
    (the lower example index wins, within and across chunks: the negative member comes first for
    some pairs), and a dead unit gives all-zero columns. The two paths must agree bit for bit."""
    from synaprune.rules import aggregate_direction

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.25, -0.5, 0.125], [0.5, 0.25, -0.25], [-0.125, 0.5, 0.5],
                                            [0.25, 0.25, 0.25]]))
        model[0].bias.copy_(torch.tensor([4.0, 4.0, 4.0, -8.0]))  # unit 3 dead for |x| <= 1
        model[2].weight.copy_(torch.tensor([[0.5, -0.25, 1.0, 0.75]]))
        model[2].bias.fill_(0.5)
    base = torch.tensor([[0.5, -1.0, 0.25], [-0.75, 0.5, 1.0], [1.0, 0.25, -0.5], [0.125, -0.5, 0.75]])
    X = torch.cat([base, -base[:2], -base[2:]])[[0, 4, 5, 1, 2, 6, 7, 3]].double()  # pairs split across chunks
    X = torch.cat([X, X.flip(0)] * 3)[:41]
    X[40] = 0.0
    Y = torch.zeros(41, 1, dtype=torch.float64)
    obj, acc = _access(model, lambda o, y: o.mean(), X, Y)
    theta = obj.initial_point()
    ref = aggregate_direction(acc, theta, rule, p=p, tie_break=tb, fast=False, chunk_size=3,
                              generator=torch.Generator().manual_seed(2))
    got = aggregate_direction(acc, theta, rule, p=p, tie_break=tb, fast=True, chunk_size=3,
                              generator=torch.Generator().manual_seed(2))
    assert torch.equal(got, ref), (rule, p, tb)
    G = obj.per_example_grads(theta)
    mu = G.mean(0)
    assert int((mu == 0).sum()) >= 12  # the 12 layer-1 weights cancel (the dead unit's among them)
    if rule == "devarg" or (tb == "argmax" and rule == "rms"):
        # the sign on a cancelling coordinate is that of the first example reaching max |g_ij|
        j = 0  # layer-1 weight (0, 0): g_i = w2_0 · x_i0 = 0.5 x_i0; example 0 has x = 0.5, max |x_i0| = 1
        first = int((G[:, j].abs() == G[:, j].abs().max()).nonzero()[0])
        assert math.copysign(1.0, float(got[j])) == math.copysign(1.0, float(G[first, j])) and float(got[j]) != 0.0


def test_aggregate_direction_falls_back_for_ineligible_models():
    from synaprune.rules import aggregate_direction

    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 2)).double()
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(30, 4, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)
    obj, acc = _access(model, nn.MSELoss(), X, Y)
    theta = obj.initial_point()
    auto = aggregate_direction(acc, theta, "rms")
    assert torch.equal(auto, aggregate_direction(acc, theta, "rms", fast=False))
    assert acc.cost.n_per_example_grads == 60
    with pytest.raises(ValueError, match="not eligible"):
        aggregate_direction(acc, theta, "rms", fast=True)
