"""The monitor's sharpness schedule: full-batch λ_max and batch sharpness, each within a budget.

Two kinds of rows go to ``mon.sharpness`` (field ``kind``):

- ``"full"``: λ_max of the full-batch Hessian H (or, for adaptive optimizers, of P⁻¹H) by
  Lanczos (:func:`landscape.eigs.extreme_eigs`), **warm-started** from the previous full row's
  top eigenvector (the first from the gradient-tilted random start), at the relative residual
  ``tol`` (default 5e-2: ‖Hv − λv‖ ≤ tol·|λ|, which puts an eigenvalue within 5 % of the value;
  the Ritz value never exceeds λ_max). No verification phase (it looks for copies of repeated
  eigenvalues, which a single λ_max does not need). The question a sharpness row answers is
  "above or below the stability threshold": ``vs_threshold`` is ``"above"`` when λ ≥ threshold
  (certain: λ ≤ λ_max), ``"below"`` when λ + residual < threshold, else the solve is refined once,
  warm, at tol/10, and the verdict is taken again (``"undecided"`` if it still straddles).
  On the bench CNN a cold solve takes ~7 Hessian-vector products on the full data, a warm one 2–5.
- ``"batch"``: the batch sharpness (Andreyev & Beneventano 2024; :func:`batch_sharpness`) on the
  last ``n_batches`` batches the loop passed to ``mon.step(batch=)``, at the current parameters:
  one gradient and one Hessian-vector product per batch (~1/50 of a full solve on the bench CNN).
  Its ``batch_sharpness_se`` is the standard error over the batches (None for one batch).

**Budgeted schedule** (``every=None``): of the monitor's ``budget`` share of the loop's own time,
batch rows may use 1/8 (own bucket; the first one as soon as ``window`` steps have passed, since
it costs a few loop steps), and a full solve runs when everything the monitor spent outside
stall analyses (detection, batch rows, earlier solves) plus the solve's expected cost (median of
the last ones; before the first, 20 of the monitor's full-batch gradient checks, the measured
cost of a cold solve on the bench CNN) fits in the budget. Nothing runs on credit, so a short
run, or a model whose solve costs many loop steps, may get no full row: :meth:`SharpnessSchedule.note`
then says so, with the cost of one solve and of ``sharpness_every=N``. **Fixed schedule**
(``every=N``): a full row, with the batch sharpness of the kept batches in its ``batch_sharpness``
field, every N steps; no separate batch rows.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..eigs import extreme_eigs
from .schedule import Budget, LoopClock
from .sharpness import Preconditioned, batch_sharpness, preconditioner, stability_rule

#: the share of the budget that the monitor's detection checks may use
CHECK_SHARE = 3 / 8
#: the share of the budget that batch-sharpness rows may use
BATCH_SHARE = 1 / 8
#: the first full solve's expected cost, in full-batch gradient checks (measured on the bench CNN)
FIRST_SOLVE_CHECKS = 20


def threshold_side(value: float | None, residual: float | None, threshold: float | None) -> str | None:
    """Where a sharpness value lies against the stability threshold.

    Args:
        value: λ (a Ritz value, ≤ λ_max) or a batch sharpness (curvature units).
        residual: ‖Hv − λv‖ (an eigenvalue lies within it of ``value``), or None for a point value.
        threshold: the optimizer's threshold, or None.

    Returns:
        ``"above"`` (value ≥ threshold), ``"below"`` (value + residual < threshold),
        ``"undecided"`` (the residual straddles it) or None (no value or no threshold).

    Example:
        >>> threshold_side(450.0, 20.0, 38000.0), threshold_side(39.0, 2.0, 40.0), threshold_side(41.0, 2.0, 40.0)
        ('below', 'undecided', 'above')
    """
    if value is None or threshold is None or not math.isfinite(value):
        return None
    if value >= threshold:
        return "above"
    return "below" if value + (residual or 0.0) < threshold else "undecided"


def _rule_and_p(obj: Any, optimizer: Any, params: list[torch.Tensor]) -> tuple[Any, str, Any, str | None]:
    rule = stability_rule(optimizer)
    quantity, p, note = rule.quantity, None, rule.reason
    if quantity == "preconditioned":
        p = preconditioner(optimizer, params, rule, dtype=obj.dtype, device=obj.device)
        if p is None:
            quantity, note = "hessian", "the optimizer holds no second moments yet: λ_max(H), no threshold"
    return rule, quantity, p, note


def _base_row(step: int, kind: str, rule: Any, quantity: str, note: str | None) -> dict[str, Any]:
    same = quantity == rule.quantity
    return {"step": step, "kind": kind, "lr": rule.lr, "quantity": quantity,
            "threshold": rule.threshold if same else None, "rule": rule.rule if same else "", "rule_note": note,
            "optimizer": rule.optimizer}


def measure_full(obj: Any, theta: torch.Tensor, optimizer: Any, params: list[torch.Tensor], *, step: int,
                 warm: dict[str, torch.Tensor], tol: float, max_iter: int | None, want_min: bool, seed: int,
                 batches: list[Any]) -> tuple[dict[str, Any], Any]:
    """One ``"full"`` row: λ_max (and λ_min) of H or P⁻¹H at θ, warm-started, refined once near the threshold.

    Args:
        obj: the monitor's objective. theta: the point, shape (dim,).
        optimizer: the loop's optimizer (or None). params: its parameters in the objective's order.
        step: the row's step.
        warm: start vectors by quantity (updated in place with this solve's top eigenvector).
        tol: relative residual of the solve. max_iter: Lanczos steps (None: the default).
        want_min: also λ_min. seed: the eigensolver's seed.
        batches: kept loop batches for the ``batch_sharpness`` field (may be empty).

    Returns:
        ``(row, result)``: the row (see :class:`landscape.StallMonitor`'s ``measure_sharpness``) and
        the last :class:`landscape.eigs.EigResult`.

    Example: ``StallMonitor.measure_sharpness`` calls it.
    """
    rule, quantity, p, note = _rule_and_p(obj, optimizer, params)
    op = obj.hvp_operator(theta)
    if p is not None:
        op = Preconditioned(op, p)
    which = "both" if want_min else "largest"
    start = warm.get(quantity)
    r = extreme_eigs(op, k=1, which=which, tol=tol, seed=seed, start="auto" if start is None else start,
                     max_iter=max_iter, warn=False, verify_steps=0)
    n_hvp, refined, used_tol = int(r.n_hvp), False, tol
    thr = rule.threshold if quantity == rule.quantity else None
    if threshold_side(float(r.values[-1]), float(r.residuals[-1]), thr) == "undecided" and tol > 1e-6:
        used_tol, refined = tol / 10, True     # near the threshold: one warm refinement
        r = extreme_eigs(op, k=1, which=which, tol=used_tol, seed=seed, start=r.vectors[:, -1], max_iter=max_iter,
                         warn=False, verify_steps=0)
        n_hvp += int(r.n_hvp)
    warm[quantity] = r.vectors[:, -1].detach().clone()
    bs = batch_sharpness(obj, theta, batches, p=p) if batches else None
    vals, res = r.values.tolist(), r.residuals.tolist()
    row = _base_row(step, "full", rule, quantity, note)
    row.update({"lambda_max": vals[-1], "residual_max": res[-1], "lambda_min": vals[0] if want_min else None,
                "residual_min": res[0] if want_min else None, "converged": bool(r.all_converged), "n_hvp": n_hvp,
                "tol": used_tol, "start": "auto" if start is None else "warm", "refined": refined,
                "vs_threshold": threshold_side(vals[-1], res[-1], thr),
                "batch_sharpness": None if bs is None else bs.value, "n_batches": 0 if bs is None else bs.n_batches,
                "batch_sharpness_se": None if bs is None else _se(bs.values)})
    return row, r


def _se(values: tuple[float | None, ...]) -> float | None:
    good = [v for v in values if v is not None]
    if len(good) < 2:
        return None
    m = sum(good) / len(good)
    return math.sqrt(sum((v - m) ** 2 for v in good) / (len(good) - 1) / len(good))


def measure_batch(obj: Any, theta: torch.Tensor, optimizer: Any, params: list[torch.Tensor], *, step: int,
                  batches: list[Any]) -> dict[str, Any]:
    """One ``"batch"`` row: the batch sharpness on the kept loop batches at θ.

    Args:
        obj: the monitor's objective. theta: the point, shape (dim,).
        optimizer: the loop's optimizer (or None). params: its parameters in the objective's order.
        step: the row's step. batches: the batches (at least one).

    Returns:
        The row: ``lambda_max``/residuals None, ``batch_sharpness`` (mean over the batches),
        ``batch_sharpness_se``, ``n_batches``, ``n_hvp`` (one per batch), ``vs_threshold`` of the
        mean (a point estimate: no residual).

    Example: the monitor's budgeted schedule calls it.
    """
    rule, quantity, p, note = _rule_and_p(obj, optimizer, params)
    bs = batch_sharpness(obj, theta, batches, p=p)
    row = _base_row(step, "batch", rule, quantity, note)
    row.update({"lambda_max": None, "residual_max": None, "lambda_min": None, "residual_min": None,
                "converged": None, "n_hvp": bs.n_batches, "tol": None, "start": None, "refined": False,
                "vs_threshold": threshold_side(bs.value, None, row["threshold"]), "batch_sharpness": bs.value,
                "n_batches": bs.n_batches, "batch_sharpness_se": _se(bs.values)})
    return row


class SharpnessSchedule:
    """Which sharpness row (if any) is due at a step (see the module docstring).

    Args:
        clock: the loop's clock.
        budget: the monitor's share of the loop's time (detection + sharpness).
        every: None (budgeted) or N (a full row every N steps; 0: never).
        window: the detector's window (the spacing of budgeted rows, and the first batch row's step).
        stride: budgeted rows fall on multiples of it.

    Example:
        >>> clock = LoopClock()
        >>> s = SharpnessSchedule(clock, 0.08, None, window=20, stride=5)
        >>> s.due(20, detection_s=0.0, check_cost=0.01, have_batches=True)      # first batch row: at once
        'batch'
    """

    def __init__(self, clock: LoopClock, budget: float, every: int | None, *, window: int, stride: int) -> None:
        self.clock, self.budget, self.every, self.window, self.stride = clock, float(budget), every, window, stride
        self.full = Budget(clock, budget)
        self.batch = Budget(clock, budget * BATCH_SHARE)
        self.last = {"full": -10 ** 9, "batch": -10 ** 9}

    def expected_full_s(self, check_cost: float) -> float:
        """Expected seconds of the next full solve: median of the last ones, else 20 checks."""
        est = self.full.typical_cost_s
        return est if est is not None else FIRST_SOLVE_CHECKS * check_cost

    def due(self, step: int, *, detection_s: float, check_cost: float, have_batches: bool) -> str | None:
        """``"full"``, ``"batch"`` or None at ``step``.

        Args:
            step: steps taken so far.
            detection_s: seconds the monitor's detection has spent (shares the full solves' budget).
            check_cost: the typical seconds of one full-batch gradient check.
            have_batches: the loop has passed batches.

        Returns:
            The kind of row due, or None.
        """
        if self.every is not None:
            return "full" if self.every and step % self.every == 0 else None
        if step < self.window or step % self.stride:
            return None
        if have_batches and step - self.last["batch"] >= self.window and \
                self.batch.affords(self.batch.typical_cost_s or 0.0):
            return "batch"        # first: it is cheap, and a loop that affords full solves often still gets it
        if step - self.last["full"] >= self.window and self.full.affords(
                self.expected_full_s(check_cost), also_spent_s=detection_s + self.batch.spent_s):
            return "full"
        return None

    def charge(self, kind: str, step: int, seconds: float) -> None:
        """Record a row's seconds in its bucket.

        Args:
            kind: ``"full"`` or ``"batch"``. step: its step. seconds: its cost.
        """
        (self.full if kind == "full" else self.batch).charge(seconds)
        self.last[kind] = step

    def note(self, *, steps: int, loop_s: float, detection_s: float, check_cost: float | None) -> str | None:
        """Why a budgeted run has no full-batch row, and what a fixed schedule would cost (None otherwise).

        Args:
            steps: steps taken. loop_s: the loop's own seconds. detection_s: detection's seconds.
            check_cost: one full-batch gradient check's seconds (None: none made).

        Returns:
            One sentence, or None when a full row exists or the schedule is fixed.
        """
        if self.every is not None or self.full.n or steps == 0 or loop_s <= 0:
            return None
        est = self.full.typical_cost_s or (FIRST_SOLVE_CHECKS * check_cost if check_cost else None)
        left = self.budget * loop_s - detection_s - self.batch.spent_s
        msg = (f"the budget ({100 * self.budget:g} % of the loop's {loop_s:.3g} s) allowed no full-batch λ_max in "
               f"{steps} steps: detection used {100 * detection_s / loop_s:.1f} %, batch sharpness "
               f"{100 * self.batch.spent_s / loop_s:.1f} %, leaving {max(left, 0.0):.3g} s")
        if est:
            step_s = loop_s / steps
            n = max(1, round(est / (0.02 * step_s)))        # an every-N schedule that adds ~2 %
            msg += (f"; one solve is expected to cost ≈ {est:.3g} s ≈ {est / step_s:.0f} loop steps, so "
                    f"sharpness_every={n} would add ≈ {100 * est / (n * step_s):.1f} % of the loop's time")
        return msg

