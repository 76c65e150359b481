"""Stall detection: a window of steps where the loss barely moves and the gradient is small."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass
class StallDetector:
    """Fires when, over the last ``window`` steps (``window + 1`` recorded points),

    - the loss decrease L_{t−window} − L_t is at most ``max(rel_tol·|L_{t−window}|, abs_tol)``, and
    - every full-batch gradient norm in the window is at most ``grad_tol``.

    Defaults: ``window`` = 20 steps, ``rel_tol`` = 1e-3, ``abs_tol`` = 1e-12, ``grad_tol`` = 1e-3
    (absolute, in the objective's units: scale it for sum-reduced losses over many examples).
    ``min_step`` (default 0) suppresses stalls before that step.

    After a stall the detector is *disarmed*: it records nothing until :meth:`rearm` (the trainer
    re-arms it once the loss has escaped the stall, so one plateau gives one event) and then needs a
    fresh full window. Feed it with :meth:`update`; all state is reset by :meth:`reset`.
    """

    window: int = 20
    rel_tol: float = 1e-3
    grad_tol: float = 1e-3
    abs_tol: float = 1e-12
    min_step: int = 0
    _losses: deque = field(default_factory=deque, init=False, repr=False)
    _grads: deque = field(default_factory=deque, init=False, repr=False)
    armed: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive integer number of steps, got {self.window!r}")
        for name in ("rel_tol", "grad_tol", "abs_tol"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (v >= 0) or math.isinf(v):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if isinstance(self.min_step, bool) or not isinstance(self.min_step, int) or self.min_step < 0:
            raise ValueError(f"min_step must be a non-negative integer, got {self.min_step!r}")
        self._losses = deque(maxlen=self.window + 1)
        self._grads = deque(maxlen=self.window + 1)

    def config(self) -> dict:
        """The thresholds, as a plain dict (for ``run.json``)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if not k.startswith("_") and k != "armed"}

    def reset(self) -> None:
        self._losses.clear()
        self._grads.clear()
        self.armed = True

    def disarm(self) -> None:
        self.armed = False
        self._losses.clear()
        self._grads.clear()

    def rearm(self) -> None:
        if not self.armed:
            self.armed = True
            self._losses.clear()
            self._grads.clear()

    def clear_window(self) -> None:
        """Forget the current window (e.g. after a jump in θ) without changing the armed state."""
        self._losses.clear()
        self._grads.clear()

    def relative_decrease(self) -> float:
        """(L_{t−window} − L_t) / max(|L_{t−window}|, tiny) over the current window (nan if not full)."""
        if len(self._losses) <= self.window:
            return math.nan
        first, last = self._losses[0], self._losses[-1]
        return (first - last) / max(abs(first), 1e-300)

    def update(self, step: int, loss: float, grad_norm: float) -> bool:
        """Record step ``step``'s full-batch loss and gradient norm; True when a stall fires
        (the detector then disarms itself)."""
        if not self.armed:
            return False
        self._losses.append(float(loss))
        self._grads.append(float(grad_norm))
        if len(self._losses) <= self.window or step < self.min_step:
            return False
        first, last = self._losses[0], self._losses[-1]
        flat = first - last <= max(self.rel_tol * abs(first), self.abs_tol)
        small = max(self._grads) <= self.grad_tol
        if flat and small:
            self.disarm()
            return True
        return False
