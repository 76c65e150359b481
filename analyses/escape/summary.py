"""The escape study's statistics: one stall per run and cell, rates, survival, comparisons, verdicts.

Statistical unit: one stall per (run, cell), cell = (problem, kind, cause, method) — the run's
first stall of that kind and cause. Later stalls of the same run in the same cell are dropped from
every estimate (they are not independent of the first); they stay in the records and in the stall
map. Rates exclude censored stalls (Wilson 95 % intervals); escape times are survival data
(Kaplan–Meier, log-rank against GD, Holm over the methods of a cell); differences of rates to GD
and to the step-length-matched control get Newcombe 95 % intervals. Problems are never pooled.
Everything here is computed from the records alone (:mod:`analyses.escape.records`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from landscape.results import JsonResult

from ..stats import holm, kaplan_meier, logrank, median, newcombe_difference, wilson_interval
from .protocol import BASELINE, CONTROLS, MATCHED, MATCHED_FOR, NO_STALL, VARIANTS
from .records import round_finite

#: a comparison counts when its 95 % interval excludes 0 (rates) or its Holm-adjusted p < ALPHA
ALPHA = 0.05


def sig(x: Any, digits: int = 3) -> str:
    """A number for tables and verdicts.

    Args:
        x: a number or None.
        digits: significant digits.

    Returns:
        ``x`` with ``digits`` significant digits; ``"–"`` for None and non-finite values, ``"0"``
        for 0, ints (and bools) as they are. (:func:`landscape.render.fmt_num` differs only on ±inf
        and NumPy integers, which never reach the study's tables.)

    >>> sig(0.000123456), sig(None), sig(12)
    ('0.000123', '–', '12')
    """
    if x is None:
        return "–"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def stall_units(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statistical units: for every run that did not fail, its first stall of each (kind,
    cause), flattened with the run's ``problem``, ``method``, ``seed`` and ``later_in_cell`` (how
    many further stalls of that run fell in the same cell and were dropped). ``cause`` None →
    ``"unknown"``. Survival fields: ``duration`` = ``observed_steps`` and ``event`` = escaped.

    Args:
        records: the runs' records.

    Returns:
        One dict per unit: the event's fields with ``kind``, ``cause``, ``problem``, ``method``,
        ``seed``, ``later_in_cell``, ``duration`` (steps) and ``event`` (escaped).
    """
    units = []
    for r in records:
        if r.get("status") == "error":
            continue
        seen: dict[tuple[str, str], dict] = {}
        for ev in r.get("events") or []:
            cell = (ev.get("kind") or "unclassified", ev.get("cause") or "unknown")
            if cell in seen:
                seen[cell]["later_in_cell"] += 1
                continue
            seen[cell] = {**ev, "kind": cell[0], "cause": cell[1], "problem": r["problem"], "method": r["method"],
                          "seed": r["seed"], "later_in_cell": 0, "duration": ev.get("observed_steps"),
                          "event": bool(ev.get("escaped"))}
        units.extend(seen.values())
    return units


@dataclass
class SummaryRow(JsonResult):
    """One cell (problem, kind, cause, method) of the study, one stall per run.

    ``n_stalls`` units (``n_runs`` runs), of which ``n_censored`` censored (the run ended first)
    and ``n_known`` = n_stalls − n_censored with a known outcome; ``n_escaped`` (``n_by_rule`` of them
    by the rule's own accepted phase); ``escape_rate`` = n_escaped / n_known with its Wilson 95 %
    interval (``ci_low``, ``ci_high``; None when n_known = 0); ``median_escape_steps`` the
    Kaplan–Meier median (None when more than half are held); ``km_at_horizon`` S(t) at the escape
    horizon; against GD on the same (problem, kind, cause): ``rate_diff_vs_gd`` with Newcombe's 95 %
    interval (``diff_low``, ``diff_high``), ``logrank_p_vs_gd`` and its Holm adjustment over the
    methods of the cell (``holm_p_vs_gd``); ``rate_diff_vs_matched`` the same difference against
    the step-matched control; costs: ``median_cost_example_grads`` per stall (the trainer's event
    cost) and ``median_run_cost`` (per run, example-gradient units); ``median_gap``.
    """

    problem: str
    kind: str
    cause: str
    method: str
    n_stalls: int
    n_runs: int
    n_censored: int
    n_known: int
    n_escaped: int
    n_by_rule: int
    escape_rate: float | None
    ci_low: float | None
    ci_high: float | None
    median_escape_steps: float | None
    km_at_horizon: float | None
    rate_diff_vs_gd: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    logrank_p_vs_gd: float | None = None
    holm_p_vs_gd: float | None = None
    rate_diff_vs_matched: float | None = None
    matched_diff_low: float | None = None
    matched_diff_high: float | None = None
    median_cost_example_grads: float | None = None
    median_run_cost: float | None = None
    median_gap: float | None = None
    n_later_dropped: int = 0


def _med(xs: Sequence[Any]) -> float | None:
    return round_finite(median([float(x) for x in xs if x is not None]), 6)


def summarize(records: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Rows per (problem, kind, cause, method), sorted by problem, kind, cause, then the method
    order of :data:`VARIANTS`. Never pooled across problems. Runs without any stall form the kind
    :data:`NO_STALL` (cause ``"-"``, ``n_stalls`` 0). Runs that raised contribute nothing.

    Args:
        records: the runs' records.

    Returns:
        :class:`SummaryRow` per cell, comparisons against GD and the matched control filled in
        (floats rounded to 6 significant digits).
    """
    runs = {(r["problem"], r["method"], r["seed"]): r for r in records}
    cells: dict[tuple[str, str, str, str], list[dict]] = {}
    for u in stall_units(records):
        cells.setdefault((u["problem"], u["kind"], u["cause"], u["method"]), []).append(u)
    quiet: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("status") != "error" and not r.get("events"):
            quiet.setdefault((r["problem"], r["method"]), []).append(r)
    order = {m: i for i, m in enumerate(VARIANTS)}
    rows: list[SummaryRow] = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 99), k[3])):
        us = cells[key]
        known = [u for u in us if not u.get("censored")]
        k = sum(1 for u in known if u.get("escaped"))
        lo, hi = wilson_interval(k, len(known))
        km = kaplan_meier([u["duration"] for u in us], [u["event"] for u in us])
        horizon = max((u.get("escape_horizon") or 0) for u in us)
        rs = [runs[(u["problem"], u["method"], u["seed"])] for u in us]
        rows.append(SummaryRow(
            problem=key[0], kind=key[1], cause=key[2], method=key[3], n_stalls=len(us),
            n_runs=len({u["seed"] for u in us}), n_censored=len(us) - len(known), n_known=len(known), n_escaped=k,
            n_by_rule=sum(1 for u in known if u.get("escaped") and u.get("escaped_by") == "rule"),
            escape_rate=round_finite(k / len(known), 6) if known else None, ci_low=round_finite(lo, 6), ci_high=round_finite(hi, 6),
            median_escape_steps=km.median,
            # S(horizon) is estimable when some stall was followed that far, or the curve reached 0
            km_at_horizon=(round_finite(km.at(horizon), 6) if horizon and (max(u["duration"] for u in us) >= horizon
                                                                   or (km.survival and km.survival[-1] == 0))
                           else None),
            median_cost_example_grads=_med([u.get("cost_example_grads") for u in us]),
            median_run_cost=_med([r.get("cost_example_grads") for r in rs]),
            median_gap=_med([r.get("gap") for r in rs]),
            n_later_dropped=sum(u["later_in_cell"] for u in us)))
    _compare(rows, cells)
    for (problem, method), rs in sorted(quiet.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        rows.append(SummaryRow(problem=problem, kind=NO_STALL, cause="-", method=method, n_stalls=0, n_runs=len(rs),
                               n_censored=0, n_known=0, n_escaped=0, n_by_rule=0, escape_rate=None, ci_low=None,
                               ci_high=None, median_escape_steps=None, km_at_horizon=None,
                               median_run_cost=_med([r.get("cost_example_grads") for r in rs]),
                               median_gap=_med([r.get("gap") for r in rs])))
    return rows


def _compare(rows: list[SummaryRow], cells: dict[tuple, list[dict]]) -> None:
    """Fill the comparisons against GD and the matched control, Holm over the methods of a cell."""
    by_cell: dict[tuple[str, str, str], list[SummaryRow]] = {}
    for r in rows:
        by_cell.setdefault((r.problem, r.kind, r.cause), []).append(r)
    for (problem, kind, cause), rs in by_cell.items():
        ref = {r.method: r for r in rs}
        gd = ref.get(BASELINE)
        tests = []
        for r in rs:
            if gd is not None and r is not gd:
                d, lo, hi = newcombe_difference(r.n_escaped, r.n_known, gd.n_escaped, gd.n_known)
                r.rate_diff_vs_gd, r.diff_low, r.diff_high = round_finite(d, 6), round_finite(lo, 6), round_finite(hi, 6)
                a, b = cells[(problem, kind, cause, r.method)], cells[(problem, kind, cause, BASELINE)]
                lr = logrank([u["duration"] for u in a], [u["event"] for u in a],
                             [u["duration"] for u in b], [u["event"] for u in b])
                r.logrank_p_vs_gd = round_finite(lr.p_value, 6)
                tests.append(r)
            matched = ref.get(MATCHED_FOR.get(r.method, MATCHED))
            if matched is not None and r.method not in CONTROLS:
                d, lo, hi = newcombe_difference(r.n_escaped, r.n_known, matched.n_escaped, matched.n_known)
                r.rate_diff_vs_matched, r.matched_diff_low, r.matched_diff_high = round_finite(d, 6), round_finite(lo, 6), round_finite(hi, 6)
        for r, p in zip(tests, holm([r.logrank_p_vs_gd for r in tests])):
            r.holm_p_vs_gd = round_finite(p, 6)


# ---------------------------------------------------------------------------- verdicts
def _direction(low: float | None, high: float | None, more: str, less: str, same: str) -> str:
    """``more`` when a difference's confidence interval [low, high] lies above 0, ``less`` when it
    lies below, ``same`` otherwise (including an unknown bound)."""
    if low is not None and low > 0:
        return more
    if high is not None and high < 0:
        return less
    return same


def verdict(r: SummaryRow, gd: SummaryRow | None) -> str:
    """One phrase: does this method escape more often / sooner than GD in its cell.

    Args:
        r: the method's row.
        gd: GD's row in the same cell (None: GD has none).

    Returns:
        The verdict: rate (Newcombe interval excludes 0 or not), timing (log-rank, Holm p < ALPHA)
        and the comparison with the step-length-matched control.
    """
    if gd is None:
        return "no GD runs in this cell"
    if r.n_known == 0 or gd.n_known == 0:
        return "outcome unknown (every stall censored)"
    parts = [_direction(r.diff_low, r.diff_high, "escapes more often than GD", "escapes less often than GD",
                        "no detectable difference in escape rate from GD")]
    if r.holm_p_vs_gd is not None and r.holm_p_vs_gd < ALPHA:
        faster = (r.km_at_horizon or 0) < (gd.km_at_horizon or 0) or (
            r.median_escape_steps is not None and (gd.median_escape_steps is None or
                                                   r.median_escape_steps < gd.median_escape_steps))
        parts.append("sooner (log-rank, Holm p = " + sig(r.holm_p_vs_gd, 2) + ")" if faster else
                     "later (log-rank, Holm p = " + sig(r.holm_p_vs_gd, 2) + ")")
    if r.rate_diff_vs_matched is not None:
        parts.append(_direction(r.matched_diff_low, r.matched_diff_high, "and more often than the step-matched control",
                                "and less often than the step-matched control",
                                "and not detectably differently from the step-matched control"))
    return ", ".join(parts)
