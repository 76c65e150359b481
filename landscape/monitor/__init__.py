"""Stall monitoring: what the SynaPrune trainer and a user's own training loop share.

- :mod:`~landscape.monitor.detector` — :class:`StallDetector` (plateau detection from each step's
  loss and gradient norm, scale-free by default);
- :mod:`~landscape.monitor.cause` — :func:`stall_cause` (THE rule: cancelling vs vanishing
  per-example gradients), the reference per-example gradient scale (:func:`reference_grad_scale`)
  and :func:`estimate_cause`;
- :mod:`~landscape.monitor.analysis` — :func:`analyse_stall`: the at-stall analysis (approximate
  kind with the stall tolerance rule, nearest critical point, cancellation statistics, cause) as a
  frozen :class:`StallAnalysis`, with :class:`AnalysisSettings` for the overrides.

Data flows one way: detector → (stall) → analysis → cause; nothing here writes to a model or
keeps state beyond the detector's window.
"""
from .analysis import (NEAREST_FIELDS, AnalysisSettings, NearestRecord, PointKind, StallAnalysis, analyse_stall,
                       kind_at_point, nearest_critical_record, stall_tolerances)
from .cause import (KAPPA_MAX, RATIO_MAX, CauseEstimate, ReferenceScale, estimate_cause, reference_grad_scale,
                    stall_cause)
from .detector import StallDetector

__all__ = [
    # detection
    "StallDetector",
    # cause
    "stall_cause", "KAPPA_MAX", "RATIO_MAX", "ReferenceScale", "reference_grad_scale", "CauseEstimate",
    "estimate_cause",
    # the at-stall analysis
    "analyse_stall", "StallAnalysis", "AnalysisSettings", "stall_tolerances", "kind_at_point", "PointKind",
    "nearest_critical_record", "NearestRecord", "NEAREST_FIELDS",
]
