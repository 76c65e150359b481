"""The SynaPrune trainer: every method through one stall detector, every stall analysed.

One iteration per step t = 0 … max_steps (:meth:`Trainer.fit`, five stages):

1. ``_observe``: full-batch loss and gradient at θ_t (the curves; the stall detector's input);
2. ``_check_phase``: inside an escape phase, accept (L ≤ L(θ̃) − f_thres) or, after
   ``escape_steps`` steps, revert to the snapshot θ̃ (:mod:`synaprune.escape_phase`);
3. ``_record``: curves, and the escape measurement of the open stall (not while a phase runs:
   its outcome is not known until it is accepted or reverted);
4. ``_detect``: stall detection → :class:`StallEvent` (analysed by
   :func:`landscape.monitor.analyse_stall`: kind, nearest critical point, cancellation, cause; θ
   saved, streamed to ``events.jsonl``), then maybe start an escape phase;
5. ``_update``: the rule inside a phase (mode ``"at_stalls"``) or every step (mode ``"always"``),
   else the base method (GD, minibatch SGD when ``batch_size`` is set); baselines always run
   their own update.

Settings are a frozen :class:`~synaprune.config.TrainerConfig`; the escape-phase protocol is in
:mod:`synaprune.escape_phase` (synaprune/README.md, "Escape-phase protocol"). The user's model is
never modified (the trainer works on a flat vector and a private copy), except by
:meth:`Trainer.write_to` or ``fit(write_back=True)``.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from landscape import NonFiniteError, Objective
from landscape.monitor import ReferenceScale, StallDetector, analyse_stall, kind_at_point, reference_grad_scale

from .access import CostCounters, DataAccess
from .base import StepContext, UpdateRule
from .baselines import GD
from .config import DEFAULT_HVP_OVER_GRAD, DEFAULT_LOSS_OVER_GRAD, TrainerConfig, runtime_versions
from .escape_phase import EscapeProtocol, PhaseState
from .events import RunLogger, StallEvent, TrainResult

#: the defaults of the trainer's positional-or-keyword parameters (a ``config=`` call leaves them alone)
_CALL_DEFAULTS: dict[str, Any] = {"method": "synaprune-rms", "lr": None, "batch_size": None, "seed": 0, "stall": None,
                                  "classify": True, "global_min": None, "log_dir": None}


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
    #: the method's cost (example-gradient units) when the open stall was detected
    open_cost: float = 0.0
    esc: PhaseState = field(default_factory=PhaseState)
    status: str = "completed"
    message: str = ""
    t_start: float = 0.0


class Trainer:
    """Train ``model`` on ``data`` with ``method``, detecting and analysing every stall.

    Every stall gets (a) the *approximate kind at the stall point* θ_s —
    :func:`landscape.classify_point` with the stall point counted as critical (grad_tol =
    ``classify_grad_tol`` or max(‖g(θ_s)‖, the detector's gradient threshold); eig_tol =
    ``classify_eig_tol`` or √(ρ·‖g(θ_s)‖) with ``hessian_lipschitz`` ρ) and the classifier's
    scale-free defaults for the rest, the tolerances used stored in
    ``StallEvent.classify_tolerances``; (b) its *nearest critical point*
    (:func:`landscape.nearest_critical`) in ``StallEvent.nearest_critical``; (c) cancellation
    statistics and the cause (README "Stall cause"). All three are
    :func:`landscape.monitor.analyse_stall`, which a user's own loop can call with the same result.

    Args:
        model: the network (never modified, except by :meth:`write_to` / ``fit(write_back=True)``).
        loss_fn: ``loss_fn(outputs, targets)``, mean-reduced over the batch.
        data: ``(X, Y)`` or an iterable of batches (a fixed full-batch objective).
        method: a key of :data:`synaprune.METHODS` (default ``"synaprune-rms"``).
        lr: step size (default 1e-3 for adam, 1.0 for sfn, 1e-2 otherwise).
        batch_size: minibatch size (None = full batch; ``sgd`` defaults to min(32, n)).
        seed: all randomness (minibatches, noise, perturbations, tie-breaks).
        stall: a :class:`StallDetector` (default thresholds when None; copied).
        classify: analyse each stall's kind and nearest critical point.
        global_min: the known L*, for ``global_minimum``.
        log_dir: run directory (layout in :mod:`synaprune.events`), or None.
        config: a :class:`TrainerConfig` instead of the keywords (then give no other setting).
        **options: every other field of :class:`TrainerConfig` (``reduction``, ``dtype``,
            ``device``, ``escape_rel``, ``escape_abs``, ``escape_horizon``, ``classify_*``,
            ``hessian_lipschitz``, ``cancellation``, ``chunk_size``, ``meta``,
            ``checkpoint_every``, ``progress``, ``cause_kappa_max``, ``cause_ratio_max``,
            ``grad_scale_reference``, ``num_threads``), and the method's own options (see each
            class in :data:`METHODS`; for SynaPrune methods also ``mode`` and
            :data:`ESCAPE_DEFAULTS`).

    Raises:
        ValueError / TypeError: a bad setting (from :class:`TrainerConfig`), a model the method
            cannot handle, or data :class:`landscape.Objective` refuses.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> X = torch.linspace(-1, 1, 8, dtype=torch.float64).unsqueeze(1)
        >>> tr = Trainer(nn.Linear(1, 1).double(), nn.MSELoss(), (X, 2 * X), method="gd", lr=0.5,
        ...              classify=False, cancellation=False, progress=False)
        >>> res = tr.fit(200)
        >>> res.status, res.final_loss < 1e-12, res.n_stalls
        ('completed', True, 1)
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], data: Any,
                 method: str = "synaprune-rms", lr: float | None = None, batch_size: int | None = None, seed: int = 0,
                 stall: StallDetector | None = None, classify: bool = True, global_min: float | None = None,
                 log_dir: str | None = None, *, config: TrainerConfig | None = None, **options: Any) -> None:
        given = {"method": method, "lr": lr, "batch_size": batch_size, "seed": seed, "stall": stall,
                 "classify": classify, "global_min": global_min, "log_dir": log_dir}
        if config is None:
            config = TrainerConfig.from_options(**given, **options)
        elif not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
        elif options or given != _CALL_DEFAULTS:
            raise TypeError("give the trainer either config= or its settings as keywords, not both")
        self.settings = config
        self.rule: UpdateRule = config.build_rule()
        self.method_options = dict(self.rule.options)
        # a private copy: detectors carry state, and two trainers must never share it
        self.stall = copy.deepcopy(config.stall) if config.stall is not None else StallDetector()
        self.model = model
        self.obj = Objective.from_module(model, loss_fn, data, dtype=config.dtype, device=config.device,
                                         reduction=config.reduction)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.access = DataAccess(self.obj, loss_fn, self.generator)
        self.batch_size = min(32, self.access.n) if config.batch_size is None and config.method == "sgd" \
            else config.batch_size
        self.rule.prepare(self.access)
        self.base: UpdateRule = self.rule if (not config.is_synaprune or config.mode == "always") else GD()
        self.protocol = EscapeProtocol(config.escape, method=config.method, escape_abs=config.escape_abs,
                                       escape_rel=config.escape_rel) if config.mode == "at_stalls" else None
        self.analysis_settings = config.analysis_settings()

    # ------------------------------------------------------------------ configuration
    @property
    def method(self) -> str:
        """The method's name (a key of :data:`METHODS`)."""
        return self.settings.method

    @property
    def mode(self) -> str | None:
        """``"at_stalls"`` / ``"always"`` for SynaPrune methods, None for baselines."""
        return self.settings.mode

    @property
    def lr(self) -> float:
        """The step size (resolved default)."""
        return self.settings.lr

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self.settings.seed

    @property
    def escape(self) -> dict[str, Any]:
        """The escape-phase options with defaults (empty for baselines; a copy)."""
        return dict(self.settings.escape)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the run (written to ``run.json``).

        Returns:
            A JSON-able dict: method, mode, lr, batch size, options, escape phase, seed, the
            objective's dtype/device/reduction/dim/examples/parameters, the detector's thresholds,
            the escape criterion, the analysis settings, cause thresholds, versions and ``meta``.
        """
        c, obj = self.settings, self.obj
        return {
            "method": c.method, "mode": c.mode, "lr": c.lr, "batch_size": self.batch_size,
            "options": self.method_options, "escape_phase": dict(c.escape) or None, "seed": c.seed,
            "dtype": str(obj.dtype), "device": str(obj.device), "reduction": obj.reduction,
            "dim": obj.dim, "n_examples": self.access.n,
            "param_names": list(obj.spec.names), "param_shapes": [list(s) for s in obj.spec.shapes],
            "model": type(self.model).__name__,
            "stall_detector": self.stall.config(),
            "escape_criterion": {"rel": c.escape_rel, "abs": c.escape_abs, "horizon": c.escape_horizon},
            "classify": c.classify, "classify_grad_tol": c.classify_grad_tol,
            "classify_eig_tol": c.classify_eig_tol, "hessian_lipschitz": c.hessian_lipschitz,
            "classify_method": c.classify_method, "classify_probe_floor": c.classify_probe_floor,
            "classify_global_tol": c.classify_global_tol, "classify_nearest": c.classify_nearest,
            "global_min": c.global_min,
            "cause_thresholds": c.cause_thresholds(), "grad_scale_reference": c.grad_scale_reference,
            "num_threads": c.num_threads,
            "versions": runtime_versions(), "meta": dict(c.meta),
        }

    def write_to(self, model: nn.Module, theta: torch.Tensor) -> None:
        """Copy a flat ``theta`` into ``model``'s trainable parameters.

        Args:
            model: a module of the trainer's model's architecture (e.g. the model itself).
            theta: flat parameters, shape (dim,) (e.g. ``result.final_theta``).
        """
        self.obj.write_to_module(model, theta.to(self.obj.dtype))

    # ------------------------------------------------------------------ stalls
    def _escape_target(self, loss: float) -> float:
        return loss - max(self.settings.escape_abs, self.settings.escape_rel * abs(loss))

    def _new_event(self, run: _Run) -> StallEvent:
        """Analyse the stall at θ_t (:func:`landscape.monitor.analyse_stall`), record and log it."""
        index, t = len(run.events), run.t
        analysis0 = self._analysis_units()
        a = analyse_stall(self.obj, run.theta, grad_norm=run.gn, detector_threshold=self.stall.grad_threshold(),
                          settings=self.analysis_settings, reference=self._reference, seed=self.seed + index)
        self.access.cost.n_classify_hvp += a.n_hvp
        self._analysis.n_per_example_grads += a.n_per_example_grads
        self._classify_time += a.classify_time_s
        self._analysis_time += a.cancellation_time_s
        ev = StallEvent(index=index, step=t, loss=run.loss, grad_norm=run.gn, kind=a.kind, report=a.report,
                        cancellation=a.cancellation, classify_error=a.error, nearest_critical=a.nearest_critical,
                        classify_tolerances=a.tolerances, escape_target=self._escape_target(run.loss),
                        escape_horizon=self.settings.escape_horizon, kappa=a.kappa,
                        example_grad_scale=a.example_grad_scale, example_grad_scale_ratio=a.example_grad_scale_ratio,
                        cause=a.cause, cause_thresholds=a.cause_thresholds,
                        analysis_cost_example_grads=self._analysis_units() - analysis0,
                        theta=run.theta.detach().clone())
        run.open_cost = self._train_units()
        if run.events:
            prev = run.events[-1]
            prev.next_kind, prev.next_step, prev.next_is_final = ev.kind, t, False
            run.log.update(prev.index, next_kind=ev.kind, next_step=t, next_is_final=False)
        run.events.append(ev)
        run.log.event(ev)
        return ev

    def _reference_scale(self, theta0: torch.Tensor) -> ReferenceScale:
        """The run's reference per-example gradient scale (:func:`landscape.monitor.reference_grad_scale`)."""
        src = self.settings.grad_scale_reference
        if isinstance(src, str) and not self.settings.cancellation:
            return ReferenceScale(src, None)
        t0 = time.perf_counter()
        ref = reference_grad_scale(self.obj, theta0, src, chunk_size=self.settings.chunk_size, seed=self.seed)
        self._analysis.n_per_example_grads += ref.n_per_example_grads
        self._analysis_time += time.perf_counter() - t0
        return ref

    # ------------------------------------------------------------------ cost in one unit
    def _measure_cost_ratios(self, theta: torch.Tensor) -> None:
        """HVP/gradient and loss/gradient cost ratios at θ_0, by counting FLOPs (deterministic)."""
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
        ev.cost_example_grads = self._train_units() - run.open_cost
        run.log.update(ev.index, escaped=ev.escaped, censored=ev.censored, escaped_by=ev.escaped_by,
                       escape_steps=ev.escape_steps, observed_steps=ev.observed_steps, resolution=resolution,
                       resolved_step=t, distance_moved=ev.distance_moved, cost_example_grads=ev.cost_example_grads)
        run.open_ev = None
        if run.esc.state == "wait":
            run.esc.transition("resolved")

    # ------------------------------------------------------------------ the loop
    def fit(self, max_steps: int, *, theta0: torch.Tensor | None = None,
            callback: Callable[[int, dict], Any] | None = None, write_back: bool = False,
            stop_below: float | None = None) -> TrainResult:
        """Run ``max_steps`` steps and return the result.

        A non-finite loss or step stops the run at the last finite state (status
        ``"nonfinite"``, a ``RuntimeWarning`` with the reason). An exception in ``callback``
        (e.g. ``KeyboardInterrupt``) stops the run with everything logged so far kept and
        ``run.json`` marked ``interrupted``, then propagates.

        Args:
            max_steps: steps to take (the curves have ``max_steps + 1`` points).
            theta0: the initial point, shape (dim,) (default: the model's parameters).
            callback: ``callback(step, state)`` every step, with state ``theta``, ``loss``,
                ``grad_norm``, ``events``.
            write_back: copy the final θ into the model.

        Returns:
            A :class:`TrainResult` (the same seed gives the same ``to_dict()`` except
            :data:`TIMING_FIELDS`).
        """
        threads = torch.get_num_threads()
        if self.settings.num_threads is not None:
            torch.set_num_threads(self.settings.num_threads)
        try:
            run = self._begin(max_steps, theta0)
            progress = self.settings.progress
            bar = tqdm(total=max_steps, disable=(None if progress is None else not progress), desc=self.method,
                       leave=False)
            try:
                self._loop(run, max_steps, callback, bar, stop_below)
            except BaseException as exc:
                bar.close()
                self._abort(run, exc)
                raise
            bar.close()
            result = self._finish(run)
        finally:
            if self.settings.num_threads is not None:
                torch.set_num_threads(threads)
        if write_back:
            self.write_to(self.model, result.final_theta)
        return result

    def _loop(self, run: _Run, max_steps: int, callback: Callable[[int, dict], Any] | None, bar: Any,
              stop_below: float | None = None) -> None:
        for t in range(max_steps + 1):
            run.t = t
            if not self._observe(run):      # 1. loss and gradient at θ_t (False: non-finite)
                break
            self._check_phase(run)          # 2. accept / revert an escape phase
            self._record(run)               # 3. curves; escape measurement of the open stall
            if stop_below is not None and run.loss <= stop_below and run.esc.phase is None:
                run.status = "target_reached"
                break
            if t == max_steps:
                break
            self._detect(run)               # 4. stall → event; maybe start a phase
            if callback is not None:
                callback(t, {"theta": run.theta, "loss": run.loss, "grad_norm": run.gn, "events": run.events,
                             "cost_example_grads": self._train_units()})
            if not self._update(run):       # 5. the step (False: the run stops here)
                break
            bar.update(1)

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
        self._setup_rule(theta)
        config = {**self.config(), "options": self._method_options, "max_steps": max_steps,
                  "hvp_over_grad": self._hvp_over_grad, "loss_over_grad": self._loss_over_grad,
                  "cost_ratio_source": self._ratio_source, "example_grad_scale_reference": self._reference.to_dict()}
        log = RunLogger(self.settings.log_dir, config, self.settings.checkpoint_every)
        return _Run(theta=theta, initial=theta.clone(), log=log, max_steps=max_steps, last_good=theta,
                    t_start=t_start)

    def _setup_rule(self, theta: torch.Tensor) -> None:
        """The rule's per-run setup (thresholds derived from L(θ_0), the detector's threshold, ...)."""
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
        rho = self.settings.hessian_lipschitz
        self.rule.setup({"lr": self.lr, "grad_tol": grad_tol, "dim": self.obj.dim, "n": self.access.n,
                         "loss0": loss0, "global_min": self.settings.global_min,
                         "hessian_lipschitz": 1.0 if rho is None else rho})
        self._method_options = {**self.method_options, **self.rule.derived()}

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

    def _check_phase(self, run: _Run) -> None:
        phase = run.esc.phase
        if phase is None or self.protocol is None:
            return
        if self.protocol.check(run.esc, run.t, run.loss, run.log) == "timeout" and self.protocol.reverts:
            run.theta, run.loss, run.grad = phase.theta, phase.loss, phase.grad   # revert to θ̃
            run.last_good = run.theta

    def _record(self, run: _Run) -> None:
        run.gn = float(torch.linalg.vector_norm(run.grad))
        run.losses.append(run.loss)
        run.gnorms.append(run.gn)
        run.phases.append(int(run.esc.phase is not None))
        run.log.curve_point(run.t, run.loss, run.gn, run.phases[-1])
        ev, horizon = run.open_ev, self.settings.escape_horizon
        if ev is not None and run.t > ev.step and run.esc.phase is None:
            if run.loss <= ev.escape_target and run.t - ev.step <= horizon:
                self._resolve(run, "escaped")
                self.stall.rearm()
            elif run.t - ev.step >= horizon:
                self._resolve(run, "horizon")
                self.stall.rearm()

    def _detect(self, run: _Run) -> None:
        if run.esc.phase is None and self.stall.update(run.t, run.loss, run.gn):
            run.open_ev = self._new_event(run)
            if self.protocol is not None:
                run.esc.transition("stall")
                self.protocol.start(run.esc, run.open_ev, run.t, run.theta, run.loss, run.grad, run.log)
            return
        if self.protocol is not None:
            self.protocol.after_wait(run.esc, run.open_ev, run.t, run.theta, run.loss, run.grad, run.log)

    def _update(self, run: _Run) -> bool:
        t, phase = run.t, run.esc.phase
        ctx = StepContext(step=t, theta=run.theta, loss=run.loss, grad=run.grad, lr=self.lr, access=self.access,
                          generator=self.generator, batch_size=self.batch_size,
                          info={"grad_tol": self.stall.grad_threshold()})
        try:
            if phase is not None and self.protocol is not None:
                new = self.protocol.step(phase, ctx, self.rule)
            else:
                new = self.base.step(ctx)
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

    def _final_state(self, run: _Run) -> tuple[float, float, str | None, Any]:
        """Close an open phase and stall; classify the final point. Returns (loss, ‖g‖, kind, report)."""
        final_loss, final_gn = run.losses[-1], run.gnorms[-1]
        phase = run.esc.phase
        if phase is not None and self.protocol is not None and run.status == "completed":
            # The run ended inside an unaccepted escape phase: revert, as the phase would have (the
            # curves keep the last point actually visited).
            self.protocol.end(run.esc, False, run.t, run.loss, run.log)
            run.theta = phase.theta
            final_loss, final_gn = phase.loss, float(torch.linalg.vector_norm(phase.grad))
        if run.open_ev is not None:
            self._resolve(run, {"completed": "end_of_run", "target_reached": "end_of_run",
                                "nonfinite": "nonfinite"}.get(run.status, "stopped"))
        final_kind, final_report = None, None
        if self.settings.classify and self.settings.classify_final and run.status != "nonfinite":
            t1 = time.perf_counter()
            pk = kind_at_point(self.obj, run.theta, detector_threshold=self.stall.grad_threshold(),
                               settings=self.analysis_settings, seed=self.seed + len(run.events))
            self.access.cost.n_classify_hvp += pk.n_hvp
            self._classify_time += time.perf_counter() - t1
            final_report = pk.report
            final_kind = final_report.kind if final_report is not None else None
        events = run.events
        if events and events[-1].next_kind is None:
            events[-1].next_kind, events[-1].next_step, events[-1].next_is_final = final_kind, run.t, True
            run.log.update(events[-1].index, next_kind=final_kind, next_step=run.t, next_is_final=True)
        return final_loss, final_gn, final_kind, final_report

    def _finish(self, run: _Run) -> TrainResult:
        final_loss, final_gn, final_kind, final_report = self._final_state(run)
        log, t, events = run.log, run.t, run.events
        if run.status == "nonfinite":
            warnings.warn(run.message, RuntimeWarning, stacklevel=3)
        cost = self.access.cost
        wall = time.perf_counter() - run.t_start
        c = self.settings
        result = TrainResult(
            method=c.method, mode=c.mode, status=run.status, message=run.message, n_steps=t,
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
            escape_phase=dict(c.escape) or None, example_grad_scale_reference=self._reference.to_dict(),
            cause_thresholds=c.cause_thresholds(), seed=c.seed,
            log_dir=None if c.log_dir is None else str(c.log_dir),
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
