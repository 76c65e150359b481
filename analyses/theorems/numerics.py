"""The deep linear loss in NumPy, L-BFGS and the gradient-flow escape time (the theorems' numerics).

Small dense problems: NumPy on stacked (R, a, b) arrays is several times faster than torch here.
"""
from __future__ import annotations

import math

import numpy as np

from landscape.deep_linear import DeepLinearProblem


def loss_grads(Ws: list[np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Loss (R,) and gradients [(R, d_k, d_{k−1})] of ½‖X Pᵀ − Y‖² for R stacked networks.

    ∂L/∂W_k = A_kᵀ G B_kᵀ with G = (X Pᵀ − Y)ᵀX, A_k = W_{H+1}⋯W_{k+1}, B_k = W_{k−1}⋯W_1; the
    loss is computed from the residual (no cancellation near the minimum).

    Args:
        Ws: the layers of R stacked networks, W_1 first, each (R, d_k, d_{k−1}).
        X: inputs (m, d_x).
        Y: targets (m, d_y).

    Returns:
        ``(loss (R,), [∂L/∂W_k (R, d_k, d_{k−1})])``.
    """
    n = len(Ws)
    prefix: list[np.ndarray | None] = [None] * (n + 1)
    for k in range(n):
        prefix[k + 1] = Ws[0] if k == 0 else Ws[k] @ prefix[k]
    P = prefix[n]
    R = X[None] @ P.transpose(0, 2, 1) - Y[None]
    loss = 0.5 * (R * R).sum((1, 2))
    G = R.transpose(0, 2, 1) @ X[None]
    grads: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    suffix = None
    for k in range(n - 1, -1, -1):
        left = G if suffix is None else suffix.transpose(0, 2, 1) @ G
        grads[k] = left if k == 0 else left @ prefix[k].transpose(0, 2, 1)
        suffix = Ws[k] if suffix is None else suffix @ Ws[k]
    return loss, grads


def _unflat(prob: DeepLinearProblem, th: np.ndarray) -> list[np.ndarray]:
    out, o = [], 0
    for a, b in prob.shapes:
        out.append(th[o:o + a * b].reshape(1, a, b))
        o += a * b
    return out


def lbfgs(prob: DeepLinearProblem, x0: np.ndarray, *, grad_tol: float = 1e-8, max_iter: int = 3000,
          memory: int = 20) -> tuple[np.ndarray, float, float, int, str]:
    """L-BFGS (two-loop recursion, Armijo backtracking) on the deep linear loss from flat ``x0``.

    Stops at ‖g‖ ≤ ``grad_tol`` ("converged"), when the line search cannot decrease the loss any
    more or five steps in a row gain less than round-off, or after ``max_iter`` iterations.

    Args:
        prob: the deep linear problem.
        x0: the start, flat (dim,).
        grad_tol: the gradient-norm target.
        max_iter: iterations at most.
        memory: stored curvature pairs.

    Returns:
        ``(x, loss, ‖g‖, iterations, status)``.
    """
    X, Y = prob.X.numpy(), prob.Y.numpy()

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        L, gr = loss_grads(_unflat(prob, x), X, Y)
        return float(L[0]), np.concatenate([g.ravel() for g in gr])

    x = x0.copy()
    f, g = fg(x)
    flat = 0
    S: list[np.ndarray] = []
    Yv: list[np.ndarray] = []
    for it in range(max_iter):
        gn = float(np.linalg.norm(g))
        if gn <= grad_tol:
            return x, f, gn, it, "converged"
        q = g.copy()
        alphas = []
        for sv, yv in zip(reversed(S), reversed(Yv)):
            a = (sv @ q) / (yv @ sv)
            alphas.append(a)
            q -= a * yv
        q *= (S[-1] @ Yv[-1]) / (Yv[-1] @ Yv[-1]) if S else 1.0 / max(gn, 1.0)
        for (sv, yv), a in zip(zip(S, Yv), reversed(alphas)):
            q += (a - (yv @ q) / (yv @ sv)) * sv
        d = -q
        gd = float(g @ d)
        if gd >= 0:
            d, gd = -g, -gn * gn
            S.clear()
            Yv.clear()
        t = 1.0
        for _ in range(50):
            xn = x + t * d
            fn, gnew = fg(xn)
            if math.isfinite(fn) and fn <= f + 1e-4 * t * gd:
                break
            t *= 0.5
        else:
            return x, f, gn, it, "line search stalled (round-off floor)"
        sv, yv = xn - x, gnew - g
        if sv @ yv > 1e-12 * np.linalg.norm(sv) * np.linalg.norm(yv):
            S.append(sv)
            Yv.append(yv)
            if len(S) > memory:
                S.pop(0)
                Yv.pop(0)
        flat = flat + 1 if f - fn <= 4 * np.finfo(float).eps * max(1.0, abs(f)) else 0
        x, f, g = xn, fn, gnew
        if flat >= 5:
            return x, f, float(np.linalg.norm(g)), it + 1, "loss stalled (round-off floor)"
    return x, f, float(np.linalg.norm(g)), max_iter, "max_iter"


def random_init(prob: DeepLinearProblem, seed: int, scale: float = 1.0) -> np.ndarray:
    """LeCun-style initialisation, flat: W_k ~ N(0, scale²/d_{k−1}).

    Args:
        prob: the deep linear problem (its layer shapes).
        seed: the NumPy generator's seed.
        scale: the weights' scale.

    Returns:
        The flat point (dim,), float64.
    """
    rng = np.random.default_rng(int(seed))
    return np.concatenate([scale * rng.standard_normal(a * b) / math.sqrt(b) for a, b in prob.shapes])


def escape_problem(H: int, seed: int) -> DeepLinearProblem:
    """d_x = 3, d_y = 2, hidden widths 2, whitened X, Y scaled so that σ_1(XᵀY) = 1.

    Args:
        H: the number of hidden layers.
        seed: the data's seed.

    Returns:
        The problem (16 examples).
    """
    base = DeepLinearProblem.random(3, 2, [2] * H, 16, seed, whiten=True)
    lam1 = float(base.sigma_eigs()[0][0])
    return DeepLinearProblem(base.X, base.Y / math.sqrt(lam1), [2] * H)


def escape_times(prob: DeepLinearProblem, eps: list[float], n_dirs: int, seed: int, *, rho: float = 0.01,
                 c_lip: float = 0.05, max_steps: int = 100_000) -> np.ndarray:
    """Gradient-flow time to escape from W_k = ε·A_k (A_k of unit Frobenius norm, ``n_dirs`` seeded
    directions shared by all ε).

    Explicit Euler (gradient descent) with per-run steps η = min(ρ‖θ‖/‖g‖, c_lip/L̂), L̂ a
    secant estimate of the local Lipschitz constant of the gradient (decaying maximum); T = Σ η.
    Escape: L(0) − L(t) ≥ λ_1/4. Returns T (n_dirs, len(eps)), NaN where not escaped.

    Args:
        prob: the deep linear problem (:func:`escape_problem`).
        eps: the perturbation sizes ε.
        n_dirs: random directions.
        seed: the directions' seed.
        rho: the largest relative change of θ per step.
        c_lip: the step's bound relative to 1 / L̂.
        max_steps: Euler steps at most.

    Returns:
        T (n_dirs, len(eps)) in gradient-flow time units, NaN where not escaped.
    """
    rng = np.random.default_rng(int(seed))
    A = [rng.standard_normal((n_dirs, b, a)) for b, a in prob.shapes]
    A = [a / np.linalg.norm(a, axis=(1, 2), keepdims=True) for a in A]
    e = np.asarray(eps, dtype=float)
    Ws = [(e[None, :, None, None] * a[:, None]).reshape(-1, *a.shape[1:]) for a in A]
    X, Y = prob.X.numpy(), prob.Y.numpy()
    lam1 = float(prob.sigma_eigs()[0][0])
    target = 0.5 * prob.trYY - lam1 / 4
    R = Ws[0].shape[0]
    T = np.zeros(R)
    done = np.zeros(R, dtype=bool)
    lip = np.zeros(R)
    prev = None
    for _ in range(max_steps):
        L, gr = loss_grads(Ws, X, Y)
        done |= L <= target
        if done.all():
            break
        gflat = np.concatenate([g.reshape(R, -1) for g in gr], 1)
        th = np.concatenate([W.reshape(R, -1) for W in Ws], 1)
        if prev is not None:
            nd = np.linalg.norm(th - prev[0], axis=1)
            sec = np.linalg.norm(gflat - prev[1], axis=1) / np.maximum(nd, 1e-300)
            lip = np.maximum(np.where(nd > 0, sec, 0.0), 0.9 * lip)
        eta = rho * np.linalg.norm(th, axis=1) / np.maximum(np.linalg.norm(gflat, axis=1), 1e-300)
        eta = np.minimum(eta, np.where(lip > 0, c_lip / np.maximum(lip, 1e-300), 1e-3))
        eta = np.where(done, 0.0, eta)
        prev = (th, gflat)
        Ws = [W - eta[:, None, None] * g for W, g in zip(Ws, gr)]
        T += eta
    return np.where(done, T, np.nan).reshape(n_dirs, len(eps))


def fit_escape(eps: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """Least-squares fits of the median escape time: log model T = a + b ln(1/ε) and power model
    ln T = c + k ln ε; R² of each (the power model's R² computed on T, not ln T, for comparability).

    Args:
        eps: the perturbation sizes (k,).
        T: the median escape times (k,) (NaN: not escaped, left out).

    Returns:
        ``n`` (points used), and with n ≥ 3: ``log_intercept``, ``log_slope``, ``log_r2``,
        ``log_rms_lnT``, ``pow_exponent``, ``pow_prefactor``, ``pow_r2``, ``pow_rms_lnT``.

    >>> e = np.logspace(-3, -1, 5); round(fit_escape(e, 2.0 * e ** -1.0)["pow_exponent"], 6)
    -1.0
    """
    ok = np.isfinite(T)
    x, y = eps[ok], T[ok]
    if x.size < 3:
        return {"n": int(x.size)}
    X1 = np.stack([np.ones_like(x), np.log(1 / x)], 1)
    (a, b), *_ = np.linalg.lstsq(X1, y, rcond=None)
    pred_log = X1 @ np.array([a, b])
    X2 = np.stack([np.ones_like(x), np.log(x)], 1)
    (c, k), *_ = np.linalg.lstsq(X2, np.log(y), rcond=None)
    pred_pow = np.exp(X2 @ np.array([c, k]))
    sst = float(((y - y.mean()) ** 2).sum())

    def r2(pred: np.ndarray) -> float:
        return 1.0 - float(((y - pred) ** 2).sum()) / sst if sst > 0 else float("nan")

    # Relative RMS error in ln T: comparable across models and scale-free.
    def rel(pred: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.log(np.clip(pred, 1e-300, None)) - np.log(y)) ** 2)))

    return {"n": int(x.size), "log_intercept": float(a), "log_slope": float(b), "log_r2": r2(pred_log),
            "log_rms_lnT": rel(pred_log), "pow_exponent": float(k), "pow_prefactor": float(math.exp(c)),
            "pow_r2": r2(pred_pow), "pow_rms_lnT": rel(pred_pow)}
