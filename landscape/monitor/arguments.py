"""The checks of :class:`landscape.monitor.StallMonitor`'s arguments (one clear line per bad one)."""
from __future__ import annotations

import math
from typing import Any

from ..objective import Objective
from .detector import StallDetector

#: what ``loop_loss`` may be
LOOP_LOSS_MODES = ("auto", "full", "batch")


def check_arguments(*, loop_loss: str, counts: dict[str, Any], reals: dict[str, Any], batch_sharpness: Any,
                    detector: Any, critical_objective: Any) -> None:
    """Raise on the first bad argument, naming it.

    Args:
        loop_loss: one of :data:`LOOP_LOSS_MODES`.
        counts: ``{name: value}`` that must be positive integers or None (``sharpness_every`` may be 0).
        reals: ``{name: value}`` that must be finite and non-negative.
        batch_sharpness: a non-negative integer.
        detector: a :class:`StallDetector` or None.
        critical_objective: a :class:`landscape.Objective` or None.

    Returns:
        None.

    Raises:
        ValueError / TypeError: naming the argument and the value.

    Example:
        >>> check_arguments(loop_loss="auto", counts={"horizon": 0}, reals={}, batch_sharpness=2, detector=None,
        ...                 critical_objective=None)
        Traceback (most recent call last):
        ...
        ValueError: horizon must be a positive integer or None, got 0
    """
    if loop_loss not in LOOP_LOSS_MODES:
        raise ValueError(f"loop_loss must be one of {LOOP_LOSS_MODES}, got {loop_loss!r}")
    for name, v in counts.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "sharpness_every" else 1)):
            raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    for name, v in reals.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or math.isinf(v):
            raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
    if isinstance(batch_sharpness, bool) or not isinstance(batch_sharpness, int) or batch_sharpness < 0:
        raise ValueError(f"batch_sharpness must be a non-negative integer, got {batch_sharpness!r}")
    if detector is not None and not isinstance(detector, StallDetector):
        raise TypeError(f"detector must be a StallDetector, got {type(detector).__name__}")
    if critical_objective is not None and not isinstance(critical_objective, Objective):
        raise TypeError(f"critical_objective must be a landscape.Objective, got {type(critical_objective).__name__}")
