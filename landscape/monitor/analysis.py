"""The analysis at a stall point θ_s: what kind of point it is, the critical point near it, and why
the gradient is small there.

One path for every caller: the SynaPrune trainer analyses each stall with :func:`analyse_stall`,
and a user's own training loop calls the same function with the same settings (issue 22). The
pieces, usable alone:

1. :func:`stall_tolerances` — the rule that makes a stall point count as critical:
   grad_tol = the given one, else max(‖g(θ_s)‖, the detector's gradient threshold);
   eig_tol = the given one, else √(ρ·‖g(θ_s)‖) when a Hessian-Lipschitz constant ρ is given (the
   ε-second-order-stationarity scale of Nesterov–Polyak / Jin et al.), else the classifier's
   scale-free default.
2. :func:`kind_at_point` — the *approximate kind at the stall point*: :func:`landscape.classify_point`
   with those tolerances and the classifier's scale-free defaults for the rest.
3. :func:`nearest_critical_record` — :func:`landscape.nearest_critical` (Newton-MR refinement, then
   classification at strict default tolerances), kept as the JSON record the events store.
4. cancellation statistics (:func:`landscape.cancellation_stats`) and the cause
   (:func:`landscape.monitor.cause.estimate_cause` against a :class:`ReferenceScale`).

Failures never raise: a classifier or statistic that fails leaves its fields None and its message
in :attr:`StallAnalysis.error` (a training run must not die of its own diagnostics).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..cancellation import cancellation_stats
from ..classify import classify_point
from ..critical import nearest_critical
from ..results import JsonResult
from .cause import KAPPA_MAX, RATIO_MAX, ReferenceScale, estimate_cause

if TYPE_CHECKING:
    from ..cancellation import CancellationStats
    from ..classify import CriticalPointReport
    from ..objective import Objective

#: the fields of :class:`landscape.NearestCritical` kept in a stall record (``nearest_critical``)
NEAREST_FIELDS: tuple[str, ...] = (
    "kind", "index", "loss", "loss_gap", "distance", "grad_norm", "converged", "gradient_flat", "probe_radius",
    "probe_order", "degenerate", "n_zero", "lambda_min", "lambda_max", "reason", "tolerances", "n_hvp", "null_space")
#: classification methods :func:`landscape.classify_point` accepts
CLASSIFY_METHODS: tuple[str, ...] = ("auto", "dense", "lanczos")


def _finite(value: Any, *, positive: bool = False) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value >= (1e-300 if positive else 0))


@dataclass(frozen=True)
class AnalysisSettings:
    """What to compute at a stall, and the tolerance overrides (None = the rule's default).

    Args:
        classify: classify the stall point (:func:`kind_at_point`; default True).
        nearest: also find and classify the nearest critical point (default True; only with
            ``classify``).
        cancellation: compute cancellation statistics and the cause (default True).
        grad_tol: gradient tolerance at the stall point (positive, gradient units); None: the rule
            max(‖g(θ_s)‖, detector threshold).
        eig_tol: eigenvalue band half-width (non-negative, curvature units); None: √(ρ‖g‖) with
            ``hessian_lipschitz`` ρ, else the classifier's scale-free default.
        hessian_lipschitz: ρ (non-negative, curvature per parameter unit), or None.
        probe_floor: the probe's absolute loss resolution (loss units; None: 0 = scale-free).
        global_tol: tolerance for ``global_minimum`` (loss units; None: relative to the loss scale).
        method: ``"auto"``, ``"dense"`` or ``"lanczos"`` (:func:`landscape.classify_point`).
        global_min: the known global minimum L* (loss units), or None.
        chunk_size: per-example gradients per chunk for the statistics (None: all at once).
        kappa_max: the cause's κ threshold (:data:`KAPPA_MAX`).
        ratio_max: the cause's ratio threshold (:data:`RATIO_MAX`).

    Raises:
        ValueError: an override is negative, non-finite or of the wrong type.

    Example:
        >>> AnalysisSettings(nearest=False, hessian_lipschitz=4.0).cause_thresholds()
        {'kappa_max': 0.1, 'ratio_max': 0.1}
    """

    classify: bool = True
    nearest: bool = True
    cancellation: bool = True
    grad_tol: float | None = None
    eig_tol: float | None = None
    hessian_lipschitz: float | None = None
    probe_floor: float | None = None
    global_tol: float | None = None
    method: str = "auto"
    global_min: float | None = None
    chunk_size: int | None = None
    kappa_max: float = KAPPA_MAX
    ratio_max: float = RATIO_MAX

    def __post_init__(self) -> None:
        for name in ("grad_tol", "eig_tol", "hessian_lipschitz", "probe_floor", "global_tol"):
            v = getattr(self, name)
            if v is not None and not _finite(v, positive=name == "grad_tol"):
                raise ValueError(f"{name} must be a finite {'positive' if name == 'grad_tol' else 'non-negative'} "
                                 f"number or None, got {v!r}")
        if self.method not in CLASSIFY_METHODS:
            raise ValueError(f"method must be one of {CLASSIFY_METHODS}, got {self.method!r}")
        if self.global_min is not None and not math.isfinite(float(self.global_min)):
            raise ValueError(f"global_min must be finite, got {self.global_min!r}")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int)
                                            or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {self.chunk_size!r}")
        for name in ("kappa_max", "ratio_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 1):
                raise ValueError(f"{name} must lie in (0, 1], got {v!r}")

    def cause_thresholds(self) -> dict[str, float]:
        """``{"kappa_max", "ratio_max"}`` as floats (the record's ``cause_thresholds`` without the reference).

        Returns:
            A new dict.
        """
        return {"kappa_max": float(self.kappa_max), "ratio_max": float(self.ratio_max)}


def stall_tolerances(grad_norm: float, detector_threshold: float, *, grad_tol: float | None = None,
                     eig_tol: float | None = None,
                     hessian_lipschitz: float | None = None) -> tuple[float | None, float | None]:
    """The tolerances that make a stall point count as critical.

    Args:
        grad_norm: ‖∇L(θ_s)‖ (full batch), gradient units.
        detector_threshold: the stall detector's gradient threshold when it fired
            (:meth:`StallDetector.grad_threshold`), gradient units.
        grad_tol: a given gradient tolerance (wins), or None.
        eig_tol: a given eigenvalue tolerance (wins), or None.
        hessian_lipschitz: ρ, or None.

    Returns:
        ``(grad_tol, eig_tol)``: grad_tol = the given one, else max(‖g‖, detector threshold)
        (None when both are 0: the classifier's default); eig_tol = the given one, else √(ρ‖g‖)
        with ρ given, else None (the classifier's scale-free band).

    Example:
        >>> stall_tolerances(1e-4, 3e-3, hessian_lipschitz=4.0)
        (0.003, 0.02)
    """
    gtol = grad_tol
    if gtol is None:
        gtol = max(grad_norm, detector_threshold) or None
    etol = eig_tol
    if etol is None and hessian_lipschitz is not None:
        etol = math.sqrt(hessian_lipschitz * grad_norm)
    return gtol, etol


@dataclass(frozen=True)
class PointKind:
    """The approximate kind at one point (:func:`kind_at_point`).

    Args:
        report: the :class:`landscape.CriticalPointReport`, or None when the classifier failed.
        error: ``"ExceptionType: message"`` when it failed, else None.
        n_hvp: Hessian-vector products spent (a dense Hessian counts as dim).
        grad_tol: the gradient tolerance requested (:func:`stall_tolerances`; None if the
            gradient could not be computed).
        eig_tol: the eigenvalue tolerance requested (None: the classifier's default).

    Example: see :func:`kind_at_point`.
    """

    report: CriticalPointReport | None
    error: str | None
    n_hvp: int = 0
    grad_tol: float | None = None
    eig_tol: float | None = None


def kind_at_point(obj: Objective, theta: torch.Tensor, *, detector_threshold: float,
                  grad_norm: float | None = None, settings: AnalysisSettings = AnalysisSettings(),
                  seed: int = 0) -> PointKind:
    """Classify ``theta`` as a stall point: :func:`landscape.classify_point` with the tolerances of
    :func:`stall_tolerances` and the classifier's scale-free defaults for the rest (probe on).

    Args:
        obj: the objective.
        theta: the point, shape (dim,).
        detector_threshold: the detector's gradient threshold (gradient units).
        grad_norm: ‖∇L(θ)‖ if known (None: one full-batch gradient is computed).
        settings: overrides (``grad_tol``, ``eig_tol``, ``hessian_lipschitz``, ``probe_floor``,
            ``global_tol``, ``method``, ``global_min``).
        seed: the classifier's seed (random probe directions).

    Returns:
        A :class:`PointKind`; the tolerances used are in ``report.tolerances``.

    Example:
        >>> import torch
        >>> from landscape import Objective
        >>> obj = Objective.from_function(lambda w: w[0] ** 2 - w[1] ** 2 + w[1] ** 4,
        ...                               torch.zeros(2, dtype=torch.float64))
        >>> pk = kind_at_point(obj, torch.tensor([1e-3, 0.0], dtype=torch.float64), detector_threshold=1e-2)
        >>> pk.report.kind, pk.grad_tol, pk.n_hvp      # ‖g‖ = 2e-3 < 1e-2; dense Hessian: dim = 2 HVPs
        ('strict_saddle', 0.01, 2)
    """
    s = settings
    gtol = etol = None
    try:
        if grad_norm is None:
            grad_norm = float(torch.linalg.vector_norm(obj.grad(theta)))
        gtol, etol = stall_tolerances(grad_norm, detector_threshold, grad_tol=s.grad_tol, eig_tol=s.eig_tol,
                                      hessian_lipschitz=s.hessian_lipschitz)
        rep = classify_point(obj, theta, global_min=s.global_min, grad_tol=gtol, eig_tol=etol, method=s.method,
                             probe=True, seed=seed, probe_abs_threshold=s.probe_floor or 0.0,
                             global_tol=s.global_tol)
    except Exception as exc:  # noqa: BLE001 - a failed classification must not kill training
        return PointKind(None, f"{type(exc).__name__}: {exc}", 0, gtol, etol)
    return PointKind(rep, None, obj.dim if rep.method == "dense" else 0, gtol, etol)


@dataclass(frozen=True)
class NearestRecord:
    """The nearest critical point as stored in a stall record (:func:`nearest_critical_record`).

    Args:
        record: :class:`landscape.NearestCritical` as JSON, restricted to :data:`NEAREST_FIELDS`;
            None when the search failed.
        error: ``"nearest_critical failed: ExceptionType: message"``, or None.
        n_hvp: Hessian-vector products spent (search, plus dim for a dense classification).

    Example: see :func:`nearest_critical_record`.
    """

    record: dict[str, Any] | None
    error: str | None
    n_hvp: int = 0


def nearest_critical_record(obj: Objective, theta: torch.Tensor, *, global_min: float | None = None,
                            seed: int = 0) -> NearestRecord:
    """:func:`landscape.nearest_critical` from ``theta``, as the record a stall event stores.

    Args:
        obj: the objective.
        theta: the stall point, shape (dim,).
        global_min: the known global minimum L* (loss units), or None.
        seed: the classifier's seed.

    Returns:
        A :class:`NearestRecord`.

    Example:
        >>> import torch
        >>> from landscape import Objective
        >>> obj = Objective.from_function(lambda w: w[0] ** 2 - w[1] ** 2 + w[1] ** 4,
        ...                               torch.zeros(2, dtype=torch.float64))
        >>> nr = nearest_critical_record(obj, torch.tensor([1e-3, 1e-3], dtype=torch.float64))
        >>> nr.record["kind"], nr.record["converged"], round(nr.record["distance"], 6)   # the saddle at 0
        ('strict_saddle', True, 0.001414)
    """
    try:
        nc = nearest_critical(obj, theta, global_min=global_min, seed=seed)
    except Exception as exc:  # noqa: BLE001 - a failed refinement must not kill training
        return NearestRecord(None, f"nearest_critical failed: {type(exc).__name__}: {exc}")
    n_hvp = nc.n_hvp + (obj.dim if nc.report is not None and nc.report.method == "dense" else 0)
    d = nc.to_dict()
    return NearestRecord({k: d[k] for k in NEAREST_FIELDS}, None, n_hvp)


@dataclass(frozen=True)
class StallAnalysis(JsonResult):
    """Everything :func:`analyse_stall` found at one stall point (fields the stall records share).

    Args:
        grad_tol: the gradient tolerance requested from the classifier (:func:`stall_tolerances`;
            None when not classified).
        eig_tol: the eigenvalue tolerance requested (None: the classifier's default).
        kind: the approximate kind at the stall point (None: not classified, or failed).
        report: its :class:`landscape.CriticalPointReport` (None likewise).
        tolerances: ``report.tolerances`` — every tolerance the classifier used.
        nearest_critical: the nearest critical point's record (:data:`NEAREST_FIELDS`), or None.
        cancellation: the :class:`landscape.CancellationStats` at θ_s, or None.
        kappa: κ = ‖mean g_i‖ / mean‖g_i‖ (None: not computed or undefined).
        example_grad_scale: mean_i ‖g_i‖ (gradient units), or None.
        example_grad_scale_ratio: that over the reference scale, or None.
        cause: ``"cancelling"``, ``"vanishing"`` or None (:func:`landscape.stall_cause`).
        cause_thresholds: ``{kappa_max, ratio_max, reference: {source, value}}`` when the
            statistics were asked for, else None.
        error: what failed, or None (messages joined as the trainer's ``classify_error``).
        n_hvp: Hessian-vector products spent classifying (dense Hessians count as dim).
        n_per_example_grads: per-example gradients spent on the statistics.
        classify_time_s: seconds in the classifier and the nearest-critical search.
        cancellation_time_s: seconds in the statistics.

    Example: see :func:`analyse_stall`.
    """

    grad_tol: float | None = None
    eig_tol: float | None = None
    kind: str | None = None
    report: Any = field(default=None, repr=False)
    tolerances: dict | None = None
    nearest_critical: dict | None = None
    cancellation: Any = field(default=None, repr=False)
    kappa: float | None = None
    example_grad_scale: float | None = None
    example_grad_scale_ratio: float | None = None
    cause: str | None = None
    cause_thresholds: dict | None = None
    error: str | None = None
    n_hvp: int = 0
    n_per_example_grads: int = 0
    classify_time_s: float = 0.0
    cancellation_time_s: float = 0.0


def _classification(obj: Objective, theta: torch.Tensor, grad_norm: float | None, detector_threshold: float,
                    settings: AnalysisSettings, seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The classification half of :func:`analyse_stall` (kind at θ_s, then the nearest critical point)."""
    say("classifying the stall point")
    pk = kind_at_point(obj, theta, detector_threshold=detector_threshold, grad_norm=grad_norm, settings=settings,
                       seed=seed)
    rep, error, n_hvp = pk.report, pk.error, pk.n_hvp
    out: dict[str, Any] = {"grad_tol": pk.grad_tol, "eig_tol": pk.eig_tol, "kind": rep.kind if rep is not None else None,
                           "report": rep, "tolerances": rep.tolerances if rep is not None else None}
    if settings.nearest:
        say(f"kind {out['kind']}; searching the nearest critical point")
        nr = nearest_critical_record(obj, theta, global_min=settings.global_min, seed=seed)
        out["nearest_critical"] = nr.record
        n_hvp += nr.n_hvp
        if nr.error:
            error = f"{error}; {nr.error}" if error else nr.error
    out.update(error=error, n_hvp=n_hvp)
    return out


def _statistics(obj: Objective, theta: torch.Tensor, settings: AnalysisSettings, reference: ReferenceScale,
                error: str | None) -> dict[str, Any]:
    """The cancellation half of :func:`analyse_stall` (statistics and cause)."""
    out: dict[str, Any] = {"cause_thresholds": {**settings.cause_thresholds(), "reference": reference.to_dict()}}
    canc: CancellationStats | None = None
    try:
        canc = cancellation_stats(obj, theta, settings.chunk_size)
        out["n_per_example_grads"] = obj.n_examples
    except Exception as exc:  # noqa: BLE001
        error = (error or "") + f" cancellation failed: {type(exc).__name__}: {exc}"
    out.update(cancellation=canc, error=error)
    if canc is not None:
        ce = estimate_cause(canc, reference.value, kappa_max=settings.kappa_max, ratio_max=settings.ratio_max)
        out.update(kappa=ce.kappa, example_grad_scale=ce.example_grad_scale,
                   example_grad_scale_ratio=ce.example_grad_scale_ratio, cause=ce.cause)
    return out


def analyse_stall(obj: Objective, theta: torch.Tensor, *, grad_norm: float | None, detector_threshold: float,
                  settings: AnalysisSettings = AnalysisSettings(), reference: ReferenceScale | None = None,
                  seed: int = 0, progress: Callable[[str], None] | None = None,
                  critical_obj: Objective | None = None) -> StallAnalysis:
    """Analyse one stall point: approximate kind, nearest critical point, cancellation, cause.

    The order is fixed (classification, nearest critical point, statistics), and every piece is
    the function of this module named for it, so a trainer and a user's loop that call this with
    the same objective, point, threshold, settings, reference and seed get the same numbers.

    Args:
        obj: the objective (full batch).
        theta: the stall point θ_s, shape (dim,).
        grad_norm: ‖∇L(θ_s)‖ as the loop measured it (None: computed here, one gradient).
        detector_threshold: the stall detector's gradient threshold when it fired
            (:meth:`StallDetector.grad_threshold`), gradient units.
        settings: what to compute and the tolerance overrides (:class:`AnalysisSettings`).
        reference: the reference per-example gradient scale for the cause
            (:func:`landscape.monitor.cause.reference_grad_scale`); None: no reference (only
            ``"cancelling"`` can be told).
        seed: seed of the classifier's random probes.
        progress: called with a one-line message (and the seconds so far) before each piece —
            classification, nearest critical point, statistics — or None for silence.
        critical_obj: the objective whose critical points the stall is classified against, over the
            same parameter vector (None: ``obj``). For when ``obj`` is a sample of the loss that
            matters, e.g. a closed-form population loss beside a probe batch: the kind at θ_s and
            the nearest critical point use it (‖∇‖ recomputed on it); κ and the cause stay on
            ``obj``'s per-example gradients.

    Returns:
        A :class:`StallAnalysis` (costs and seconds included).

    Example:
        >>> import torch
        >>> from landscape import Objective
        >>> obj = Objective.from_function(lambda w: w[0] ** 2 - w[1] ** 2, torch.zeros(2, dtype=torch.float64))
        >>> a = analyse_stall(obj, torch.zeros(2, dtype=torch.float64), grad_norm=0.0,
        ...                   detector_threshold=1e-6, settings=AnalysisSettings(cancellation=False))
        >>> a.kind, a.nearest_critical["kind"], a.grad_tol, a.report.index
        ('strict_saddle', 'strict_saddle', 1e-06, 1)
    """
    reference = reference if reference is not None else ReferenceScale("none", None)
    s = settings
    fields: dict[str, Any] = {}
    start = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress(f"{message} ({time.perf_counter() - start:.1f} s so far)")

    if s.classify:
        t0 = time.perf_counter()
        cobj, gn = (obj, grad_norm) if critical_obj is None else (critical_obj, None)
        fields.update(_classification(cobj, theta, gn, detector_threshold, s, seed, say))
        fields["classify_time_s"] = time.perf_counter() - t0
    if s.cancellation:
        say("per-example gradient statistics and cause")
        t0 = time.perf_counter()
        fields.update(_statistics(obj, theta, s, reference, fields.get("error")))
        fields["cancellation_time_s"] = time.perf_counter() - t0
    return StallAnalysis(**fields)
