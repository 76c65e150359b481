"""Survival statistics of the escape study against hand computations and published values."""
import math

import numpy as np
import pytest

from analyses.stats import holm, kaplan_meier, logrank, newcombe_difference, wilson_interval


def test_kaplan_meier_matches_the_hand_computed_product_limit():
    # durations 1 2 2+ 3 4+ 5 (+ = censored). Product limit, by hand:
    # t=1: 6 at risk, 1 event -> 5/6; t=2: 5 at risk, 1 event (the censored 2 leaves after) -> 5/6·4/5 = 2/3;
    # t=3: 3 at risk -> 2/3·2/3 = 4/9; t=4: censored, no step; t=5: 1 at risk, 1 event -> 0.
    km = kaplan_meier([1, 2, 2, 3, 4, 5], [True, True, False, True, False, True])
    assert (km.n, km.n_escaped, km.n_censored) == (6, 4, 2)
    assert km.times == [1, 2, 3, 4, 5]
    assert km.survival == pytest.approx([5 / 6, 2 / 3, 4 / 9, 4 / 9, 0.0], rel=1e-12)
    assert km.at_risk == [6, 5, 3, 2, 1] and km.n_events == [1, 1, 1, 0, 1]
    assert km.median == 3  # first time S <= 1/2
    assert km.at(0.5) == 1.0 and km.at(2.5) == pytest.approx(2 / 3) and km.at(99) == 0.0
    # Greenwood variance at t = 2 on the log(-log) scale (lifelines' band): by hand
    s = 2 / 3
    var = (1 / (6 * 5) + 1 / (5 * 4)) / math.log(s) ** 2
    z = 1.959963984540054
    lo, hi = s ** math.exp(z * math.sqrt(var)), s ** math.exp(-z * math.sqrt(var))
    assert km.ci_low[1] == pytest.approx(lo, rel=1e-9) and km.ci_high[1] == pytest.approx(hi, rel=1e-9)


def test_kaplan_meier_all_censored_and_empty_and_bad_input():
    km = kaplan_meier([10, 20], [False, False])
    assert km.survival == [1.0, 1.0] and km.median is None and km.n_escaped == 0
    assert kaplan_meier([], []).n == 0
    with pytest.raises(ValueError, match="length"):
        kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match=">= 0"):
        kaplan_meier([-1], [True])


def _logrank_by_hand(ta, ea, tb, eb):
    """Σ (O_a − E_a) and its hypergeometric variance over the distinct event times."""
    t = np.concatenate([ta, tb]).astype(float)
    e = np.concatenate([ea, eb]).astype(bool)
    g = np.concatenate([np.zeros(len(ta)), np.ones(len(tb))])
    o_e, var = 0.0, 0.0
    for u in np.unique(t[e]):
        risk = t >= u
        n, na = risk.sum(), (risk & (g == 0)).sum()
        d = (e & (t == u)).sum()
        da = (e & (t == u) & (g == 0)).sum()
        o_e += da - d * na / n
        if n > 1:
            var += d * (na / n) * (1 - na / n) * (n - d) / (n - 1)
    return o_e ** 2 / var


def test_logrank_matches_the_hand_formula():
    ta, ea = [3, 5, 7, 9, 12, 15], [1, 1, 0, 1, 1, 0]
    tb, eb = [6, 8, 10, 14, 16, 20, 22], [1, 0, 1, 1, 0, 1, 0]
    res = logrank(ta, ea, tb, eb)
    chi2 = _logrank_by_hand(np.array(ta), np.array(ea), np.array(tb), np.array(eb))
    assert res.statistic == pytest.approx(chi2, rel=1e-10)
    from scipy.stats import chi2 as chi2_dist

    assert res.p_value == pytest.approx(float(chi2_dist.sf(chi2, 1)), rel=1e-10)
    assert (res.n_a, res.n_b, res.events_a, res.events_b) == (6, 7, 4, 4)
    none = logrank([5, 6], [0, 0], [7], [0])  # no event at all: undefined, not 0 or nan
    assert none.p_value is None and none.statistic is None


def test_holm_known_values_and_none_entries():
    # Holm (1979): sorted p 0.01, 0.03, 0.04 with m = 3 -> 0.03, 0.06, 0.06 (monotone step-down)
    assert holm([0.04, 0.01, None, 0.03]) == pytest.approx([0.06, 0.03, None, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]


def test_wilson_exact_ends_and_newcombe_published_example():
    assert wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))  # 0 exactly, not 2.8e-17
    assert wilson_interval(4, 4)[1] == 1.0
    # Newcombe (1998), Statistics in Medicine 17, Table II, 56/70 − 48/80: method 10 gives (0.0524, 0.3339)
    d, lo, hi = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert all(math.isnan(x) for x in newcombe_difference(1, 0, 1, 3))
