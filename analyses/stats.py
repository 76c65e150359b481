"""Small statistics used by the benchmarks: Wilson score intervals and robust summaries."""
from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Returns ``(low, high)`` in [0, 1]; ``(nan, nan)`` when ``trials == 0``. ``confidence`` is the
    two-sided level (0.95 → z = 1.959964).
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if trials == 0:
        return float("nan"), float("nan")
    z = _normal_quantile(0.5 + confidence / 2)
    n, p = trials, successes / trials
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    """Inverse standard normal CDF (via scipy when present, else bisection on erf)."""
    try:
        from scipy.stats import norm

        return float(norm.ppf(q))
    except ImportError:  # pragma: no cover
        lo, hi = -10.0, 10.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


def median(values: Sequence[float]) -> float:
    """Median of the finite values; nan when there are none."""
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])
