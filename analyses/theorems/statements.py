"""The four statements checked on one deep linear configuration, and the round-off rules of their outputs."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from landscape import classify_point, dense_hessian
from landscape.deep_linear import DeepLinearProblem

from ..roundoff import bound, fmt, is_bound
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
#: decimals of the probe order in the outputs: a fitted exponent whose third decimal moved between two
#: numerical configurations (2.999 / 2.997); the orders it tells apart are integers (H + 1)
PROBE_DECIMALS = 1
#: an L-BFGS end point's ‖g‖ is written against the optimiser's target as its floor, within this
#: multiple (runs that stop at the loss's round-off floor end a little above the target: 1.5e-8
#: measured against 1e-8)
LBFGS_GRAD_MULTIPLE = 10.0
#: the classifier's zero band eig_tol at an analytic critical point is its round-off band
#: 10·ε·dim·Λ or a curvature band from the last bits of ‖g‖ (measured on the default run: at most
#: 1.2× the round-off band): written against the round-off band within this multiple
EIG_TOL_MULTIPLE = 10.0
#: at an L-BFGS end point (‖g‖ ~ 1e-9) the zero band follows the point's last-bit distance to the
#: minimum manifold (measured on the default run: up to 1.6e-5·Λ, and a threefold change between two
#: numerical configurations): written against this share of the spectral scale Λ
ITERATE_EIG_TOL_SHARE = 1e-4
#: the stop reasons of :func:`~analyses.theorems.numerics.lbfgs` that mean "as converged as float64
#: allows": which of them ends a run near the target is decided by round-off, so they are counted together
CONVERGED = "converged (‖g‖ ≤ target or at the round-off floor)"


def roundoff_floor(prob: DeepLinearProblem) -> float:
    """The configuration's round-off floor ``ROUNDOFF_ULPS``·ε·max(1, tr YᵀY) (loss units; also
    used for gradient norms, whose round-off has the same scale on these O(1)-conditioned data).

    Args:
        prob: the deep linear problem.

    Returns:
        The floor, in loss units.
    """
    return ROUNDOFF_ULPS * float(np.finfo(np.float64).eps) * max(1.0, float(prob.trYY))


def at_floor(x: float, floor: float) -> Any:
    """``x`` as written in the outputs: the bound ``{"at_most": B}`` when |x| is within ``floor``
    (a quantity that is zero in exact arithmetic, measured at round-off level; B = ``floor``
    rounded up to one significant digit, :func:`analyses.roundoff.bound`), else ``x`` without its
    digits below the floor.

    Args:
        x: a quantity that is zero in exact arithmetic.
        floor: its round-off floor (> 0).

    Returns:
        The bound or the float.

    >>> at_floor(1e-15, 1e-12), at_floor(2.345e-12, 1e-12)
    ({'at_most': 1e-12}, 2e-12)
    """
    return bound(float(x), floor)


def zero_band(rep: Any, multiple: float = EIG_TOL_MULTIPLE) -> Any:
    """The classifier's zero band ``eig_tol`` as written: a bound against its round-off band
    10·ε·dim·Λ (``multiple`` times it); 0.0 for an exactly zero Hessian (no band at all).

    Args:
        rep: a :class:`~landscape.CriticalPointReport`.
        multiple: the stated multiple of the round-off band.

    Returns:
        The bound, the float (a band beyond the multiple) or 0.0.
    """
    band = float(rep.tolerances["roundoff_band"])
    return bound(rep.eig_tol, band, multiple) if band > 0 else float(rep.eig_tol)


def iterate_zero_band(rep: Any) -> Any:
    """``eig_tol`` of an L-BFGS end point as written: a bound against
    ``ITERATE_EIG_TOL_SHARE``·Λ (see there).

    Args:
        rep: a :class:`~landscape.CriticalPointReport`.

    Returns:
        The bound (or the float, for a band beyond it).
    """
    scale = float(rep.tolerances["spectral_scale"])
    return bound(rep.eig_tol, ITERATE_EIG_TOL_SHARE * scale) if scale > 0 else float(rep.eig_tol)


def lambda_min_within(rep: Any, band: Any) -> Any:
    """λ_min as written: within the zero band, the band's bound (its sign is not resolved); else
    its value (beyond the band it is far from round-off).

    Args:
        rep: a :class:`~landscape.CriticalPointReport`.
        band: its zero band as written (:func:`zero_band`).

    Returns:
        The bound, or λ_min.

    >>> from types import SimpleNamespace as N
    >>> lambda_min_within(N(lambda_min=-3e-14, eig_tol=1e-13), {"at_most": 2e-13}), lambda_min_within(N(lambda_min=-0.5, eig_tol=1e-13), {"at_most": 2e-13})
    ({'at_most': 2e-13}, -0.5)
    """
    if abs(rep.lambda_min) > rep.eig_tol:
        return float(rep.lambda_min)
    return dict(band) if is_bound(band) else 0.0


def _probe(order: float | None) -> float | None:
    return None if order is None else round(float(order), PROBE_DECIMALS)


def fmt_bound(x: Any, spec: str = ".1e") -> str:
    """Text of a value as written: ``≤ B`` for a bound, ``x`` in ``spec`` otherwise.

    Args:
        x: a float or a bound.
        spec: the format of a float.

    Returns:
        The text.

    >>> fmt_bound({"at_most": 5e-12}), fmt_bound(3.21e-7)
    ('≤ 5e-12', '3.2e-07')
    """
    return fmt(x, spec)


def max_bound(rows: list[dict[str, Any]], key: str, spec: str = ".1e") -> str:
    """The largest ``row[key]`` over configurations as text: the largest value, or "≤ B (round-off
    floor)" with the largest bound when every one is a bound.

    Args:
        rows: one dict per configuration.
        key: the quantity (floats or bounds).
        spec: the format of a float.

    Returns:
        The text.
    """
    vals = [r[key] for r in rows]
    nums = [abs(v) for v in vals if not is_bound(v)]
    if nums:
        return format(max(nums), spec)
    return fmt(max(vals, key=lambda v: v["at_most"])) + " (round-off floor)"


def fmt_lambda_min(r: dict[str, Any], spec: str) -> str:
    """λ_min, or "0 (within eig_tol …)" when it is within the classifier's zero band.

    Args:
        r: a row with ``lambda_min`` and ``eig_tol`` (floats or bounds).
        spec: the format of a non-zero λ_min.

    Returns:
        The text.
    """
    lm, tol = r["lambda_min"], r["eig_tol"]
    if not is_bound(lm) and lm != 0.0:
        return format(lm, spec)
    if is_bound(tol):
        return f"0 (within eig_tol {fmt(tol)})"
    return f"0 (within eig_tol {tol:.1e})" if tol > 0 else "0"


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
        The gaps to L* (bounds within the round-off floor), the runs above L* and every classified
        run's kind (its ‖g‖ against the optimiser's target ``grad_tol``, its zero band against
        ``ITERATE_EIG_TOL_SHARE``·Λ, as bounds); ``pass`` unless a run above L* ends at a minimum.
    """
    Lstar = prob.global_min()
    thetas, iters, gns, status = [], [], [], []
    # a run's own stop reason; every reason but "max_iter" means as converged as float64 allows
    for i in range(n_init):
        x, _, gn, it, st = lbfgs(prob, random_init(prob, seed * 100_003 + i), grad_tol=grad_tol, max_iter=max_iter)
        thetas.append(torch.from_numpy(x))
        iters.append(it)
        gns.append(gn)
        status.append(st if st == "max_iter" else CONVERGED)
    losses = np.array([prob.loss_of(t) for t in thetas])
    floor = roundoff_floor(prob)
    raw_gaps = losses - Lstar
    gaps = [at_floor(g, floor) for g in raw_gaps]
    tol = 10 * math.sqrt(torch.finfo(torch.float64).eps) * max(1.0, abs(Lstar))
    above = [i for i in range(n_init) if raw_gaps[i] > tol]
    to_classify = sorted(set(above) | set(range(min(n_classify, n_init))))
    classified = []
    for i in to_classify:
        rep = classify_point(obj, thetas[i], global_min=Lstar, seed=seed + i)
        band = iterate_zero_band(rep)
        classified.append({"run": i, "gap": gaps[i], "kind": rep.kind,
                           "grad_norm": bound(rep.grad_norm, grad_tol, LBFGS_GRAD_MULTIPLE),
                           "lambda_min": lambda_min_within(rep, band), "eig_tol": band,
                           "index": rep.index, "n_zero": rep.n_zero})
    above_kinds = [c["kind"] for c in classified if c["run"] in above]
    # A run above L* that ended at a genuine local minimum would falsify statement 2.
    bad = [c for c in classified if c["run"] in above and c["kind"] in ("minimum", "global_minimum")]
    return {
        "config": name, "L_star": Lstar, "n_init": n_init, "gaps": gaps, "gap_tol": tol,
        "roundoff_floor": floor,
        "n_at_global": int(n_init - len(above)), "n_above": len(above), "max_gap": at_floor(float(raw_gaps.max()), floor),
        # a cost, like a timing: moved to the untracked timings.json when written (it moves by ±1 with round-off)
        "median_iters": float(np.median(iters)),
        "max_grad_norm": bound(float(max(gns)), grad_tol, LBFGS_GRAD_MULTIPLE),
        "n_converged": sum(st == CONVERGED for st in status), "status": _kind_counts(status),
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
        One row per critical point (loss, kind, index, nullity against the formulas; ‖g‖, |L −
        formula|, the zero band and λ_min within it as bounds) and the counts; ``pass`` when every
        prediction holds and every non-global point is a saddle.
    """
    Lstar = prob.global_min()
    floor = roundoff_floor(prob)
    rows, grad_ok, raw = [], [], []
    for cp in prob.enumerate_critical_points(gauge_seed=seed):
        rep = classify_point(obj, cp.theta, global_min=Lstar, seed=seed)
        grad_ok.append(rep.grad_norm < 1e-10)
        raw.append((abs(rep.loss - cp.loss), rep.grad_norm))
        band = zero_band(rep)
        rows.append({
            "S": list(cp.S), "loss": rep.loss, "loss_formula": cp.loss,
            "loss_err": at_floor(abs(rep.loss - cp.loss), floor), "grad_norm": at_floor(rep.grad_norm, floor),
            "kind": rep.kind, "kind_pred": cp.kind, "index": rep.index, "index_pred": cp.index,
            "swaps": cp.swaps, "n_zero": rep.n_zero, "nullity_pred": cp.nullity,
            "lambda_min": lambda_min_within(rep, band), "eig_tol": band,
            "probe_order": _probe(rep.probe_order), "leading": cp.leading, "padded": cp.padded,
            "kind_ok": rep.kind == cp.kind,
            "index_ok": None if cp.index is None else rep.index == cp.index,
            "nullity_ok": None if cp.nullity is None else rep.n_zero == cp.nullity,
        })
    non_global = [r for r in rows if r["kind_pred"] != "global_minimum"]
    return {
        "config": name, "H": prob.H, "n_points": len(rows), "points": rows, "roundoff_floor": floor,
        "max_grad_norm": at_floor(max(g for _, g in raw), floor), "max_loss_err": at_floor(max(e for e, _ in raw), floor),
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
        Kind (and the predicted one), λ_min (a bound within eig_tol), λ_max, index, nullity, the probe's
        order and radius, the expected order (H + 1 for H ≥ 2).
    """
    cp = prob.critical_point(S)
    rep = classify_point(obj, cp.theta, global_min=prob.global_min(), seed=seed)
    band = zero_band(rep)
    return {"config": name, "H": prob.H, "S": list(S), "kind": rep.kind, "kind_pred": cp.kind,
            "lambda_min": lambda_min_within(rep, band), "lambda_max": rep.lambda_max, "eig_tol": band,
            "index": rep.index, "n_zero": rep.n_zero, "probe_order": _probe(rep.probe_order),
            "probe_radius": rep.probe_radius,
            "expected_order": (None if prob.H == 1 else prob.H + 1)}
