"""``landscape theorems``: verify Kawaguchi's (2016) four deep-linear-network statements empirically.

For depths H = 1, 2, 3, each with a bottleneck and a wide configuration (THEORY.md §3):

1. non-convex and non-concave: a point whose Hessian has eigenvalues of both signs, and two
   chords, one violating convexity (the midpoint of two global minima related by flipping the
   signs of W_1 and W_2 is W_1 = W_2 = 0), one violating concavity (θ* ± δ v₊);
2. every local minimum is global: ``n_init`` random (LeCun) initialisations per configuration (100;
   25 with ``--quick``),
   each run by L-BFGS to ‖g‖ ≤ 1e-8 (or its round-off floor / an iteration cap); the distribution
   of L_final − L*; runs ending above L* (gap > 10√ε·max(1, L*)) are classified, plus a sample of
   the others;
3. every non-global critical point is a saddle: every enumerated analytic critical point (all
   index sets, random gauge) classified; loss, index and nullity against the formulas;
4. bad saddles: W = 0 and the rank-deficient leading point S = {0} for H = 1 vs H ≥ 2 (λ_min, kind,
   probe order), and the escape time of gradient descent from ε-perturbations of W = 0 against ε
   (log for H = 1, power law ε^{−(H−1)} for H ≥ 2).

Escape times are in gradient-flow time units: T = Σ_k η_k with adaptive explicit-Euler steps
η_k = min(η_max, ρ‖θ‖/‖g‖) (ρ = 0.01, i.e. at most 1 % relative change per step), on whitened
data scaled so that σ_1(XᵀY) = 1 (hence λ_1(Σ) = 1). Escape = the first time L(0) − L(t) ≥ λ_1/4,
half of the first drop L(0) − L({u_1}) = λ_1/2.

Round-off: quantities that are zero in exact arithmetic and measured at round-off level — gaps
L_final − L*, ‖g‖ and |L − formula| at the analytic critical points — are reported as 0 when
within the configuration's round-off floor ``roundoff_floor`` = 1000·ε·max(1, tr YᵀY) (ε the
float64 machine epsilon; L* = ½(tr YᵀY − Σλ) alone carries an error of order ε·tr YᵀY), and an
eigenvalue λ_min within the classifier's zero tolerance ``eig_tol`` is reported as 0; the report
then says "≤ floor". Their last bits are not reproducible across BLAS builds or CPUs, so no noise
digits reach the tracked outputs.

Outputs in ``--out`` (default ``figures/theorems``): ``theorems.json``, ``theorems.md``,
``escape_time.png``, ``gap_hist.png``, ``index_vs_loss.png`` and ``theorems.html`` (the three
figures as interactive plotly, plotly.js inlined once).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.classify import classify_point, dense_hessian
from landscape.deep_linear import DeepLinearProblem
from landscape.render import fmt_num, write_html
from landscape.results import JsonResult, write_json

D_X, D_Y, M = 4, 3, 32
CONFIGS: list[tuple[str, list[int]]] = [
    ("H1-bottleneck", [2]), ("H1-wide", [5]),
    ("H2-bottleneck", [3, 2]), ("H2-wide", [5, 5]),
    ("H3-bottleneck", [3, 2, 3]), ("H3-wide", [5, 5, 5]),
]
# Default run only: a second data family, d_x = 6, d_y = 4 (16 index sets per configuration).
D_X2, D_Y2, M2 = 6, 4, 48
CONFIGS_EXTRA: list[tuple[str, list[int]]] = [
    ("H1-6x4-bottleneck", [3]), ("H2-6x4-wide", [6, 6]), ("H3-6x4-bottleneck", [4, 3, 4]),
]
SADDLE_KINDS = ("strict_saddle", "non_strict_saddle")
#: round-off floor in units of ε·max(1, tr YᵀY) (see the module docstring)
ROUNDOFF_ULPS = 1000.0
#: decimals of the probe order (a fitted exponent, meaningful to about 1e-3) in the outputs
PROBE_DECIMALS = 3
#: gap histograms: left edge (log10, below every round-off floor ≥ 1000 ε ≈ 2e-13) and bin width (decades)
GAP_HIST_LO, GAP_HIST_BIN = -14.0, 0.25
#: significant digits of the floats in theorems.json (a tracked output: no noise digits)
JSON_DIGITS = 8


@dataclass
class Settings(JsonResult):
    quick: bool
    seed: int
    d_x: int
    d_y: int
    m: int
    n_init: int
    optimizer: str
    opt_max_iter: int
    opt_grad_tol: float
    n_classify_converged: int
    escape_eps: dict[str, list[float]]
    escape_dirs: int
    escape_rho: float
    escape_c_lip: float


@dataclass
class TheoremReport(JsonResult):
    """Everything ``landscape theorems`` measured (see the module docstring)."""

    settings: Settings
    configs: list[dict[str, Any]]
    statement1: list[dict[str, Any]]
    statement2: list[dict[str, Any]]
    statement3: list[dict[str, Any]]
    statement4: dict[str, Any]
    verdicts: dict[str, dict[str, Any]]
    timings_s: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- deep linear loss in NumPy
# Small dense problems: NumPy on stacked (R, a, b) arrays is several times faster than torch here.
def loss_grads(Ws: list[np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Loss (R,) and gradients [(R, d_k, d_{k−1})] of ½‖X Pᵀ − Y‖² for R stacked networks.

    ∂L/∂W_k = A_kᵀ G B_kᵀ with G = (X Pᵀ − Y)ᵀX, A_k = W_{H+1}⋯W_{k+1}, B_k = W_{k−1}⋯W_1; the
    loss is computed from the residual (no cancellation near the minimum).
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
    more or five steps in a row gain less than round-off, or after ``max_iter`` iterations. Returns (x, loss, ‖g‖, iterations, status).
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
    """LeCun-style initialisation, flat: W_k ~ N(0, scale²/d_{k−1})."""
    rng = np.random.default_rng(int(seed))
    return np.concatenate([scale * rng.standard_normal(a * b) / math.sqrt(b) for a, b in prob.shapes])


# ---------------------------------------------------------------------------- escape time
def escape_problem(H: int, seed: int) -> DeepLinearProblem:
    """d_x = 3, d_y = 2, hidden widths 2, whitened X, Y scaled so that σ_1(XᵀY) = 1."""
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
    ln T = c + k ln ε; R² of each (the power model's R² computed on T, not ln T, for comparability)."""
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


# ---------------------------------------------------------------------------- the statements
def roundoff_floor(prob: DeepLinearProblem) -> float:
    """The configuration's round-off floor ``ROUNDOFF_ULPS``·ε·max(1, tr YᵀY) (loss units; also
    used for gradient norms, whose round-off has the same scale on these O(1)-conditioned data)."""
    return ROUNDOFF_ULPS * float(np.finfo(np.float64).eps) * max(1.0, float(prob.trYY))


def at_floor(x: float, floor: float) -> float:
    """``x``, or 0.0 when |x| ≤ ``floor`` (a quantity that is zero up to round-off)."""
    return 0.0 if abs(x) <= floor else float(x)


def _probe(order: float | None) -> float | None:
    return None if order is None else round(float(order), PROBE_DECIMALS)


def fmt_bound(x: float, floor: float, spec: str = ".1e") -> str:
    """``x`` formatted with ``spec``, or ``≤ floor`` (2 significant digits) when it is 0 at the floor."""
    return f"≤ {floor:.1e}" if x == 0.0 else format(x, spec)


def _max_bound(rows: list[dict[str, Any]], key: str, spec: str = ".1e") -> str:
    """The largest ``row[key]`` over configurations, or "≤ (largest round-off floor)" when every one is 0."""
    m = max(r[key] for r in rows)
    return fmt_bound(m, max(r["roundoff_floor"] for r in rows), spec) + (" (round-off floor)" if m == 0.0 else "")


def _fmt_lam(r: dict[str, Any], spec: str) -> str:
    """λ_min, or "0 (within eig_tol …)" when it is within the classifier's (nonzero) zero tolerance."""
    if r["lambda_min"] != 0.0:
        return format(r["lambda_min"], spec)
    return f"0 (within eig_tol {r['eig_tol']:.1e})" if r["eig_tol"] > 0 else "0"


def _kind_counts(kinds: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in kinds:
        out[k] = out.get(k, 0) + 1
    return out


def statement1(prob: DeepLinearProblem, name: str, obj) -> dict[str, Any]:
    """A point with Hessian eigenvalues of both signs, and chords violating convexity and concavity."""
    cps = prob.enumerate_critical_points()
    sad = next(cp for cp in cps if cp.kind == "strict_saddle")
    ev = torch.linalg.eigvalsh(dense_hessian(obj, sad.theta))
    star = prob.critical_point(range(prob.r), gauge_seed=1)
    ws = [w.clone() for w in star.weights]
    ws[0], ws[1] = -ws[0], -ws[1]
    flipped = prob.flatten(ws)
    fa, fb, fm = obj.loss(star.theta), obj.loss(flipped), obj.loss(0.5 * (star.theta + flipped))
    Hs = dense_hessian(obj, star.theta)
    evs, vecs = torch.linalg.eigh(Hs)
    v = vecs[:, -1]
    delta = 1e-2 / max(1.0, float(evs[-1]) ** 0.5)
    ga, gb = obj.loss(star.theta + delta * v), obj.loss(star.theta - delta * v)
    gm = obj.loss(star.theta)
    convex_margin = fm - 0.5 * (fa + fb)      # > 0 violates convexity
    concave_margin = 0.5 * (ga + gb) - gm     # > 0 violates concavity
    return {
        "config": name, "point_S": list(sad.S), "lambda_min": float(ev[0]), "lambda_max": float(ev[-1]),
        "convexity_chord": {"f_a": fa, "f_b": fb, "f_mid": fm, "margin": convex_margin},
        "concavity_chord": {"f_a": ga, "f_b": gb, "f_mid": gm, "margin": concave_margin, "delta": delta},
        "pass": bool(ev[0] < 0 < ev[-1] and convex_margin > 0 and concave_margin > 0),
    }


def statement2(prob: DeepLinearProblem, name: str, obj, *, n_init: int, max_iter: int, grad_tol: float,
               n_classify: int, seed: int) -> dict[str, Any]:
    """Random initialisations run to convergence (L-BFGS); gaps to L*; classification of the ends."""
    Lstar = prob.global_min()
    thetas, iters, gns, status = [], [], [], []
    for i in range(n_init):
        x, _, gn, it, st = lbfgs(prob, random_init(prob, seed * 100_003 + i), grad_tol=grad_tol, max_iter=max_iter)
        thetas.append(torch.from_numpy(x))
        iters.append(it)
        gns.append(gn)
        status.append(st)
    losses = np.array([prob.loss_of(t) for t in thetas])
    floor = roundoff_floor(prob)
    gaps = np.array([at_floor(g, floor) for g in losses - Lstar])
    tol = 10 * math.sqrt(torch.finfo(torch.float64).eps) * max(1.0, abs(Lstar))
    above = [i for i in range(n_init) if gaps[i] > tol]
    to_classify = sorted(set(above) | set(range(min(n_classify, n_init))))
    classified = []
    for i in to_classify:
        rep = classify_point(obj, thetas[i], global_min=Lstar, seed=seed + i)
        classified.append({"run": i, "gap": float(gaps[i]), "kind": rep.kind, "grad_norm": rep.grad_norm,
                           "lambda_min": at_floor(rep.lambda_min, rep.eig_tol), "eig_tol": rep.eig_tol,
                           "index": rep.index, "n_zero": rep.n_zero})
    above_kinds = [c["kind"] for c in classified if c["run"] in above]
    # A run above L* that ended at a genuine local minimum would falsify statement 2.
    bad = [c for c in classified if c["run"] in above and c["kind"] in ("minimum", "global_minimum")]
    return {
        "config": name, "L_star": Lstar, "n_init": n_init, "gaps": gaps.tolist(), "gap_tol": tol,
        "roundoff_floor": floor,
        "n_at_global": int(n_init - len(above)), "n_above": len(above), "max_gap": float(gaps.max()),
        "median_iters": float(np.median(iters)), "max_grad_norm": float(max(gns)),
        "n_converged": int(sum(g <= grad_tol for g in gns)), "status": _kind_counts(status),
        "classified": classified, "classified_kinds": _kind_counts([c["kind"] for c in classified]),
        "above_kinds": _kind_counts(above_kinds), "pass": not bad,
    }


def statement3(prob: DeepLinearProblem, name: str, obj, seed: int) -> dict[str, Any]:
    """Every enumerated analytic critical point classified and compared with the formulas."""
    Lstar = prob.global_min()
    floor = roundoff_floor(prob)
    rows, grad_ok = [], []
    for cp in prob.enumerate_critical_points(gauge_seed=seed):
        rep = classify_point(obj, cp.theta, global_min=Lstar, seed=seed)
        grad_ok.append(rep.grad_norm < 1e-10)
        rows.append({
            "S": list(cp.S), "loss": rep.loss, "loss_formula": cp.loss,
            "loss_err": at_floor(abs(rep.loss - cp.loss), floor), "grad_norm": at_floor(rep.grad_norm, floor),
            "kind": rep.kind, "kind_pred": cp.kind, "index": rep.index, "index_pred": cp.index,
            "swaps": cp.swaps, "n_zero": rep.n_zero, "nullity_pred": cp.nullity,
            "lambda_min": at_floor(rep.lambda_min, rep.eig_tol), "eig_tol": rep.eig_tol,
            "probe_order": _probe(rep.probe_order), "leading": cp.leading, "padded": cp.padded,
            "kind_ok": rep.kind == cp.kind,
            "index_ok": None if cp.index is None else rep.index == cp.index,
            "nullity_ok": None if cp.nullity is None else rep.n_zero == cp.nullity,
        })
    non_global = [r for r in rows if r["kind_pred"] != "global_minimum"]
    return {
        "config": name, "H": prob.H, "n_points": len(rows), "points": rows, "roundoff_floor": floor,
        "max_grad_norm": max(r["grad_norm"] for r in rows), "max_loss_err": max(r["loss_err"] for r in rows),
        "n_kind_ok": sum(r["kind_ok"] for r in rows),
        "n_index_checked": sum(r["index_ok"] is not None for r in rows),
        "n_index_ok": sum(bool(r["index_ok"]) for r in rows),
        "n_nullity_checked": sum(r["nullity_ok"] is not None for r in rows),
        "n_nullity_ok": sum(bool(r["nullity_ok"]) for r in rows),
        "n_index_eq_swaps": sum(r["index"] == r["swaps"] for r in rows if r["kind_pred"] != "global_minimum"
                                and (prob.H >= 2 or not r["padded"])),
        "n_non_global": len(non_global),
        "n_non_global_saddles": sum(r["kind"] in SADDLE_KINDS for r in non_global),
        "pass": all(r["kind_ok"] and r["index_ok"] is not False and r["nullity_ok"] is not False and ok
                    for r, ok in zip(rows, grad_ok)) and all(r["kind"] in SADDLE_KINDS for r in non_global),
    }


def contrast_point(prob: DeepLinearProblem, name: str, obj, S: tuple[int, ...], seed: int) -> dict[str, Any]:
    cp = prob.critical_point(S)
    rep = classify_point(obj, cp.theta, global_min=prob.global_min(), seed=seed)
    return {"config": name, "H": prob.H, "S": list(S), "kind": rep.kind, "kind_pred": cp.kind,
            "lambda_min": at_floor(rep.lambda_min, rep.eig_tol), "lambda_max": rep.lambda_max, "eig_tol": rep.eig_tol,
            "index": rep.index, "n_zero": rep.n_zero, "probe_order": _probe(rep.probe_order),
            "probe_radius": rep.probe_radius,
            "expected_order": (None if prob.H == 1 else prob.H + 1)}


# ---------------------------------------------------------------------------- figures and report
def _figures(out: Path, report: TheoremReport, escape_raw: dict[str, Any]) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    files = []
    colors = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
    pcolors = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}
    # escape time vs eps
    fig, ax = plt.subplots(figsize=(6, 4.5))
    pfig1 = go.Figure()
    for H, d in escape_raw.items():
        eps = np.asarray(d["eps"])
        T = np.asarray(d["T"], dtype=float)
        med = np.nanmedian(T, axis=0)
        for row in T:
            ax.loglog(eps, row, ".", color=colors[H], alpha=0.35)
        ax.loglog(eps, med, "o-", color=colors[H], label=f"H = {H} (median)")
        pfig1.add_trace(go.Scatter(x=eps, y=med, mode="lines+markers", name=f"H = {H} median",
                                   line={"color": pcolors[H]}))
        for j, row in enumerate(T):
            pfig1.add_trace(go.Scatter(x=eps, y=row, mode="markers", name=f"H = {H} dir {j}", showlegend=False,
                                       marker={"color": pcolors[H], "opacity": 0.4, "size": 5}))
        fit = d["fit"]
        if H >= 2 and "pow_prefactor" in fit:
            ref = fit["pow_prefactor"] * eps ** (-(H - 1.0))
            ax.loglog(eps, ref, "-", color=colors[H], lw=5, alpha=0.25, zorder=0, label=f"slope −{H - 1} (theory)")
            pfig1.add_trace(go.Scatter(x=eps, y=ref, mode="lines", name=f"ε^-{H - 1} (theory slope)",
                                       line={"color": pcolors[H], "dash": "dash"}))
        if H == 1 and "log_intercept" in fit:
            ref = fit["log_intercept"] + np.log(1 / eps) / d.get("sigma1", 1.0)
            ax.loglog(eps, ref, "-", color=colors[H], lw=5, alpha=0.25, zorder=0, label="a + ln(1/ε)/σ₁ (theory)")
            pfig1.add_trace(go.Scatter(x=eps, y=ref, mode="lines", name="a + ln(1/ε)/σ₁ (theory)",
                                       line={"color": pcolors[H], "dash": "dash"}))
    ax.set_xlabel("ε (perturbation size of W = 0)")
    ax.set_ylabel("escape time T (gradient-flow time, σ₁ = 1)")
    ax.set_title("Escape from W = 0: log (H = 1) vs power law (H ≥ 2)")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)  # tight_layout costs seconds here
    fig.savefig(out / "escape_time.png", dpi=110)
    plt.close(fig)
    files.append("escape_time.png")
    pfig1.update_layout(title="Escape time from W = 0 vs ε", xaxis={"type": "log", "title": "ε"},
                        yaxis={"type": "log", "title": "escape time T"})

    # gap histograms
    s2 = report.statement2
    n = len(s2)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(3.2 * ((n + 1) // 2), 5.5), squeeze=False)
    pfig2 = make_subplots(rows=2, cols=(n + 1) // 2,
                          subplot_titles=[f"{r['config']} ({r['n_at_global']}/{r['n_init']} at L*)" for r in s2])
    # One fixed range and fixed bin edges (a quarter decade) for every panel. Gaps within the round-off
    # floor are 0 in the report: they are drawn at the floor, so round-off never moves a bar.
    logs = [np.log10(np.maximum(np.abs(np.asarray(r["gaps"], dtype=float)), r["roundoff_floor"])) for r in s2]
    lo_all = GAP_HIST_LO
    hi_all = max(0.0, math.ceil(max(float(lg.max()) for lg in logs)) + 1.0)
    edges = np.linspace(lo_all, hi_all, int(round((hi_all - lo_all) / GAP_HIST_BIN)) + 1)
    for i, (r, lg) in enumerate(zip(s2, logs)):
        ax = axes[i % 2][i // 2]
        ax.hist(lg, bins=edges, color="tab:purple")
        ax.set_xlim(lo_all, hi_all)
        ax.set_ylim(0, r["n_init"])
        ax.axvline(math.log10(r["gap_tol"]), color="k", ls="--", lw=0.8)
        ax.axvline(math.log10(r["roundoff_floor"]), color="0.5", ls=":", lw=0.8)
        ax.set_title(f"{r['config']} ({r['n_at_global']}/{r['n_init']} at L*)", fontsize=8)
        ax.set_xlabel("log10 max(|L_final − L*|, round-off floor)", fontsize=7)
        pfig2.add_trace(go.Histogram(x=lg, xbins={"start": lo_all, "end": hi_all, "size": GAP_HIST_BIN},
                                     name=r["config"], marker={"color": "#9467bd"}), row=i % 2 + 1, col=i // 2 + 1)
        fl = math.log10(r["roundoff_floor"])
        pfig2.add_trace(go.Scatter(x=[fl, fl], y=[0, r["n_init"]], mode="lines", name="round-off floor",
                                   line={"color": "gray", "dash": "dot"}, showlegend=i == 0,
                                   hovertext=f"round-off floor {r['roundoff_floor']:.2g}", hoverinfo="text"),
                        row=i % 2 + 1, col=i // 2 + 1)
        tol = math.log10(r["gap_tol"])
        pfig2.add_trace(go.Scatter(x=[tol, tol], y=[0, r["n_init"]], mode="lines", name="global-minimum tolerance",
                                   line={"color": "black", "dash": "dash"}, showlegend=i == 0,
                                   hovertext=f"tolerance {r['gap_tol']:.2g}", hoverinfo="text"),
                        row=i % 2 + 1, col=i // 2 + 1)
        pfig2.update_xaxes(range=[lo_all, hi_all], title_text="log10 max(|L_final − L*|, floor)", row=i % 2 + 1, col=i // 2 + 1)
        pfig2.update_yaxes(range=[0, r["n_init"]], title_text="runs" if i < 2 else None, row=i % 2 + 1,
                           col=i // 2 + 1)
    for j in range(n, axes.size):  # an odd number of configurations leaves one panel empty
        axes[j % 2][j // 2].axis("off")
    fig.suptitle("L_final − L* over random initialisations (dashed: global-minimum tolerance; dotted: round-off "
                 f"floor {ROUNDOFF_ULPS:.0f}·ε·max(1, tr YᵀY), gaps below it drawn at it)", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.88, hspace=0.45, wspace=0.3)
    fig.savefig(out / "gap_hist.png", dpi=110)
    plt.close(fig)
    files.append("gap_hist.png")
    pfig2.update_layout(title="log10 |L_final − L*| per configuration (gaps below the round-off floor drawn at it; "
                              "dashed: global-minimum tolerance)",
                        height=650, legend={"orientation": "h", "y": -0.12})

    # index vs loss
    fig, ax = plt.subplots(figsize=(6, 4.5))
    pfig3 = go.Figure()
    markers = {"global_minimum": "*", "strict_saddle": "o", "non_strict_saddle": "s"}
    pm = {"global_minimum": "star", "strict_saddle": "circle", "non_strict_saddle": "square"}
    for r in report.statement3:
        pts = r["points"]
        for kind in markers:
            sel = [p for p in pts if p["kind"] == kind]
            if not sel:
                continue
            x = [p["loss"] for p in sel]
            y = [p["index"] for p in sel]
            ax.scatter(x, y, marker=markers[kind], color=colors[r["H"]], alpha=0.6, s=30)
            pfig3.add_trace(go.Scatter(
                x=x, y=y, mode="markers", name=f"{r['config']} {kind}",
                marker={"symbol": pm[kind], "color": pcolors[r["H"]], "size": 9, "opacity": 0.7},
                text=[f"S={p['S']} n_zero={p['n_zero']} order={p['probe_order']}" for p in sel]))
    for H in (1, 2, 3):
        ax.scatter([], [], color=colors[H], label=f"H = {H}")
    for kind, mk in markers.items():
        ax.scatter([], [], marker=mk, color="gray", label=kind)
    ax.set_xlabel("loss at the critical point")
    ax.set_ylabel("index (# negative Hessian eigenvalues)")
    ax.set_title("Enumerated analytic critical points: index vs loss")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(out / "index_vs_loss.png", dpi=110)
    plt.close(fig)
    files.append("index_vs_loss.png")
    pfig3.update_layout(title="Index vs loss of the enumerated critical points",
                        xaxis={"title": "loss"}, yaxis={"title": "index"})

    write_html(out / "theorems.html", [("Escape time from W = 0", pfig1), ("Gaps to the global minimum", pfig2),
                                       ("Index against loss of the analytic critical points", pfig3)],
               title="Kawaguchi's deep-linear-network statements: figures",
               intro_html="<p>Numbers: <code>theorems.json</code>; table: <code>theorems.md</code>.</p>")
    files.append("theorems.html")
    return files


def _markdown(report: TheoremReport) -> str:
    v = report.verdicts
    lines = ["# Kawaguchi (2016) deep linear networks: empirical verification", "",
             f"Data: random, Kawaguchi's assumptions checked (dims = [d_x, hidden widths..., d_y]); "
             f"configurations: {', '.join(c['name'] + ' ' + str(c['dims']) for c in report.configs)}; "
             f"seed {report.settings.seed}{' (quick run)' if report.settings.quick else ''}.", "",
             f"Round-off: gaps, ‖g‖ and |L − formula| within a configuration's round-off floor "
             f"{ROUNDOFF_ULPS:.0f}·ε·max(1, tr YᵀY) are reported as \"≤ floor\" (0 in theorems.json), an eigenvalue "
             "within the classifier's zero tolerance eig_tol as 0.", "",
             "| statement | configurations | evidence | verdict |", "|---|---|---|---|"]
    for key in ("1", "2", "3", "4"):
        d = v[key]
        cells = [d["statement"], d["configurations"], d["evidence"], d["verdict"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # a | inside a cell is escaped
    lines += ["", "## Statement 3: enumerated critical points", "",
              "| config | points | max ‖g‖ | max \\|L − formula\\| | kind ok | index ok | nullity ok | non-global saddles |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report.statement3:
        lines.append(f"| {r['config']} | {r['n_points']} | {fmt_bound(r['max_grad_norm'], r['roundoff_floor'])} | "
                     f"{fmt_bound(r['max_loss_err'], r['roundoff_floor'])} | "
                     f"{r['n_kind_ok']}/{r['n_points']} | {r['n_index_ok']}/{r['n_index_checked']} | "
                     f"{r['n_nullity_ok']}/{r['n_nullity_checked']} | {r['n_non_global_saddles']}/{r['n_non_global']} |")
    lines += ["", "## Statement 4: W = 0 and the rank-deficient point S = {0}", "",
              "| config | S | kind | λ_min | λ_max | probe order (expected) |", "|---|---|---|---|---|---|"]
    for r in report.statement4["contrast"]:
        exp = "—" if r["expected_order"] is None else str(r["expected_order"])
        po = "—" if r["probe_order"] is None else f"{r['probe_order']:.2f}"
        lines.append(f"| {r['config']} | {r['S']} | {r['kind']} | {_fmt_lam(r, '.3g')} | {r['lambda_max']:.3g} | "
                     f"{po} ({exp}) |")
    lines += ["", "## Escape time from W = 0", "",
              "| H | ε range | log model: slope of T vs ln(1/ε) (theory 1/σ₁ = 1 for H = 1), rms ln T | "
              "power model: exponent (theory −(H−1)), rms ln T | better model |", "|---|---|---|---|---|"]
    for H, d in report.statement4["escape"].items():
        f = d["fit"]
        if "log_slope" not in f:
            lines.append(f"| {H} | — | too few escapes | — | — |")
            continue
        lines.append(f"| {H} | {min(d['eps']):.0e}–{max(d['eps']):.0e} | {f['log_slope']:.3f}, {f['log_rms_lnT']:.3f} | "
                     f"{f['pow_exponent']:.3f}, {f['pow_rms_lnT']:.3f} | {d['better_model']} |")
    lines += [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- driver
def run_theorems(*, quick: bool = False, seed: int = 0, out: str | Path = "figures/theorems",
                 figures: bool = True, progress: bool | None = None) -> TheoremReport:
    """Run the four checks and write the outputs to ``out``; returns the report."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every problem here is tiny: threads only add overhead
    try:
        return _run_theorems(quick=quick, seed=seed, out=out, figures=figures, progress=progress)
    finally:
        torch.set_num_threads(old_threads)


def _run_theorems(*, quick: bool, seed: int, out: str | Path, figures: bool, progress: bool | None
                  ) -> TheoremReport:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    escape_eps = ({1: np.logspace(-8, -1, 5), 2: np.logspace(-4, -1.5, 4), 3: np.logspace(-2.5, -1, 4)} if quick else
                  {1: np.logspace(-10, -1, 10), 2: np.logspace(-4.5, -1.5, 7), 3: np.logspace(-3, -1, 7)})
    settings = Settings(
        quick=quick, seed=seed, d_x=D_X, d_y=D_Y, m=M, n_init=25 if quick else 100, optimizer="L-BFGS", opt_max_iter=1000,
        opt_grad_tol=1e-8, n_classify_converged=2 if quick else 8,
        escape_eps={str(h): e.tolist() for h, e in escape_eps.items()}, escape_dirs=2 if quick else 6,
        escape_rho=0.01, escape_c_lip=0.05)
    timings: dict[str, float] = {}
    configs, s1, s2, s3, contrast = [], [], [], [], []
    disable = None if progress is None else not progress
    plan = [(name, widths, D_X, D_Y, M) for name, widths in CONFIGS]
    if not quick:
        plan += [(name, widths, D_X2, D_Y2, M2) for name, widths in CONFIGS_EXTRA]
    for ci, (name, widths, d_x, d_y, m) in enumerate(tqdm(plan, desc="configurations", disable=disable)):
        prob = DeepLinearProblem.random(d_x, d_y, widths, m, seed + 1000 * ci)
        obj = prob.objective()
        lam, _ = prob.sigma_eigs()
        configs.append({"name": name, "H": prob.H, "widths": widths, "dims": prob.dims, "dim": prob.dim,
                        "p": prob.p, "L_star": prob.global_min(), "sigma_eigs": lam.tolist()})
        t = time.perf_counter()
        s1.append(statement1(prob, name, obj))
        timings["statement1"] = timings.get("statement1", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        s2.append(statement2(prob, name, obj, n_init=settings.n_init, max_iter=settings.opt_max_iter,
                             grad_tol=settings.opt_grad_tol, n_classify=settings.n_classify_converged,
                             seed=seed + 7 * ci))
        timings["statement2"] = timings.get("statement2", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        s3.append(statement3(prob, name, obj, seed=seed + ci))
        contrast.append(contrast_point(prob, name, obj, (), seed))
        if prob.r >= 2:
            contrast.append(contrast_point(prob, name, obj, (0,), seed))
        timings["statement3_4"] = timings.get("statement3_4", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    escape: dict[str, Any] = {}
    escape_raw: dict[int, Any] = {}
    for H, eps in escape_eps.items():
        prob = escape_problem(H, seed + 17 * H)
        T = escape_times(prob, eps.tolist(), settings.escape_dirs, seed + 31 * H,
                         rho=settings.escape_rho, c_lip=settings.escape_c_lip)
        med = np.nanmedian(T, axis=0) if np.isfinite(T).any() else np.full(len(eps), np.nan)
        fit = fit_escape(eps, med)
        better = None
        if "log_rms_lnT" in fit:
            better = "log" if fit["log_rms_lnT"] < fit["pow_rms_lnT"] else "power"
        sigma1 = float(torch.linalg.svdvals(prob.XtY)[0])
        escape[str(H)] = {"eps": eps.tolist(), "T": T.tolist(), "T_median": med.tolist(), "fit": fit,
                          "better_model": better, "sigma1": sigma1,
                          "theory": ("T ≈ ln(1/ε)/σ₁: slope 1/σ₁ = %.3f" % (1 / sigma1)) if H == 1 else
                          f"T ≈ ε^-{H - 1}/(c·σ₁·{H - 1}): exponent −{H - 1}"}
        escape_raw[H] = {"eps": eps, "T": T, "fit": fit, "sigma1": sigma1}
    timings["escape"] = time.perf_counter() - t

    # ------------------------------------------------------------------ verdicts
    hs = sorted({c["H"] for c in configs})
    cfg_list = ", ".join(c["name"] for c in configs)
    s1_pass = all(r["pass"] for r in s1)
    n_runs = sum(r["n_init"] for r in s2)
    n_global = sum(r["n_at_global"] for r in s2)
    n_above = sum(r["n_above"] for r in s2)
    above_kinds: dict[str, int] = {}
    for r in s2:
        for k, c in r["above_kinds"].items():
            above_kinds[k] = above_kinds.get(k, 0) + c
    s2_pass = all(r["pass"] for r in s2)
    n_pts = sum(r["n_points"] for r in s3)
    n_ng = sum(r["n_non_global"] for r in s3)
    n_ngs = sum(r["n_non_global_saddles"] for r in s3)
    s3_pass = all(r["pass"] for r in s3)
    zero_rows = [r for r in contrast if r["S"] == []]
    rd_rows = [r for r in contrast if r["S"] == [0]]

    def _contrast_ok(r):
        if r["H"] == 1:
            return r["kind"] == "strict_saddle" and r["lambda_min"] < 0
        ok_order = r["probe_order"] is not None and abs(r["probe_order"] - (r["H"] + 1)) < 0.3
        return r["kind"] == "non_strict_saddle" and ok_order

    fits_ok = []
    for H, d in escape.items():
        f = d["fit"]
        if "log_slope" not in f:
            fits_ok.append(False)
        elif H == "1":
            fits_ok.append(d["better_model"] == "log" and abs(f["log_slope"] * d["sigma1"] - 1) < 0.2)
        else:
            fits_ok.append(d["better_model"] == "power" and abs(f["pow_exponent"] + (int(H) - 1)) < 0.25)
    s4_pass = all(_contrast_ok(r) for r in contrast) and all(fits_ok)
    esc_txt = "; ".join(
        (f"H={H}: slope of T vs ln(1/ε) {d['fit'].get('log_slope', float('nan')):.2f} (theory {1 / d['sigma1']:.2f})"
         if H == "1" else
         f"H={H}: exponent {d['fit'].get('pow_exponent', float('nan')):.2f} (theory −{int(H) - 1})")
        + f", better fit: {d['better_model']}" for H, d in escape.items())
    verdicts = {
        "1": {"statement": "1. L is non-convex and non-concave", "configurations": cfg_list,
              "evidence": (f"{sum(r['lambda_min'] < 0 < r['lambda_max'] for r in s1)}/{len(s1)} configs have a point "
                           f"with eigenvalues of both signs (min λ_min {min(r['lambda_min'] for r in s1):.3g}); "
                           f"convexity-violating chords {sum(r['convexity_chord']['margin'] > 0 for r in s1)}/{len(s1)}, "
                           f"concavity-violating {sum(r['concavity_chord']['margin'] > 0 for r in s1)}/{len(s1)}"),
              "verdict": "confirmed" if s1_pass else "NOT confirmed", "pass": s1_pass},
        "2": {"statement": "2. every local minimum is global", "configurations": f"{cfg_list}; {settings.n_init} inits each",
              "evidence": (f"{n_global}/{n_runs} L-BFGS runs end within tolerance of L* (max gap "
                           f"{_max_bound(s2, 'max_gap', '.2e')}); {n_above} above L*, classified as "
                           f"{above_kinds or 'none'}; sampled converged runs classified as "
                           f"{_merge([r['classified_kinds'] for r in s2])}"),
              "verdict": "confirmed (no local minimum above L* found)" if s2_pass else "NOT confirmed", "pass": s2_pass},
        "3": {"statement": "3. every critical point that is not a global minimum is a saddle",
              "configurations": f"{cfg_list}; all index sets |S| ≤ r, random gauge",
              "evidence": (f"{n_pts} analytic critical points, max ‖g‖ {_max_bound(s3, 'max_grad_norm')}, "
                           f"max |L − formula| {_max_bound(s3, 'max_loss_err')}; "
                           f"{n_ngs}/{n_ng} non-global ones classified as saddles; kinds match prediction "
                           f"{sum(r['n_kind_ok'] for r in s3)}/{n_pts}, index {sum(r['n_index_ok'] for r in s3)}/"
                           f"{sum(r['n_index_checked'] for r in s3)}, nullity {sum(r['n_nullity_ok'] for r in s3)}/"
                           f"{sum(r['n_nullity_checked'] for r in s3)} (where a formula exists)"),
              "verdict": "confirmed" if s3_pass else "NOT confirmed", "pass": s3_pass},
        "4": {"statement": "4. H = 1: every saddle strict; H ≥ 2: bad (non-strict) saddles exist",
              "configurations": f"W = 0 and S = {{0}} in every config; escape from W = 0 for H = {', '.join(map(str, hs))}",
              "evidence": ("W = 0: " + ", ".join(f"{r['config']} {r['kind']} (λ_min {_fmt_lam(r, '.2g')}, order "
                                                f"{'—' if r['probe_order'] is None else format(r['probe_order'], '.2f')})"
                                                for r in zero_rows)
                           + "; S = {0}: " + ", ".join(f"{r['config']} {r['kind']}" for r in rd_rows)
                           + "; escape: " + esc_txt),
              "verdict": "confirmed" if s4_pass else "NOT confirmed", "pass": s4_pass},
    }
    timings["total_before_output"] = time.perf_counter() - t_start
    report = TheoremReport(settings=settings, configs=configs, statement1=s1, statement2=s2, statement3=s3,
                           statement4={"contrast": contrast, "escape": escape}, verdicts=verdicts, timings_s=timings)
    if figures:
        t = time.perf_counter()
        _figures(out, report, escape_raw)
        timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    # tracked outputs: no timings (they go to the untracked timings.json), sorted keys, no noise digits
    data = report.to_dict()
    data.pop("timings_s", None)
    write_json(out / "theorems.json", data, digits=JSON_DIGITS)
    write_json(out / "timings.json", {"theorems_s": report.timings_s}, digits=3)
    (out / "theorems.md").write_text(_markdown(report), encoding="utf-8")
    return report


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, c in d.items():
            out[k] = out.get(k, 0) + c
    return out


# ---------------------------------------------------------------------------- the study's section
def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict[str, Any]:
    """``landscape study``'s theorem part, under ``out_dir/theorems/`` (the section contract of analyses.study)."""
    import html as _html

    out_dir = Path(out_dir)
    rep = run_theorems(quick=quick, seed=seed, out=out_dir / "theorems", progress=False)
    v = rep.verdicts
    n_ok = sum(bool(d["pass"]) for d in v.values())
    s2 = rep.statement2
    tol = max(r["gap_tol"] for r in s2)
    lead = (f"<p>Kawaguchi's four statements on deep linear networks (H = 1, 2, 3; {len(rep.configs)} configurations"
            f"{', quick run' if quick else ''}): {n_ok} of 4 confirmed. "
            f"{sum(r['n_at_global'] for r in s2)}/{sum(r['n_init'] for r in s2)} L-BFGS runs ended at the global "
            f"minimum (gap to L* ≤ {fmt_num(tol, 2)} = 10√ε·max(1, L*)); every enumerated non-global critical point "
            "is a saddle; W = 0 is a strict saddle for H = 1 and a non-strict one for H ≥ 2.</p>")
    rows = [{"statement": d["statement"], "verdict": d["verdict"], "evidence": d["evidence"]}
            for _, d in sorted(v.items())]
    from landscape.render import html_table

    body = [html_table(rows, [("statement", "statement"), ("verdict", "verdict"), ("evidence", "evidence")],
                       css_class="data text"),
            "<p>Tolerances: a run is at the global minimum when L − L* ≤ 10√ε·max(1, L*) (ε = float64 machine "
            "epsilon); critical points are classified by landscape.classify_point with its scale-free defaults; "
            "the escape fits accept a slope within 20 % (H = 1) or an exponent within 0.25 of theory (H ≥ 2).</p>",
            '<p><img src="theorems/gap_hist.png" alt="gaps to L*" width="1000"></p>',
            '<p><img src="theorems/escape_time.png" alt="escape time" width="600">'
            '<img src="theorems/index_vs_loss.png" alt="index vs loss" width="600"></p>',
            '<p>Numbers: <code>theorems/theorems.json</code>; table: <a href="theorems/theorems.md">theorems.md</a>; '
            '<a href="theorems/theorems.html">interactive figures</a>.</p>']
    return {"title": "Deep linear networks: Kawaguchi's statements", "lead": lead, "html": "\n".join(body),
            "summary": {"verdicts": {k: {"verdict": d["verdict"], "pass": d["pass"]} for k, d in v.items()},
                        "json": "theorems/theorems.json"},
            "figures": ["theorems/gap_hist.png", "theorems/escape_time.png", "theorems/index_vs_loss.png"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_quiet

    parser.add_argument("--quick", action="store_true", help="fewer initialisations and a smaller escape sweep")
    parser.add_argument("--out", default="figures/theorems", help="output folder (default: figures/theorems)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/HTML figures")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from .cli import Heartbeat, show_bars

    hb = Heartbeat("theorems", quiet=args.quiet)
    with hb.step("verifying the four statements" + (" (quick)" if args.quick else "")):
        report = run_theorems(quick=args.quick, seed=args.seed, out=args.out, figures=not args.no_figures,
                              progress=show_bars(args.quiet))
    for key, d in report.verdicts.items():
        print(f"[{d['verdict']}] {d['statement']}")
        print(f"    {d['evidence']}")
    print(f"wrote {Path(args.out) / 'theorems.json'}, theorems.md and figures in {report.timings_s['total']:.1f} s")
    return 0 if all(d["pass"] for d in report.verdicts.values()) else 1


if __name__ == "__main__":
    from analyses.cli import main

    sys.exit(main(["theorems", *sys.argv[1:]]))
