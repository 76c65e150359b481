"""Classify a point of an objective: not critical, minimum (global), strict / non-strict saddle, maximum.

Recipe (THEORY.md §1, §4). Every decision is relative to the spectral scale and the dtype's
precision, so the kind of c·f + b equals the kind of f for any c > 0 and any offset b that the
dtype resolves; every tolerance used is returned in ``report.tolerances``.

1. **Spectrum.** ``method="dense"`` (``"auto"`` up to :data:`AUTO_DENSE_MAX_DIM` parameters):
   ``eigh`` of the dense Hessian, index and nullity exact. ``"lanczos"``: a few smallest and
   largest eigenpairs by :func:`extreme_eigs`; the index is then a lower bound
   (``index_exact=False``) and the nullity counts only the computed pairs. Spectral scale
   Λ = max|λ|; parameter scale s = max(1, rms(θ)).
2. **Critical?** ‖g‖ ≤ ``grad_tol``; default ``default_grad_tol(dtype)·Λ·s`` — Frye et al.'s 1e-5
   (‖g‖² < 1e-10 in float64; scaled by (ε/ε_64)^{1/4} in lower precision) made relative: a
   Newton-distance ‖g‖/Λ of 1e-5·s. (Exact zero Hessian: only g = 0 is critical.)
3. **Zero eigenvalues** are |λ| ≤ ``eig_tol``, by default the larger of the round-off band
   ``10·ε·dim·Λ`` (Lanczos path: also the eigensolver's residual tolerance × Λ) and, at a point
   that is critical only approximately (g ≠ 0), the *curvature uncertainty*
   ``3·(‖H(θ_K) − H(θ)‖₂ + remaining)`` along the **Newton continuation** θ = θ_0, θ_1, …, θ_K: full
   Newton steps (every eigen-direction above round-off inverted; halved until ‖g‖ falls), at most
   :data:`NEWTON_CONTINUATION_STEPS` or until ‖g‖ has fallen 1e3-fold. Near a non-degenerate
   critical point the steps shrink quadratically; near a degenerate order-k one linearly, by
   q = (k−2)/(k−1), so the distance still to go is q/(1 − q) times the last step ("remaining" is the
   curvature change over the last step times that). An eigenvalue outside the band keeps its sign:
   no tolerance erases curvature (at an exact critical point the band is pure round-off). An
   eigenvalue beyond round-off but *inside* the band is judged at θ_K by Rayleigh–Ritz values of
   H(θ_K) on the in-band eigenvectors (by interlacing they can prove negative curvature) against
   θ_K's own uncertainty u = 3·remaining: a negative one is *confirmed* (μ < −u: it persists to the
   critical point, counts as negative), any one has *vanished* (|μ| ≤ u: a zero split by the
   distance to the critical point — a gauge direction, or curvature induced along a weak direction,
   e.g. x⁴ + y⁴ − 1.9x²y² at (x, 0), λ_y = −3.8x², or a padded deep-linear point — the probe decides),
   a negative one is positive there (*disagrees*: the probe read the loss here, where that curvature
   is negative, so a minimum or non-strict-saddle verdict is redone at θ_K when the contraction was
   measured — the report then describes θ_K, ``tolerances["classified_at_newton_end"]`` — and
   becomes ``inconclusive`` otherwise), or it stays *unresolved* (a negative one then turns a "minimum" into
   ``inconclusive``, a positive one a "maximum"). Without a measured contraction (one step, or
   q ≥ 0.9) "vanished" needs |μ| ≤ 3‖H(θ_K) − H(θ)‖·‖g(θ_K)‖/‖g(θ)‖ (the distance to a non-degenerate
   point ∝ ‖g‖). Counting confirmed in-band eigenvalues with those below −eig_tol is a lower-bound
   heuristic (the blocks couple by up to band/3). Counts and the continuation's steps, q and
   gradient ratio are in ``tolerances`` (``n_in_band*``, ``newton_*``).
4. **Degenerate cases** (a near-null eigenspace with no eigenvalue of the opposite sign deciding)
   go to the higher-order probe (:mod:`landscape.probe`): lines along the near-null eigenvectors
   and seeded random combinations of them, a sphere search of the near-null subspace and the
   **reduced-function (Lyapunov–Schmidt) probe**: along each near-null direction d at radius t,
   minimise the loss over the complementary positive-curvature eigenspace (maximise over the
   negative one for a maximum-vs-saddle question) by Newton steps with the known
   eigen-decomposition, and look for descent of that reduced function — this finds descent that
   exists only along curves (Peano's (y − x²)(y − 2x²)). On the Lanczos path the complement is
   not known: the minimisation runs over a small Krylov subspace built from the curve's gradient
   residuals (:func:`_krylov_complement`; a subspace bounds the reduced function from above, so
   descent found there is real). "minimum" then means "no descent found
   within ``probe_radius``"; a probe that resolves nothing above round-off gives ``inconclusive``.
5. **Honest uncertainty.** ``kind="inconclusive"`` with ``reason`` when the Lanczos eigenpairs did
   not converge (unless a negative and a positive Rayleigh quotient already prove a strict
   saddle) or when the probe could not resolve descent or ascent above round-off.
6. **Global minimum:** a minimum — or a point with no negative curvature that the local tests call a
   non-strict saddle or leave inconclusive, since nothing lies below the global value — with
   |loss − global_min| ≤ ``global_tol`` (default
   ``10·√ε·max(|global_min|, Λ·s²) + |gᵀp|``: round-off of the loss, relative to the loss scale
   Λ·s², plus the first-order loss gap to the nearby exact critical point).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .lanczos import extreme_eigs, lanczos, random_unit
from .objective import NonFiniteError, Objective
from .probe import DEFAULT_REL_THRESHOLD, ProbeResult, higher_order_probe, probe_directions, sphere_search
from .results import JsonResult

AUTO_DENSE_MAX_DIM = 2048
SINGLE_THREAD_MAX_DIM = 512
# Sphere search (starts per radius, Riemannian steps): 8 x 40 found the order-4 descent of every
# padded H = 3 deep linear point tried (96 cases); order ≥ 5 paths (H ≥ 4) competing with
# positive quartic gauge terms can still be missed (then "minimum" + a note if a global value is given).
SEARCH_STARTS, SEARCH_ITERS = 8, 40
#: the curvature-uncertainty band is this multiple of the Hessian's change along the Newton continuation
CURVATURE_BAND_FACTOR = 3.0
#: at most this many Newton steps in the continuation towards the nearby critical point (it stops earlier
#: once ‖g‖ has fallen 1e3-fold: 5 steps at order 3 (q = 1/2), 6 at order 4, 2–3 at a non-degenerate point)
NEWTON_CONTINUATION_STEPS = 12
#: near-null directions whose curves seed the Lanczos path's reduced-function subspace
KRYLOV_DIRS = 16
#: Newton steps of the reduced-function (Lyapunov–Schmidt) probe's inner minimisation
REDUCED_NEWTON_STEPS = 12
KINDS = ("not_critical", "minimum", "global_minimum", "strict_saddle", "non_strict_saddle",
         "maximum", "inconclusive")
_EPS64 = torch.finfo(torch.float64).eps


def default_grad_tol(dtype: torch.dtype) -> float:
    """Frye's cut-off ‖g‖ < 1e-5 (‖g‖² < 1e-10) in float64, scaled by (ε/ε_64)^{1/4} for lower
    precision. :func:`classify_point` multiplies it by the scale Λ·s (relative criterion);
    :func:`landscape.find_critical_point` uses it as is (the literature's absolute cut-off)."""
    return 1e-5 * (torch.finfo(dtype).eps / _EPS64) ** 0.25


def default_eig_tol(dtype: torch.dtype, dim: int, scale: float) -> float:
    """Round-off band ``10·ε·dim·scale`` with ``scale`` = max|λ| (0 for an exactly zero Hessian)."""
    return 10.0 * torch.finfo(dtype).eps * dim * scale


def default_global_tol(dtype: torch.dtype, global_min: float, loss_scale: float = 0.0) -> float:
    """``10·√ε·max(|global_min|, loss_scale)``: 1.5e-7 relative in float64, 3.5e-3 in float32
    (``loss_scale`` = Λ·s² in :func:`classify_point`, so that L* = 0 is not an absolute cut-off)."""
    return 10.0 * math.sqrt(torch.finfo(dtype).eps) * max(abs(global_min), loss_scale)


@dataclass
class CriticalPointReport(JsonResult):
    """What :func:`classify_point` found at one point.

    ``kind`` ∈ :data:`KINDS`. ``index``: # eigenvalues < −eig_tol (a lower bound when
    ``index_exact`` is False); ``n_zero``: # with |λ| ≤ eig_tol (computed pairs only on the
    Lanczos path); ``degenerate``: n_zero > 0. ``escape_direction`` (dim,): unit descent
    direction for saddles (λ_min eigenvector for strict ones, the probe's direction for
    non-strict ones), None otherwise. ``probe_order``/``probe_radius``: order of the first
    non-zero term along the probe's decisive direction and the radius it was seen at (for a
    "minimum" from the probe, the largest radius probed). ``gradient_flatness`` ∈ [0, 1]:
    ‖P_null g‖/‖g‖ for non-critical points. ``eigenvalues``: all (dense) or the computed
    (Lanczos) eigenvalues, ascending. ``reason``: why the kind is ``inconclusive`` (None
    otherwise). ``curvature_band``: the eigenvalue uncertainty from g ≠ 0 (module docstring,
    step 3). ``tolerances``: every tolerance used (grad_tol, eig_tol, round-off band, curvature
    band, global_tol, probe thresholds, probe radius, spectral and parameter scales).
    """

    kind: str
    loss: float
    grad_norm: float
    lambda_min: float
    lambda_max: float
    index: int
    n_zero: int
    index_exact: bool
    degenerate: bool
    method: str
    dim: int
    grad_tol: float
    eig_tol: float
    global_min: float | None = None
    global_tol: float | None = None
    gap_to_global: float | None = None
    probe_order: float | None = None
    probe_radius: float | None = None
    gradient_flatness: float | None = None
    reason: str | None = None
    curvature_band: float = 0.0
    tolerances: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    eigenvalues: torch.Tensor | None = field(default=None, repr=False)
    escape_direction: torch.Tensor | None = field(default=None, repr=False)
    probe: ProbeResult | None = field(default=None, repr=False)

    @property
    def is_critical(self) -> bool:
        return self.kind != "not_critical"

    @property
    def is_saddle(self) -> bool:
        return self.kind in ("strict_saddle", "non_strict_saddle")

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("escape_direction")
        d["has_escape_direction"] = self.escape_direction is not None
        d["probe"] = self.probe.to_dict() if self.probe is not None else None  # without its (dim,) vectors
        if self.eigenvalues is not None and self.eigenvalues.numel() > 256:
            d["eigenvalues"] = None  # large spectra belong in an .npz
        return d


def _check_tol(name: str, value: float | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite {'non-negative' if allow_zero else 'positive'} number, got {value}")


def _loss_or_nan(obj: Objective):
    """``obj.loss`` with an overflow on the probe ladder returned as nan (the probe ignores it)."""
    def f(p: torch.Tensor) -> float:
        try:
            return obj.loss(p)
        except NonFiniteError:
            return math.nan
    return f


def _batch_loss_fn(obj: Objective, theta: torch.Tensor):
    """vmap of the differentiable loss over a batch of points, or None when the loss is not vmappable."""
    f = torch.func.vmap(obj.loss_tensor)
    try:
        with torch.no_grad():
            out = f(torch.stack([theta, theta]))
        if out.shape != (2,) or not torch.allclose(out[0], obj.loss_tensor(theta).detach()):
            return None
    except Exception:  # noqa: BLE001 - any vmap failure means: evaluate point by point
        return None
    return f


def _signed_escape(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Unit ``v`` with the sign making gᵀv ≤ 0 (ties: largest-magnitude entry positive)."""
    v = v / torch.linalg.vector_norm(v)
    s = float(torch.dot(v, g))
    if s > 0 or (s == 0 and float(v[int(v.abs().argmax())]) < 0):
        v = -v
    return v


@contextlib.contextmanager
def _threads_for(dim: int) -> Iterator[None]:
    """Run tiny problems single-threaded: for dim ≤ SINGLE_THREAD_MAX_DIM, thread start-up and
    spinning dominate (an 85×85 eigh took 0.4 s with 2 busy threads vs 1 ms with one)."""
    if dim > SINGLE_THREAD_MAX_DIM or torch.get_num_threads() == 1:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def classify_point(
    obj: Objective,
    theta: torch.Tensor,
    *,
    global_min: float | None = None,
    grad_tol: float | None = None,
    eig_tol: float | None = None,
    method: str = "auto",
    probe: bool = True,
    seed: int = 0,
    global_tol: float | None = None,
    probe_radius: float = 1e-1,
    probe_n_radii: int = 13,
    probe_random: int = 16,
    probe_rel_threshold: float = DEFAULT_REL_THRESHOLD,
    probe_abs_threshold: float = 0.0,
    probe_search: bool = True,
    lanczos_k: tuple[int, int] = (10, 3),
    probe_reduced: bool = True,
) -> CriticalPointReport:
    """Classify ``theta`` (dim,) for ``obj`` (see the module docstring for the recipe and defaults).

    ``probe_radius`` is the largest probe radius relative to s = max(1, rms(θ)); the ladder runs
    over ``probe_n_radii`` geometric steps from 1e-4 of it. ``probe_random``: seeded random
    combinations of the near-null eigenvectors (and, on the Lanczos path, random full-space
    directions). ``probe_search``: when the line probes find no descent, also search the sphere
    of the near-null subspace for a descending mixture (:func:`landscape.probe.sphere_search`).
    ``probe_reduced``: then run the reduced-function (Lyapunov–Schmidt) probe.
    ``probe_rel_threshold`` / ``probe_abs_threshold``: a loss change along a probe counts only
    beyond max(rel·ε·|f|, abs) (abs in loss units; raise it for approximately critical points).
    ``lanczos_k``: (smallest, largest) eigenpairs computed on the Lanczos path. Problems with
    dim ≤ :data:`SINGLE_THREAD_MAX_DIM` run with one torch thread.
    """
    with _threads_for(obj.dim):
        return _classify(obj, theta, global_min=global_min, grad_tol=grad_tol, eig_tol=eig_tol, method=method,
                         probe=probe, seed=seed, global_tol=global_tol, probe_radius=probe_radius,
                         probe_n_radii=probe_n_radii, probe_random=probe_random,
                         probe_rel_threshold=probe_rel_threshold, probe_abs_threshold=probe_abs_threshold,
                         probe_search=probe_search, probe_reduced=probe_reduced,
                         lanczos_k=lanczos_k)


def _classify(obj, theta, *, global_min, grad_tol, eig_tol, method, probe, seed, global_tol, probe_radius,
              probe_n_radii, probe_random, probe_rel_threshold, probe_abs_threshold, probe_search,
              lanczos_k, probe_reduced=True, _at_newton_end=False) -> CriticalPointReport:
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'dense' or 'lanczos', got {method!r}")
    _check_tol("grad_tol", grad_tol, allow_zero=False)
    _check_tol("eig_tol", eig_tol, allow_zero=True)
    _check_tol("global_tol", global_tol, allow_zero=True)
    if global_min is not None and not math.isfinite(float(global_min)):
        raise ValueError(f"global_min must be finite, got {global_min}")
    if not (math.isfinite(probe_radius) and probe_radius > 0):
        raise ValueError(f"probe_radius must be a positive finite number, got {probe_radius}")
    if not (math.isfinite(probe_abs_threshold) and probe_abs_threshold >= 0):
        raise ValueError(f"probe_abs_threshold must be finite and >= 0, got {probe_abs_threshold}")
    theta = obj.check_theta(theta).detach()
    dim, dtype = obj.dim, obj.dtype
    eps = torch.finfo(dtype).eps
    if method == "auto":
        method = "dense" if dim <= AUTO_DENSE_MAX_DIM else "lanczos"
    notes: list[str] = []
    s_par = max(1.0, float(torch.linalg.vector_norm(theta)) / math.sqrt(dim))

    # ---------------------------------------------------------------- spectrum
    res = None
    if method == "dense":
        loss, g, Hm = _loss_grad_dense_hessian(obj, theta, True)
        evals, evecs = torch.linalg.eigh(Hm)
        scale = float(evals.abs().max())
        roundoff = default_eig_tol(dtype, dim, scale)
        exact = True
    else:
        loss, g = obj.loss_and_grad(theta)
        Hm = None
        ks, kl = lanczos_k
        ks, kl = max(1, min(ks, dim - 1)), max(1, min(kl, dim - 1))
        if ks + kl > dim:
            ks, kl = dim - 1, 1
        res = extreme_eigs(obj, theta, k=(ks, kl), which="both", seed=seed)
        evals = res.values.to(dtype)
        evecs = res.vectors
        scale = max(float(evals.abs().max()), res.scale)
        roundoff = max(default_eig_tol(dtype, dim, scale), res.tol * scale)
        exact = False
        notes.append("Lanczos path: index is a lower bound and n_zero counts only the "
                     f"{evals.numel()} computed eigenpairs")
    gnorm = float(torch.linalg.vector_norm(g))
    gtol = default_grad_tol(dtype) * scale * s_par if grad_tol is None else float(grad_tol)
    critical = gnorm <= gtol

    # Curvature uncertainty at an approximately critical point: the Hessian's change over the
    # Newton step to the nearby exact critical point.
    path = _NewtonPath()
    if critical and gnorm > 0 and eig_tol is None:
        path = _newton_continuation(obj, theta, g, loss, Hm, roundoff, method, scale, s_par,
                                    (evals, evecs) if method == "dense" else None)
    band, newton_gap = path.band, path.gap
    etol = max(roundoff, band) if eig_tol is None else float(eig_tol)
    lam_min, lam_max = float(evals[0]), float(evals[-1])
    # Eigenvalues beyond round-off but inside the curvature band: their sign at the nearby exact
    # critical point is checked at the end of the Newton continuation, never silently erased.
    in_band = (evals.abs() > roundoff) & (evals.abs() <= etol) if eig_tol is None else torch.zeros_like(evals, dtype=torch.bool)
    confirmed, disagrees, vanished = (torch.zeros_like(in_band) for _ in range(3))
    # θ_K's own uncertainty: measured by the contraction of the steps (or nil at g = 0). Without a
    # measured contraction it bounds confirmation only; "vanished" then needs |μ| within the band
    # scaled by the gradient's fall (the distance to a non-degenerate critical point ∝ ‖g‖).
    conf_tol = max(roundoff, path.end_uncertainty)
    zero_tol = (conf_tol if path.contraction_measured
                else min(conf_tol, max(roundoff, CURVATURE_BAND_FACTOR * path.change * path.g_ratio)))
    if bool(in_band.any()) and path.end is not None:
        confirmed, disagrees, vanished = _confirm_in_band(obj, path.end, path.end_hessian, evals, evecs, in_band,
                                                          conf_tol, zero_tol)
    neg = (evals < -etol) | confirmed
    zero = (evals.abs() <= etol) & ~confirmed
    index, n_zero = int(neg.sum()), int(zero.sum())
    unresolved = in_band & ~confirmed & ~disagrees & ~vanished
    unresolved_neg, unresolved_pos = unresolved & (evals < 0), unresolved & (evals > 0)
    if bool(in_band.any()):
        notes.append(f"{int(in_band.sum())} eigenvalue(s) beyond round-off ({roundoff:.3g}) lie inside the curvature "
                     f"band ±{band:.3g}; Rayleigh quotients at the end of the Newton continuation ({path.n_steps} step(s), ‖g‖ × {path.g_ratio:.2g}) keep "
                     f"the negative sign of {int(confirmed.sum())} of them, find {int(vanished.sum())} zero within "
                     f"that point's own uncertainty ({zero_tol:.3g}) and {int(disagrees.sum())} negative one(s) positive "
                     "there")
    if method == "lanczos" and index == ks and lam_max > etol:
        notes.append(f"all {ks} smallest computed eigenvalues are negative: index >= {ks}")
    degenerate = n_zero > 0
    null_basis = evecs[:, zero]
    # Resolution of the probe: round-off of the loss, or the loss gap to the nearby critical point.
    abs_thr = max(float(probe_abs_threshold), newton_gap)

    rep = CriticalPointReport(
        kind="inconclusive", loss=loss, grad_norm=gnorm, lambda_min=lam_min, lambda_max=lam_max,
        index=index, n_zero=n_zero, index_exact=exact, degenerate=degenerate, method=method, dim=dim,
        grad_tol=gtol, eig_tol=etol, eigenvalues=evals.detach().cpu(), notes=notes, curvature_band=band)
    rep.tolerances = {"grad_tol": gtol, "eig_tol": etol, "roundoff_band": roundoff, "curvature_band": band,
                      "n_in_band": int(in_band.sum()), "n_in_band_confirmed": int(confirmed.sum()),
                      "n_in_band_disagree": int(disagrees.sum()), "n_in_band_vanished": int(vanished.sum()),
                      "in_band_zero_tol": zero_tol, "newton_steps": path.n_steps, "newton_q": path.q,
                      "newton_g_ratio": path.g_ratio,
                      "spectral_scale": scale, "param_scale": s_par, "probe_rel_threshold": probe_rel_threshold,
                      "probe_abs_threshold": abs_thr, "probe_quad_threshold": band,
                      "probe_radius_max": probe_radius * s_par,
                      "grad_tol_given": grad_tol is not None, "eig_tol_given": eig_tol is not None}
    if global_min is not None:
        rep.global_min = float(global_min)
        rep.global_tol = (default_global_tol(dtype, float(global_min), scale * s_par ** 2) + newton_gap
                          if global_tol is None else float(global_tol))
        rep.gap_to_global = loss - float(global_min)
        rep.tolerances["global_tol"] = rep.global_tol

    # ---------------------------------------------------------------- not critical
    if not critical:
        rep.kind = "not_critical"
        rep.gradient_flatness = _flatness(obj, theta, g, null_basis, method, etol, notes)
        if rep.gradient_flatness is not None and rep.gradient_flatness > 0.9:
            notes.append(f"gradient-flat point: {rep.gradient_flatness:.3f} of ‖g‖ lies in the near-null "
                         "eigenspace (Newton-type finders stall here)")
        return rep

    # ---------------------------------------------------------------- critical: second order
    has_pos = lam_max > etol
    has_neg = index > 0
    has_zero_or_unknown = degenerate or (method == "lanczos" and not (lam_min > etol or lam_max < -etol))
    if has_neg and has_pos:
        # Rayleigh quotients of unit vectors: a negative and a positive one prove an indefinite
        # Hessian even when the Lanczos pairs did not converge.
        rep.kind = "strict_saddle"
        rep.escape_direction = _signed_escape(evecs[:, int(torch.nonzero(neg).flatten()[0])].clone(), g)
        notes.append("escape_direction: λ_min eigenvector (either sign decreases the loss to second "
                     "order; the one with gᵀv ≤ 0 is returned)")
    elif res is not None and not res.all_converged:
        rep.kind = "inconclusive"
        rep.reason = (f"Lanczos: {int((~res.converged).sum())} of {res.converged.numel()} eigenpairs did not "
                      "converge, and without them the sign of the extreme curvature is unknown")
    elif not has_zero_or_unknown and not has_neg:
        rep.kind = "minimum"
    elif not has_zero_or_unknown and not has_pos:
        rep.kind = "maximum"
    else:
        # Degenerate: PSD with null space (min vs non-strict saddle), NSD with null space
        # (max vs saddle), or H ≈ 0 (all of them).
        if not probe:
            rep.kind = "inconclusive"
            rep.reason = "degenerate Hessian and probe=False: second-order information cannot decide"
        else:
            pr = _run_probe(obj, theta, g, loss, null_basis, Hm, method, seed, probe_radius, probe_n_radii,
                            probe_random, probe_rel_threshold, abs_thr, probe_search, notes, band=band,
                            evals=evals, evecs=evecs, zero=zero, has_neg=has_neg, has_pos=has_pos,
                            reduced=probe_reduced)
            rep.probe = pr
            flat = (pr.max_abs_change == 0.0 and gnorm == 0.0
                    and _gradient_vanishes_nearby(obj, theta, null_basis, pr.radii, seed))
            _decide_degenerate(rep, pr, has_neg, has_pos, evecs, g, flat=flat)
    # A verdict that an unresolved eigenvalue could overturn is not a verdict.
    # A verdict that an unresolved eigenvalue could overturn is not a verdict. The probe read the loss
    # around this point, where that curvature is negative; when the continuation measured its own
    # convergence, its end point θ_K is the better estimate of the critical point: classify there.
    if (rep.kind in ("minimum", "non_strict_saddle") and bool(disagrees.any()) and path.contraction_measured
            and not _at_newton_end):
        end = _classify(obj, path.end, global_min=global_min, grad_tol=grad_tol, eig_tol=eig_tol, method=method,
                        probe=probe, seed=seed, global_tol=global_tol, probe_radius=probe_radius,
                        probe_n_radii=probe_n_radii, probe_random=probe_random,
                        probe_rel_threshold=probe_rel_threshold, probe_abs_threshold=probe_abs_threshold,
                        probe_search=probe_search, lanczos_k=lanczos_k, probe_reduced=probe_reduced,
                        _at_newton_end=True)
        dist = float(torch.linalg.vector_norm(path.end - theta))
        end.notes[:0] = notes + [f"curvature changes sign on the way to the critical point: classified at the end "
                                 f"θ_K of the Newton continuation ({path.n_steps} steps, ‖θ_K − θ‖ = {dist:.3g}, "
                                 f"‖g‖ × {path.g_ratio:.2g}); the report describes θ_K"]
        end.tolerances["classified_at_newton_end"] = True
        end.tolerances["newton_end_distance"] = dist
        return end
    if rep.kind in ("minimum", "non_strict_saddle") and bool(disagrees.any()):
        i = int(torch.nonzero(disagrees).flatten()[0])
        rep.kind = "inconclusive"
        rep.reason = (f"λ = {float(evals[i]):.3g} lies inside the curvature band ±{band:.3g} and its Rayleigh quotient "
                      "at the end of the Newton continuation to the nearby critical point is positive beyond that point's own "
                      "uncertainty: the curvature here does not tell the kind there (refine the point first, e.g. "
                      "landscape.nearest_critical)")
    elif rep.kind == "minimum" and bool(unresolved_neg.any()):
        rep.kind = "inconclusive"
        rep.reason = (f"λ = {float(evals[unresolved_neg][0]):.3g} is negative beyond round-off but inside the curvature "
                      f"band ±{band:.3g} (the Hessian's change along the Newton continuation to the nearby critical point), "
                      "and its sign is not confirmed there")
        # Direct evidence: the raw loss along those eigenvectors (first-order term removed; a change
        # counts beyond round-off and the loss gap to the nearby critical point).
        s_t = probe_radius * s_par
        direct = higher_order_probe(_loss_or_nan(obj), theta, evecs[:, unresolved_neg].T.contiguous(), grad=g,
                                    loss0=loss, t_min=1e-4 * s_t, t_max=s_t, n_radii=probe_n_radii,
                                    rel_threshold=probe_rel_threshold, abs_threshold=abs_thr,
                                    batch_loss=_batch_loss_fn(obj, theta))
        if direct.descent:
            rep.probe_order, rep.probe_radius = direct.descent_order, direct.descent_radius
            rep.reason += (f"; the loss does fall along its eigenvector (order ≈ {_fmt(direct.descent_order)}, by "
                           f"{-direct.descent_delta:.3g} at radius {direct.descent_radius:.3g}, more than the loss gap "
                           f"{abs_thr:.3g} to the critical point): not a minimum within that radius, but strict or "
                           "non-strict saddle is unresolved")
        else:
            rep.reason += ": minimum or saddle is unresolved"

    elif rep.kind == "maximum" and bool(unresolved_pos.any()):
        rep.kind = "inconclusive"
        rep.reason = (f"λ = {float(evals[unresolved_pos][-1]):.3g} is positive beyond round-off but inside the curvature "
                      f"band ±{band:.3g} and its sign is not confirmed at the nearby critical point: maximum or "
                      "saddle is unresolved")
    if rep.kind == "inconclusive" and rep.reason is None:
        rep.reason = notes[-1] if notes else "undecided"
    if rep.kind == "inconclusive" and rep.reason not in notes:
        notes.append(rep.reason)

    # ---------------------------------------------------------------- global minimum
    if rep.kind == "minimum" and rep.global_min is not None:
        if abs(rep.gap_to_global) <= rep.global_tol:
            rep.kind = "global_minimum"
        elif rep.gap_to_global > 0:
            notes.append(f"looks like a minimum but its loss is {rep.gap_to_global:.3g} above the given global "
                         "value: under Kawaguchi's assumptions every local minimum is global, so suspect a "
                         "degenerate saddle the probe missed (radius too small) or a wrong global_min")
        else:
            notes.append(f"loss is {-rep.gap_to_global:.3g} BELOW the given global value: global_min is wrong")
    elif (rep.kind in ("non_strict_saddle", "inconclusive") and rep.global_min is not None and index == 0
          and abs(rep.gap_to_global) <= rep.global_tol):
        # At the global value nothing lies lower: a point there is a global minimiser, and whatever
        # descent the probe resolved is bounded by the gap |L − L*| ≤ global_tol (e.g. the last
        # 1e-32 of a realizable MSE, along a degenerate direction).
        notes.append(f"{rep.kind} by the local tests, but the loss is within global_tol ({rep.global_tol:.3g}) of the "
                     f"global value ({rep.gap_to_global:+.3g}) and no curvature is negative: any descent is bounded "
                     "by that gap, so the point is a global minimum")
        rep.kind, rep.reason = "global_minimum", None
    return rep


@dataclass
class _NewtonPath:
    """The Newton continuation from θ towards the nearby critical point (:func:`_newton_continuation`).

    ``band``: CURVATURE_BAND_FACTOR·(‖H(θ_K) − H(θ)‖₂ + ``remaining``), the curvature uncertainty at θ;
    ``gap``: the loss gap to the end point, max(|gᵀ(θ_K − θ)|, |L(θ) − L(θ_K)|); ``end``: θ_K (None when
    no step brought ‖g‖ down); ``g_ratio``: ‖g(θ_K)‖/‖g(θ)‖; ``end_uncertainty``: how far the
    eigenvalues at θ_K can still be from those at the critical point (CURVATURE_BAND_FACTOR ×
    the curvature change over the last step × q/(1 − q), q the ratio of the last two step lengths —
    the remaining distance of a linearly converging sequence; 0 when g(θ_K) = 0); ``n_steps``, ``q``;
    ``change``: ‖H(θ_K) − H(θ)‖₂; ``end_hessian``: H(θ_K) (dense path only)."""

    band: float = 0.0
    gap: float = 0.0
    end: torch.Tensor | None = None
    g_ratio: float = 1.0
    end_uncertainty: float = math.inf
    n_steps: int = 0
    q: float | None = None
    change: float = 0.0
    end_hessian: torch.Tensor | None = None

    @property
    def contraction_measured(self) -> bool:
        """True when the distance left is measured: g(θ_K) = 0, or the last two steps contracted (q < 0.9)."""
        return self.end is not None and (self.g_ratio == 0.0 or (self.q is not None and self.q < 0.9))


def _newton_step(obj, theta, g, H, method, cut, scale, eig=None) -> torch.Tensor:
    """Min-norm Newton step −H⁺g (dim,), eigenvalues (dense) or singular values (MINRES) ≤ ``cut`` not inverted
    (dense: ``eig`` = (values, vectors) of H when already known)."""
    if method == "dense":
        ev, U = eig if eig is not None else torch.linalg.eigh(H)
        inv = torch.where(ev.abs() > cut, 1.0 / ev, torch.zeros_like(ev))
        return -(U @ (inv * (U.T @ g)))
    from .critical import minres_solve
    return minres_solve(obj.hvp_operator(theta).matvec, -g, scale=scale, cutoff=cut)[0]


def _curvature_change(obj, a, b, Ha, Hb, method) -> float:
    """‖H(b) − H(a)‖₂ (dense: exact; Lanczos path: 20 Lanczos steps on the difference operator)."""
    if method == "dense":
        return float(torch.linalg.eigvalsh(Hb - Ha).abs().max())
    op1, op2 = obj.hvp_operator(a), obj.hvp_operator(b)
    gen = torch.Generator().manual_seed(0)
    v = random_unit(obj.dim, gen, obj.dtype, obj.device)
    run = lanczos(lambda x: op2.matvec(x) - op1.matvec(x), v, min(obj.dim, 20), reorth="full", generator=gen)
    return float(torch.linalg.eigvalsh(run.tridiagonal()).abs().max())


def _newton_continuation(obj, theta, g, loss, Hm, roundoff, method, scale, s_par, eig=None) -> _NewtonPath:
    """Newton steps from θ towards the nearby exact critical point θ*, every eigen-direction above
    round-off inverted (a weakly curved direction is where a degenerate point hides its distance),
    each step halved up to three times until ‖g‖ falls (and at most 0.1·s_par long, so a split
    gauge zero cannot send it far), at most :data:`NEWTON_CONTINUATION_STEPS` steps or until ‖g‖
    falls below 1e-3 of its start. Near a non-degenerate θ* the steps shrink quadratically; near a
    degenerate one linearly (ratio q = (k−2)/(k−1) at order k): the ratio of the last two step
    lengths estimates the distance still to go, q/(1 − q) times the last step.

    A single step cannot tell curvature that persists at θ* from curvature that vanishes there:
    near a degenerate point along a weak direction (x⁴ + y⁴ − 1.9x²y² at (x, 0): λ_y = −3.8x²)
    the eigenvalue shrinks with every step, by a factor that the continuation measures.
    ``eig``: the dense path's eigendecomposition (values, vectors) of H(θ) = ``Hm``, reused for the
    steps from θ."""
    g0 = float(torch.linalg.vector_norm(g))
    if g0 == 0.0:
        return _NewtonPath(end_uncertainty=0.0)
    max_len = 0.1 * s_par
    th, gk, Hk, gn = theta, g, Hm, g0
    lens: list[float] = []
    prev_H, prev_th = Hm, theta
    for _ in range(NEWTON_CONTINUATION_STEPS):
        try:
            p = _newton_step(obj, th, gk, Hk, method, roundoff, scale, eig if th is theta else None)
        except NonFiniteError:
            break
        pn = float(torch.linalg.vector_norm(p))
        if pn == 0.0 or not math.isfinite(pn):
            break
        if pn > max_len:
            p, pn = p * (max_len / pn), max_len
        accepted = None
        for t in (1.0, 0.5, 0.25, 0.125):
            cand = th + t * p
            try:
                if method == "dense":
                    _, g_c, H_c = _loss_grad_dense_hessian(obj, cand, True)
                else:
                    g_c, H_c = obj.grad(cand), None
            except NonFiniteError:
                continue
            gc = float(torch.linalg.vector_norm(g_c))
            if gc < gn:
                accepted = (cand, g_c, H_c, gc, t * pn)
                break
        if accepted is None:
            break
        prev_th, prev_H = th, Hk
        th, gk, Hk, gn, step_len = accepted
        lens.append(step_len)
        if gn == 0.0 or gn <= 1e-3 * g0 and len(lens) >= 2:
            break
    if not lens:
        # No step brings ‖g‖ down (θ is critical to the precision of g, or Newton overshoots): the
        # uncertainty is that of the well-resolved Newton step (eigenvalues above √ε·Λ inverted).
        try:
            p = _newton_step(obj, theta, g, Hm, method, max(roundoff, math.sqrt(torch.finfo(g.dtype).eps) * scale),
                             scale, eig)
            if float(torch.linalg.vector_norm(p)) == 0.0:
                return _NewtonPath()
            H_p = _loss_grad_dense_hessian(obj, theta + p, True)[2] if method == "dense" else None
            change = _curvature_change(obj, theta, theta + p, Hm, H_p, method)
        except NonFiniteError:
            return _NewtonPath(band=math.inf)
        return _NewtonPath(band=CURVATURE_BAND_FACTOR * change, gap=abs(float(torch.dot(g, p))), change=change)
    try:
        end_loss = float(obj.loss(th))
        total = _curvature_change(obj, theta, th, Hm, Hk, method)
        last = total if len(lens) == 1 else _curvature_change(obj, prev_th, th, prev_H, Hk, method)
    except NonFiniteError:
        return _NewtonPath(band=math.inf)
    q = lens[-1] / lens[-2] if len(lens) >= 2 else None
    if gn == 0.0:
        remaining = 0.0
    elif q is None or q >= 0.9:
        remaining = 10.0 * last  # no measured contraction: the distance left is not bounded by the steps
    else:
        remaining = last * q / (1.0 - q)
    gap = max(abs(float(torch.dot(g, th - theta))), abs(loss - end_loss))
    return _NewtonPath(band=CURVATURE_BAND_FACTOR * (total + remaining), gap=gap, end=th, g_ratio=gn / g0,
                       end_uncertainty=CURVATURE_BAND_FACTOR * remaining, n_steps=len(lens), q=q, change=total,
                       end_hessian=Hk)


def _confirm_in_band(obj, theta_star, H_star, evals, evecs, in_band, conf_tol, zero_tol
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(confirmed, disagrees, vanished) masks (m,) over the in-band eigenvalues, judged at the end
    ``theta_star`` of the Newton continuation (``H_star`` its dense Hessian, or None: HVPs).

    With V the in-band eigenvectors, μ = eig(VᵀH(θ*)V) (Rayleigh–Ritz) are paired with the sorted
    in-band λ. By Cauchy interlacing the j-th smallest eigenvalue of H(θ*) is at most μ_j, so only
    *negative* curvature can be proved this way (of either sign here). ``conf_tol`` is θ*'s own uncertainty (its remaining
    distance to the critical point, as curvature, and round-off), ``zero_tol`` ≤ ``conf_tol`` the
    bound under which an eigenvalue counts as gone: a λ is **confirmed** negative when μ < −conf_tol
    (it persists to the critical point), any λ has **vanished** when |μ| ≤ zero_tol (a zero split by
    the distance to the critical point: a gauge direction, or curvature induced along a weak
    direction), and a negative λ **disagrees** when μ > conf_tol (no proof of positivity, but
    evidence that this point's curvature is not the critical point's)."""
    idx = torch.nonzero(in_band).flatten()
    conf, dis, zero = (torch.zeros_like(in_band) for _ in range(3))
    try:
        V = evecs[:, idx]
        HV = H_star @ V if H_star is not None else obj.hvp_operator(theta_star).matmat(V)
        mu = torch.linalg.eigvalsh(0.5 * (V.T @ HV + HV.T @ V))
    except NonFiniteError:
        return conf, dis, zero
    lam = evals[idx]
    for j, i in enumerate(torch.argsort(lam).tolist()):
        m, lv = float(mu[j]), float(lam[i])
        if m < -conf_tol:  # negative at the critical point (a positive λ here too: curvature changes sign)
            conf[idx[i]] = True
        elif abs(m) <= zero_tol:
            zero[idx[i]] = True
        elif lv < 0 and m > conf_tol:
            dis[idx[i]] = True
    return conf, dis, zero


def _flatness(obj, theta, g, null_basis, method, etol, notes) -> float | None:
    gn = float(torch.linalg.vector_norm(g))
    if gn == 0:
        return 0.0
    if method == "dense":
        if null_basis.shape[1] == 0:
            return 0.0
        return float(torch.linalg.vector_norm(null_basis.T @ g)) / gn
    # Lanczos path: the null space is not resolved. Minimise ‖g + H Q y‖ over a Krylov basis Q of
    # (H, g) (eigen-directions below eig_tol truncated); the residual is g's part outside range(H).
    op = obj.hvp_operator(theta)
    run = lanczos(op.matvec, g.detach().clone(), min(obj.dim, 100), reorth="full",
                  generator=torch.Generator().manual_seed(0))
    Q = run.Q.T  # (dim, m)
    HQ = op.matmat(Q)
    U, S, Vh = torch.linalg.svd(HQ, full_matrices=False)
    keep = S > etol
    coef = U[:, keep].T @ g
    resid = g - U[:, keep] @ coef
    notes.append("gradient_flatness on the Lanczos path: ‖g + H p‖/‖g‖ minimised over a Krylov space of "
                 f"dimension {Q.shape[1]} (an upper bound on the exact share)")
    return float(min(1.0, float(torch.linalg.vector_norm(resid)) / gn))


def _loss_grad_dense_hessian(obj: Objective, theta: torch.Tensor, with_hessian: bool
                              ) -> tuple[float, torch.Tensor, torch.Tensor | None]:
    """Loss, gradient (dim,) and, if asked, the dense symmetric Hessian (dim, dim) from one
    first-order graph: all Hessian columns by one batched double backward (much faster than
    per-column passes for small models). Falls back to :meth:`Objective.hessian` when batched
    gradients are unsupported. Plain autograd (no ``torch.func.grad``) keeps start-up cheap."""
    theta = obj.check_theta(theta).detach()
    p = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        L = obj.loss_tensor(p)
        if not L.requires_grad:  # constant objective
            zero = torch.zeros_like(theta)
            return float(L), zero, (torch.zeros(obj.dim, obj.dim, dtype=obj.dtype, device=obj.device)
                                    if with_hessian else None)
        g = torch.autograd.grad(L, p, create_graph=with_hessian)[0]
    loss = float(L.detach())
    if not math.isfinite(loss):
        raise NonFiniteError(f"loss is {loss} at theta")
    if not bool(torch.isfinite(g).all()):
        raise NonFiniteError("gradient is non-finite at theta")
    if not with_hessian:
        return loss, g.detach(), None
    if not g.requires_grad:  # loss linear in theta
        return loss, g.detach(), torch.zeros(obj.dim, obj.dim, dtype=obj.dtype, device=obj.device)
    try:
        eye = torch.eye(obj.dim, dtype=obj.dtype, device=obj.device)
        H = torch.autograd.grad(g, p, eye, is_grads_batched=True)[0]
        if not bool(torch.isfinite(H).all()):
            raise FloatingPointError
        H = 0.5 * (H + H.T)
    except Exception:  # noqa: BLE001 - e.g. an op without a batching rule: use the reference path
        H = obj.hessian(theta, max_dim=max(obj.dim, obj.hessian_max_dim))
    return loss, g.detach(), H.detach()


def dense_hessian(obj: Objective, theta: torch.Tensor) -> torch.Tensor:
    """Dense symmetric Hessian (dim, dim) at ``theta`` (see :func:`_loss_grad_dense_hessian`)."""
    return _loss_grad_dense_hessian(obj, theta, True)[2]  # type: ignore[return-value]


def _value_and_grad_batch(obj: Objective):
    """(k, dim) points -> (losses (k,), gradients (k, dim)): vmapped loss + one backward pass;
    a point-by-point loop when the loss cannot be vmapped."""
    vf = torch.func.vmap(obj.loss_tensor)

    def batched(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        P = P.detach().requires_grad_(True)
        with torch.enable_grad():
            L = vf(P)
            G = torch.autograd.grad(L.sum(), P)[0]
        return L.detach(), G.detach()

    def looped(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = [_loss_grad_dense_hessian(obj, p, False) for p in P]
        return (torch.tensor([o[0] for o in out], dtype=P.dtype, device=P.device),
                torch.stack([o[1] for o in out]))

    def choose(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return batched(P)
        except Exception:  # noqa: BLE001 - no batching rule for some op: evaluate point by point
            return looped(P)

    return choose


def _run_probe(obj, theta, g, loss, null_basis, Hm, method, seed, probe_radius, n_radii, n_random,
               rel_threshold, abs_threshold, search, notes, *, evals=None, evecs=None, zero=None,
               has_neg=False, has_pos=False, reduced=True, band=0.0) -> ProbeResult:
    s = max(1.0, float(torch.linalg.vector_norm(theta)) / math.sqrt(obj.dim))
    t_max = probe_radius * s
    parts, quads = [], []
    q = null_basis.shape[1]
    HB = None
    if q:
        span = probe_directions(null_basis, obj.dim, n_random_in_span=n_random, seed=seed,
                                dtype=obj.dtype, device=obj.device)
        HB = Hm @ null_basis if Hm is not None else obj.hvp_operator(theta).matmat(null_basis)
        # dᵀHd along the near-null directions (declared zero): removed in the probe.
        parts.append(span)
        quads.append(((span @ null_basis) @ (null_basis.T @ HB) * (span @ null_basis)).sum(1))
    if method == "lanczos" or not parts:
        full = probe_directions(None, obj.dim, n_random_full=max(n_random, 1), seed=seed + 1,
                                dtype=obj.dtype, device=obj.device)
        parts.append(full)
        quads.append(torch.zeros(full.shape[0], dtype=obj.dtype, device=obj.device))
    batch_loss = _batch_loss_fn(obj, theta)
    kw = dict(grad=g, loss0=loss, t_min=t_max * 1e-4, t_max=t_max, n_radii=n_radii, rel_threshold=rel_threshold,
              abs_threshold=abs_threshold, batch_loss=batch_loss, quad_threshold=band)
    pr = higher_order_probe(_loss_or_nan(obj), theta, torch.cat(parts), quad=torch.cat(quads), **kw)
    # Search unless the lines already found descent early on the ladder (first third of the radii,
    # with an order estimate): a descent first seen at large radius may be a direction where the
    # leading term nearly cancels, which mis-reads the order.
    early = pr.radii[len(pr.radii) // 3]
    # The question the probe answers: descent (PSD Hessian: minimum or saddle?) or ascent (NSD: maximum?).
    want = "ascent" if (has_neg and not has_pos) else "descent"

    def decided(p: ProbeResult) -> bool:
        return (getattr(p, want) and getattr(p, want + "_order") is not None
                and getattr(p, want + "_radius") <= early)

    if decided(pr) or not q:
        return pr
    dirs = [torch.cat(parts)]
    if search:
        Qf = null_basis.T @ HB
        found = sphere_search(_value_and_grad_batch(obj), theta, null_basis, [t_max, 0.1 * t_max, 0.01 * t_max],
                              loss0=loss, grad=g, quad_form=Qf, seed=seed, n_starts=SEARCH_STARTS,
                              n_iter=SEARCH_ITERS)
        coef = found @ null_basis
        pr2 = higher_order_probe(_loss_or_nan(obj), theta, found, quad=((coef @ Qf) * coef).sum(1), **kw)
        _merge(pr, pr2, "sphere search in the near-null subspace", notes)
        dirs.append(found)
    if decided(pr) or evecs is None or not reduced:
        return pr
    # Reduced-function (Lyapunov–Schmidt) probe: the complementary eigenspace with definite curvature.
    D = torch.cat(dirs)
    if method == "dense":
        comp = (evals > 0) & ~zero if want == "descent" else (evals < 0) & ~zero
        if int(comp.sum()) == 0:
            return pr
        V, lam = evecs[:, comp], evals[comp]
    else:
        V, lam = _krylov_complement(obj, theta, g, null_basis, D, t_max, want, band)
        if V is None:
            return pr
    D = D - (D @ V) @ V.T  # remove the definite part (dense path: what remains is near-null)
    D = D / torch.linalg.vector_norm(D, dim=1, keepdim=True).clamp_min(1e-300)
    coef = D @ null_basis
    Qf = null_basis.T @ HB
    reduced = _reduced_loss_fn(obj, theta, V, lam)
    with torch.no_grad():
        base = float(reduced(theta.unsqueeze(0))[0])
    kw3 = {**kw, "loss0": base, "batch_loss": reduced}
    pr3 = higher_order_probe(lambda p: float(reduced(p.unsqueeze(0))[0]), theta, D,
                             quad=((coef @ Qf) * coef).sum(1), **kw3)
    # The reduced function descends along a curve u ↦ u + w(u): report the point actually found
    # (direction and distance of θ + t·d + w), so that the escape direction descends as a straight step.
    for which in ("descent", "ascent"):
        d = getattr(pr3, which + "_direction")
        if getattr(pr3, which) and d is not None:
            pt = reduced(theta.unsqueeze(0) + getattr(pr3, which + "_radius") * d.unsqueeze(0), points=True)[1][0]
            disp = pt - theta
            setattr(pr3, which + "_radius", float(torch.linalg.vector_norm(disp)))
            setattr(pr3, which + "_direction", disp / torch.linalg.vector_norm(disp))
    _merge(pr, pr3, "reduced-function (Lyapunov–Schmidt) probe: the loss minimised over the "
           f"{V.shape[1]}-dimensional definite " + ("eigenspace" if method == "dense" else "Krylov subspace")
           + " along near-null directions", notes, only=want)
    return pr


def _krylov_complement(obj: Objective, theta: torch.Tensor, g: torch.Tensor, null_basis: torch.Tensor,
                       D: torch.Tensor, t: float, want: str, band: float, max_dirs: int = KRYLOV_DIRS
                       ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Lanczos path: a small definite subspace for the reduced-function probe.

    The curve of a reduced function is u ↦ u + w(u) with w ≈ −H⁺ r(u), r(u) the gradient's
    departure from its quadratic model at θ + u (u = t·d, d near-null), so w lies in the Krylov
    space of (H, r). Builds r_d = P(∇L(θ + t_d d) − g − t_d H d) for up to ``max_dirs`` rows of
    ``D`` (P removes the near-null basis), the span of [r_d, H r_d, H² r_d], and its Rayleigh–Ritz
    pairs with curvature of the sign the question needs (positive for descent) beyond ``band``.
    Minimising over a subspace bounds the reduced function from above, so descent found there is
    real. Returns (V (dim, r) orthonormal, Ritz values (r,)) or (None, None). Costs
    ≈ 3·max_dirs HVPs and a batch of gradients."""
    D = D[:max_dirs]
    ts = [t * 1e-2, t * 1e-1]
    op = obj.hvp_operator(theta)
    HD = op.matmat(D.T).T
    rows = []
    vg = _value_and_grad_batch(obj)
    for tt in ts:
        try:
            _, G = vg(theta.unsqueeze(0) + tt * D)
        except NonFiniteError:
            continue
        rows.append(G - g.unsqueeze(0) - tt * HD)
    if not rows:
        return None, None
    R = torch.cat(rows)
    if null_basis.numel():
        R = R - (R @ null_basis) @ null_basis.T
    keep = torch.linalg.vector_norm(R, dim=1) > 0
    if not bool(keep.any()):
        return None, None
    K = [R[keep].T]
    for _ in range(2):
        Z = op.matmat(K[-1])
        if null_basis.numel():
            Z = Z - null_basis @ (null_basis.T @ Z)
        K.append(Z)
    U, S, _ = torch.linalg.svd(torch.cat(K, 1), full_matrices=False)
    U = U[:, S > S.max() * 1e3 * torch.finfo(U.dtype).eps * U.shape[0]]
    T = U.T @ op.matmat(U)
    mu, Y = torch.linalg.eigh(0.5 * (T + T.T))
    sel = mu > band if want == "descent" else mu < -band
    sel = sel & (mu.abs() > 10 * torch.finfo(mu.dtype).eps * obj.dim * float(mu.abs().max()))
    if not bool(sel.any()):
        return None, None
    return U @ Y[:, sel], mu[sel]


def _merge(pr: ProbeResult, other: ProbeResult, what: str, notes: list[str], only: str | None = None) -> None:
    """Take ``other``'s descent/ascent where ``pr`` has none or sees it only at a larger radius."""
    for which in ("descent", "ascent"):
        if only is not None and which != only:
            continue
        if getattr(other, which) and (not getattr(pr, which) or
                                      getattr(other, which + "_radius") < getattr(pr, which + "_radius")):
            notes.append(f"{which} found by the {what} (line probes: "
                         + (f"first at radius {getattr(pr, which + '_radius'):.3g})" if getattr(pr, which)
                            else "none)"))
            for attr in ("", "_radius", "_order", "_delta", "_direction"):
                setattr(pr, which + attr, getattr(other, which + attr))
    pr.n_directions += other.n_directions
    pr.n_evals += other.n_evals
    vals = [v for v in (pr.max_abs_change, other.max_abs_change) if not math.isnan(v)]
    pr.max_abs_change = max(vals) if vals else math.nan


def _reduced_loss_fn(obj: Objective, theta: torch.Tensor, V: torch.Tensor, lam: torch.Tensor):
    """Batch map (k, dim) points u ↦ φ(u) = extremum over w ∈ span(V) of L(u + w).

    V (dim, r) orthonormal eigenvectors of H(θ) with eigenvalues ``lam`` (r,) of one sign
    (positive: minimise; negative: maximise). Newton steps w ← w − V diag(1/λ) Vᵀ ∇L with the
    fixed Hessian of θ (:data:`REDUCED_NEWTON_STEPS`); each row keeps its best value over the
    iterations, a valid bound on φ in the direction that matters (an upper bound on a minimum
    proves descent, a lower bound on a maximum proves ascent). ``points=True`` also returns the
    points u + w attaining those values."""
    vg = _value_and_grad_batch(obj)
    sign = 1.0 if float(lam[0]) > 0 else -1.0

    def reduced(P: torch.Tensor, points: bool = False):
        P = P.to(dtype=obj.dtype, device=obj.device)
        C = torch.zeros(P.shape[0], V.shape[1], dtype=obj.dtype, device=obj.device)
        L, G = vg(P)
        L = torch.where(torch.isfinite(L), L, torch.full_like(L, math.inf * sign))
        best = L.clone()
        best_C = C.clone()
        for _ in range(REDUCED_NEWTON_STEPS):
            step = (G @ V) / lam
            if not bool(torch.isfinite(step).all()):
                break
            C = C - step
            L, G = vg(P + C @ V.T)
            L = torch.where(torch.isfinite(L), L, torch.full_like(L, math.inf * sign))
            better = (L < best) if sign > 0 else (L > best)
            best = torch.where(better, L, best)
            best_C = torch.where(better.unsqueeze(1), C, best_C)
            if float((step.abs().max())) <= 1e-3 * torch.finfo(obj.dtype).eps ** 0.5 * float(P.abs().max() + 1):
                break
        if points:
            return best.detach(), (P + best_C @ V.T).detach()
        return best.detach()

    return reduced


def _gradient_vanishes_nearby(obj: Objective, theta: torch.Tensor, basis: torch.Tensor, radii: list[float],
                              seed: int) -> bool:
    """True when the gradient is exactly zero at θ ± t·d for the near-null eigenvectors, seeded random
    combinations of them and random full-space directions d, at every fourth probe radius t. A loss
    that is bit-for-bit constant on the probe but has a non-zero gradient (a tiny c·f + b whose
    changes are below the offset's resolution) is *not* flat: gradients do not see the offset."""
    D = probe_directions(basis if basis.numel() else None, obj.dim, n_random_in_span=8, n_random_full=8,
                         seed=seed + 7, dtype=obj.dtype, device=obj.device)
    ts = torch.tensor(radii[::4] + [radii[-1]], dtype=obj.dtype, device=obj.device)
    P = theta.unsqueeze(0).unsqueeze(0) + ts.view(1, -1, 1) * torch.cat([D, -D]).unsqueeze(1)
    vg = _value_and_grad_batch(obj)
    for chunk in P.reshape(-1, obj.dim).split(256):
        try:
            _, G = vg(chunk)
        except NonFiniteError:
            return False
        if bool((G != 0).any()):
            return False
    return True


def _decide_degenerate(rep: CriticalPointReport, pr: ProbeResult, has_neg: bool, has_pos: bool,
                       evecs: torch.Tensor, g: torch.Tensor, *, flat: bool = False) -> None:
    notes = rep.notes
    if has_neg:
        # NSD with a null space: a maximum unless some direction ascends.
        if pr.ascent or has_pos:
            rep.kind = "strict_saddle"
            rep.escape_direction = _signed_escape(evecs[:, 0].clone(), g)
            rep.probe_order, rep.probe_radius = pr.ascent_order, pr.ascent_radius
            notes.append(f"negative curvature plus higher-order ascent (order ≈ {pr.ascent_order}) "
                         f"at radius {pr.ascent_radius:.3g}")
        else:
            rep.kind = "maximum"
            rep.probe_radius = pr.max_radius
            notes.append(f"degenerate maximum: no ascent found within radius {pr.max_radius:.3g}")
        return
    if pr.descent and (pr.ascent or has_pos):
        rep.kind = "non_strict_saddle"
        rep.escape_direction = pr.descent_direction
        rep.probe_order, rep.probe_radius = pr.descent_order, pr.descent_radius
        notes.append(f"no negative eigenvalue, but the loss decreases at order ≈ "
                     f"{_fmt(pr.descent_order)} along a near-null direction (radius {pr.descent_radius:.3g})")
    elif pr.descent:
        rep.kind = "maximum"
        rep.probe_order, rep.probe_radius = pr.descent_order, pr.max_radius
        notes.append(f"degenerate maximum: every probed direction descends (order ≈ {_fmt(pr.descent_order)}), "
                     f"no ascent within radius {pr.max_radius:.3g}")
    elif pr.ascent or has_pos:
        rep.kind = "minimum"
        rep.probe_order, rep.probe_radius = pr.ascent_order, pr.max_radius
        notes.append(f"degenerate minimum: no descent found within radius {pr.max_radius:.3g}"
                     + (f" (near-null directions rise at order ≈ {_fmt(pr.ascent_order)})" if pr.ascent else ""))
    elif flat:
        # Locally constant (e.g. every ReLU unit dead): f(θ') = f(θ) bit for bit on every probed point
        # and ∇f = 0 exactly there, so f(θ) ≤ f(θ') — a minimum in the weak (non-strict) sense (and a weak maximum).
        rep.kind = "minimum"
        rep.probe_radius = pr.max_radius
        notes.append(f"flat minimum: the loss is exactly constant (bit-identical) on all {pr.n_evals} probed points "
                     f"and the gradient exactly zero on a sample of them, within radius {pr.max_radius:.3g}: no "
                     "change found on any probed point (a change confined to a narrow cone could be missed)")
    else:
        rep.kind = "inconclusive"
        rep.probe_radius = pr.max_radius
        notes.append(f"the loss is flat along every probed direction within radius {pr.max_radius:.3g}: its change stays "
                     "below the probe's resolution (round-off, the loss gap to the nearby critical point, "
                     "the unresolved curvature band): neither descent nor ascent found")


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"
