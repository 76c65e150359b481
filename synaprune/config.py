"""Everything a :class:`~synaprune.Trainer` is configured by: the method registry, the defaults, and
:class:`TrainerConfig` — one frozen, validated record of a trainer's settings.

``Trainer(model, loss_fn, data, method=..., lr=..., ...)`` builds a :class:`TrainerConfig` from its
keywords (:meth:`TrainerConfig.from_options`); ``Trainer(model, loss_fn, data, config=cfg)`` takes
one built beforehand (e.g. once for a sweep, varied with :func:`dataclasses.replace`). A config
holds no data, model or state: the parts that depend on the data (``sgd``'s default batch size,
the method's model checks) are the trainer's.
"""
from __future__ import annotations

import copy
import math
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

import landscape
from landscape.monitor import KAPPA_MAX, RATIO_MAX, AnalysisSettings, StallDetector
from landscape.monitor.cause import REFERENCE_SOURCES

from ._version import __version__
from .base import UpdateRule
from .baselines import GD, NCD, PGD, SFN, SGD, Adam, NormalizedGD, PGDFixed, RMSprop, SignGD
from .controls import LengthMatchedGD
from .rules import DevargRule, GDMatched, HebbianRule, NoiseRule, PenaltyRule, RMSRule

#: every method the trainer runs, by name: baselines, the SynaPrune rules and the gd-matched control
METHODS: dict[str, type[UpdateRule]] = {
    cls.name: cls for cls in (GD, SGD, Adam, RMSprop, SignGD, NormalizedGD, PGD, PGDFixed, NCD, SFN, RMSRule,
                              DevargRule, NoiseRule, PenaltyRule, HebbianRule, GDMatched, LengthMatchedGD)
}
#: when a SynaPrune rule runs: only in escape phases at stalls, or as the update at every step
MODES = ("at_stalls", "always")
#: learning rates that differ from :data:`DEFAULT_LR_OTHER`, by method
DEFAULT_LR: dict[str, float] = {"adam": 1e-3, "sfn": 1.0}
#: the learning rate of every other method
DEFAULT_LR_OTHER = 1e-2
#: escape-phase options accepted by SynaPrune methods (mode="at_stalls"), with defaults
ESCAPE_DEFAULTS: dict[str, Any] = {
    "escape_steps": 50,      # T_esc: longest escape phase
    "t_wait": 50,            # steps of the base method after a reverted phase before retrying
    "max_attempts": 3,       # escape phases per stall
    "escape_decay": 0.95,    # step k of a phase is multiplied by escape_decay**k
    "escape_step_cap": 0.1,  # ‖Δθ‖ ≤ escape_step_cap · max(1, ‖θ̃‖) inside a phase
    "f_thres": None,         # accept threshold; None: 0.1 · max(escape_abs, escape_rel·|L(θ̃)|)
    "revert": True,          # restore θ̃ after a phase without acceptance (False: keep its point)
}
#: stall-cause thresholds (README "Stall cause"): κ ≤ kappa_max, ratio ≤ ratio_max — the monitor's
CAUSE_DEFAULTS: dict[str, float] = {"kappa_max": KAPPA_MAX, "ratio_max": RATIO_MAX}
#: example-gradient cost ratios used when the FLOP counter sees no FLOPs (models without matmuls)
DEFAULT_HVP_OVER_GRAD, DEFAULT_LOSS_OVER_GRAD = 2.0, 1.0 / 3.0


class ReadOnlyDict(dict):
    """A ``dict`` that refuses changes (the mappings inside a frozen :class:`TrainerConfig`).

    It still is a ``dict`` (JSON, ``{**d}``, equality), pickles and deep-copies.

    Example:
        >>> d = ReadOnlyDict(a=1)
        >>> d["a"], {**d, "b": 2}
        (1, {'a': 1, 'b': 2})
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping belongs to a frozen TrainerConfig; build a new config with dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (dict(self),)

    def __deepcopy__(self, memo: dict) -> ReadOnlyDict:
        return type(self)(copy.deepcopy(dict(self), memo))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_escape(e: Mapping[str, Any]) -> None:
    for key in ("escape_steps", "t_wait", "max_attempts"):
        v = e[key]
        if not _is_int(v) or v < (0 if key == "t_wait" else 1):
            raise ValueError(f"option {key} must be a {'non-negative' if key == 't_wait' else 'positive'} "
                             f"integer, got {v!r}")
    if not (0 < e["escape_decay"] <= 1):
        raise ValueError(f"option escape_decay must lie in (0, 1], got {e['escape_decay']!r}")
    if e["escape_step_cap"] is not None and not (e["escape_step_cap"] > 0):
        raise ValueError(f"option escape_step_cap must be positive or None, got {e['escape_step_cap']!r}")
    if not isinstance(e["revert"], bool):
        raise ValueError(f"option revert must be True or False, got {e['revert']!r}")
    if e["f_thres"] is not None and not (e["f_thres"] >= 0):
        raise ValueError(f"option f_thres must be non-negative or None, got {e['f_thres']!r}")


def _split_method_options(method: str, options: Mapping[str, Any]) -> tuple[str | None, dict, dict]:
    """(mode, escape options, the rule's own options) of ``method_options``, validated."""
    cls = METHODS[method]
    opts = dict(options)
    if not cls.synaprune:
        bad = sorted(k for k in opts if k == "mode" or (k in ESCAPE_DEFAULTS and k not in cls.DEFAULTS))
        if bad:
            raise ValueError(f"options {bad} apply to SynaPrune methods only; {method!r} is a baseline")
        return None, {}, opts
    mode = opts.pop("mode", "at_stalls")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    esc_given = {k: opts.pop(k) for k in list(opts) if k in ESCAPE_DEFAULTS}
    if mode == "always" and cls.own_phase_scaling:
        raise ValueError(f"{method!r} is an escape-phase control: it needs mode='at_stalls'")
    if esc_given and mode == "always":
        raise ValueError(f"escape-phase options {sorted(esc_given)} need mode='at_stalls'")
    escape = {**ESCAPE_DEFAULTS, **esc_given}
    _check_escape(escape)
    return mode, escape, opts


@dataclass(frozen=True)
class TrainerConfig:
    """A trainer's settings, validated once (a bad value raises here, naming the keyword).

    Args:
        method: a key of :data:`METHODS` (default ``"synaprune-rms"``).
        lr: step size; None: :data:`DEFAULT_LR` for the method, else :data:`DEFAULT_LR_OTHER`
            (stored resolved, as a float: ``dataclasses.replace(cfg, method=m, lr=None)`` takes
            m's default).
        batch_size: minibatch size (None: full batch; the trainer gives ``sgd`` min(32, n)).
        seed: seed of all the run's randomness (minibatches, noise, perturbations, tie-breaks).
        stall: the :class:`StallDetector` template (None: default thresholds); the config keeps
            its own copy and every trainer copies it again.
        classify: classify each stall.
        global_min: the known global minimum L* (loss units), for ``global_minimum``.
        log_dir: run directory (None: no log).
        reduction: ``"mean"`` or ``"sum"``, as :class:`landscape.Objective` (checked there).
        dtype: the objective's dtype (None: the model's).
        device: the objective's device (None: the model's).
        escape_rel: relative escape margin δ_rel (default 1e-2).
        escape_abs: absolute escape margin δ_abs, loss units (default 1e-6).
        escape_horizon: steps within which an escape counts (default 1000).
        classify_grad_tol: gradient tolerance at a stall (None: max(‖g‖, detector threshold)).
        classify_eig_tol: eigenvalue tolerance (None: √(ρ‖g‖) with ``hessian_lipschitz``, else
            the classifier's scale-free band).
        hessian_lipschitz: ρ (curvature per parameter unit), or None.
        classify_method: ``"auto"``, ``"dense"`` or ``"lanczos"``.
        classify_probe_floor: the probe's absolute loss resolution (loss units), or None.
        classify_global_tol: tolerance for ``global_minimum`` (loss units), or None.
        classify_final: classify the final point too.
        classify_nearest: find and classify each stall's nearest critical point.
        cancellation: cancellation statistics and the cause at each stall.
        chunk_size: per-example gradients per chunk (None: all at once).
        meta: free-form dict stored in ``run.json``.
        checkpoint_every: curve flush period, steps.
        progress: tqdm bar (None: only on a TTY).
        cause_kappa_max: the cause's κ threshold, in (0, 1].
        cause_ratio_max: the cause's ratio threshold, in (0, 1].
        grad_scale_reference: ``"default_init"`` (default: the model re-initialised by its modules'
            ``reset_parameters``, seeded by ``seed``, as :class:`landscape.StallMonitor` does; a model
            without any ``reset_parameters`` falls back to ``"model"``), ``"model"`` (the model as
            given), ``"initial"`` or a positive number (gradient units). The escape study and the
            problems' trainers pin ``"model"``: their shipped records were made with it.
        num_threads: torch intra-op threads during ``fit`` (None: leave the setting alone).
        method_options: the method's own options, plus for SynaPrune methods ``mode`` and the
            :data:`ESCAPE_DEFAULTS` keys.

    Attributes (derived, not arguments):
        mode: ``"at_stalls"`` / ``"always"`` for SynaPrune methods, None for baselines.
        escape: the escape-phase options with defaults filled in (empty for baselines).
        rule_options: ``method_options`` without ``mode`` and the escape options.

    Raises:
        ValueError / TypeError: as the trainer's keywords always did (unknown method or option,
            a negative tolerance, ...).

    Example:
        >>> cfg = TrainerConfig(method="synaprune-rms", method_options={"t_wait": 10})
        >>> cfg.lr, cfg.mode, cfg.escape["t_wait"], cfg.escape["max_attempts"]
        (0.01, 'at_stalls', 10, 3)
        >>> TrainerConfig.from_options(method="adam", seed=3, eps=1e-6).rule_options
        {'eps': 1e-06}
    """

    method: str = "synaprune-rms"
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    stall: StallDetector | None = None
    classify: bool = True
    global_min: float | None = None
    log_dir: str | os.PathLike | None = None
    reduction: str = "mean"
    dtype: torch.dtype | None = None
    device: torch.device | str | None = None
    escape_rel: float = 1e-2
    escape_abs: float = 1e-6
    escape_horizon: int = 1000
    classify_grad_tol: float | None = None
    classify_eig_tol: float | None = None
    hessian_lipschitz: float | None = None
    classify_method: str = "auto"
    classify_probe_floor: float | None = None
    classify_global_tol: float | None = None
    classify_final: bool = True
    classify_nearest: bool = True
    cancellation: bool = True
    chunk_size: int | None = None
    meta: Mapping[str, Any] | None = None
    checkpoint_every: int = 50
    progress: bool | None = None
    cause_kappa_max: float = CAUSE_DEFAULTS["kappa_max"]
    cause_ratio_max: float = CAUSE_DEFAULTS["ratio_max"]
    grad_scale_reference: str | float = "default_init"
    num_threads: int | None = None
    method_options: Mapping[str, Any] = field(default_factory=dict)
    mode: str | None = field(init=False)
    escape: Mapping[str, Any] = field(init=False)
    rule_options: Mapping[str, Any] = field(init=False)

    @classmethod
    def from_options(cls, **options: Any) -> TrainerConfig:
        """A config from the trainer's flat keywords: the names of this class's fields go to the
        fields, every other keyword is a method option.

        Args:
            **options: as ``Trainer(...)`` takes them.

        Returns:
            The validated config.
        """
        names = {f.name for f in fields(cls) if f.init and f.name != "method_options"}
        own = {k: v for k, v in options.items() if k in names}
        return cls(**own, method_options={k: v for k, v in options.items() if k not in names})

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        mode, escape, rule_options = _split_method_options(self.method, self.method_options)
        self._set(mode=mode, escape=ReadOnlyDict(escape), rule_options=ReadOnlyDict(rule_options),
                  method_options=ReadOnlyDict(self.method_options))
        self.build_rule()  # the rule checks its own options (unknown names, values)
        self._check_run()
        self._check_analysis()
        self._check_logging()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _check_run(self) -> None:
        lr = DEFAULT_LR.get(self.method, DEFAULT_LR_OTHER) if self.lr is None else self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0) or math.isinf(lr):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.stall is not None and not isinstance(self.stall, StallDetector):
            raise TypeError(f"stall must be a StallDetector, got {type(self.stall).__name__}")
        for name, v in (("escape_rel", self.escape_rel), ("escape_abs", self.escape_abs),
                        ("hessian_lipschitz", 0.0 if self.hessian_lipschitz is None else self.hessian_lipschitz)):
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if not _is_int(self.escape_horizon) or self.escape_horizon < 1:
            raise ValueError(f"escape_horizon must be a positive integer, got {self.escape_horizon!r}")
        if self.global_min is not None and not math.isfinite(float(self.global_min)):
            raise ValueError(f"global_min must be finite, got {self.global_min!r}")
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")
        self._set(lr=float(lr), stall=copy.deepcopy(self.stall), escape_rel=float(self.escape_rel),
                  escape_abs=float(self.escape_abs),
                  global_min=None if self.global_min is None else float(self.global_min),
                  hessian_lipschitz=None if self.hessian_lipschitz is None else float(self.hessian_lipschitz))

    def _check_analysis(self) -> None:
        for name in ("classify_grad_tol", "classify_eig_tol", "classify_probe_floor", "classify_global_tol"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                      and v >= (0 if name != "classify_grad_tol" else 1e-300)):
                raise ValueError(f"{name} must be a finite {'positive' if name == 'classify_grad_tol' else 'non-negative'}"
                                 f" number or None, got {v!r}")
            self._set(**{name: None if v is None else float(v)})
        if self.classify_method not in ("auto", "dense", "lanczos"):
            raise ValueError(f"classify_method must be 'auto', 'dense' or 'lanczos', got {self.classify_method!r}")
        if self.chunk_size is not None and (not _is_int(self.chunk_size) or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {self.chunk_size!r}")
        for name in ("cause_kappa_max", "cause_ratio_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 1):
                raise ValueError(f"{name} must lie in (0, 1], got {v!r}")
            self._set(**{name: float(v)})
        ref = self.grad_scale_reference
        if isinstance(ref, str):
            if ref not in REFERENCE_SOURCES:
                raise ValueError(f"grad_scale_reference must be one of {REFERENCE_SOURCES} or a positive number, "
                                 f"got {ref!r}")
        elif isinstance(ref, bool) or not isinstance(ref, (int, float)) or not (ref > 0) or math.isinf(ref):
            raise ValueError(f"grad_scale_reference must be one of {REFERENCE_SOURCES} or a positive number, "
                             f"got {ref!r}")
        self._set(classify=bool(self.classify), classify_final=bool(self.classify_final),
                  classify_nearest=bool(self.classify_nearest), cancellation=bool(self.cancellation))

    def _check_logging(self) -> None:
        if not _is_int(self.checkpoint_every) or self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {self.checkpoint_every!r}")
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        self._set(meta=ReadOnlyDict(self.meta or {}))

    # ------------------------------------------------------------------ what the trainer builds from it
    def build_rule(self) -> UpdateRule:
        """A fresh instance of the method with its own options.

        Returns:
            ``METHODS[method](**rule_options)`` (a new, reset rule each call).
        """
        return METHODS[self.method](**self.rule_options)

    @property
    def is_synaprune(self) -> bool:
        """True for SynaPrune methods and the gd-matched control (they have a mode and escape phases)."""
        return METHODS[self.method].synaprune

    def cause_thresholds(self) -> dict[str, float]:
        """``{"kappa_max", "ratio_max"}`` (the record's form; a new dict each call)."""
        return {"kappa_max": self.cause_kappa_max, "ratio_max": self.cause_ratio_max}

    def analysis_settings(self) -> AnalysisSettings:
        """The at-stall analysis these settings ask for (:func:`landscape.monitor.analyse_stall`).

        Returns:
            An :class:`AnalysisSettings` with the ``classify_*`` overrides, ``global_min``,
            ``chunk_size`` and the cause thresholds.
        """
        return AnalysisSettings(
            classify=self.classify, nearest=self.classify_nearest, cancellation=self.cancellation,
            grad_tol=self.classify_grad_tol, eig_tol=self.classify_eig_tol, hessian_lipschitz=self.hessian_lipschitz,
            probe_floor=self.classify_probe_floor, global_tol=self.classify_global_tol, method=self.classify_method,
            global_min=self.global_min, chunk_size=self.chunk_size, kappa_max=self.cause_kappa_max,
            ratio_max=self.cause_ratio_max)


def runtime_versions() -> dict[str, str]:
    """The software a run used (``run.json`` ``versions``).

    Returns:
        ``{python, torch, numpy, landscape, synaprune, platform}`` version strings.

    Example:
        >>> sorted(runtime_versions())
        ['landscape', 'numpy', 'platform', 'python', 'synaprune', 'torch']
    """
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "landscape": getattr(landscape, "__version__", "?"), "synaprune": __version__,
            "platform": platform.platform()}
