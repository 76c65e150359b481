"""The SynaPrune trainer: every method through one stall detector, every stall classified.

Loop (one iteration per step t = 0 … max_steps):

1. full-batch loss and gradient at θ_t (the curves; the stall detector's input);
2. inside an escape phase: accept (loss ≤ L(θ̃) − f_thres) or, after ``escape_steps`` steps,
   revert to the snapshot θ̃;
3. escape measurement of the open stall event (SYNAPRUNE.md, "Escape measurement");
4. stall detection → :class:`StallEvent` (classified with :func:`landscape.classify.classify_point`,
   cancellation statistics, θ saved, streamed to ``events.jsonl``);
5. mode ``"at_stalls"`` (SynaPrune rules, default): at an open stall, start an escape phase
   (snapshot θ̃, run the rule for at most ``escape_steps`` steps with step length decayed by
   ``escape_decay``^k and capped at ``escape_step_cap``·max(1, ‖θ̃‖); accept or revert; wait
   ``t_wait`` steps before the next of at most ``max_attempts`` attempts per stall);
6. the update: the rule (mode ``"always"``, or inside an escape phase), else the base method
   (GD, minibatch SGD when ``batch_size`` is set) — baselines always run their own update.

The user's model is never modified (the trainer works on a flat vector and a private copy),
except by :meth:`Trainer.write_to` or ``fit(write_back=True)``.
"""
from __future__ import annotations

import math
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import landscape
from landscape import NonFiniteError, Objective, cancellation_stats
from landscape.classify import classify_point
from landscape.critical import nearest_critical

from .access import DataAccess
from .baselines import GD, NCD, PGD, SFN, SGD, Adam
from .base import StepContext, UpdateRule
from .events import EscapeAttempt, RunLogger, StallEvent, TrainResult
from .rules import DevargRule, HebbianRule, NoiseRule, PenaltyRule, RMSRule
from .stall import StallDetector

METHODS: dict[str, type[UpdateRule]] = {
    cls.name: cls for cls in (GD, SGD, Adam, PGD, NCD, SFN, RMSRule, DevargRule, NoiseRule, PenaltyRule, HebbianRule)
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
            if esc_given and self.mode == "always":
                raise ValueError(f"escape-phase options {sorted(esc_given)} need mode='at_stalls'")
            self.escape = {**ESCAPE_DEFAULTS, **esc_given}
            self._validate_escape()
        else:
            bad = sorted(k for k in opts if k == "mode" or k in ESCAPE_DEFAULTS)
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
        self.stall = stall if stall is not None else StallDetector()
        if not isinstance(self.stall, StallDetector):
            raise TypeError(f"stall must be a StallDetector, got {type(self.stall).__name__}")
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
            try:
                ev.cancellation = cancellation_stats(self.obj, theta, self.chunk_size)
                self.access.cost.n_per_example_grads += self.access.n
            except Exception as exc:  # noqa: BLE001
                ev.classify_error = (ev.classify_error or "") + f" cancellation failed: {type(exc).__name__}: {exc}"
        if events:
            prev = events[-1]
            prev.next_kind, prev.next_step, prev.next_is_final = ev.kind, t, False
            log.update(prev.index, next_kind=ev.kind, next_step=t, next_is_final=False)
        events.append(ev)
        log.event(ev)
        return ev

    def _resolve(self, ev: StallEvent, t: int, theta: torch.Tensor, escaped: bool, log: RunLogger,
                 censored: bool = False) -> None:
        ev.escaped = escaped
        ev.escape_steps = (t - ev.step) if escaped else None
        ev.distance_moved = float(torch.linalg.vector_norm(theta - ev.theta.to(theta)))
        fields = {"escaped": ev.escaped, "escape_steps": ev.escape_steps, "distance_moved": ev.distance_moved,
                  "resolved_step": t}
        if censored:
            fields["censored"] = True
        log.update(ev.index, **fields)

    # ------------------------------------------------------------------ the loop
    def fit(self, max_steps: int, *, theta0: torch.Tensor | None = None,
            callback: Callable[[int, dict], Any] | None = None, write_back: bool = False) -> TrainResult:
        """Run ``max_steps`` steps from ``theta0`` (default: the model's parameters) and return a
        :class:`TrainResult`. ``callback(step, state)`` runs every step (state: ``theta``, ``loss``,
        ``grad_norm``, ``events``); an exception in it (e.g. ``KeyboardInterrupt``) stops the run
        with everything logged so far kept and ``run.json`` marked ``interrupted``, then propagates.
        A non-finite loss or step stops the run at the last finite state (status ``"nonfinite"``,
        a ``RuntimeWarning`` with the reason). ``write_back`` copies the final θ into the model."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"max_steps must be a non-negative integer, got {max_steps!r}")
        theta = self.obj.initial_point() if theta0 is None else self.obj.check_theta(
            torch.as_tensor(theta0).to(self.obj.dtype)).detach().clone()
        if not bool(torch.isfinite(theta).all()):
            raise ValueError("theta0 has non-finite entries")
        initial = theta.clone()
        self.rule.reset()
        if self.base is not self.rule:
            self.base.reset()
        self.stall.reset()
        self.generator.manual_seed(self.seed)
        self.access.cost.__init__()
        self._classify_time = 0.0

        log = RunLogger(self.log_dir, {**self.config(), "max_steps": max_steps}, self.checkpoint_every)
        losses: list[float] = []
        gnorms: list[float] = []
        phases: list[int] = []
        events: list[StallEvent] = []
        status, message = "completed", ""
        open_ev: StallEvent | None = None
        esc: _EscapePhase | None = None
        wait_until = -1
        t0 = time.perf_counter()
        bar = tqdm(total=max_steps, disable=(None if self.progress is None else not self.progress),
                   desc=self.method, leave=False)
        t = 0
        final_report = None
        last_good = theta
        try:
            for t in range(max_steps + 1):
                try:
                    loss, g = self.access.loss_and_grad(theta)
                except NonFiniteError as exc:
                    if not losses:
                        raise NonFiniteError(f"the loss at the initial point is non-finite ({exc}); "
                                             "nothing to train from") from exc
                    status = "nonfinite"
                    message = (f"non-finite loss/gradient at step {t} ({exc}); training stopped and the last "
                               f"finite state (step {t - 1}) is returned" + (" and saved" if log.enabled else ""))
                    theta = last_good
                    t -= 1
                    break
                last_good = theta
                if esc is not None:
                    esc.k += 1
                    if loss <= esc.loss - esc.f_thres:
                        self._end_phase(esc, True, loss, log)
                        esc = None
                    elif esc.k >= self.escape["escape_steps"]:
                        self._end_phase(esc, False, loss, log)
                        theta, loss, g = esc.theta, esc.loss, esc.grad
                        last_good = theta
                        wait_until = t + self.escape["t_wait"]
                        esc = None
                gn = float(torch.linalg.vector_norm(g))
                losses.append(loss)
                gnorms.append(gn)
                phases.append(int(esc is not None))
                log.curve_point(t, loss, gn, phases[-1])

                if open_ev is not None and t > open_ev.step:
                    if loss <= open_ev.escape_target:
                        self._resolve(open_ev, t, theta, True, log)
                        open_ev = None
                        self.stall.rearm()
                    elif t - open_ev.step >= self.escape_horizon:
                        self._resolve(open_ev, t, theta, False, log)
                        open_ev = None
                        self.stall.rearm()
                if t == max_steps:
                    break
                if esc is None and self.stall.update(t, loss, gn):
                    open_ev = self._new_event(t, loss, gn, theta, events, log)
                if (self.mode == "at_stalls" and esc is None and open_ev is not None and t >= wait_until
                        and len(open_ev.attempts) < self.escape["max_attempts"]):
                    esc = self._start_phase(open_ev, t, theta, loss, g, log)
                if callback is not None:
                    callback(t, {"theta": theta, "loss": loss, "grad_norm": gn, "events": events})

                ctx = StepContext(step=t, theta=theta, loss=loss, grad=g, lr=self.lr, access=self.access,
                                  generator=self.generator, batch_size=self.batch_size,
                                  info={"grad_tol": self.stall.grad_threshold()})
                try:
                    if esc is not None:
                        new = self._escape_step(esc, ctx)
                    else:
                        new = self.base.step(ctx)
                except FloatingPointError as exc:
                    status = "nonfinite"
                    message = (f"the {self.method} update at step {t} hit a non-finite value ({exc}); training "
                               f"stopped at the last finite state (step {t})")
                    break
                if ctx.info.get("perturbed") or ctx.info.get("ncd_step"):
                    self.stall.clear_window()
                if ctx.info.get("stop"):
                    status = ctx.info["stop"]
                    theta = ctx.info.get("return_theta", theta)
                    message = (f"{self.method}: no sufficient decrease {self.rule.options.get('t_thres')} steps "
                               f"after the perturbation at step {getattr(self.rule, 't_noise', '?')}; the point before it "
                               "is declared second-order stationary and returned")
                    losses[-1] = self.obj.loss(theta)
                    gnorms[-1] = float(torch.linalg.vector_norm(self.obj.grad(theta)))
                    break
                if not bool(torch.isfinite(new).all()):
                    status = "nonfinite"
                    message = (f"the {self.method} update at step {t} produced non-finite parameters; training "
                               f"stopped at the last finite state (step {t})")
                    break
                theta = new.detach()
                bar.update(1)
                if t % 20 == 0:
                    bar.set_postfix(loss=f"{loss:.4g}", stalls=len(events))
        except BaseException as exc:
            bar.close()
            log.write_run_json(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "error",
                               message=f"{type(exc).__name__}: {exc}", n_steps=t, n_stalls=len(events),
                               cost=self.access.cost)
            try:
                log.final(final_theta=theta, initial_theta=initial, losses=losses, grad_norms=gnorms, phases=phases)
            finally:
                log.close()
            raise
        bar.close()

        final_loss, final_gn = losses[-1], gnorms[-1]
        if esc is not None and status == "completed":
            # The run ended inside an unaccepted escape phase: revert, as the phase would have (the
            # curves keep the last point actually visited).
            self._end_phase(esc, False, losses[-1], log)
            theta = esc.theta
            final_loss, final_gn = esc.loss, float(torch.linalg.vector_norm(esc.grad))
        if open_ev is not None:
            self._resolve(open_ev, t, theta, False, log, censored=True)
        final_kind = None
        if self.classify and self.classify_final and status != "nonfinite":
            t1 = time.perf_counter()
            final_report, err = self._classify(theta, seed=self.seed + len(events))
            self._classify_time += time.perf_counter() - t1
            final_kind = final_report.kind if final_report is not None else None
        if events and events[-1].next_kind is None:
            events[-1].next_kind, events[-1].next_step, events[-1].next_is_final = final_kind, t, True
            log.update(events[-1].index, next_kind=final_kind, next_step=t, next_is_final=True)
        if status == "nonfinite":
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        cost = self.access.cost
        result = TrainResult(
            method=self.method, mode=self.mode, status=status, message=message, n_steps=t,
            losses=np.asarray(losses), grad_norms=np.asarray(gnorms), phases=np.asarray(phases, dtype=np.int8),
            events=events, final_loss=final_loss, final_grad_norm=final_gn, final_kind=final_kind,
            final_report=final_report, n_hvp=cost.n_hvp, n_classify_hvp=cost.n_classify_hvp,
            n_per_example_grads=cost.n_per_example_grads, n_grad_evals=cost.n_grad_evals,
            n_minibatch_grads=cost.n_minibatch_grads, n_loss_evals=cost.n_loss_evals,
            wall_time_s=time.perf_counter() - t0, log_dir=None if self.log_dir is None else str(self.log_dir),
            final_theta=theta.clone(), initial_theta=initial)
        log.final(final_theta=theta, initial_theta=initial, losses=losses, grad_norms=gnorms, phases=phases)
        log.write_run_json(status=status, message=message, n_steps=t, n_stalls=len(events), cost=cost,
                           classify_time_s=self._classify_time, wall_time_s=result.wall_time_s,
                           final_loss=final_loss, final_grad_norm=final_gn, final_kind=final_kind)
        log.close()
        if write_back:
            self.write_to(self.model, theta)
        return result

    # ------------------------------------------------------------------ escape phases
    def _start_phase(self, ev: StallEvent, t: int, theta: torch.Tensor, loss: float, g: torch.Tensor,
                     log: RunLogger) -> _EscapePhase:
        f_thres = self.escape["f_thres"]
        if f_thres is None:
            f_thres = 0.1 * max(self.escape_abs, self.escape_rel * abs(loss))
        attempt = EscapeAttempt(rule=self.method, step=t, start_loss=loss, f_thres=f_thres)
        ev.attempts.append(attempt)
        log.update(ev.index, attempt=attempt, attempt_index=len(ev.attempts) - 1)
        return _EscapePhase(theta=theta.clone(), loss=loss, grad=g.clone(), start=t, f_thres=f_thres,
                            attempt=attempt, attempt_index=len(ev.attempts) - 1, event=ev)

    def _end_phase(self, esc: _EscapePhase, accepted: bool, loss: float, log: RunLogger) -> None:
        esc.attempt.steps, esc.attempt.accepted, esc.attempt.end_loss = esc.k, accepted, loss
        if accepted or esc.event.escape_accepted is None:
            esc.event.escape_accepted = accepted
        log.update(esc.event.index, attempt=esc.attempt, attempt_index=esc.attempt_index,
                   escape_accepted=esc.event.escape_accepted)

    def _escape_step(self, esc: _EscapePhase, ctx: StepContext) -> torch.Tensor:
        new = self.rule.step(ctx)
        delta = (new - ctx.theta) * self.escape["escape_decay"] ** esc.k
        cap = self.escape["escape_step_cap"]
        if cap is not None:
            limit = cap * max(1.0, float(torch.linalg.vector_norm(esc.theta)))
            norm = float(torch.linalg.vector_norm(delta))
            if norm > limit:
                delta = delta * (limit / norm)
        return ctx.theta + delta
