"""The escape study's paired statistics against hand values: the signed-rank distribution, the
Hodges–Lehmann interval, the stratified hazard ratio, least squares, and the paired comparison of
constructed records (restricted times at the horizon)."""
import itertools
import math

import pytest

from analyses.escape.analysis import compare, group_runs
from analyses.stats import bootstrap_ci, hodges_lehmann, ols_fit, signed_rank_cdf, stratified_hazard_ratio


def test_signed_rank_distribution_by_enumeration():
    for n in (1, 4, 7):
        counts = [0] * (n * (n + 1) // 2 + 1)
        for signs in itertools.product((0, 1), repeat=n):
            counts[sum(r for r, s in zip(range(1, n + 1), signs) if s)] += 1
        cum = list(itertools.accumulate(counts))
        assert list(signed_rank_cdf(n)) == pytest.approx([c / 2 ** n for c in cum], abs=1e-15)


def test_hodges_lehmann_interval_hand_values():
    # n = 8: P(T+ <= 3) = 5/256 <= 0.025 < P(T+ <= 4) = 7/256, so C = 4 (Hollander & Wolfe's table:
    # t_.025 = 33 = 36 + 1 − 4) and the interval is [W_(4), W_(33)] of the 36 Walsh averages
    d = [0.3, -0.2, 1.1, 0.7, 0.9, 1.6, 0.1, 0.5]
    walsh = sorted((d[i] + d[j]) / 2 for i in range(8) for j in range(i, 8))
    r = hodges_lehmann(d)
    assert r.estimate == pytest.approx((walsh[17] + walsh[18]) / 2)         # the median of 36
    assert (r.low, r.high) == (pytest.approx(walsh[3]), pytest.approx(walsh[32]))
    # n = 6 at 95 %: C = 1 (1/64 <= 0.025 < 2/64): the interval is [min, max]
    r6 = hodges_lehmann([2.0, -1.0, 3.0, 0.5, 4.0, 1.0])
    assert (r6.low, r6.high) == (-1.0, 4.0)
    # n = 5 at 95 %: 1/32 > 0.025, no interval; n = 0: nothing
    assert hodges_lehmann([1.0, 2, 3, 4, 5]).low is None and hodges_lehmann([]).estimate is None
    # a constant shift c: estimate c, p from the signed-rank test (all 12 positive: 2/2^12)
    r = hodges_lehmann([0.7] * 12)
    assert r.estimate == pytest.approx(0.7) and r.low == pytest.approx(0.7) and r.p_value == pytest.approx(2 / 4096)
    assert hodges_lehmann([0.0] * 7).p_value is None


def test_stratified_hazard_ratio_of_pairs_hand_value():
    # 2 runs per stratum, no censoring: the conditional likelihood is Π HR^{a first}/(1 + HR), so
    # the MLE is HR = #(a first)/#(b first): 8 to 2 here → 4 (to lifelines' Newton tolerance)
    strata = list(range(10))
    ta = [1, 2, 3, 4, 5, 6, 7, 8, 30, 40]
    tb = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    hr = stratified_hazard_ratio(strata, ta, [True] * 10, tb, [True] * 10)
    assert hr.hr == pytest.approx(4.0, rel=1e-3) and hr.low < 4.0 < hr.high and hr.n_events == 20
    # every a first: the MLE is infinite → no estimate, said so
    assert stratified_hazard_ratio(strata, [1] * 10, [True] * 10, tb, [True] * 10).hr is None


def test_least_squares_and_bootstrap():
    f = ols_fit([1.0, 2.0, 3.0, 4.0], [2.0, 2.9, 4.2, 4.9])
    # by hand: x̄ = 2.5, ȳ = 3.5, Sxy = Sxx = 5: slope 1, intercept 1; residuals 0, −0.1, 0.2, −0.1: s² = 0.06/2
    assert f.slope == pytest.approx(1.0) and f.intercept == pytest.approx(1.0)
    se = math.sqrt(0.03 / 5.0)
    assert (f.high - f.low) / 2 == pytest.approx(4.302653 * se, rel=1e-5)    # t_{0.975, 2} = 4.302653
    a = bootstrap_ci([1.0, 5.0, 2.0, 8.0], lambda v: sum(v) / len(v), n_boot=300, seed=3)
    assert a == bootstrap_ci([1.0, 5.0, 2.0, 8.0], lambda v: sum(v) / len(v), n_boot=300, seed=3)
    assert 1.0 <= a[0] < a[1] <= 8.0


def _rec(inst, method, steps, horizon=100, cost=None):
    reached = steps is not None
    return {"part": "main", "cell": "c", "instance": inst, "setting": "-", "method": method, "status": "ok",
            "reached_target": reached, "steps_to_target": steps, "horizon": horizon, "steps_run": steps or horizon,
            "cost_to_target": cost if reached else None, "cost_run": cost or 10.0 * (steps or horizon)}


def test_paired_comparison_of_records_with_restricted_times():
    # rms takes half GD's steps on 7 instances; on the 8th it misses the target (counted at the horizon 100)
    gd = [10, 20, 30, 40, 50, 60, 70, 80]
    rms = [5, 10, 15, 20, 25, 30, 35, None]
    recs = [_rec(i, "gd", s, cost=s * 64.0) for i, s in enumerate(gd)] + \
           [_rec(i, "rms", s, cost=None if s is None else s * 128.0) for i, s in enumerate(rms)]
    g = group_runs(recs, "main")
    c = compare(g, "rms", "gd")
    d = [math.log(0.5)] * 7 + [math.log(100 / 80)]
    hl = hodges_lehmann(d)
    assert c["n"] == 8 and (c["both"], c["only_a"], c["only_b"], c["neither"]) == (7, 0, 1, 0)
    assert c["log_ratio"] == pytest.approx(hl.estimate) and c["ratio"] == pytest.approx(0.5)
    assert c["low"] == pytest.approx(hl.low) and c["hazard"] is not None        # censoring → a hazard ratio too
    cost = compare(g, "rms", "gd", "cost")
    assert cost["ratio"] == pytest.approx(1.0)     # half the steps at twice the cost per step


# ---------------------------------------------------------------------------- independent references
def _signed_rank_null(n):
    """P(T+ = t) for n non-zero differences, by enumerating the 2^n sign patterns."""
    counts = {}
    for signs in itertools.product((0, 1), repeat=n):
        t = sum(r for r, s in zip(range(1, n + 1), signs) if s)
        counts[t] = counts.get(t, 0) + 1
    return {t: c / 2 ** n for t, c in counts.items()}


def _t_plus(d):
    """T+ by ranking |d| directly (no ties in these data)."""
    order = sorted(range(len(d)), key=lambda i: abs(d[i]))
    return sum(rank + 1 for rank, i in enumerate(order) if d[i] > 0)


def _two_sided_p(d):
    null, t = _signed_rank_null(len(d)), _t_plus(d)
    lower = sum(p for k, p in null.items() if k <= t)
    upper = sum(p for k, p in null.items() if k >= t)
    return min(1.0, 2 * min(lower, upper))


def test_wilcoxon_p_and_interval_against_enumeration():
    """The p-value equals the exact two-sided signed-rank p by enumeration of the sign patterns, and the
    interval is the test's inversion: shifts just inside it are not rejected at 5 %, just outside are."""
    d = [0.31, -0.12, 1.07, 0.74, 0.93, 1.58, 0.05, 0.52, -0.41, 0.66]
    r = hodges_lehmann(d)
    assert r.p_value == pytest.approx(_two_sided_p(d), rel=1e-12)
    null = _signed_rank_null(len(d))

    def rejected(theta):
        t = _t_plus([x - theta for x in d])
        lower = sum(p for k, p in null.items() if k <= t)
        upper = sum(p for k, p in null.items() if k >= t)
        return min(lower, upper) <= 0.025

    h = 1e-9
    assert not rejected(r.low + h) and rejected(r.low - h)
    assert not rejected(r.high - h) and rejected(r.high + h)
    assert r.low < r.estimate < r.high


def test_holm_against_hand_values():
    from analyses.stats import holm

    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # an undefined test does not count in the family; capped at 1
    out = holm([0.2, None, 0.6])
    assert out[1] is None and out[0] == pytest.approx(0.4) and out[2] == pytest.approx(0.6)
    assert holm([0.7, 0.9]) == pytest.approx([1.0, 1.0])


def test_stratified_hazard_ratio_with_censoring_hand_value():
    # 2 runs per stratum; only strata whose first time is an event inform the conditional likelihood:
    # a first in 6, b first in 2, and 2 strata where the first run is censored (no information) → HR = 3
    strata = list(range(10))
    ta = [1, 2, 3, 4, 5, 6, 30, 40, 5, 6]
    ea = [True] * 8 + [False, False]
    tb = [10, 11, 12, 13, 14, 15, 16, 17, 50, 60]
    eb = [True] * 10
    hr = stratified_hazard_ratio(strata, ta, ea, tb, eb)
    assert hr.hr == pytest.approx(3.0, rel=1e-3) and hr.n_events == 18
