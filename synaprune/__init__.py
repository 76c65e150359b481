"""SynaPrune: a trainer that detects, classifies and tries to escape every stall.

``Trainer(model, loss_fn, data, method=..., ...)`` runs any of :data:`METHODS` (baselines gd,
sgd, adam, pgd (Jin et al.'s thresholds), pgd-fixed, ncd, sfn, the step-matched control
gd-matched, and the SynaPrune rules of SYNAPRUNE.md) through one
:class:`StallDetector`; each stall becomes a :class:`StallEvent` (classified with
``landscape.classify_point``, cancellation statistics, escape measurement). ``load_run`` reads a
run's log directory back.
"""
from .events import TIMING_FIELDS, EscapeAttempt, RunLog, StallEvent, TrainResult, load_run
from .rules import Aggregator, aggregate
from .stall import StallDetector
from .trainer import CAUSE_DEFAULTS, ESCAPE_DEFAULTS, METHODS, TRANSITIONS, Trainer, stall_cause

__version__ = "0.1.0"

__all__ = [
    "Trainer", "StallDetector", "StallEvent", "TrainResult", "EscapeAttempt", "METHODS", "ESCAPE_DEFAULTS",
    "load_run", "RunLog", "aggregate", "Aggregator", "__version__",
    # stall cause, escape phases and records
    "CAUSE_DEFAULTS", "TRANSITIONS", "TIMING_FIELDS", "stall_cause",
]
