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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


# ---------------------------------------------------------------------------- paired designs
def signed_rank_cdf(n: int) -> np.ndarray:
    """The exact null distribution of the Wilcoxon signed-rank statistic T+ for n non-zero
    differences: ``cdf[k]`` = P(T+ ≤ k), k = 0 … n(n+1)/2 (each of the 2^n sign patterns equally likely).

    Args:
        n: the number of differences (≥ 0).

    Returns:
        (n(n+1)/2 + 1,) float64.

    >>> signed_rank_cdf(3).tolist()     # T+ ∈ {0, 1, 2, 3, 3, 4, 5, 6}
    [0.125, 0.25, 0.375, 0.625, 0.75, 0.875, 1.0]
    """
    M = n * (n + 1) // 2
    p = np.zeros(M + 1)
    p[0] = 1.0
    for r in range(1, n + 1):
        p[r:] = 0.5 * p[r:] + 0.5 * p[:-r].copy() if r <= M else p[r:]
        p[:r] *= 0.5
    return np.cumsum(p)


@dataclass
class PairedShift(JsonResult):
    """A paired location shift: the Hodges–Lehmann estimate of the differences' centre (the median of
    the Walsh averages (d_i + d_j)/2, i ≤ j) with the distribution-free confidence interval from the
    exact signed-rank distribution (Hollander & Wolfe, §3.2), and the Wilcoxon signed-rank p-value
    (SciPy; zero differences dropped, as Wilcoxon did). ``low``/``high`` None when n is too small
    for the level (n ≤ 5 at 95 %); ``p_value`` None when every difference is 0 or n = 0.
    ``n_zero``: differences exactly 0."""

    n: int
    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n_zero: int
    confidence: float = 0.95


def hodges_lehmann(d: Sequence[float], confidence: float = 0.95) -> PairedShift:
    """Hodges–Lehmann estimate and signed-rank confidence interval of paired differences.

    The interval is [W_(C), W_(M+1−C)] over the M = n(n+1)/2 sorted Walsh averages, C the largest
    integer with P(T+ ≤ C − 1) ≤ (1 − confidence)/2 under the exact null distribution of T+
    (:func:`signed_rank_cdf`): coverage ≥ ``confidence`` for any continuous symmetric distribution.

    Args:
        d: the differences (finite floats), e.g. log(steps_a) − log(steps_b) per instance.
        confidence: the two-sided level.

    Returns:
        :class:`PairedShift`.

    Raises:
        ValueError: a non-finite difference.

    >>> r = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> r.estimate, r.low, r.high          # n = 6: C = 1, the interval is [min, max]
    (3.5, 1.0, 6.0)
    """
    x = np.asarray(list(d), dtype=np.float64)
    if x.size and not np.isfinite(x).all():
        raise ValueError("paired differences must be finite")
    n = int(x.size)
    if n == 0:
        return PairedShift(n=0, estimate=None, low=None, high=None, p_value=None, n_zero=0, confidence=confidence)
    i, j = np.triu_indices(n)
    walsh = np.sort(0.5 * (x[i] + x[j]))
    est = float(np.median(walsh))
    cdf = signed_rank_cdf(n)
    alpha2 = (1.0 - confidence) / 2.0
    ok = np.nonzero(cdf <= alpha2 + 1e-12)[0]            # k with P(T+ ≤ k) ≤ α/2
    lo = hi = None
    if ok.size:
        C = int(ok[-1]) + 1                               # P(T+ ≤ C − 1) ≤ α/2, 1-based
        M = walsh.size
        lo, hi = float(walsh[C - 1]), float(walsh[M - C])
    n_zero = int((x == 0).sum())
    p = None
    if n - n_zero > 0:
        from scipy.stats import wilcoxon

        p = float(wilcoxon(x[x != 0]).pvalue)
    return PairedShift(n=n, estimate=est, low=lo, high=hi, p_value=p, n_zero=n_zero, confidence=confidence)


def bootstrap_ci(values: Sequence[Any], statistic: Any, *, n_boot: int = 2000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float | None, float | None]:
    """A seeded percentile bootstrap interval (resampling the units with replacement).

    Args:
        values: the units (anything ``statistic`` takes a list of).
        statistic: ``f(list of units) -> float`` (None or non-finite draws are skipped).
        n_boot: bootstrap draws.
        seed: the generator's seed (the interval is a function of the data and the seed).
        confidence: the two-sided level.

    Returns:
        ``(low, high)``; (None, None) with fewer than 2 units or no usable draw.

    >>> lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0], lambda v: sum(v) / len(v), n_boot=500, seed=1)
    >>> 1.0 <= lo <= 2.5 <= hi <= 4.0
    True
    """
    vals = list(values)
    if len(vals) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(vals), len(vals))
        v = statistic([vals[k] for k in idx])
        if v is not None and math.isfinite(v):
            out.append(v)
    if not out:
        return None, None
    a = (1 - confidence) / 2
    return float(np.quantile(out, a)), float(np.quantile(out, 1 - a))


@dataclass
class HazardRatio(JsonResult):
    """A Cox proportional-hazards ratio of reaching the target, method a over method b, stratified
    by instance (each instance its own baseline hazard: only within-instance orderings count).
    ``hr`` > 1: a reaches it sooner. None when the model cannot be fitted (no event, or a
    separation that sends the coefficient to ±∞)."""

    hr: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n_strata: int
    n_events: int


def stratified_hazard_ratio(strata: Sequence[Any], times_a: Sequence[float], events_a: Sequence[bool],
                            times_b: Sequence[float], events_b: Sequence[bool]) -> HazardRatio:
    """Cox model stratified by instance (``lifelines.CoxPHFitter(strata=...)``) with one covariate,
    "is method a": the hazard ratio of a against b with its Wald 95 % interval.

    Args:
        strata: the instance of each pair.
        times_a, events_a: a's time (steps to the target, or to its horizon) and whether it reached it.
        times_b, events_b: the same for b.

    Returns:
        :class:`HazardRatio`.
    """
    n_ev = int(sum(bool(e) for e in events_a) + sum(bool(e) for e in events_b))
    empty = HazardRatio(hr=None, low=None, high=None, p_value=None, n_strata=len(list(strata)), n_events=n_ev)
    if n_ev == 0 or len(times_a) < 2:
        return empty
    import pandas as pd
    from lifelines import CoxPHFitter

    rows = [{"s": str(s), "a": 1.0, "t": float(ta), "e": bool(ea)} for s, ta, ea in zip(strata, times_a, events_a)]
    rows += [{"s": str(s), "a": 0.0, "t": float(tb), "e": bool(eb)} for s, tb, eb in zip(strata, times_b, events_b)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(pd.DataFrame(rows), duration_col="t", event_col="e", strata=["s"])
        coef = float(cph.params_["a"])
        se = float(cph.standard_errors_["a"])
        p = float(cph.summary.loc["a", "p"])
    except Exception:  # lifelines' convergence errors: no usable estimate
        return empty
    if not (math.isfinite(coef) and math.isfinite(se)) or abs(coef) > 20 or se > 10:
        return empty
    return HazardRatio(hr=math.exp(coef), low=math.exp(coef - 1.959964 * se), high=math.exp(coef + 1.959964 * se),
                       p_value=p, n_strata=empty.n_strata, n_events=n_ev)


@dataclass
class LineFit(JsonResult):
    """Ordinary least squares y = intercept + slope·x with the t-based 95 % interval of the slope."""

    n: int
    slope: float | None
    intercept: float | None
    low: float | None
    high: float | None
    r2: float | None


def ols_fit(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> LineFit:
    """Least-squares line and the slope's t interval.

    Args:
        x, y: the points (finite).
        confidence: the two-sided level.

    Returns:
        :class:`LineFit` (slope None with fewer than 2 distinct x; interval None with fewer than 3 points).

    >>> f = ols_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    >>> f.slope, f.intercept, f.low, f.high
    (2.0, 1.0, 2.0, 2.0)
    """
    X = np.asarray(list(x), dtype=np.float64)
    Y = np.asarray(list(y), dtype=np.float64)
    n = int(X.size)
    if n < 2 or np.ptp(X) == 0:
        return LineFit(n=n, slope=None, intercept=None, low=None, high=None, r2=None)
    xm, ym = X.mean(), Y.mean()
    sxx = float(((X - xm) ** 2).sum())
    slope = float(((X - xm) * (Y - ym)).sum() / sxx)
    icpt = float(ym - slope * xm)
    res = Y - icpt - slope * X
    syy = float(((Y - ym) ** 2).sum())
    r2 = 1.0 - float((res ** 2).sum()) / syy if syy > 0 else 1.0
    lo = hi = None
    if n >= 3:
        from scipy.stats import t as student_t

        se = math.sqrt(float((res ** 2).sum()) / (n - 2) / sxx)
        q = float(student_t.ppf(0.5 + confidence / 2, n - 2))
        lo, hi = slope - q * se, slope + q * se
    return LineFit(n=n, slope=slope, intercept=icpt, low=lo, high=hi, r2=r2)
