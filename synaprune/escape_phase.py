"""The escape-phase protocol of SynaPrune methods in mode ``"at_stalls"`` (synaprune/README.md,
"Escape-phase protocol"): the state machine :data:`TRANSITIONS`, the state of one run
(:class:`PhaseState`, with the running :class:`EscapePhase`) and the protocol's steps
(:class:`EscapeProtocol`: start, accept / time out, end, the scaled phase step).

The trainer owns θ and the loop; this module decides when a phase starts and ends and how a
phase step is scaled, and records each attempt (:class:`~synaprune.events.EscapeAttempt`) on its
stall event and in the run log. Baselines and mode ``"always"`` never start a phase.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .base import StepContext, UpdateRule
from .events import EscapeAttempt, RunLogger, StallEvent

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


@dataclass
class EscapePhase:
    """One running escape phase (mutable: ``k`` counts its steps).

    Args:
        theta: the snapshot θ̃, shape (dim,) (restored on a revert).
        loss: L(θ̃), loss units.
        grad: ∇L(θ̃), shape (dim,).
        start: the step whose θ is θ̃.
        f_thres: accept when L ≤ L(θ̃) − f_thres (loss units).
        attempt: the :class:`EscapeAttempt` being recorded.
        attempt_index: its position in ``event.attempts``.
        event: the stall event the phase belongs to.
        k: phase steps taken so far.

    Example:
        >>> import torch
        >>> ev = StallEvent(index=0, step=20, loss=0.25, grad_norm=0.0)
        >>> a = EscapeAttempt(rule="synaprune-rms", start_step=20, loss_before=0.25, f_thres=0.0025)
        >>> ph = EscapePhase(theta=torch.zeros(2), loss=0.25, grad=torch.zeros(2), start=20, f_thres=0.0025,
        ...                  attempt=a, attempt_index=0, event=ev)
        >>> ph.k, ph.loss - ph.f_thres        # accept once L ≤ 0.2475
        (0, 0.2475)
    """

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
class PhaseState:
    """The state machine's state during one ``fit``.

    Args:
        state: ``"base"``, ``"escape"`` or ``"wait"`` (see :data:`TRANSITIONS`).
        phase: the running phase (None outside ``"escape"``).
        wait_until: the step at which a ``"wait"`` ends.

    Example:
        >>> st = PhaseState()
        >>> st.transition("stall"); st.state
        'escape'
    """

    state: str = "base"
    phase: EscapePhase | None = None
    wait_until: int = -1

    def transition(self, signal: str) -> None:
        """Move along :data:`TRANSITIONS`.

        Args:
            signal: ``"stall"``, ``"accept"``, ``"timeout"``, ``"ready"``, ``"exhausted"`` or
                ``"resolved"``.

        Raises:
            RuntimeError: no transition from the current state on ``signal`` (a trainer bug).
        """
        nxt = TRANSITIONS.get((self.state, signal))
        if nxt is None:  # pragma: no cover - a bug in the trainer, not a user error
            raise RuntimeError(f"escape-phase state machine: no transition from {self.state!r} on {signal!r}")
        self.state = nxt


class EscapeProtocol:
    """The protocol's decisions for one trainer (its options never change during a run).

    Args:
        options: the escape-phase options (``escape_steps``, ``t_wait``, ``max_attempts``,
            ``escape_decay``, ``escape_step_cap``, ``f_thres``: :data:`synaprune.ESCAPE_DEFAULTS`).
        method: the method's name (recorded on every attempt).
        escape_abs: δ_abs of the escape margin (loss units), for the default ``f_thres``.
        escape_rel: δ_rel of the escape margin, for the default ``f_thres``.

    Example:
        >>> from synaprune import ESCAPE_DEFAULTS
        >>> EscapeProtocol(ESCAPE_DEFAULTS, method="synaprune-rms", escape_abs=1e-6,
        ...                escape_rel=1e-2).accept_threshold(2.0)   # 0.1 · max(1e-6, 1e-2 · 2)
        0.002
    """

    def __init__(self, options: Mapping[str, Any], *, method: str, escape_abs: float, escape_rel: float) -> None:
        self.options = dict(options)
        self.method = method
        self.escape_abs = escape_abs
        self.escape_rel = escape_rel

    @property
    def reverts(self) -> bool:
        """Whether a phase that ends without acceptance restores θ̃ (option ``revert``, default
        True; False: the no-revert variant keeps the phase's last point and waits from there).

        Example:
            >>> from synaprune import ESCAPE_DEFAULTS
            >>> EscapeProtocol({**ESCAPE_DEFAULTS, "revert": False}, method="synaprune-rms", escape_abs=1e-6,
            ...                escape_rel=1e-2).reverts
            False
        """
        return bool(self.options.get("revert", True))

    def accept_threshold(self, loss: float) -> float:
        """f_thres at a snapshot with loss ``loss``.

        Args:
            loss: L(θ̃), loss units.

        Returns:
            The ``f_thres`` option, or 0.1·max(escape_abs, escape_rel·|L(θ̃)|) (a tenth of the
            escape margin), loss units.
        """
        f_thres = self.options["f_thres"]
        if f_thres is None:
            f_thres = 0.1 * max(self.escape_abs, self.escape_rel * abs(loss))
        return f_thres

    def start(self, st: PhaseState, event: StallEvent, t: int, theta: torch.Tensor, loss: float,
              grad: torch.Tensor, log: RunLogger) -> None:
        """Start a phase at step ``t`` from the current point (a fresh snapshot θ̃; decay from k = 0).

        Args:
            st: the run's state (``st.phase`` is set).
            event: the open stall; the new attempt is appended to ``event.attempts`` and logged.
            t: the step.
            theta: θ_t, shape (dim,) (cloned as θ̃).
            loss: L(θ_t).
            grad: ∇L(θ_t), shape (dim,) (cloned).
            log: the run log.
        """
        f_thres = self.accept_threshold(loss)
        attempt = EscapeAttempt(rule=self.method, start_step=t, loss_before=loss, f_thres=f_thres)
        event.attempts.append(attempt)
        log.update(event.index, attempt=attempt, attempt_index=len(event.attempts) - 1)
        st.phase = EscapePhase(theta=theta.clone(), loss=loss, grad=grad.clone(), start=t, f_thres=f_thres,
                               attempt=attempt, attempt_index=len(event.attempts) - 1, event=event)

    def end(self, st: PhaseState, accepted: bool, t: int, loss: float, log: RunLogger) -> None:
        """Close the running phase (accepted, or not: the caller restores θ̃) and log the attempt.

        Args:
            st: the run's state (``st.phase`` becomes None).
            accepted: whether the phase's point is kept.
            t: the step at which it ends.
            loss: the loss when it ends (before any revert), loss units.
            log: the run log.
        """
        ph = st.phase
        assert ph is not None
        a = ph.attempt
        a.steps, a.accepted, a.loss_after, a.end_step = ph.k, accepted, loss, t
        if accepted or ph.event.escape_accepted is None:
            ph.event.escape_accepted = accepted
        log.update(ph.event.index, attempt=a, attempt_index=ph.attempt_index, escape_accepted=ph.event.escape_accepted)
        st.phase = None

    def check(self, st: PhaseState, t: int, loss: float, log: RunLogger) -> str | None:
        """After the loss at step ``t`` is known: count the phase step, then accept or time out.

        Args:
            st: the run's state (no-op without a running phase).
            t: the step.
            loss: L(θ_t), loss units.
            log: the run log.

        Returns:
            ``"accept"`` (L ≤ L(θ̃) − f_thres: phase ended, state → base), ``"timeout"``
            (``escape_steps`` steps without acceptance: phase ended, state → wait until
            t + ``t_wait``; the caller restores θ̃ when :attr:`reverts`) or None (the phase goes on, or none runs).
        """
        ph = st.phase
        if ph is None:
            return None
        ph.k += 1
        if loss <= ph.loss - ph.f_thres:
            signal = "accept"
        elif ph.k >= self.options["escape_steps"]:
            signal = "timeout"
            st.wait_until = t + self.options["t_wait"]
        else:
            return None
        self.end(st, signal == "accept", t, loss, log)
        st.transition(signal)
        return signal

    def after_wait(self, st: PhaseState, event: StallEvent | None, t: int, theta: torch.Tensor, loss: float,
                   grad: torch.Tensor, log: RunLogger) -> None:
        """At the end of a wait: the next phase if attempts are left, else the base method.

        Args:
            st: the run's state (no-op unless waiting, a stall is open and ``t`` ≥ ``wait_until``).
            event: the open stall (None: nothing to do).
            t, theta, loss, grad, log: as :meth:`start`.
        """
        if st.state != "wait" or event is None or t < st.wait_until:
            return
        if len(event.attempts) < self.options["max_attempts"]:
            st.transition("ready")
            self.start(st, event, t, theta, loss, grad, log)
        else:
            st.transition("exhausted")

    def step(self, ph: EscapePhase, ctx: StepContext, rule: UpdateRule) -> torch.Tensor:
        """Step k of a phase: the rule's step × escape_decay**k, shortened to the cap
        escape_step_cap·max(1, ‖θ̃‖); a control with its own scaling (gd-matched) gets the cap.

        Args:
            ph: the running phase (its attempt records step 0's length and the capped steps).
            ctx: the step's context (θ_k = ``ctx.theta``).
            rule: the method.

        Returns:
            θ_{k+1}, shape (dim,).
        """
        cap = self.options["escape_step_cap"]
        limit = None if cap is None else cap * max(1.0, float(torch.linalg.vector_norm(ph.theta)))
        if rule.own_phase_scaling:
            new = rule.phase_step(ctx, ph.k, limit)
            if ph.k == 0:
                ph.attempt.first_step_norm = float(torch.linalg.vector_norm(new - ctx.theta))
                ph.attempt.first_step_norm_raw = ctx.info.get("matched_length_raw")
            return new
        new = rule.step(ctx)
        delta = (new - ctx.theta) * self.options["escape_decay"] ** ph.k
        norm = float(torch.linalg.vector_norm(delta))
        raw = norm
        if limit is not None and norm > limit:
            delta = delta * (limit / norm)
            norm = limit
            ph.attempt.n_capped += 1
        if ph.k == 0:
            ph.attempt.first_step_norm, ph.attempt.first_step_norm_raw = norm, raw
        return ctx.theta + delta
