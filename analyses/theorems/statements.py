"""The four statements checked on one deep linear configuration, and the round-off rules of their outputs."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from landscape import classify_point, dense_hessian
from landscape.deep_linear import DeepLinearProblem

from .numerics import lbfgs, random_init

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


def roundoff_floor(prob: DeepLinearProblem) -> float:
    """The configuration's round-off floor ``ROUNDOFF_ULPS``·ε·max(1, tr YᵀY) (loss units; also
    used for gradient norms, whose round-off has the same scale on these O(1)-conditioned data).

    Args:
        prob: the deep linear problem.

    Returns:
        The floor, in loss units.
    """
    return ROUNDOFF_ULPS * float(np.finfo(np.float64).eps) * max(1.0, float(prob.trYY))


def at_floor(x: float, floor: float) -> float:
    """``x``, or 0.0 when |x| ≤ ``floor`` (a quantity that is zero up to round-off).

    Args:
        x: a quantity that is zero in exact arithmetic.
        floor: its round-off floor.

    Returns:
        ``x`` as a float, or 0.0.

    >>> at_floor(1e-15, 1e-12), at_floor(2e-12, 1e-12)
    (0.0, 2e-12)
    """
    return 0.0 if abs(x) <= floor else float(x)


def _probe(order: float | None) -> float | None:
    return None if order is None else round(float(order), PROBE_DECIMALS)


def fmt_bound(x: float, floor: float, spec: str = ".1e") -> str:
    """``x`` formatted with ``spec``, or ``≤ floor`` (2 significant digits) when it is 0 at the floor.

    Args:
        x: the value (0.0: at the floor).
        floor: the round-off floor.
        spec: the format of a non-zero value.

    Returns:
        The text.

    >>> fmt_bound(0.0, 4.4e-12), fmt_bound(3.21e-7, 4.4e-12)
    ('≤ 4.4e-12', '3.2e-07')
    """
    return f"≤ {floor:.1e}" if x == 0.0 else format(x, spec)


def max_bound(rows: list[dict[str, Any]], key: str, spec: str = ".1e") -> str:
    """The largest ``row[key]`` over configurations, or "≤ (largest round-off floor)" when every one is 0.

    Args:
        rows: one dict per configuration, with ``key`` and ``roundoff_floor``.
        key: the quantity.
        spec: the format of a non-zero value.

    Returns:
        The text.
    """
    m = max(r[key] for r in rows)
    return fmt_bound(m, max(r["roundoff_floor"] for r in rows), spec) + (" (round-off floor)" if m == 0.0 else "")


def fmt_lambda_min(r: dict[str, Any], spec: str) -> str:
    """λ_min, or "0 (within eig_tol …)" when it is within the classifier's (nonzero) zero tolerance.

    Args:
        r: a row with ``lambda_min`` and ``eig_tol``.
        spec: the format of a non-zero λ_min.

    Returns:
        The text.
    """
    if r["lambda_min"] != 0.0:
        return format(r["lambda_min"], spec)
    return f"0 (within eig_tol {r['eig_tol']:.1e})" if r["eig_tol"] > 0 else "0"


def _kind_counts(kinds: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in kinds:
        out[k] = out.get(k, 0) + 1
    return out


def statement1(prob: DeepLinearProblem, name: str, obj) -> dict[str, Any]:
    """A point with Hessian eigenvalues of both signs, and chords violating convexity and concavity.

    Args:
        prob: the deep linear problem.
        name: the configuration's name.
        obj: its :class:`~landscape.Objective`.

    Returns:
        The saddle's λ_min and λ_max, both chords' values and margins (> 0 violates), ``pass``.
    """
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
    """Random initialisations run to convergence (L-BFGS); gaps to L*; classification of the ends.

    Args:
        prob: the deep linear problem.
        name: the configuration's name.
        obj: its :class:`~landscape.Objective`.
        n_init: random initialisations.
        max_iter: L-BFGS iterations at most.
        grad_tol: L-BFGS's gradient-norm target.
        n_classify: converged runs classified besides every run above L*.
        seed: the initialisations' base seed.

    Returns:
        The gaps to L* (0 within the round-off floor), the runs above L* and every classified
        run's kind; ``pass`` unless a run above L* ends at a minimum.
    """
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
    """Every enumerated analytic critical point classified and compared with the formulas.

    Args:
        prob: the deep linear problem.
        name: the configuration's name.
        obj: its :class:`~landscape.Objective`.
        seed: the gauge's and the classifier's seed.

    Returns:
        One row per critical point (loss, kind, index, nullity against the formulas) and the
        counts; ``pass`` when every prediction holds and every non-global point is a saddle.
    """
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
    """Statement 4's contrast: the classifier's verdict at the analytic critical point ``S``.

    Args:
        prob: the deep linear problem.
        name: the configuration's name.
        obj: its :class:`~landscape.Objective`.
        S: the index set (() is W = 0).
        seed: the classifier's seed.

    Returns:
        Kind (and the predicted one), λ_min (0 within eig_tol), λ_max, index, nullity, the probe's
        order and radius, the expected order (H + 1 for H ≥ 2).
    """
    cp = prob.critical_point(S)
    rep = classify_point(obj, cp.theta, global_min=prob.global_min(), seed=seed)
    return {"config": name, "H": prob.H, "S": list(S), "kind": rep.kind, "kind_pred": cp.kind,
            "lambda_min": at_floor(rep.lambda_min, rep.eig_tol), "lambda_max": rep.lambda_max, "eig_tol": rep.eig_tol,
            "index": rep.index, "n_zero": rep.n_zero, "probe_order": _probe(rep.probe_order),
            "probe_radius": rep.probe_radius,
            "expected_order": (None if prob.H == 1 else prob.H + 1)}
