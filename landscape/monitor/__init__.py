"""Stall monitoring: what the SynaPrune trainer and a user's own training loop share.

- :mod:`~landscape.monitor.detector` — :class:`StallDetector` (plateau detection from each step's
  loss and gradient norm, scale-free by default);
- :mod:`~landscape.monitor.cause` — :func:`stall_cause` (THE rule: cancelling vs vanishing
  per-example gradients), the reference per-example gradient scale (:func:`reference_grad_scale`)
  and :func:`estimate_cause`;
- :mod:`~landscape.monitor.analysis` — :func:`analyse_stall`: the at-stall analysis (approximate
  kind with the stall tolerance rule, nearest critical point, cancellation statistics, cause) as a
  frozen :class:`StallAnalysis`, with :class:`AnalysisSettings` for the overrides;
- :mod:`~landscape.monitor.stall_monitor` — :class:`StallMonitor`, every stall of a user's own
  loop (``mon.step(loss)``), built from :mod:`~landscape.monitor.source` (the objective),
  :mod:`~landscape.monitor.schedule` (the noise-aware trend test, the time budget),
  :mod:`~landscape.monitor.sharpness` (stability thresholds, preconditioned and batch sharpness),
  :mod:`~landscape.monitor.guard` (RNG and autograd state left as found),
  :mod:`~landscape.monitor.records` (stall records, ``events.jsonl``) and
  :mod:`~landscape.monitor.report` (the offline page).

Data flows one way: detector → (stall) → analysis → cause; nothing here writes to a model.
"""
from .analysis import (NEAREST_FIELDS, AnalysisSettings, NearestRecord, PointKind, StallAnalysis, analyse_stall,
                       kind_at_point, nearest_critical_record, stall_tolerances)
from .cause import (KAPPA_MAX, RATIO_MAX, CauseEstimate, ReferenceScale, estimate_cause, reference_grad_scale,
                    stall_cause)
from .cause import default_init_point
from .detector import StallDetector
from .guard import preserved_state
from .schedule import TrendResult, trend_test
from .sharpness import StabilityRule, batch_sharpness, stability_rule
from .stall_monitor import StallMonitor

__all__ = [
    # detection
    "StallDetector",
    # cause
    "stall_cause", "KAPPA_MAX", "RATIO_MAX", "ReferenceScale", "reference_grad_scale", "CauseEstimate",
    "estimate_cause",
    # the at-stall analysis
    "analyse_stall", "StallAnalysis", "AnalysisSettings", "stall_tolerances", "kind_at_point", "PointKind",
    "nearest_critical_record", "NearestRecord", "NEAREST_FIELDS",
    # a user's own loop
    "StallMonitor", "trend_test", "TrendResult", "stability_rule", "StabilityRule", "batch_sharpness",
    "preserved_state", "default_init_point",
]
