"""Round-off-level numbers in the tracked outputs: written as bounds against a stated floor.

The one convention (issue 21 item 5), used by every part that writes a tracked output:

- Every such number has a stated **floor**: the level below which its digits are round-off (or, for
  an iterate, the resolution of the algorithm that produced it: an optimiser's gradient target, an
  eigensolver's residual tolerance), in the number's own units; each part names its floors where
  it computes them.
- A number within ``multiple`` × its floor (the multiple is stated with the floor) is written as
  the **bound** ``{"at_most": B}`` in JSON — B = ``multiple`` × floor rounded *up* to one
  significant digit, a bound on the number's magnitude (its sign is round-off too) — and as
  ``≤ B`` in text (:func:`fmt`). Figures draw such a number at B or as a band up to B, never as a
  data point below it.
- A number above its bound keeps only the digits above it: it is rounded to a multiple of B's
  leading decade (:func:`bound`), so 3.4567e-7 against a bound of 2e-8 is written 3.5e-7.

Why: the last digits of these numbers depend on the BLAS/LAPACK kernels, the CPU's vector width and
the thread count (measured between two numerical configurations, see
:data:`analyses.cli_common.ALT_NUMERICS`: eigen-residuals of 1e-15, gradient norms of 1e-9 moving
in their 6th digit, a zero band moving threefold), so writing them out would make the outputs
depend on the machine that wrote them. A reader of the JSON gets either a float or a bound
(:func:`is_bound`; :func:`upper` gives a float either way).

>>> bound(1.2e-15, 1e-15, 100), bound(3.4567e-7, 1e-8, 2)
({'at_most': 1e-13}, 3.5e-07)
>>> fmt(bound(1.2e-15, 1e-15, 100)), fmt(3.46e-07, ".2e")
('≤ 1e-13', '3.46e-07')
"""
from __future__ import annotations

import math
from typing import Any

#: the key of a bound in JSON
AT_MOST = "at_most"


def nice_up(x: float) -> float:
    """The smallest number with one significant digit that is ≥ ``x`` (> 0).

    Args:
        x: a positive number.

    Returns:
        d·10^k with d in 1…9 (10^(k+1) when d would be 10).

    >>> nice_up(1.3e-8), nice_up(2e-8), nice_up(9.2e-3)
    (2e-08, 2e-08, 0.01)
    """
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(f"nice_up needs a finite x > 0, got {x}")
    k = math.floor(math.log10(x))
    d = math.ceil(round(x / 10.0 ** k, 9))
    if d >= 10:
        d, k = 1, k + 1
    return float(f"{d}e{k}")


def bound(x: float | None, floor: float, multiple: float = 1.0) -> Any:
    """``x`` as written in a tracked output: ``{"at_most": B}`` when |x| ≤ B = nice_up(multiple·floor),
    else ``x`` rounded to a multiple of B's leading decade.

    Args:
        x: the number (None and non-finite values are returned as they are).
        floor: its floor (> 0; same units as ``x``).
        multiple: the stated multiple of the floor within which ``x`` is round-off.

    Returns:
        The bound (a dict) or the rounded float.

    >>> bound(-4e-16, 2.2e-16, 10), bound(0.0, 1e-12), bound(1.2098918e-09, 1e-13, 10)
    ({'at_most': 3e-15}, {'at_most': 1e-12}, 1.21e-09)
    """
    if x is None or not math.isfinite(float(x)):
        return x
    b = nice_up(multiple * floor)
    if abs(x) <= b:
        return {AT_MOST: b}
    q = 10.0 ** math.floor(math.log10(b))
    return float(f"{round(float(x) / q) * q:.15g}")


def is_bound(v: Any) -> bool:
    """True for a bound written by :func:`bound`.

    Args:
        v: a value read from a tracked output.

    Returns:
        Whether ``v`` is ``{"at_most": B}``.

    >>> is_bound({"at_most": 1e-8}), is_bound(1e-8)
    (True, False)
    """
    return isinstance(v, dict) and set(v) == {AT_MOST}


def upper(v: Any) -> float:
    """An upper bound of |number| for a value read from a tracked output: B for ``{"at_most": B}``,
    |v| for a float.

    Args:
        v: a float or a bound.

    Returns:
        The bound or the magnitude.

    >>> upper({"at_most": 1e-8}), upper(-2.5)
    (1e-08, 2.5)
    """
    return float(v[AT_MOST]) if is_bound(v) else abs(float(v))


def fmt(v: Any, spec: str = ".3g") -> str:
    """Text of a value or a bound: ``≤ B`` for a bound, ``format(v, spec)`` otherwise.

    Args:
        v: a float or a bound.
        spec: the format of a float.

    Returns:
        The text.

    >>> fmt({"at_most": 2e-13}), fmt(0.123456, ".2f")
    ('≤ 2e-13', '0.12')
    """
    return f"≤ {v[AT_MOST]:g}" if is_bound(v) else format(v, spec)
