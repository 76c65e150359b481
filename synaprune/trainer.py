"""The SynaPrune trainer: every method through one stall detector, every stall classified.

One iteration per step t = 0 … max_steps (:meth:`Trainer.fit`, five stages):

1. ``_observe``: full-batch loss and gradient at θ_t (the curves; the stall detector's input);
2. ``_check_phase``: inside an escape phase, accept (L ≤ L(θ̃) − f_thres) or, after
   ``escape_steps`` steps, revert to the snapshot θ̃ (state machine :data:`TRANSITIONS`);
3. ``_record``: curves, and the escape measurement of the open stall (not while a phase runs:
   its outcome is not known until it is accepted or reverted);
4. ``_detect``: stall detection → :class:`StallEvent` (classified, cancellation statistics and
   cause, θ saved, streamed to ``events.jsonl``), then maybe start an escape phase;
5. ``_update``: the rule inside a phase (mode ``"at_stalls"``) or every step (mode ``"always"``),
   else the base method (GD, minibatch SGD when ``batch_size`` is set); baselines always run
   their own update.

The escape-phase protocol is in synaprune/README.md ("Escape-phase protocol"). The user's model
is never modified (the trainer works on a flat vector and a private copy), except by
:meth:`Trainer.write_to` or ``fit(write_back=True)``.
"""
from __future__ import annotations

import copy
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import landscape
from landscape import NonFiniteError, Objective, cancellation_stats
from landscape.classify import classify_point
from landscape.critical import nearest_critical

from .access import CostCounters, DataAccess
from .baselines import GD, NCD, PGD, SFN, SGD, Adam, PGDFixed
from .base import StepContext, UpdateRule
from .events import EscapeAttempt, RunLogger, StallEvent, TrainResult
from .rules import DevargRule, GDMatched, HebbianRule, NoiseRule, PenaltyRule, RMSRule
from .stall import StallDetector

METHODS: dict[str, type[UpdateRule]] = {
    cls.name: cls for cls in (GD, SGD, Adam, PGD, PGDFixed, NCD, SFN, RMSRule, DevargRule, NoiseRule, PenaltyRule,
                              HebbianRule, GDMatched)
}
MODES = ("at_stalls", "always")
DEFAULT_LR = {"adam": 1e-3, "sfn": 1.0}
DEFAULT_LR_OTHER = 1e-2
#: escape-phase options accepted by SynaPrune methods (mode="at_stalls"), with defaults
ESCAPE_DEFAULTS: dict[str, Any] = {
    "escape_steps": 50,      # T_esc: longest escape phase
    "t_wait": 50,            # steps of the base method after a reverted phase before retrying
    "max_attempts": 3,       # escape phases per stall
    "escape_decay": 0.95,    # step k of a phase is multiplied by escape_decay**k
    "escape_step_cap": 0.1,  # ‖Δθ‖ ≤ escape_step_cap · max(1, ‖θ̃‖) inside a phase
    "f_thres": None,         # accept threshold; None: 0.1 · max(escape_abs, escape_rel·|L(θ̃)|)
}
#: stall-cause thresholds (README "Stall cause"): κ ≤ kappa_max, ratio ≤ ratio_max
CAUSE_DEFAULTS: dict[str, float] = {"kappa_max": 0.1, "ratio_max": 0.1}
#: example-gradient cost ratios used when the FLOP counter sees no FLOPs (models without matmuls)
DEFAULT_HVP_OVER_GRAD, DEFAULT_LOSS_OVER_GRAD = 2.0, 1.0 / 3.0

#: the escape-phase state machine: (state, signal) → next state. States: "base" (the base method
#: runs), "escape" (a phase of the rule runs), "wait" (the base method runs after a reverted
#: phase until t_wait steps have passed). Signals: "stall" (a stall opened and a phase may start),
#: "accept" (the phase reached L(θ̃) − f_thres: keep it; no further phase for this stall),
#: "timeout" (escape_steps without acceptance: revert to θ̃), "ready" (t_wait passed, attempts
#: left: next phase from the current point), "exhausted" (max_attempts reverted: base only),
#: "resolved" (the stall escaped or reached its horizon while waiting).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("base", "stall"): "escape",
    ("escape", "accept"): "base",
    ("escape", "timeout"): "wait",
    ("wait", "ready"): "escape",
    ("wait", "exhausted"): "base",
    ("wait", "resolved"): "base",
}


def stall_cause(kappa: float | None, ratio: float | None, *, kappa_max: float = 0.1,
                ratio_max: float = 0.1) -> str | None:
    """Why the mean gradient is small at a stall (README "Stall cause").

    ‖mean g_i‖ = κ · ratio · r exactly (κ = ‖mean g_i‖/mean‖g_i‖, ratio = mean‖g_i‖/r for the
    reference scale r), so κ and ratio split the orders of magnitude by which the mean gradient
    lies below r. The cause is the factor that contributes more, if it is itself small:
    ``"cancelling"`` if κ ≤ ``kappa_max`` and κ ≤ ratio; ``"vanishing"`` if ratio ≤ ``ratio_max``
    and ratio < κ; None otherwise (neither factor is an order of magnitude small). Without a
    reference (ratio None) only cancelling can be told. All-zero per-example gradients
    (ratio = 0, κ undefined) are vanishing.
    """
    if ratio is not None and ratio == 0.0:
        return "vanishing"
    if kappa is None or not math.isfinite(kappa):
        return None
    if ratio is None or not math.isfinite(ratio):
        return "cancelling" if kappa <= kappa_max else None
    if kappa <= kappa_max and kappa <= ratio:
        return "cancelling"
    if ratio <= ratio_max and ratio < kappa:
        return "vanishing"
    return None


@dataclass
class _EscapePhase:
    theta: torch.Tensor
    loss: float
    grad: torch.Tensor
    start: int
    f_thres: float
    attempt: EscapeAttempt
    attempt_index: int
    event: StallEvent
    k: int = 0


@dataclass
class _Run:
    """The mutable state of one :meth:`Trainer.fit` (nothing of it outlives the call)."""

    theta: torch.Tensor
    initial: torch.Tensor
    log: RunLogger
    max_steps: int
    t: int = 0
    loss: float = math.nan
    grad: torch.Tensor | None = None
    gn: float = math.nan
    last_good: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)
    gnorms: list[float] = field(default_factory=list)
    phases: list[int] = field(default_factory=list)
    events: list[StallEvent] = field(default_factory=list)
    open_ev: StallEvent | None = None
    phase: _EscapePhase | None = None
    state: str = "base"
    wait_until: int = -1
    status: str = "completed"
    message: str = ""
    t_start: float = 0.0


def _versions() -> dict[str, str]:
    from . import __version__ as sp_version
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "landscape": getattr(landscape, "__version__", "?"), "synaprune": sp_version,
            "platform": platform.platform()}


class Trainer:
    """Train ``model`` on ``data`` with ``method``, detecting and classifying every stall.

    Parameters: ``model`` (``nn.Module``), ``loss_fn(outputs, targets)`` mean-reduced over the
    batch, ``data`` ((X, Y) or an iterable of batches; fixed full-batch objective), ``method`` (a key
    of :data:`METHODS`), ``lr`` (default 1e-3 for adam, 1.0 for sfn, 1e-2 otherwise),
    ``batch_size`` (None = full batch; ``sgd`` defaults to min(32, n)), ``seed`` (all randomness:
    minibatches, noise, perturbations), ``stall`` (:class:`StallDetector`, default thresholds),
    ``classify`` (classify each stall), ``global_min`` (known L*, for ``global_minimum``),
    ``log_dir``. Keyword-only: ``reduction`` ("mean"/"sum", as :class:`landscape.Objective`),
    ``dtype``/``device``, escape measurement ``escape_rel`` (1e-2), ``escape_abs`` (1e-6),
    ``escape_horizon`` (1000 steps). Classification: every stall gets (a) the *approximate kind at
    the stall point* θ_s — :func:`landscape.classify_point` with the stall point counted as
    critical (``classify_grad_tol``, default max(‖g(θ_s)‖, the detector's gradient threshold)) and
    the classifier's scale-free defaults for the rest (eigenvalue band = round-off + the curvature
    uncertainty over the Newton step, probe resolution = the loss gap to the nearby critical point,
    global tolerance relative to the loss scale), the tolerances used stored in
    ``StallEvent.classify_tolerances``; (b) its *nearest critical point*
    (:func:`landscape.nearest_critical`: Newton-MR refinement, then ``classify_point`` at strict
    default tolerances) in ``StallEvent.nearest_critical``. Overrides (None = scale-free default):
    ``classify_eig_tol``, ``hessian_lipschitz`` (ρ: when given, eig_tol = √(ρ·‖g(θ_s)‖), the
    ε-second-order-stationarity scale of Nesterov–Polyak / Jin et al.), ``classify_probe_floor``
    (loss units), ``classify_global_tol``; ``classify_method``; ``classify_nearest`` (default True:
    compute (b)); ``classify_final`` (classify the last point too, as (a)); ``cancellation`` (compute
    :class:`landscape.CancellationStats` at stalls), ``chunk_size`` (per-example gradient chunks),
    ``meta`` (free-form dict stored in ``run.json``), ``checkpoint_every`` (curve flush period),
    ``progress`` (tqdm; None = only on a TTY).
    Stall cause (README "Stall cause"): ``cause_kappa_max`` (0.1), ``cause_ratio_max`` (0.1),
    ``grad_scale_reference`` ("model": mean‖g_i‖ at the model's own parameters, i.e. its
    initialisation, default; "initial": at θ_0; or a positive number). ``num_threads``: torch
    intra-op threads during :meth:`fit` (restored after; None leaves the setting alone; 1 gives
    bit-identical runs whatever the machine's thread default).
    ``method_options``: the method's own options (see each class in :data:`METHODS`), and for
    SynaPrune methods ``mode`` ("at_stalls" default, or "always") plus :data:`ESCAPE_DEFAULTS`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        method: str = "synaprune-rms",
        lr: float | None = None,
        batch_size: int | None = None,
        seed: int = 0,
        stall: StallDetector | None = None,
        classify: bool = True,
        global_min: float | None = None,
        log_dir: str | None = None,
        *,
        reduction: str = "mean",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        escape_rel: float = 1e-2,
        escape_abs: float = 1e-6,
        escape_horizon: int = 1000,
        classify_grad_tol: float | None = None,
        classify_eig_tol: float | None = None,
        hessian_lipschitz: float | None = None,
        classify_method: str = "auto",
        classify_probe_floor: float | None = None,
        classify_global_tol: float | None = None,
        classify_final: bool = True,
        classify_nearest: bool = True,
        cancellation: bool = True,
        chunk_size: int | None = None,
        meta: dict | None = None,
        checkpoint_every: int = 50,
        progress: bool | None = None,
        cause_kappa_max: float = CAUSE_DEFAULTS["kappa_max"],
        cause_ratio_max: float = CAUSE_DEFAULTS["ratio_max"],
        grad_scale_reference: str | float = "model",
        num_threads: int | None = None,
        **method_options: Any,
    ) -> None:
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
        cls = METHODS[method]
        opts = dict(method_options)
        self.mode: str | None = None
        self.escape: dict[str, Any] = {}
        if cls.synaprune:
            self.mode = opts.pop("mode", "at_stalls")
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
            esc_given = {k: opts.pop(k) for k in list(opts) if k in ESCAPE_DEFAULTS}
            if self.mode == "always" and getattr(cls, "own_phase_scaling", False):
                raise ValueError(f"{method!r} is an escape-phase control: it needs mode='at_stalls'")
            if esc_given and self.mode == "always":
                raise ValueError(f"escape-phase options {sorted(esc_given)} need mode='at_stalls'")
            self.escape = {**ESCAPE_DEFAULTS, **esc_given}
            self._validate_escape()
        else:
            bad = sorted(k for k in opts if k == "mode" or (k in ESCAPE_DEFAULTS and k not in cls.DEFAULTS))
            if bad:
                raise ValueError(f"options {bad} apply to SynaPrune methods only; {method!r} is a baseline")
        self.method = method
        self.rule: UpdateRule = cls(**opts)
        self.method_options = dict(self.rule.options)

        if lr is None:
            lr = DEFAULT_LR.get(method, DEFAULT_LR_OTHER)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0) or math.isinf(lr):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self.lr = float(lr)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        if stall is not None and not isinstance(stall, StallDetector):
            raise TypeError(f"stall must be a StallDetector, got {type(stall).__name__}")
        # a private copy: detectors carry state, and two trainers must never share it
        self.stall = copy.deepcopy(stall) if stall is not None else StallDetector()
        for name, v in (("escape_rel", escape_rel), ("escape_abs", escape_abs),
                        ("hessian_lipschitz", 0.0 if hessian_lipschitz is None else hessian_lipschitz)):
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if isinstance(escape_horizon, bool) or not isinstance(escape_horizon, int) or escape_horizon < 1:
            raise ValueError(f"escape_horizon must be a positive integer, got {escape_horizon!r}")
        if global_min is not None and not math.isfinite(float(global_min)):
            raise ValueError(f"global_min must be finite, got {global_min!r}")

        self.model = model
        self.obj = Objective.from_module(model, loss_fn, data, dtype=dtype, device=device, reduction=reduction)
        self.generator = torch.Generator().manual_seed(seed)
        self.access = DataAccess(self.obj, loss_fn, self.generator)
        if batch_size is None and method == "sgd":
            batch_size = min(32, self.access.n)
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.batch_size = batch_size
        self.rule.prepare(self.access)
        self.base: UpdateRule = self.rule if (not cls.synaprune or self.mode == "always") else GD()

        self.classify = bool(classify)
        self.global_min = None if global_min is None else float(global_min)
        self.escape_rel, self.escape_abs, self.escape_horizon = float(escape_rel), float(escape_abs), escape_horizon
        # Classification tolerances: None = the classifier's scale-free default (see the docstring).
        for name, v in (("classify_grad_tol", classify_grad_tol), ("classify_eig_tol", classify_eig_tol),
                        ("classify_probe_floor", classify_probe_floor), ("classify_global_tol", classify_global_tol)):
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                      and v >= (0 if name != "classify_grad_tol" else 1e-300)):
                raise ValueError(f"{name} must be a finite {'positive' if name == 'classify_grad_tol' else 'non-negative'}"
                                 f" number or None, got {v!r}")
        self.classify_grad_tol = None if classify_grad_tol is None else float(classify_grad_tol)
        self.classify_eig_tol = None if classify_eig_tol is None else float(classify_eig_tol)
        self.hessian_lipschitz = None if hessian_lipschitz is None else float(hessian_lipschitz)
        self.classify_probe_floor = None if classify_probe_floor is None else float(classify_probe_floor)
        self.classify_global_tol = None if classify_global_tol is None else float(classify_global_tol)
        self.classify_nearest = bool(classify_nearest)
        if classify_method not in ("auto", "dense", "lanczos"):
            raise ValueError(f"classify_method must be 'auto', 'dense' or 'lanczos', got {classify_method!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
        self.classify_method = classify_method
        self.classify_final = bool(classify_final)
        self.cancellation = bool(cancellation)
        self.chunk_size = chunk_size
        self.log_dir = log_dir
        self.meta = dict(meta or {})
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        for name, v in (("cause_kappa_max", cause_kappa_max), ("cause_ratio_max", cause_ratio_max)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 1):
                raise ValueError(f"{name} must lie in (0, 1], got {v!r}")
        self.cause_thresholds = {"kappa_max": float(cause_kappa_max), "ratio_max": float(cause_ratio_max)}
        if isinstance(grad_scale_reference, str):
            if grad_scale_reference not in ("model", "initial"):
                raise ValueError("grad_scale_reference must be 'model', 'initial' or a positive number, "
                                 f"got {grad_scale_reference!r}")
        elif (isinstance(grad_scale_reference, bool) or not isinstance(grad_scale_reference, (int, float))
              or not (grad_scale_reference > 0) or math.isinf(grad_scale_reference)):
            raise ValueError(f"grad_scale_reference must be 'model', 'initial' or a positive number, "
                             f"got {grad_scale_reference!r}")
        self.grad_scale_reference = grad_scale_reference
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        self.num_threads = num_threads

    # ------------------------------------------------------------------ configuration
    def _validate_escape(self) -> None:
        e = self.escape
        for key in ("escape_steps", "t_wait", "max_attempts"):
            v = e[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "t_wait" else 1):
                raise ValueError(f"option {key} must be a {'non-negative' if key == 't_wait' else 'positive'} "
                                 f"integer, got {v!r}")
        if not (0 < e["escape_decay"] <= 1):
            raise ValueError(f"option escape_decay must lie in (0, 1], got {e['escape_decay']!r}")
        if e["escape_step_cap"] is not None and not (e["escape_step_cap"] > 0):
            raise ValueError(f"option escape_step_cap must be positive or None, got {e['escape_step_cap']!r}")
        if e["f_thres"] is not None and not (e["f_thres"] >= 0):
            raise ValueError(f"option f_thres must be non-negative or None, got {e['f_thres']!r}")

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the run (written to ``run.json``)."""
        return {
            "method": self.method, "mode": self.mode, "lr": self.lr, "batch_size": self.batch_size,
            "options": self.method_options, "escape_phase": self.escape or None, "seed": self.seed,
            "dtype": str(self.obj.dtype), "device": str(self.obj.device), "reduction": self.obj.reduction,
            "dim": self.obj.dim, "n_examples": self.access.n,
            "param_names": list(self.obj.spec.names), "param_shapes": [list(s) for s in self.obj.spec.shapes],
            "model": type(self.model).__name__,
            "stall_detector": self.stall.config(),
            "escape_criterion": {"rel": self.escape_rel, "abs": self.escape_abs, "horizon": self.escape_horizon},
            "classify": self.classify, "classify_grad_tol": self.classify_grad_tol,
            "classify_eig_tol": self.classify_eig_tol, "hessian_lipschitz": self.hessian_lipschitz,
            "classify_method": self.classify_method, "classify_probe_floor": self.classify_probe_floor,
            "classify_global_tol": self.classify_global_tol, "classify_nearest": self.classify_nearest,
            "global_min": self.global_min,
            "cause_thresholds": self.cause_thresholds, "grad_scale_reference": self.grad_scale_reference,
            "num_threads": self.num_threads,
            "versions": _versions(), "meta": self.meta,
        }

    def write_to(self, model: nn.Module, theta: torch.Tensor) -> None:
        """Copy a flat ``theta`` (e.g. ``result.final_theta``) into ``model``'s trainable parameters
        (same architecture as the trainer's model)."""
        self.obj.write_to_module(model, theta.to(self.obj.dtype))

    # ------------------------------------------------------------------ stalls
    def _escape_target(self, loss: float) -> float:
        return loss - max(self.escape_abs, self.escape_rel * abs(loss))

    def _classify(self, theta: torch.Tensor, seed: int, grad_norm: float | None = None) -> tuple[Any, str | None]:
        """Approximate kind at ``theta`` (a stall or the final point): the point counts as critical
        (grad_tol = ``classify_grad_tol`` or max(‖g‖, the detector's gradient threshold)); every
        other tolerance is the classifier's scale-free default unless overridden. The tolerances used
        are in ``report.tolerances``."""
        try:
            if grad_norm is None:
                grad_norm = float(torch.linalg.vector_norm(self.obj.grad(theta)))
            gtol = self.classify_grad_tol
            if gtol is None:
                gtol = max(grad_norm, self.stall.grad_threshold()) or None
            etol = self.classify_eig_tol
            if etol is None and self.hessian_lipschitz is not None:
                etol = math.sqrt(self.hessian_lipschitz * grad_norm)
            rep = classify_point(self.obj, theta, global_min=self.global_min, grad_tol=gtol, eig_tol=etol,
                                 method=self.classify_method, probe=True, seed=seed,
                                 probe_abs_threshold=self.classify_probe_floor or 0.0,
                                 global_tol=self.classify_global_tol)
        except Exception as exc:  # noqa: BLE001 - a failed classification must not kill training
            return None, f"{type(exc).__name__}: {exc}"
        if rep.method == "dense":
            self.access.cost.n_classify_hvp += self.obj.dim
        return rep, None

    def _nearest(self, theta: torch.Tensor, seed: int) -> tuple[dict | None, str | None]:
        """:func:`landscape.nearest_critical` at a stall, as the JSON dict stored in the event."""
        try:
            nc = nearest_critical(self.obj, theta, global_min=self.global_min, seed=seed)
        except Exception as exc:  # noqa: BLE001 - a failed refinement must not kill training
            return None, f"nearest_critical failed: {type(exc).__name__}: {exc}"
        self.access.cost.n_classify_hvp += nc.n_hvp + (self.obj.dim if nc.report is not None
                                                       and nc.report.method == "dense" else 0)
        keep = ("kind", "index", "loss", "loss_gap", "distance", "grad_norm", "converged", "gradient_flat",
                "probe_radius", "probe_order", "degenerate", "n_zero", "lambda_min", "lambda_max", "reason",
                "tolerances", "n_hvp")
        d = nc.to_dict()
        return {k: d[k] for k in keep}, None

    def _new_event(self, t: int, loss: float, gn: float, theta: torch.Tensor, events: list[StallEvent],
                   log: RunLogger) -> StallEvent:
        ev = StallEvent(index=len(events), step=t, loss=loss, grad_norm=gn, theta=theta.detach().clone(),
                        escape_target=self._escape_target(loss), escape_horizon=self.escape_horizon)
        analysis0 = self._analysis_units()
        if self.classify:
            t0 = time.perf_counter()
            ev.report, ev.classify_error = self._classify(theta, seed=self.seed + ev.index, grad_norm=gn)
            ev.kind = ev.report.kind if ev.report is not None else None
            ev.classify_tolerances = ev.report.tolerances if ev.report is not None else None
            if self.classify_nearest:
                ev.nearest_critical, err = self._nearest(theta, seed=self.seed + ev.index)
                if err:
                    ev.classify_error = f"{ev.classify_error}; {err}" if ev.classify_error else err
            self._classify_time += time.perf_counter() - t0
        if self.cancellation:
            t0 = time.perf_counter()
            try:
                ev.cancellation = cancellation_stats(self.obj, theta, self.chunk_size)
                self._analysis.n_per_example_grads += self.access.n
            except Exception as exc:  # noqa: BLE001
                ev.classify_error = (ev.classify_error or "") + f" cancellation failed: {type(exc).__name__}: {exc}"
            self._analysis_time += time.perf_counter() - t0
            self._set_cause(ev)
        ev.analysis_cost_example_grads = self._analysis_units() - analysis0
        ev._cost0 = self._train_units()  # type: ignore[attr-defined]
        if events:
            prev = events[-1]
            prev.next_kind, prev.next_step, prev.next_is_final = ev.kind, t, False
            log.update(prev.index, next_kind=ev.kind, next_step=t, next_is_final=False)
        events.append(ev)
        log.event(ev)
        return ev

    def _set_cause(self, ev: StallEvent) -> None:
        """κ, mean‖g_i‖, its ratio to the reference and the cause (README "Stall cause")."""
        canc = ev.cancellation
        ev.cause_thresholds = {**self.cause_thresholds, "reference": self._reference}
        if canc is None:
            return
        ev.kappa = float(canc.kappa) if math.isfinite(canc.kappa) else None
        ev.example_grad_scale = float(canc.mean_example_grad_norm)
        ref = self._reference.get("value")
        ev.example_grad_scale_ratio = None if not ref else ev.example_grad_scale / ref
        ev.cause = stall_cause(ev.kappa, ev.example_grad_scale_ratio, **self.cause_thresholds)

    def _reference_scale(self, theta0: torch.Tensor) -> dict[str, Any]:
        """The reference per-example gradient scale r of this run (README "Stall cause")."""
        src = self.grad_scale_reference
        if not isinstance(src, str):
            return {"source": "given", "value": float(src)}
        if not self.cancellation:
            return {"source": src, "value": None}
        t0 = time.perf_counter()
        tried = [("model", self.obj.initial_point())] if src == "model" else []
        tried.append(("initial", theta0))
        out: dict[str, Any] = {"source": src, "value": None}
        for name, point in tried:
            value = float(cancellation_stats(self.obj, point, self.chunk_size).mean_example_grad_norm)
            self._analysis.n_per_example_grads += self.access.n
            if value > 0 and math.isfinite(value):
                out = {"source": name, "value": value}
                break
        self._analysis_time += time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------ cost in one unit
    def _measure_cost_ratios(self, theta: torch.Tensor) -> None:
        """HVP/gradient and loss/gradient cost ratios at θ_0, by counting FLOPs (deterministic)."""
        from torch.utils.flop_counter import FlopCounterMode

        v = torch.ones_like(theta) / math.sqrt(theta.numel())
        flops = {}
        try:
            for name, fn in (("grad", lambda: self.obj.loss_and_grad(theta)), ("hvp", lambda: self.obj.hvp(theta, v)),
                             ("loss", lambda: self.obj.loss(theta))):
                with FlopCounterMode(display=False) as fc:
                    fn()
                flops[name] = fc.get_total_flops()
        except FloatingPointError:  # NonFiniteError: reported by the first step, with its own message
            flops = {"grad": 0, "hvp": 0, "loss": 0}
        if flops["grad"] > 0 and flops["hvp"] > 0 and flops["loss"] > 0:
            self._hvp_over_grad = flops["hvp"] / flops["grad"]
            self._loss_over_grad = flops["loss"] / flops["grad"]
            self._ratio_source = "flop_count"
        else:
            self._hvp_over_grad, self._loss_over_grad = DEFAULT_HVP_OVER_GRAD, DEFAULT_LOSS_OVER_GRAD
            self._ratio_source = "default"

    def _train_units(self) -> float:
        return self.access.cost.example_grads(self.access.n, self._hvp_over_grad, self._loss_over_grad)

    def _analysis_units(self) -> float:
        n, h = self.access.n, self._hvp_over_grad
        return (self._analysis.example_grads(n, h, self._loss_over_grad)
                + h * n * self.access.cost.n_classify_hvp)

    # ------------------------------------------------------------------ resolution of a stall
    def _resolve(self, run: _Run, resolution: str) -> None:
        """Close the open stall: ``resolution`` in "escaped", "horizon", "end_of_run", "stopped",
        "nonfinite" (README "Escape-phase protocol": attribution and censoring)."""
        ev, t = run.open_ev, run.t
        assert ev is not None
        ev.resolution, ev.resolved_step = resolution, t
        ev.censored = resolution == "end_of_run"
        ev.escaped = None if ev.censored else resolution == "escaped"
        ev.escape_steps = (t - ev.step) if ev.escaped else None
        ev.observed_steps = t - ev.step
        if ev.escaped:
            if self.mode == "always":
                ev.escaped_by = "rule"
            else:
                ev.escaped_by = "rule" if any(a.accepted for a in ev.attempts) else "base"
        ev.distance_moved = float(torch.linalg.vector_norm(run.theta - ev.theta.to(run.theta)))
        ev.cost_example_grads = self._train_units() - ev._cost0  # type: ignore[attr-defined]
        run.log.update(ev.index, escaped=ev.escaped, censored=ev.censored, escaped_by=ev.escaped_by,
                       escape_steps=ev.escape_steps, observed_steps=ev.observed_steps, resolution=resolution,
                       resolved_step=t, distance_moved=ev.distance_moved, cost_example_grads=ev.cost_example_grads)
        run.open_ev = None
        if run.state == "wait":
            self._transition(run, "resolved")

    # ------------------------------------------------------------------ the loop
    def fit(self, max_steps: int, *, theta0: torch.Tensor | None = None,
            callback: Callable[[int, dict], Any] | None = None, write_back: bool = False) -> TrainResult:
        """Run ``max_steps`` steps from ``theta0`` (default: the model's parameters) and return a
        :class:`TrainResult`. ``callback(step, state)`` runs every step (state: ``theta``, ``loss``,
        ``grad_norm``, ``events``); an exception in it (e.g. ``KeyboardInterrupt``) stops the run
        with everything logged so far kept and ``run.json`` marked ``interrupted``, then propagates.
        A non-finite loss or step stops the run at the last finite state (status ``"nonfinite"``,
        a ``RuntimeWarning`` with the reason). ``write_back`` copies the final θ into the model."""
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            run = self._begin(max_steps, theta0)
            bar = tqdm(total=max_steps, disable=(None if self.progress is None else not self.progress),
                       desc=self.method, leave=False)
            try:
                for t in range(max_steps + 1):
                    run.t = t
                    if not self._observe(run):      # 1. loss and gradient at θ_t (False: non-finite)
                        break
                    self._check_phase(run)          # 2. accept / revert an escape phase
                    self._record(run)               # 3. curves; escape measurement of the open stall
                    if t == max_steps:
                        break
                    self._detect(run)               # 4. stall → event; maybe start a phase
                    if callback is not None:
                        callback(t, {"theta": run.theta, "loss": run.loss, "grad_norm": run.gn, "events": run.events})
                    if not self._update(run):       # 5. the step (False: the run stops here)
                        break
                    bar.update(1)
            except BaseException as exc:
                bar.close()
                self._abort(run, exc)
                raise
            bar.close()
            result = self._finish(run)
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(threads)
        if write_back:
            self.write_to(self.model, result.final_theta)
        return result

    # ------------------------------------------------------------------ the stages
    def _begin(self, max_steps: int, theta0: torch.Tensor | None) -> _Run:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps must be a non-negative integer, got {max_steps!r}")
        theta = self.obj.initial_point() if theta0 is None else self.obj.check_theta(
            torch.as_tensor(theta0).to(self.obj.dtype)).detach().clone()
        if not bool(torch.isfinite(theta).all()):
            raise ValueError("theta0 has non-finite entries")
        self.rule.reset()
        if self.base is not self.rule:
            self.base.reset()
        self.stall.reset()
        self.generator.manual_seed(self.seed)
        self.access.cost = CostCounters()
        self._analysis = CostCounters()
        self._classify_time = self._analysis_time = 0.0
        t_start = time.perf_counter()
        self._measure_cost_ratios(theta)
        self._reference = self._reference_scale(theta)
        try:
            loss0, g0 = self.obj.loss_and_grad(theta)
            gn0 = float(torch.linalg.vector_norm(g0))
        except FloatingPointError:
            loss0 = gn0 = math.nan  # the first step stops the run with a clear message
        # the detector's gradient threshold: its absolute grad_tol, or (scale-free) the threshold it
        # would use at θ_0, grad_rel·max(‖∇L(θ_0)‖, |L(θ_0)|/param_scale)
        grad_tol = self.stall.grad_tol
        if grad_tol is None:
            grad_tol = self.stall.grad_rel * max(gn0, abs(loss0) / self.stall.param_scale)
        self.rule.setup({"lr": self.lr, "grad_tol": grad_tol, "dim": self.obj.dim, "n": self.access.n,
                         "loss0": loss0, "global_min": self.global_min,
                         "hessian_lipschitz": 1.0 if self.hessian_lipschitz is None else self.hessian_lipschitz})
        self._method_options = {**self.method_options, **self.rule.derived()}
        config = {**self.config(), "options": self._method_options, "max_steps": max_steps,
                  "hvp_over_grad": self._hvp_over_grad, "loss_over_grad": self._loss_over_grad,
                  "cost_ratio_source": self._ratio_source, "example_grad_scale_reference": self._reference}
        log = RunLogger(self.log_dir, config, self.checkpoint_every)
        return _Run(theta=theta, initial=theta.clone(), log=log, max_steps=max_steps, last_good=theta,
                    t_start=t_start)

    def _observe(self, run: _Run) -> bool:
        try:
            run.loss, run.grad = self.access.loss_and_grad(run.theta)
        except NonFiniteError as exc:
            if not run.losses:
                raise NonFiniteError(f"the loss at the initial point is non-finite ({exc}); "
                                     "nothing to train from") from exc
            run.status = "nonfinite"
            run.message = (f"non-finite loss/gradient at step {run.t} ({exc}); training stopped and the last finite "
                           f"state (step {run.t - 1}) is returned" + (" and saved" if run.log.enabled else ""))
            run.theta = run.last_good
            run.t -= 1
            return False
        run.last_good = run.theta
        return True

    def _transition(self, run: _Run, signal: str) -> None:
        nxt = TRANSITIONS.get((run.state, signal))
        if nxt is None:  # pragma: no cover - a bug in the trainer, not a user error
            raise RuntimeError(f"escape-phase state machine: no transition from {run.state!r} on {signal!r}")
        run.state = nxt

    def _check_phase(self, run: _Run) -> None:
        ph = run.phase
        if ph is None:
            return
        ph.k += 1
        if run.loss <= ph.loss - ph.f_thres:
            self._end_phase(run, True)
            self._transition(run, "accept")
        elif ph.k >= self.escape["escape_steps"]:
            self._end_phase(run, False)
            run.theta, run.loss, run.grad = ph.theta, ph.loss, ph.grad
            run.last_good = run.theta
            run.wait_until = run.t + self.escape["t_wait"]
            self._transition(run, "timeout")

    def _record(self, run: _Run) -> None:
        run.gn = float(torch.linalg.vector_norm(run.grad))
        run.losses.append(run.loss)
        run.gnorms.append(run.gn)
        run.phases.append(int(run.phase is not None))
        run.log.curve_point(run.t, run.loss, run.gn, run.phases[-1])
        ev = run.open_ev
        if ev is not None and run.t > ev.step and run.phase is None:
            if run.loss <= ev.escape_target and run.t - ev.step <= self.escape_horizon:
                self._resolve(run, "escaped")
                self.stall.rearm()
            elif run.t - ev.step >= self.escape_horizon:
                self._resolve(run, "horizon")
                self.stall.rearm()

    def _detect(self, run: _Run) -> None:
        if run.phase is None and self.stall.update(run.t, run.loss, run.gn):
            run.open_ev = self._new_event(run.t, run.loss, run.gn, run.theta, run.events, run.log)
            if self.mode == "at_stalls":
                self._transition(run, "stall")
                self._start_phase(run)
            return
        ev = run.open_ev
        if run.state == "wait" and ev is not None and run.t >= run.wait_until:
            if len(ev.attempts) < self.escape["max_attempts"]:
                self._transition(run, "ready")
                self._start_phase(run)
            else:
                self._transition(run, "exhausted")

    def _update(self, run: _Run) -> bool:
        t = run.t
        ctx = StepContext(step=t, theta=run.theta, loss=run.loss, grad=run.grad, lr=self.lr, access=self.access,
                          generator=self.generator, batch_size=self.batch_size,
                          info={"grad_tol": self.stall.grad_threshold()})
        try:
            new = self._escape_step(run.phase, ctx) if run.phase is not None else self.base.step(ctx)
        except FloatingPointError as exc:
            run.status = "nonfinite"
            run.message = (f"the {self.method} update at step {t} hit a non-finite value ({exc}); training "
                           f"stopped at the last finite state (step {t})")
            return False
        if ctx.info.get("perturbed") or ctx.info.get("ncd_step"):
            self.stall.clear_window()
        if ctx.info.get("stop"):
            run.status = ctx.info["stop"]
            run.theta = ctx.info.get("return_theta", run.theta)
            run.message = (f"{self.method}: no sufficient decrease {getattr(self.rule, 't_thres', '?')} steps "
                           f"after the perturbation at step {getattr(self.rule, 't_noise', '?')}; the point before "
                           "it is declared second-order stationary and returned")
            run.losses[-1] = self.obj.loss(run.theta)
            run.gnorms[-1] = float(torch.linalg.vector_norm(self.obj.grad(run.theta)))
            return False
        if not bool(torch.isfinite(new).all()):
            run.status = "nonfinite"
            run.message = (f"the {self.method} update at step {t} produced non-finite parameters; training "
                           f"stopped at the last finite state (step {t})")
            return False
        run.theta = new.detach()
        return True

    def _abort(self, run: _Run, exc: BaseException) -> None:
        run.log.write_run_json(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "error",
                               message=f"{type(exc).__name__}: {exc}", n_steps=run.t, n_stalls=len(run.events),
                               cost=self.access.cost)
        try:
            run.log.final(final_theta=run.theta, initial_theta=run.initial, losses=run.losses,
                          grad_norms=run.gnorms, phases=run.phases)
        finally:
            run.log.close()

    def _finish(self, run: _Run) -> TrainResult:
        log, t = run.log, run.t
        final_loss, final_gn = run.losses[-1], run.gnorms[-1]
        if run.phase is not None and run.status == "completed":
            # The run ended inside an unaccepted escape phase: revert, as the phase would have (the
            # curves keep the last point actually visited).
            ph = run.phase
            self._end_phase(run, False)
            run.theta = ph.theta
            final_loss, final_gn = ph.loss, float(torch.linalg.vector_norm(ph.grad))
        if run.open_ev is not None:
            self._resolve(run, {"completed": "end_of_run", "nonfinite": "nonfinite"}.get(run.status, "stopped"))
        final_kind, final_report = None, None
        if self.classify and self.classify_final and run.status != "nonfinite":
            t1 = time.perf_counter()
            final_report, err = self._classify(run.theta, seed=self.seed + len(run.events))
            self._classify_time += time.perf_counter() - t1
            final_kind = final_report.kind if final_report is not None else None
        events = run.events
        if events and events[-1].next_kind is None:
            events[-1].next_kind, events[-1].next_step, events[-1].next_is_final = final_kind, t, True
            log.update(events[-1].index, next_kind=final_kind, next_step=t, next_is_final=True)
        if run.status == "nonfinite":
            warnings.warn(run.message, RuntimeWarning, stacklevel=3)
        cost = self.access.cost
        wall = time.perf_counter() - run.t_start
        result = TrainResult(
            method=self.method, mode=self.mode, status=run.status, message=run.message, n_steps=t,
            losses=np.asarray(run.losses), grad_norms=np.asarray(run.gnorms),
            phases=np.asarray(run.phases, dtype=np.int8), events=events, final_loss=final_loss,
            final_grad_norm=final_gn, final_kind=final_kind, final_report=final_report, n_hvp=cost.n_hvp,
            n_classify_hvp=cost.n_classify_hvp, n_per_example_grads=cost.n_per_example_grads,
            n_grad_evals=cost.n_grad_evals, n_minibatch_grads=cost.n_minibatch_grads, n_loss_evals=cost.n_loss_evals,
            wall_time_s=wall, classify_time_s=self._classify_time,
            analysis_time_s=self._classify_time + self._analysis_time,
            cost_example_grads=self._train_units(), analysis_cost_example_grads=self._analysis_units(),
            hvp_over_grad=self._hvp_over_grad, loss_over_grad=self._loss_over_grad,
            cost_ratio_source=self._ratio_source, method_options=self._method_options,
            escape_phase=self.escape or None, example_grad_scale_reference=self._reference,
            cause_thresholds=self.cause_thresholds, seed=self.seed,
            log_dir=None if self.log_dir is None else str(self.log_dir),
            final_theta=run.theta.clone(), initial_theta=run.initial)
        log.final(final_theta=run.theta, initial_theta=run.initial, losses=run.losses, grad_norms=run.gnorms,
                  phases=run.phases)
        log.write_run_json(status=run.status, message=run.message, n_steps=t, n_stalls=len(events), cost=cost,
                           analysis_cost=self._analysis, cost_example_grads=result.cost_example_grads,
                           analysis_cost_example_grads=result.analysis_cost_example_grads,
                           classify_time_s=result.classify_time_s, analysis_time_s=result.analysis_time_s,
                           wall_time_s=wall, final_loss=final_loss, final_grad_norm=final_gn, final_kind=final_kind)
        log.close()
        return result

    # ------------------------------------------------------------------ escape phases
    def _start_phase(self, run: _Run) -> None:
        ev = run.open_ev
        assert ev is not None
        f_thres = self.escape["f_thres"]
        if f_thres is None:
            f_thres = 0.1 * max(self.escape_abs, self.escape_rel * abs(run.loss))
        attempt = EscapeAttempt(rule=self.method, start_step=run.t, loss_before=run.loss, f_thres=f_thres)
        ev.attempts.append(attempt)
        run.log.update(ev.index, attempt=attempt, attempt_index=len(ev.attempts) - 1)
        run.phase = _EscapePhase(theta=run.theta.clone(), loss=run.loss, grad=run.grad.clone(), start=run.t,
                                 f_thres=f_thres, attempt=attempt, attempt_index=len(ev.attempts) - 1, event=ev)

    def _end_phase(self, run: _Run, accepted: bool) -> None:
        ph = run.phase
        assert ph is not None
        a = ph.attempt
        a.steps, a.accepted, a.loss_after, a.end_step = ph.k, accepted, run.loss, run.t
        if accepted or ph.event.escape_accepted is None:
            ph.event.escape_accepted = accepted
        run.log.update(ph.event.index, attempt=a, attempt_index=ph.attempt_index,
                       escape_accepted=ph.event.escape_accepted)
        run.phase = None

    def _escape_step(self, ph: _EscapePhase, ctx: StepContext) -> torch.Tensor:
        """Step k of a phase: the rule's step × escape_decay**k, shortened to the cap
        escape_step_cap·max(1, ‖θ̃‖); a control with its own scaling (gd-matched) gets the cap."""
        cap = self.escape["escape_step_cap"]
        limit = None if cap is None else cap * max(1.0, float(torch.linalg.vector_norm(ph.theta)))
        if getattr(self.rule, "own_phase_scaling", False):
            new = self.rule.phase_step(ctx, ph.k, limit)  # type: ignore[attr-defined]
            if ph.k == 0:
                ph.attempt.first_step_norm = float(torch.linalg.vector_norm(new - ctx.theta))
                ph.attempt.first_step_norm_raw = ctx.info.get("matched_length_raw")
            return new
        new = self.rule.step(ctx)
        delta = (new - ctx.theta) * self.escape["escape_decay"] ** ph.k
        norm = float(torch.linalg.vector_norm(delta))
        raw = norm
        if limit is not None and norm > limit:
            delta = delta * (limit / norm)
            norm = limit
            ph.attempt.n_capped += 1
        if ph.k == 0:
            ph.attempt.first_step_norm, ph.attempt.first_step_norm_raw = norm, raw
        return ctx.theta + delta
