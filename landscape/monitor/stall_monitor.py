"""Every stall of a researcher's own training loop: :class:`StallMonitor` (issue 22).

The loop gains one line, ``mon.step(loss)`` after each optimizer step. The monitor reads the
model's parameters (never writes them), keeps the loop's random state and autograd state as it
found them (:mod:`landscape.monitor.guard`), and works whatever optimizer, scheduler or data
pipeline the loop uses. What it does at each step:

**Detection.** At step 0 it evaluates its own loss and gradient at θ_0 and compares them with
what the loop gave (``loss`` and the parameters' ``.grad``). When both agree to round-off, the
loop's loss *is* the monitor's full-batch loss and detection is exact: the
:class:`~landscape.monitor.StallDetector` rule of the SynaPrune trainer on (L_t, ‖∇L(θ_t)‖) at
every step, ‖∇L‖ read from ``.grad`` (re-verified now and then within the detection budget).
Otherwise (mini-batches, augmentation, dropout, a probe subset) detection is **stochastic**:

1. a trend test on the last 2·``window`` loop losses that knows its own noise level
   (:func:`~landscape.monitor.schedule.trend_test`: older vs newer half, noise from successive
   differences; flat when the fall is within max(rel_tol·|L − floor|, abs_tol) + z·SE) proposes a
   plateau — with mini-batch noise it rarely rules one out, it saves checks during clear descents;
2. a **check** decides: the monitor's own full-batch (or probe) loss and gradient at θ̄, the
   exponential moving average of the iterates over ~2·``window`` steps (SGD's iterates jitter
   around the plateau's critical point; their mean jitters far less). The stall fires at step
   t ≥ 2·window when (a) the check's loss has fallen by at most
   max(k·rel_tol·|L_a − floor|, abs_tol) per ``window`` steps since an earlier check a, made
   ``window`` to max(10·``window``, 2·``check_every``) steps before, and (b) ‖∇L(θ̄)‖ ≤ k·grad_rel·G_run, with
   G_run = the largest of ‖∇L‖ and |L − floor|/param_scale at any check so far (the detector's
   run scale, from the sparse checks: the start's loss level keeps it from resting on whichever
   descent a check happened to catch) and the **noise factor** k = ``noise_factor`` (default 5). Under mini-batches a plateau is less
   flat than under gradient descent (noise speeds the escape from a saddle: on the 8-3-8
   autoencoder at SGD lr 0.1, batch 32, the loss at the second saddle falls ~1.5e-3 of itself per
   20 steps where gradient descent's falls < 1e-3) and the averaged iterate keeps a gradient floor
   (≈ 2–4e-2 of G_run there, against the full-batch threshold 1e-2), so both thresholds are k
   times the full-batch ones.

Either way a stall disarms detection until the loss has escaped it. Full-batch mode uses the
trainer's criterion (L ≤ L_s − max(escape_abs, escape_rel·|L_s|)); stochastic mode measures from
the lower of L_s and the nearest critical point's value L_c, with k·escape_rel (a mini-batch
stall can fire while the loss still creeps towards L_c, and a saddle's escape starts slowly), so
one plateau gives one record. ``horizon=N`` also re-arms after N steps (the trainer's
``escape_horizon``).

**Analysis** of each stall is :func:`landscape.monitor.analyse_stall` (the trainer's, with its
settings and seed rule), plus λ_min/λ_max with residuals and per-layer extremes; the cause is
measured against the model's own default initialisation (``grad_scale_reference="default_init"``).

**Sharpness** on a schedule (:mod:`landscape.monitor.sharpness`,
:mod:`landscape.monitor.sharp_schedule`): ``"full"`` rows, λ_max of the full-batch Hessian or,
for adaptive optimizers, of P⁻¹H, warm-started from the last top eigenvector at relative
residual ``sharpness_tol`` (5e-2), with where it lies against the optimizer's stability
threshold; and, when the loop passes ``batch=``, cheap ``"batch"`` rows, the batch sharpness of
its last batches.

**Cost.** Checks and sharpness run only while they fit a ``budget`` share (default 8 %) of the
loop's own measured time: checks within 3/8 of it, batch-sharpness rows within 1/8 (the first
after ``window`` steps), a full solve while everything the monitor spent outside stall analyses
plus the solve's expected cost (median of the last ones; the first: 20 checks) fits in all of it.
Per step (stochastic mode) the monitor only holds the loss (on an accelerator unread: one sync per
``window``/4-step stride, when θ̄ and the trend test are updated). On the digits CNN of ``landscape
bench --monitor`` that is ≈ 1–1.5 % of the loop; a check costs 6–9 loop steps, a cold full-batch
λ_max(P⁻¹H) ~100–150 and a warm one ~45–90, so 2 000 steps afford no full solve (two cost ~9 %);
:attr:`StallMonitor.sharpness_note` (and the report) says so, and what ``sharpness_every=N`` costs.
``check_every=N`` / ``sharpness_every=N`` give fixed, deterministic schedules instead.
Which steps a budgeted schedule picks depends on measured times: for bit-identical records give
both. ``mon.timings`` reports the seconds spent.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..eigs import unconverged_message
from ..errors import ConvergenceWarning, NonFiniteError
from ..objective import Objective
from .analysis import AnalysisSettings
from .arguments import check_arguments
from .cause import ReferenceScale, reference_grad_scale
from .detector import StallDetector
from .guard import preserved_state
from .records import EventLog, describe_stall, progress_line, stall_record, unconverged_parts
from .report import write_report
from .schedule import Budget, LoopClock, trend_of
from .sharp_schedule import CHECK_SHARE, SharpnessSchedule, measure_batch, measure_full
from .sharpness import stability_rule
from .source import LoopLosses, monitor_objective, sync_buffers

_AGREE = {torch.float64: 1e-8}  # relative agreement of loop and monitor values that counts as "the same"


class StallMonitor:
    """Watch a training loop for stalls; analyse each; measure sharpness on a schedule.

    See the module docstring for the rules. ``mon.stalls`` (records), ``mon.sharpness`` (rows),
    ``mon.checks`` (the monitor's own loss/gradient evaluations), ``mon.losses`` (the loop's),
    ``mon.timings`` and ``mon.report(path)``.

    Args:
        model: the model the loop trains (read only).
        loss_fn: a criterion ``(outputs, targets)`` (``loss_form="criterion"``, the default) or
            ``(model, batch) -> mean loss`` (``loss_form="batch"``).
        data: the data the monitor evaluates (the training set, or what of it you want watched).
        optimizer: the loop's optimizer (for learning rates and stability thresholds); optional.
        out: a folder for ``events.jsonl`` (one stall per line, as it happens), ``sharpness.jsonl``
            and ``stall_<k>.npz`` (θ_s); None writes nothing.
        loss_form: ``"criterion"`` or ``"batch"`` (see :mod:`landscape.monitor.source`).
        loop_loss: ``"auto"`` (decide at step 0, see the module docstring), ``"full"`` (the loop's
            loss and ``.grad`` are full-batch: exact detection, not verified) or ``"batch"``.
        probe: evaluate a fixed seeded subset of this many examples instead of all of ``data``.
        seed: seeds the probe subset, the default-initialisation copy and the analysis.
        dtype, device, reduction, params: of the objective (:meth:`landscape.Objective.from_batches`).
        detector: a :class:`StallDetector` with the thresholds (window, rel_tol, grad_rel,
            grad_tol, abs_tol, min_step, param_scale, loss_floor); default ``StallDetector()``.
        z: standard errors of slack in the trend test (default 2).
        noise_factor: k, how much looser the stochastic thresholds are (grad_rel, rel_tol and
            escape_rel times k; default 5).
        check_every: stochastic checks every N steps exactly (None: budgeted).
        sharpness_every: a sharpness row every N steps (None: budgeted; 0: never).
        sharpness_min: also λ_min in each row.
        sharpness_tol: relative residual of the scheduled full-batch eigensolves (default 5e-2: an
            eigenvalue within 5 % of each λ; refined once, at tol/10, when λ ± residual straddles the threshold).
        sharpness_max_iter: Lanczos steps (≈ Hessian-vector products) each scheduled eigensolve may
            take (None: the eigensolver's default). A row that did not converge within it has
            ``converged`` False; the first such row raises one :class:`landscape.ConvergenceWarning`
            naming the step and the residual. Each stall whose nearest-critical search, λ_min/λ_max or
            per-layer extremes did not converge raises one warning naming them.
        batch_sharpness: the last loop batches each batch-sharpness value averages over (default 2; 0:
            none; needs ``step(batch=)``).
        budget: share of the loop's time for detection + scheduled sharpness (default 0.08; see "Cost").
        settings: :class:`AnalysisSettings` for the at-stall analysis (default: the trainer's defaults).
        grad_scale_reference: ``"default_init"`` (default), ``"model"``, ``"initial"`` or a number.
        per_layer: per-layer extreme eigenvalues at each stall (default True).
        escape_rel, escape_abs: the escape criterion that re-arms detection (trainer's defaults).
        horizon: also re-arm this many steps after a stall (None: only after an escape).
        sinks: objects with any of ``on_stall(record)``, ``on_sharpness(row)``, ``on_check(row)``,
            ``close()`` (e.g. :class:`landscape.integrations.tensorboard.TensorBoardSink`).
        progress: one stderr line per mode decision and per stall analysis (False: silent).
        critical_objective: an :class:`landscape.Objective` over the same parameter vector (the
            model's parameters in ``named_parameters()`` order) whose critical points the stalls are
            classified against, when ``data`` is only a sample of it (e.g. a population loss in
            closed form beside a probe batch). The kind at θ_s, the nearest critical point and
            λ_min/λ_max use it; detection, κ and the cause stay on ``data``. None: ``data``'s loss.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> X = torch.randn(64, 2, dtype=torch.float64); Y = X @ torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
        >>> model = nn.Linear(2, 1).double(); opt = torch.optim.SGD(model.parameters(), lr=0.2)
        >>> mon = StallMonitor(model, nn.MSELoss(), (X, Y), optimizer=opt, per_layer=False, progress=False,
        ...                    sharpness_every=50)
        >>> for _ in range(200):
        ...     opt.zero_grad(); loss = nn.functional.mse_loss(model(X), Y); loss.backward(); opt.step()
        ...     _ = mon.step(loss)
        >>> mon.mode, [(s["step"], s["kind"]) for s in mon.stalls][:1], round(mon.sharpness[0]["threshold"], 6)
        ('full', [(122, 'minimum')], 10.0)
    """

    def __init__(self, model: nn.Module, loss_fn: Any, data: Any, *, optimizer: Any = None,
                 out: str | Path | None = None, loss_form: str = "criterion", loop_loss: str = "auto",
                 probe: int | None = None, seed: int = 0, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, reduction: str = "mean", params: Any = None,
                 detector: StallDetector | None = None, z: float = 2.0, noise_factor: float = 5.0,
                 check_every: int | None = None, sharpness_every: int | None = None, sharpness_min: bool = False,
                 sharpness_tol: float = 5e-2, sharpness_max_iter: int | None = None, batch_sharpness: int = 2,
                 budget: float = 0.08,
                 settings: AnalysisSettings | None = None, grad_scale_reference: str | float = "default_init",
                 per_layer: bool = True, escape_rel: float = 1e-2, escape_abs: float = 1e-6,
                 horizon: int | None = None, sinks: Any = (), progress: bool | None = None,
                 critical_objective: Objective | None = None) -> None:
        t0 = time.perf_counter()
        check_arguments(loop_loss=loop_loss, counts={"check_every": check_every, "sharpness_every": sharpness_every,
                        "horizon": horizon, "sharpness_max_iter": sharpness_max_iter},
                        reals={"z": z, "noise_factor": noise_factor, "sharpness_tol": sharpness_tol, "budget": budget,
                               "escape_rel": escape_rel, "escape_abs": escape_abs},
                        batch_sharpness=batch_sharpness, detector=detector, critical_objective=critical_objective)
        self.model, self.optimizer = model, optimizer
        self.loop_loss, self.seed, self.z, self.noise_factor = loop_loss, int(seed), float(z), float(noise_factor)
        self.check_every, self.sharpness_every, self.sharpness_min = check_every, sharpness_every, bool(sharpness_min)
        self.sharpness_tol, self.per_layer, self.horizon = float(sharpness_tol), bool(per_layer), horizon
        self.sharpness_max_iter = sharpness_max_iter
        self.escape_rel, self.escape_abs = float(escape_rel), float(escape_abs)
        self.settings = settings if settings is not None else AnalysisSettings()
        self.grad_scale_reference = grad_scale_reference
        self.progress = progress
        self.sinks = list(sinks)
        self.critical_objective = critical_objective
        with preserved_state():   # building the objective may iterate a shuffling DataLoader
            self.obj, self.source = monitor_objective(model, loss_fn, data, loss_form=loss_form, probe=probe,
                                                      seed=seed, dtype=dtype, device=device, reduction=reduction,
                                                      params=params)
        self._params = [dict(model.named_parameters())[n] for n in self.obj.param_names]
        if critical_objective is not None and critical_objective.dim != self.obj.dim:
            raise ValueError(f"critical_objective has {critical_objective.dim} parameters, the model {self.obj.dim}")
        self.detector = copy.deepcopy(detector) if detector is not None else StallDetector()
        self.detector.reset()
        self.window = self.detector.window
        self._stride = max(1, self.window // 4)
        self._theta = self._read()
        self._ema = self._theta.clone()
        # θ̄'s pieces shaped like the parameters: one fused lerp per sample, no flat copy of θ
        same = all(p.dtype == self._ema.dtype and p.device == self._ema.device for p in self._params)
        self._ema_parts = ([v.view_as(p) for v, p in zip(torch.split(self._ema, [p.numel() for p in self._params]),
                                                         self._params)] if same and self._params else None)
        self._alpha = 2.0 / (2 * self.window + 1)
        self._ema_t = 0                      # the step of the last iterate in θ̄
        self._batches: deque = deque(maxlen=max(batch_sharpness, 1))
        self._keep_batches = batch_sharpness > 0
        self._loop = LoopLosses(2 * self.window, lambda msg: self._warn("nonfinite", msg))
        self.checks: list[dict[str, Any]] = []
        self.stalls: list[dict[str, Any]] = []
        self.sharpness: list[dict[str, Any]] = []
        self.t = 0
        self.mode: str | None = None
        self.mode_reason = ""
        self._armed, self._open = True, None
        self._gmax = 0.0
        self._last_check = self._last_verify = -10 ** 9
        self._warm: dict[str, torch.Tensor] = {}
        self._reference: ReferenceScale | None = None
        self._warned: set[str] = set()
        self.clock = LoopClock()
        self._checks_budget = Budget(self.clock, budget * CHECK_SHARE)
        self._schedule = SharpnessSchedule(self.clock, budget, sharpness_every, window=self.window,
                                           stride=self._stride)
        self.budget = float(budget)
        self._owed: int | None = None
        self._flat_since: int | None = None
        self._seconds = {"detection": 0.0, "sharpness": 0.0, "analysis": 0.0, "setup": 0.0}
        self.log = EventLog(out)
        self.out = self.log.out
        self._seconds["setup"] = time.perf_counter() - t0
        self.clock.leave()

    # ------------------------------------------------------------------ reading the loop
    def _read(self) -> torch.Tensor:
        flat = torch.cat([p.detach().reshape(-1) for p in self._params])
        return flat.to(device=self.obj.device, dtype=self.obj.dtype, copy=True)

    def _model_grad_norm(self) -> float | None:
        if any(p.grad is None for p in self._params):
            return None
        norms = torch._foreach_norm([p.grad.detach() for p in self._params])
        return float(torch.linalg.vector_norm(torch.stack([n.to(torch.float64) for n in norms])))

    def _agree(self, a: float | None, b: float) -> bool:
        if a is None or not math.isfinite(a):
            return False
        dtypes = {p.dtype for p in self._params} | {self.obj.dtype}
        tol = 1e-8 if dtypes == {torch.float64} else 1e-3
        return abs(a - b) <= tol * max(abs(a), abs(b)) + 1e-300

    def _warn(self, key: str, message: str, category: type[Warning] = RuntimeWarning) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, category, stacklevel=4)

    # ------------------------------------------------------------------ the one line in the loop
    def step(self, loss: Any = None, *, batch: Any = None, grad_norm: float | None = None) -> dict[str, Any] | None:
        """Record one optimizer step. Call it after ``optimizer.step()``.

        Args:
            loss: the loss the loop computed at this step (tensor or float; None if it has none).
            batch: the step's batch, in ``data``'s format (for the batch sharpness; optional).
            grad_norm: ‖∇L‖ of this step if the loop knows it (else read from ``.grad``).

        Returns:
            The stall record when a stall fired at this step, else None.
        """
        s = self._seconds
        t_in = self.clock.enter()
        t, spent0 = self.t, s["analysis"] + s["sharpness"]
        try:
            e = self.sharpness_every   # a stochastic step with no check, trend or row due: hold the loss, no more
            if self.mode == "stochastic" and t % self._stride and (self.check_every is None or t % self.check_every) \
                    and (e == 0 or (t + 1) % (self._stride if e is None else e)):
                self._loop.keep(loss)
                if batch is not None and self._keep_batches:
                    self._batches.append(batch)
                return None
            return self._step(loss, batch, grad_norm)
        finally:
            t_out = time.perf_counter()
            s["detection"] += t_out - t_in - (s["analysis"] + s["sharpness"] - spent0)
            self.t += 1
            self.clock.leave(t_out)

    @property
    def losses(self) -> list[float | None]:
        """The loop's losses, one per step (None where it gave none, or a non-finite one)."""
        self._loop.flush()
        return self._loop.values

    def _step(self, loss: Any, batch: Any, grad_norm: float | None) -> dict[str, Any] | None:
        t = self.t
        if batch is not None and self._keep_batches:
            self._batches.append(batch)
        if self.mode == "stochastic":   # the per-step work: hold the loss (read every stride steps), no more
            self._loop.keep(loss)
            record = self._noisy_step(t)
            if self.sharpness_every is not None or (t + 1) % self._stride == 0:
                self._maybe_sharpness(t + 1, None)
            return record
        value = self._loop.add(loss, windowed=False)
        theta_t, theta_next = self._theta, self._read()   # exact detection analyses θ_t, where the loss was taken
        self._theta = theta_next
        if self.mode is None:
            self._decide_mode(t, value, grad_norm, theta_t)
        record = None
        if self.mode == "full":
            record = self._full_step(t, value, grad_norm, theta_t)
        if self.mode == "stochastic":   # switched at this step: its loss opens the trend window
            if value is not None:
                self._loop.window.append(value)
            record = self._noisy_step(t)
        self._maybe_sharpness(t + 1, theta_next)
        return record

    # ------------------------------------------------------------------ detection
    def _check(self, t: int, theta: torch.Tensor, point: str, why: str) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        row: dict[str, Any] | None
        try:
            sync_buffers(self.obj, self.model)
            with preserved_state():
                loss, g = self.obj.loss_and_grad(theta)
            gn = float(torch.linalg.vector_norm(g))
            row = {"step": t, "loss": loss, "grad_norm": gn, "point": point, "why": why}
        except NonFiniteError as exc:
            self._warn("check", f"the monitor's check at step {t} failed: {exc}")
            row = None
        cost = time.perf_counter() - t0
        if why == "start":   # the step-0 check is set-up; it grants a start credit of two checks
            self._checks_budget.credit = 2 * cost
            self._checks_budget.record(cost)
        else:
            self._checks_budget.charge(cost)
        self._last_check = t
        if row is not None:
            self.checks.append(row)
            d = self.detector   # G_run: the largest gradient, or loss level per parameter unit, seen at a check
            self._gmax = max(self._gmax, row["grad_norm"], abs(row["loss"] - d.loss_floor) / d.param_scale)
            self._emit("on_check", row)
        return row

    def _decide_mode(self, t: int, value: float | None, grad_norm: float | None, theta: torch.Tensor) -> None:
        if self.loop_loss != "auto":
            self.mode = "full" if self.loop_loss == "full" else "stochastic"
            self.mode_reason = f"loop_loss={self.loop_loss!r}"
            if self.mode == "stochastic":
                self._check(t, theta, "iterate", "start")
        else:
            row = self._check(t, theta, "iterate", "start")
            gn = grad_norm if grad_norm is not None else self._model_grad_norm()
            if row is None:
                self.mode, self.mode_reason = "stochastic", "the monitor's loss at step 0 is not finite"
            elif not self._agree(value, row["loss"]):
                self.mode, self.mode_reason = "stochastic", (
                    f"the loop's loss {value} differs from the monitor's full-batch loss {row['loss']:.6g}")
            elif not self._agree(gn, row["grad_norm"]):
                self.mode, self.mode_reason = "stochastic", (
                    f"the loop's gradient norm {gn} (from .grad) differs from the full-batch one {row['grad_norm']:.6g}")
            else:
                self.mode, self.mode_reason = "full", "the loop's loss and .grad are the full-batch ones"
            self._last_verify = t
        progress_line(f"{self.mode} detection ({self.mode_reason})", self.progress)

    def _to_stochastic(self, reason: str) -> None:
        self._warn("mode", f"the monitor switches to stochastic detection: {reason}")
        self.mode, self.mode_reason = "stochastic", reason
        self._armed = self.detector.armed

    def _rearm_due(self, t: int, loss: float) -> bool:
        op = self._open
        if op is None or t <= op["step"]:
            return False
        return loss <= op["target"] or (self.horizon is not None and t - op["step"] >= self.horizon)

    def _full_step(self, t: int, value: float | None, grad_norm: float | None,
                   theta: torch.Tensor) -> dict[str, Any] | None:
        gn = grad_norm if grad_norm is not None else self._model_grad_norm()
        if value is None or gn is None:
            self._to_stochastic("the loop gave no loss" if value is None else "the parameters' .grad is missing")
            return None
        if self.loop_loss == "auto" and t - self._last_verify >= 10 * self.window and \
                self._checks_budget.affords(self._checks_budget.typical_cost_s or 0.0):
            self._last_verify = t
            row = self._check(t, theta, "iterate", "verify")
            if row is not None and not (self._agree(value, row["loss"]) and self._agree(gn, row["grad_norm"])):
                self._to_stochastic(f"at step {t} the loop's loss/.grad no longer match the full-batch ones")
                return None
        if not self.detector.armed and self._rearm_due(t, value):
            self.detector.rearm()
            self._open = None
        if not self.detector.update(t, value, gn):
            return None
        return self._stall(t, theta, self.detector.grad_threshold(), "iterate", loop_level=value)

    def _threshold(self) -> float:
        d = self.detector
        if d.grad_tol is not None:
            return float(d.grad_tol)
        return self.noise_factor * d.grad_rel * self._gmax

    def _check_allowed(self, t: int) -> bool:
        if self.check_every is not None:
            return t % self.check_every == 0
        cost = self._checks_budget.typical_cost_s or 0.0
        if self._owed is not None and t >= self._owed:
            # a promising check's confirmation may overdraw the budget by up to two checks
            self._owed = None
            return self._checks_budget.affords(cost, overdraft_s=2 * cost)
        return self._checks_budget.affords(cost)

    def _noisy_step(self, t: int) -> dict[str, Any] | None:
        if t % self._stride and (self.check_every is None or t % self.check_every):
            return None
        self._loop.flush()
        # θ̄: the exponential moving average (factor 1 − α per step) of the iterates, sampled every
        # `stride` steps (each sample weighted as the steps since the last one would have been)
        gap = t + 1 - self._ema_t
        if gap > 0:
            w = 1.0 - (1.0 - self._alpha) ** gap
            if self._ema_parts is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(self._ema_parts, self._params, w)
            else:
                self._ema.lerp_(self._read(), w)
            self._ema_t = t + 1
        d = self.detector
        trend = (trend_of(list(self._loop.window), rel_tol=d.rel_tol, abs_tol=d.abs_tol, floor=d.loss_floor, z=self.z)
                 if len(self._loop.window) >= max(self.window, 4) else None)
        scheduled = (t - self._last_check >= 10 * self.window) if self.check_every is None else True
        if not self._armed:
            trigger = scheduled or (trend is not None and trend.newer_upper(self.z) <= self._open["loop_target"])
            if trigger and self._check_allowed(t):
                row = self._check(t, self._ema, "window_mean", "escape")
                if row is not None and self._rearm_due(t, row["loss"]):
                    self._armed, self._open = True, None
            return None
        if trend is None or not trend.flat:
            self._flat_since = None
        elif self._flat_since is None:
            self._flat_since = t
        # a candidate once the window has been flat for `window` steps: the averaged iterate θ̄ has
        # then forgotten the descent before it (checks during its lag would be wasted)
        candidate = (self._flat_since is not None and t - self._flat_since >= self.window
                     and t >= max(d.min_step, 2 * self.window))
        spaced = t - self._last_check >= self.window or (self._owed is not None and t >= self._owed)
        if not (candidate or scheduled) or not (spaced or self.check_every is not None) or not self._check_allowed(t):
            return None
        row = self._check(t, self._ema, "window_mean", "plateau" if candidate else "schedule")
        if row is None or not candidate or row["grad_norm"] > (thr := self._threshold()):
            return None
        if not self._flat_since_anchor(row):
            self._owed = t + self.window    # (b) holds: confirm (a) one window later, whatever the budget
            return None
        return self._stall(t, self._ema.clone(), thr, "window_mean", loop_level=trend.newer_mean, check=row)

    def _flat_since_anchor(self, row: dict[str, Any]) -> bool:
        """(a) of the stochastic rule: the check's loss against an earlier check W..max(10W, 2·check_every) steps
        before (a fixed check period longer than 10 windows still finds its previous check)."""
        d, w, t = self.detector, self.window, row["step"]
        anchor = next((c for c in reversed(self.checks[:-1]) if w <= t - c["step"]), None)
        if anchor is None or t - anchor["step"] > max(10 * w, 2 * (self.check_every or 0)):
            return False
        fall = (anchor["loss"] - row["loss"]) * w / (t - anchor["step"])
        return fall <= max(self.noise_factor * d.rel_tol * abs(anchor["loss"] - d.loss_floor), d.abs_tol)

    # ------------------------------------------------------------------ a stall
    def reference(self) -> ReferenceScale:
        """The reference per-example gradient scale of the cause (computed once, at the first stall).

        Returns:
            A :class:`ReferenceScale` (``grad_scale_reference``; ``"default_init"`` by default).
        """
        if self._reference is None:
            with preserved_state():
                src = self.grad_scale_reference
                self._reference = (reference_grad_scale(self.obj, self.obj.initial_point(), src, seed=self.seed,
                                                        chunk_size=self.settings.chunk_size)
                                   if self.settings.cancellation or not isinstance(src, str)
                                   else ReferenceScale(src, None))
        return self._reference

    def _stall(self, t: int, theta: torch.Tensor, thr: float, point: str, *, loop_level: float,
               check: dict[str, Any] | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        index = len(self.stalls)
        progress_line(f"step {t}: stall {index} detected ({point}); analysing (kind, nearest critical point, "
                      "cause, spectrum)", self.progress)
        sync_buffers(self.obj, self.model)
        with preserved_state():
            if check is None:
                loss, g = self.obj.loss_and_grad(theta)
                gn = float(torch.linalg.vector_norm(g))
            else:
                loss, gn = check["loss"], check["grad_norm"]
            ref = self.reference()
            lr = stability_rule(self.optimizer).lr if self.optimizer is not None else None
            rec = stall_record(self.obj, theta, index=index, step=t, loss=loss, grad_norm=gn,
                               detector_threshold=thr, settings=self.settings, reference=ref, seed=self.seed,
                               per_layer=self.per_layer, critical_obj=self.critical_objective,
                               progress=(lambda m: progress_line(f"  stall {index}: {m}", self.progress)),
                               extra={"mode": self.mode, "point": point, "loop_loss": loop_level, "lr": lr,
                                      "escape_target": loss - max(self.escape_abs, self.escape_rel * abs(loss)),
                                      "reference_detail": ref.detail})
        self.stalls.append(rec)
        bad = unconverged_parts(rec)
        if bad:   # one warning per stall, naming each unconverged piece and its residual
            warnings.warn(f"stall {index} at step {t}: did not converge: {'; '.join(bad)} (the record's "
                          "fields say so too)", ConvergenceWarning, stacklevel=4)
        self._armed = False
        self._open = {"step": t, "loss": loss, "target": rec["escape_target"],
                      "loop_target": loop_level - max(self.escape_abs, self.escape_rel * abs(loop_level))}
        if self.mode == "stochastic":   # from the lower of L_s and L_c, k times the margin
            nc = rec.get("nearest_critical") or {}
            ref = min(loss, nc["loss"]) if nc.get("converged") and nc.get("loss") is not None else loss
            rel = self.noise_factor * self.escape_rel
            self._open["target"] = ref - max(self.escape_abs, rel * abs(ref))
            self._open["loop_target"] = loop_level - (loss - self._open["target"])
            rec["escape_target"] = self._open["target"]
        self.log.stall(rec, theta)
        self._emit("on_stall", rec)
        self._seconds["analysis"] += time.perf_counter() - t0
        progress_line(f"{describe_stall(rec)} ({time.perf_counter() - t0:.1f} s)", self.progress)
        return rec

    # ------------------------------------------------------------------ sharpness
    def _maybe_sharpness(self, step: int, theta: torch.Tensor | None) -> None:
        kind = self._schedule.due(step, detection_s=self._seconds["detection"],
                                  check_cost=self._checks_budget.typical_cost_s or 0.0, have_batches=bool(self._batches))
        if kind is not None:
            self.measure_sharpness(step, theta, kind=kind)

    def measure_sharpness(self, step: int | None = None, theta: torch.Tensor | None = None, *,
                          kind: str = "full") -> dict[str, Any]:
        """Measure the sharpness now (what the schedule does), append the row and return it.

        Args:
            step: the step to label the row with (default: steps taken so far).
            theta: the point (default: the model's current parameters).
            kind: ``"full"`` (λ_max of the full-batch H or P⁻¹H, warm-started Lanczos) or ``"batch"``
                (the batch sharpness of the kept loop batches; needs ``step(batch=)``).

        Returns:
            ``{"step", "kind", "lr", "quantity" ("hessian" | "preconditioned"), "lambda_max",
            "residual_max", "lambda_min", "residual_min", "converged", "n_hvp", "tol", "start"
            ("auto" | "warm"), "refined", "threshold", "vs_threshold" ("above" | "below" |
            "undecided" | None), "rule", "rule_note", "optimizer", "batch_sharpness",
            "batch_sharpness_se", "n_batches", "seconds"}`` (a batch row's λ fields are None); see
            :mod:`landscape.monitor.sharp_schedule`.
        """
        if kind not in ("full", "batch"):
            raise ValueError(f"kind must be 'full' or 'batch', got {kind!r}")
        if kind == "batch" and not self._batches:
            raise ValueError("a batch-sharpness row needs the loop's batches: pass mon.step(loss, batch=...)")
        t0 = time.perf_counter()
        step = self.t if step is None else step
        theta = self._read() if theta is None else theta
        sync_buffers(self.obj, self.model)
        with preserved_state():
            if kind == "full":
                row, r = measure_full(self.obj, theta, self.optimizer, self._params, step=step, warm=self._warm,
                                      tol=self.sharpness_tol, max_iter=self.sharpness_max_iter,
                                      want_min=self.sharpness_min, seed=self.seed, batches=list(self._batches))
            else:
                row = measure_batch(self.obj, theta, self.optimizer, self._params, step=step,
                                    batches=list(self._batches))
        if kind == "full" and not row["converged"]:
            self._warn("sharpness", f"the scheduled sharpness at step {step} did not converge (further unconverged rows "
                       "say so in their 'converged' field only): " + unconverged_message(
                           r, self.sharpness_max_iter, "λ(" + row["quantity"] + ")"), ConvergenceWarning)
        row["seconds"] = time.perf_counter() - t0
        self._schedule.charge(kind, step, row["seconds"])
        self._seconds["sharpness"] += row["seconds"]
        self.sharpness.append(row)
        self.log.sharpness(row)
        self._emit("on_sharpness", row)
        return row

    @property
    def sharpness_note(self) -> str | None:
        """Why a budgeted run has no full-batch sharpness row yet, with the cost of ``sharpness_every=N``
        (None when there is one, or the schedule is fixed). The report prints it."""
        return self._schedule.note(steps=self.t, loop_s=self.clock.loop_s, detection_s=self._seconds["detection"],
                                   check_cost=self._checks_budget.typical_cost_s)

    # ------------------------------------------------------------------ results
    def _emit(self, method: str, row: dict[str, Any]) -> None:
        for sink in self.sinks:
            fn = getattr(sink, method, None)
            if callable(fn):
                fn(row)

    @property
    def timings(self) -> dict[str, Any]:
        """Seconds spent, and the overhead the loop pays.

        Returns:
            ``{"steps", "loop_s" (the loop's own time), "detection_s" (bookkeeping and checks),
            "sharpness_s", "analysis_s" (stall analyses), "setup_s", "overhead" ((detection +
            sharpness) / loop), "n_checks", "n_sharpness", "n_sharpness_full", "n_sharpness_batch",
            "n_stalls", "analysis_per_stall_s"}``.
        """
        s = self._seconds
        loop = self.clock.loop_s
        return {"steps": self.t, "loop_s": loop, "detection_s": s["detection"], "sharpness_s": s["sharpness"],
                "analysis_s": s["analysis"], "setup_s": s["setup"],
                "overhead": (s["detection"] + s["sharpness"]) / loop if loop > 0 else None,
                "n_checks": len(self.checks), "n_sharpness": len(self.sharpness),
                "n_sharpness_full": sum(r["kind"] == "full" for r in self.sharpness),
                "n_sharpness_batch": sum(r["kind"] == "batch" for r in self.sharpness), "n_stalls": len(self.stalls),
                "analysis_per_stall_s": [r.get("analysis_s") for r in self.stalls]}

    def report(self, path: str | Path) -> Path:
        """Write the offline page: the loop's loss with every stall marked by kind and cause,
        sharpness against its threshold, the spectrum at each stall, and the stall table.

        Args:
            path: the ``.html`` file (plotly.js is written next to it, once).

        Returns:
            The path.
        """
        return write_report(self, path)

    def close(self) -> None:
        """Close the event files and every sink's ``close()``."""
        self.log.close()
        for sink in self.sinks:
            fn = getattr(sink, "close", None)
            if callable(fn):
                fn()

    def __enter__(self) -> StallMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"StallMonitor(mode={self.mode!r}, steps={self.t}, stalls={len(self.stalls)}, "
                f"sharpness_rows={len(self.sharpness)}, dim={self.obj.dim})")
