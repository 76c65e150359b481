"""What a classification found: :class:`CriticalPointReport` and the kinds it can name (:data:`KINDS`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..probe import ProbeResult
from ..results import JsonResult

#: the kinds :func:`landscape.classify_point` reports
KINDS = ("not_critical", "minimum", "global_minimum", "strict_saddle", "non_strict_saddle",
         "maximum", "inconclusive")


@dataclass(frozen=True)
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
    ``null_space``: at a degenerate point, what the verdict rests on — ``n_zero`` of
    ``n_eigenvalues`` computed (``lower_bound``: the Lanczos path sees only its computed pairs),
    ``share``, ``mostly_null`` (more than :data:`landscape.defaults.MOSTLY_NULL_SHARE` of the computed
    spectrum in the zero band, or every computed smallest pair on the Lanczos path), ``probed`` (per
    probe: directions and how many stayed unresolved), ``radius`` (the largest probe radius) and
    ``resolution`` (the probe's largest threshold there, loss units); None at a non-degenerate
    point. A verdict with ``mostly_null`` also says so in ``notes``.
    ``n_hvp``: the Hessian-vector products the classification spent (a dense Hessian counts
    ``dim``; :mod:`landscape.budget`); with ``max_hvp`` given it is at most that, and a
    classification that ran out is ``inconclusive`` with the reason.
    ``notes``: what the recipe did and saw, in order.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 - x[1] ** 2, torch.zeros(2, dtype=torch.float64))
        >>> rep = ls.classify_point(obj, obj.initial_point())
        >>> rep.kind, rep.index, rep.is_saddle, rep.to_dict()["has_escape_direction"]
        ('strict_saddle', 1, True, True)
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
    null_space: dict | None = None
    n_hvp: int = 0
    notes: list[str] = field(default_factory=list)
    eigenvalues: torch.Tensor | None = field(default=None, repr=False)
    escape_direction: torch.Tensor | None = field(default=None, repr=False)
    probe: ProbeResult | None = field(default=None, repr=False)

    @property
    def is_critical(self) -> bool:
        """True unless the kind is ``"not_critical"``."""
        return self.kind != "not_critical"

    @property
    def is_saddle(self) -> bool:
        """True for strict and non-strict saddles."""
        return self.kind in ("strict_saddle", "non_strict_saddle")

    def to_dict(self) -> dict:
        """The report as JSON types.

        Returns:
            A dict without the (dim,) vectors (``has_escape_direction`` instead), the probe as its
            dict, and ``eigenvalues`` None for spectra of more than 256 eigenvalues.
        """
        d = super().to_dict()
        d.pop("escape_direction")
        d["has_escape_direction"] = self.escape_direction is not None
        d["probe"] = self.probe.to_dict() if self.probe is not None else None  # without its (dim,) vectors
        if self.eigenvalues is not None and self.eigenvalues.numel() > 256:
            d["eigenvalues"] = None  # large spectra belong in an .npz
        return d


@dataclass(frozen=True)
class Verdict:
    """The decision part of a report while the recipe runs (internal): the kind and what backs it.

    Each step of :mod:`landscape.classify.recipe` returns a new verdict; the report is built once
    from the last one.

    Attributes:
        kind, reason, escape_direction, probe_order, probe_radius, probe, gradient_flatness: the
        report's fields of the same names.

    Example:
        >>> Verdict("minimum", probe_radius=0.1).kind
        'minimum'
    """

    kind: str
    reason: str | None = None
    escape_direction: torch.Tensor | None = None
    probe_order: float | None = None
    probe_radius: float | None = None
    probe: ProbeResult | None = None
    gradient_flatness: float | None = None
