"""SynaPrune: a trainer that detects, analyses and tries to escape every stall.

``Trainer(model, loss_fn, data, method=..., ...)`` runs any of :data:`METHODS` (baselines gd,
sgd, adam, pgd (Jin et al.'s thresholds), pgd-fixed, ncd, sfn, the step-matched control
gd-matched, and the SynaPrune rules of SYNAPRUNE.md) through one :class:`StallDetector`
(:mod:`landscape.monitor`); each stall becomes a :class:`StallEvent` (analysed by
:func:`landscape.monitor.analyse_stall`: kind, nearest critical point, cancellation statistics,
cause; then the escape measurement). Settings: :class:`TrainerConfig`; escape phases:
:mod:`synaprune.escape_phase`; ``load_run`` reads a run's log directory back.
"""
from landscape.monitor import StallDetector, stall_cause

from ._version import __version__
from .config import CAUSE_DEFAULTS, DEFAULT_LR, ESCAPE_DEFAULTS, METHODS, TrainerConfig
from .escape_phase import TRANSITIONS
from .events import TIMING_FIELDS, EscapeAttempt, RunLog, StallEvent, TrainResult, load_run
from .rules import Aggregator, aggregate
from .trainer import Trainer

__all__ = [
    "Trainer", "TrainerConfig", "StallDetector", "StallEvent", "TrainResult", "EscapeAttempt", "METHODS",
    "ESCAPE_DEFAULTS", "DEFAULT_LR", "load_run", "RunLog", "aggregate", "Aggregator", "__version__",
    # stall cause, escape phases and records
    "CAUSE_DEFAULTS", "TRANSITIONS", "TIMING_FIELDS", "stall_cause",
]
