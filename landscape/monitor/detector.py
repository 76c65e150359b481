"""Stall detection: a window of steps where the loss barely moves and the gradient is small — both
judged relative to the run itself, so the rule does not depend on the loss's units.

:class:`StallDetector` needs nothing but the loss and the full-batch gradient norm of each step; it
is what the SynaPrune trainer uses (``synaprune.StallDetector`` is this class) and what a user's own
training loop can feed (issue 22). It has no torch dependency.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass
class StallDetector:
    """Fires at step t when, over the last ``window`` steps (``window + 1`` recorded points),

    - **the loss is flat:** L_{t−window} − L_t ≤ max(``rel_tol``·|L_{t−window} − L_floor|, ``abs_tol``), and
    - **the gradient is small:** every full-batch gradient norm in the window is at most the
      gradient threshold G_thr. By default (``grad_tol=None``) G_thr = ``grad_rel``·G_run with
      the run's own gradient scale G_run = max(largest ‖g‖ recorded since :meth:`reset`,
      |L_{t−window} − L_floor|/``param_scale``) — the second term is the gradient that would move the loss
      by its own size over a distance ``param_scale`` (default 1, the parameters' unit), so a run
      that *starts* on a plateau (every gradient so far tiny) still has a scale. Both terms scale
      like the loss: multiplying the loss by c > 0 changes no decision. ``grad_tol`` (a number,
      in the objective's units) replaces G_thr by that absolute threshold.

    ``loss_floor`` L_floor (default 0, the infimum of MSE, cross-entropy and every other
    non-negative loss) is the loss's known lower bound: the loss is measured from it, so the rule is
    invariant under L ↦ c·L + b (c > 0) when the floor moves with it (L_floor ↦ c·L_floor + b) —
    an offset has no meaning without a reference, and this is the reference.

    After a stall the detector is *disarmed*: it records nothing until :meth:`rearm` (the trainer
    re-arms it once the loss has escaped the stall, so one plateau gives one event) and then needs a
    fresh full window. The run's gradient scale survives :meth:`disarm`, :meth:`rearm` and
    :meth:`clear_window`; :meth:`reset` clears everything.

    Args:
        window: steps per window (a positive integer; default 20).
        rel_tol: relative loss decrease below which the window is flat (default 1e-3).
        grad_tol: absolute gradient threshold in the objective's units (loss per parameter unit),
            or None (default) for the scale-free threshold ``grad_rel``·G_run.
        abs_tol: absolute loss decrease below which the window is flat, in loss units (default 0:
            only an exactly constant loss is flat by this term).
        min_step: no stall fires before this step (default 0).
        grad_rel: the scale-free gradient threshold as a fraction of G_run (default 1e-2).
        param_scale: the parameters' unit of length in G_run (default 1).
        loss_floor: the loss's known lower bound, in loss units (default 0).

    Raises:
        ValueError: a threshold is negative, non-finite or of the wrong type.

    Example:
        >>> det = StallDetector(window=3, grad_tol=1e-3)
        >>> [t for t in range(8) if det.update(t, loss=1.0, grad_norm=1e-4)]   # fires, then disarmed
        [3]
        >>> det.rearm()
        >>> [t for t in range(8, 16) if det.update(t, loss=1.0, grad_norm=1e-4)]
        [11]
    """

    window: int = 20
    rel_tol: float = 1e-3
    grad_tol: float | None = None
    abs_tol: float = 0.0
    min_step: int = 0
    grad_rel: float = 1e-2
    param_scale: float = 1.0
    loss_floor: float = 0.0
    _losses: deque = field(default_factory=deque, init=False, repr=False)
    _grads: deque = field(default_factory=deque, init=False, repr=False)
    _gmax: float = field(default=0.0, init=False, repr=False)
    armed: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive integer number of steps, got {self.window!r}")
        for name in ("rel_tol", "abs_tol", "grad_rel", "param_scale") + (("grad_tol",) if self.grad_tol is not None else ()):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (v >= 0) or math.isinf(v):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if isinstance(self.loss_floor, bool) or not isinstance(self.loss_floor, (int, float)) or not math.isfinite(self.loss_floor):
            raise ValueError(f"loss_floor must be a finite number, got {self.loss_floor!r}")
        if not self.param_scale > 0:
            raise ValueError(f"param_scale must be positive, got {self.param_scale!r}")
        if isinstance(self.min_step, bool) or not isinstance(self.min_step, int) or self.min_step < 0:
            raise ValueError(f"min_step must be a non-negative integer, got {self.min_step!r}")
        self._losses = deque(maxlen=self.window + 1)
        self._grads = deque(maxlen=self.window + 1)

    def config(self) -> dict:
        """The thresholds, as a plain dict (for ``run.json``).

        Returns:
            ``{window, rel_tol, grad_tol, abs_tol, min_step, grad_rel, param_scale, loss_floor}``;
            ``StallDetector(**config())`` rebuilds an equal, freshly reset detector.

        Example:
            >>> StallDetector(window=5).config()["window"]
            5
        """
        d = asdict(self)
        return {k: v for k, v in d.items() if not k.startswith("_") and k != "armed"}

    def reset(self) -> None:
        """Forget everything (window, the run's gradient scale) and arm: the state of a new run."""
        self._losses.clear()
        self._grads.clear()
        self._gmax = 0.0
        self.armed = True

    def disarm(self) -> None:
        """Stop recording until :meth:`rearm` (done by :meth:`update` when a stall fires)."""
        self.armed = False
        self._losses.clear()
        self._grads.clear()

    def rearm(self) -> None:
        """Record again after a stall (with an empty window); no-op when armed."""
        if not self.armed:
            self.armed = True
            self._losses.clear()
            self._grads.clear()

    def clear_window(self) -> None:
        """Forget the current window (e.g. after a jump in θ) without changing the armed state or
        the run's gradient scale."""
        self._losses.clear()
        self._grads.clear()

    @property
    def run_grad_scale(self) -> float:
        """G_run = max(largest ‖g‖ recorded, |L_{t−window} − L_floor|/param_scale), in gradient
        units (0 before any update; the second term only while a window is held)."""
        ref = abs(self._losses[0] - self.loss_floor) / self.param_scale if self._losses else 0.0
        return max(self._gmax, ref)

    def grad_threshold(self) -> float:
        """The gradient threshold in force now, in gradient units.

        Returns:
            ``grad_tol`` if given, else ``grad_rel``·G_run (see :attr:`run_grad_scale`). Right after
            a stall fired the window is empty, so G_run is the largest ‖g‖ recorded.

        Example:
            >>> det = StallDetector(grad_rel=0.01)
            >>> det.update(0, 2.0, 3.0)
            False
            >>> det.grad_threshold()   # 0.01 · max(3, |2 − 0| / 1)
            0.03
        """
        return float(self.grad_tol) if self.grad_tol is not None else self.grad_rel * self.run_grad_scale

    def relative_decrease(self) -> float:
        """The window's relative loss decrease.

        Returns:
            (L_{t−window} − L_t) / max(|L_{t−window} − L_floor|, 1e-300), dimensionless; nan while
            the window is not full.
        """
        if len(self._losses) <= self.window:
            return math.nan
        first, last = self._losses[0], self._losses[-1]
        return (first - last) / max(abs(first - self.loss_floor), 1e-300)

    def update(self, step: int, loss: float, grad_norm: float) -> bool:
        """Record one step's full-batch loss and gradient norm.

        Args:
            step: the step index (compared with ``min_step`` only).
            loss: the full-batch loss at this step, in loss units.
            grad_norm: ‖∇L‖ at this step (full batch), in gradient units; a non-finite value does
                not enter the run's gradient scale.

        Returns:
            True when a stall fires at this step (the detector then disarms itself), else False.
            The run's gradient scale is updated even while disarmed.
        """
        gn = float(grad_norm)
        if math.isfinite(gn):
            self._gmax = max(self._gmax, gn)
        if not self.armed:
            return False
        self._losses.append(float(loss))
        self._grads.append(gn)
        if len(self._losses) <= self.window or step < self.min_step:
            return False
        first, last = self._losses[0], self._losses[-1]
        flat = first - last <= max(self.rel_tol * abs(first - self.loss_floor), self.abs_tol)
        small = max(self._grads) <= self.grad_threshold()
        if flat and small:
            self.disarm()
            return True
        return False
