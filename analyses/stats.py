"""Statistics of the escape study: binomial rates, survival of stalls, multiple comparisons.

- :func:`wilson_interval` — Wilson score interval of a proportion (rates of escape over the stalls
  whose outcome is known: censored stalls are excluded, not counted as failures).
- :func:`newcombe_difference` — Newcombe's hybrid-score interval (his method 10, 1998) for the
  difference of two independent proportions (a method's escape rate minus GD's).
- :func:`kaplan_meier` — the Kaplan–Meier estimate of P(still stalled after t steps) from durations
  and event flags (escape = event; a stall whose run ended, or whose horizon ran out, is censored at
  the time observed), computed with ``lifelines``; Greenwood-based confidence bands (lifelines'
  exponential / log(-log) transform).
- :func:`logrank` — the two-sample log-rank test (``lifelines.statistics.logrank_test``).
- :func:`holm` — Holm's step-down adjustment of a family of p-values.

Independence: every function assumes independent observations. The escape study feeds them one
stall per (run, cell) — see :mod:`analyses.escape` — so that several stalls of one run never enter
one estimate.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from landscape.results import JsonResult


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
    # the exact bounds at 0/n and n/n are 0 and 1; round-off would print 2.8e-17
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95
                        ) -> tuple[float, float, float]:
    """Difference ``p1 − p2`` of two independent proportions with Newcombe's hybrid Wilson-score
    interval (Newcombe 1998, method 10): ``(diff, low, high)``; nan where a sample is empty."""
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan"), float("nan")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def median(values: Sequence[float]) -> float:
    """Median of the finite values; nan when there are none."""
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def _check_survival(durations: Sequence[float], events: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(durations, dtype=np.float64).reshape(-1)
    e = np.asarray(events, dtype=bool).reshape(-1)
    if t.shape != e.shape:
        raise ValueError(f"durations and events differ in length ({t.size} vs {e.size})")
    if t.size and (not np.isfinite(t).all() or (t < 0).any()):
        raise ValueError("durations must be finite and >= 0")
    return t, e


@dataclass
class SurvivalCurve(JsonResult):
    """Kaplan–Meier estimate of S(t) = P(escape time > t) (the share of stalls still held after t
    steps). ``times`` (k,) the distinct observed durations (steps), with ``survival`` (k,) the
    estimate just after each and ``ci_low``/``ci_high`` its pointwise band (lifelines' Greenwood
    band on the log(−log) scale) at ``confidence``; ``at_risk`` (k,) stalls still at risk just before
    each time, ``n_events`` (k,) escapes at it. ``n`` stalls, ``n_escaped``, ``n_censored``;
    ``median`` the first time S(t) ≤ ½ (None when the curve stays above ½: more than half held).
    """

    n: int
    n_escaped: int
    n_censored: int
    times: list[float]
    survival: list[float]
    ci_low: list[float]
    ci_high: list[float]
    at_risk: list[int]
    n_events: list[int]
    median: float | None
    confidence: float = 0.95

    def at(self, t: float) -> float:
        """S(t): the estimate at ``t`` steps (a right-continuous step function; 1 before the first time)."""
        s = 1.0
        for ti, si in zip(self.times, self.survival):
            if ti <= t:
                s = si
            else:
                break
        return s


def kaplan_meier(durations: Sequence[float], events: Sequence[bool], confidence: float = 0.95) -> SurvivalCurve:
    """Kaplan–Meier estimate (via ``lifelines.KaplanMeierFitter``) from ``durations`` (steps from
    the stall to its escape, or to the end of the observation for a censored stall) and ``events``
    (True: escaped then; False: censored then). ``ValueError`` for mismatched lengths or negative /
    non-finite durations; an empty sample gives an empty curve."""
    t, e = _check_survival(durations, events)
    if t.size == 0:
        return SurvivalCurve(n=0, n_escaped=0, n_censored=0, times=[], survival=[], ci_low=[], ci_high=[],
                             at_risk=[], n_events=[], median=None, confidence=confidence)
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=1 - confidence)
    kmf.fit(t, event_observed=e)
    table = kmf.event_table
    times = [float(x) for x in table.index if x > 0 or table.loc[x, "observed"] > 0]
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_survival_function_
    med = kmf.median_survival_time_
    return SurvivalCurve(
        n=int(t.size), n_escaped=int(e.sum()), n_censored=int((~e).sum()), times=times,
        survival=[float(sf.loc[x]) for x in times],
        ci_low=[float(ci.iloc[:, 0].loc[x]) for x in times], ci_high=[float(ci.iloc[:, 1].loc[x]) for x in times],
        at_risk=[int(table.loc[x, "at_risk"]) for x in times], n_events=[int(table.loc[x, "observed"]) for x in times],
        median=float(med) if math.isfinite(med) else None, confidence=confidence)


@dataclass
class LogRank(JsonResult):
    """Two-sample log-rank test: ``statistic`` (χ², 1 degree of freedom), ``p_value``; ``n_a``,
    ``n_b`` sample sizes and ``events_a``, ``events_b`` their escapes. ``p_value`` None when the test
    is undefined (an empty sample, or no escape in either)."""

    statistic: float | None
    p_value: float | None
    n_a: int
    n_b: int
    events_a: int
    events_b: int


def logrank(durations_a: Sequence[float], events_a: Sequence[bool], durations_b: Sequence[float],
            events_b: Sequence[bool]) -> LogRank:
    """Log-rank test of equal escape-time distributions (``lifelines.statistics.logrank_test``)."""
    ta, ea = _check_survival(durations_a, events_a)
    tb, eb = _check_survival(durations_b, events_b)
    out = LogRank(statistic=None, p_value=None, n_a=int(ta.size), n_b=int(tb.size), events_a=int(ea.sum()),
                  events_b=int(eb.sum()))
    if ta.size == 0 or tb.size == 0 or (ea.sum() + eb.sum()) == 0:
        return out
    from lifelines.statistics import logrank_test

    res = logrank_test(ta, tb, event_observed_A=ea, event_observed_B=eb)
    stat, p = float(res.test_statistic), float(res.p_value)
    out.statistic, out.p_value = (stat, p) if math.isfinite(stat) and math.isfinite(p) else (None, None)
    return out


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control) for ``p_values`` in their
    order; None entries (undefined tests) stay None and do not count in the family size."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: (p_values[j], j))):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out
