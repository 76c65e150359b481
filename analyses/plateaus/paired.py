"""Paired comparisons of time to a target with censoring (the plateau study's statistics).

Every method runs from the same initialisations (one seed = one instance, the same batches for
every method), so a method and the baseline form a pair per seed. A run that does not reach the
target within the horizon is **censored** at the horizon: its time is only known to exceed it.
Nothing is imputed:

- the pairs fall into four groups: both reached, only the method, only the baseline, neither;
- the **Gehan score** of a pair is +1 when the method is certainly faster (it reached the target,
  and earlier than the baseline or the baseline never did), −1 when certainly slower, 0 when the
  two tie or neither reached (both censored at the same horizon); its mean over pairs (in
  [−1, 1]) is the paired, censoring-aware answer, with a bootstrap CI over seeds;
- the **ratio** method/baseline of the time to target, over the pairs where both reached it: the
  median with a bootstrap CI (says nothing about the censored pairs, which are counted beside it).

The bootstrap resamples seeds (pairs) with replacement, ``n_boot`` times from a seeded numpy
generator (percentile interval).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOT = 2000


def gehan_scores(t_m: Sequence[float], e_m: Sequence[bool], t_b: Sequence[float], e_b: Sequence[bool]) -> np.ndarray:
    """Per-pair Gehan scores: +1 method certainly earlier, −1 certainly later, 0 undecided or tied.

    Args:
        t_m, e_m: the method's times (steps or seconds) and whether the target was reached
            (False: censored at t_m).
        t_b, e_b: the same for the baseline.

    Returns:
        Scores, shape (n,), each in {−1, 0, 1}.

    Example:
        >>> gehan_scores([10, 50, 80, 90], [True, True, False, False], [20, 40, 70, 90], [True, True, True, False]).tolist()
        [1.0, -1.0, -1.0, 0.0]
    """
    out = np.zeros(len(t_m))
    for i, (a, ea, b, eb) in enumerate(zip(t_m, e_m, t_b, e_b)):
        if ea and eb:
            out[i] = float(np.sign(b - a))
        elif ea != eb:   # one reached the target, the other was censored at the (common) horizon
            out[i] = 1.0 if ea else -1.0
    return out


def bootstrap(values: np.ndarray, stat: Any, *, n_boot: int = N_BOOT, seed: int = 0,
              confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of ``stat`` over the rows of ``values`` (resampled with replacement).

    Args:
        values: shape (n, …); rows are the resampled units (seeds).
        stat: a function of a (n, …) array returning a float (nan where undefined).
        n_boot: resamples. seed: the generator's seed. confidence: the interval's level.

    Returns:
        (low, high), or (None, None) when fewer than 2 rows or no finite resample.

    Example:
        >>> lo, hi = bootstrap(np.arange(20.0), np.mean)
        >>> 6 < lo < 9.5 < hi < 13
        True
    """
    n = len(values)
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    if stat is np.mean and values.ndim == 1:
        res = values[idx].mean(1)
    else:
        res = np.array([stat(values[i]) for i in idx], dtype=float)
    res = res[np.isfinite(res)]
    if res.size == 0:
        return None, None
    a = (1 - confidence) / 2
    return float(np.quantile(res, a)), float(np.quantile(res, 1 - a))


def _median_log_ratio(rows: np.ndarray) -> float:
    both = rows[(rows[:, 1] > 0) & (rows[:, 3] > 0)]
    if len(both) == 0:
        return math.nan
    return float(np.median(np.log(both[:, 0] / both[:, 2])))


def paired_summary(t_m: Sequence[float], e_m: Sequence[bool], t_b: Sequence[float], e_b: Sequence[bool], *,
                   seed: int = 0, n_boot: int = N_BOOT) -> dict[str, Any]:
    """A method against the baseline over paired seeds (module docstring).

    Args:
        t_m, e_m: the method's time to target (or its horizon) and whether it reached it, per seed.
        t_b, e_b: the baseline's, same seeds in the same order.
        seed: the bootstrap's seed. n_boot: resamples.

    Returns:
        ``{"n", "both", "only_method", "only_baseline", "neither", "gehan", "gehan_ci",
        "ratio_median", "ratio_ci"}``: counts of the four groups; the mean Gehan score with its
        95 % CI (positive: the method reaches the target first more often); the median time ratio
        method/baseline over pairs where both reached it, with its CI (None where undefined).

    Example:
        >>> s = paired_summary([10, 20, 30, 40], [True] * 4, [20, 40, 60, 80], [True] * 4, n_boot=200)
        >>> s["gehan"], s["ratio_median"], s["both"]
        (1.0, 0.5, 4)
    """
    tm, tb = np.asarray(t_m, float), np.asarray(t_b, float)
    em, eb = np.asarray(e_m, bool), np.asarray(e_b, bool)
    if not (len(tm) == len(tb) == len(em) == len(eb)):
        raise ValueError("the method's and the baseline's runs must be paired (same length)")
    scores = gehan_scores(tm, em, tb, eb)
    rows = np.stack([tm, em.astype(float), tb, eb.astype(float)], 1)
    lr = _median_log_ratio(rows)
    g_ci = bootstrap(scores, np.mean, n_boot=n_boot, seed=seed)
    r_ci = bootstrap(rows, _median_log_ratio, n_boot=n_boot, seed=seed + 1)
    ex = (lambda v: None if v is None else float(math.exp(v)))  # noqa: E731
    return {"n": int(len(tm)), "both": int((em & eb).sum()), "only_method": int((em & ~eb).sum()),
            "only_baseline": int((~em & eb).sum()), "neither": int((~em & ~eb).sum()),
            "gehan": float(scores.mean()) if len(scores) else None, "gehan_ci": list(g_ci),
            "ratio_median": None if math.isnan(lr) else float(math.exp(lr)), "ratio_ci": [ex(r_ci[0]), ex(r_ci[1])]}


def verdict(rule: dict[str, Any], control: dict[str, Any] | None, name: str = "rms") -> str:
    """One sentence: does the rule beat GD, and beyond what step length explains (its control)?

    Args:
        rule: :func:`paired_summary` of the rule against GD.
        control: :func:`paired_summary` of the rule against its step-length control (None: no control).
        name: the rule's name, as the sentence starts.

    Returns:
        A sentence naming the Gehan scores and CIs it rests on.

    Example:
        >>> r = {"gehan": 0.8, "gehan_ci": [0.6, 0.95]}; c = {"gehan": 0.0, "gehan_ci": [-0.2, 0.2]}
        >>> verdict(r, c).startswith("rms reaches the target before GD")
        True
    """
    def sign(s: dict[str, Any]) -> int:
        lo, hi = s.get("gehan_ci") or [None, None]
        if lo is None or hi is None:
            return 0
        return 1 if lo > 0 else (-1 if hi < 0 else 0)

    def txt(s: dict[str, Any]) -> str:
        lo, hi = s.get("gehan_ci") or [None, None]
        g = s.get("gehan")
        if g is None:
            return "no pairs"
        return f"Gehan {g:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}]" if lo is not None else f"Gehan {g:+.2f}"

    vs_gd, vs_ctl = sign(rule), (None if control is None else sign(control))
    head = {1: f"{name} reaches the target before GD", -1: f"{name} reaches the target later than GD (or not at all)",
            0: f"{name} is not distinguishable from GD"}[vs_gd] + f" ({txt(rule)})"
    if control is None:
        return head + "; no step-length control was run."
    tail = {(1, 1): "and it also beats GD taking steps of its own length, so its direction helps beyond step length",
            (1, -1): "but GD taking steps of its length does better still, so what helps is the step length, not the rule",
            (1, 0): "and GD taking steps of its length does as well, so step length explains it",
            (0, 0): "and not from GD taking steps of its length either: no effect of the rule beyond step length",
            (0, 1): "but it beats GD taking steps of its own length: at that length its direction does better",
            (0, -1): "and GD taking steps of its length beats it: at that length GD's direction does better",
            (-1, 0): "and GD taking steps of its length fares the same, so its step length explains it",
            (-1, -1): "and GD taking steps of its length does better than it, so its direction hurts beyond step length",
            (-1, 1): "though it beats GD taking steps of its length: the step length hurts, the direction does not",
            }[(vs_gd, vs_ctl)]
    return f"{head}, {tail} ({txt(control)})."
