"""The escape study's numbers, from its records alone (:mod:`analyses.escape.job`).

**Primary endpoint** (every method, stall detected or not): the steps to the instance's target.
Comparisons are **paired by instance**: for methods a and b, d_i = log(T_a,i) − log(T_b,i) with
T = steps to the target, or the horizon for a run that did not reach it (a diverged run never
will; either way the instance's horizon, common to every method, is a lower bound of its time, so
these restricted times make the estimate conservative, never a failure counted as a time). The
Hodges–Lehmann estimate of d with its signed-rank interval gives "a takes exp(d)× b's steps"; the
Wilcoxon p-values of the methods of a cell against GD get Holm's adjustment; where any run of the
pair was censored, a Cox model stratified by instance gives the hazard ratio of reaching the
target. Costs (example-gradient units) are compared the same way. Effect sizes come with
intervals; a p-value never stands alone.

**Secondary endpoint**: the Trainer's first stall event (how often a stall was detected, escaped by
the Trainer's criterion, by the rule or the base method) and the steps spent in reverted phases.

Also: the theory check (GD within the horizon, GD/theory), the sweep's fits of log(steps) on
log(theory), the κ regression, the controls and the certificates.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..problems.escape_instances import CONTROL_CELLS, MAIN_CELLS
from ..stats import bootstrap_ci, hodges_lehmann, holm, median, ols_fit, stratified_hazard_ratio
from .design import BASELINE, CONTROL_OF, METHODS, NO_REVERT

#: the comparisons of a method against GD are one family per cell (Holm)
FAMILY_ALPHA = 0.05


def _ok(r: dict[str, Any]) -> bool:
    return r.get("status") in ("ok", "nonfinite")


def group_runs(records: Sequence[dict[str, Any]], part: str) -> dict[tuple[str, int, str], dict[str, dict]]:
    """The runs of one part by (cell, instance, setting), then by method.

    Args:
        records: the study's records.
        part: ``"main"``, ``"control"``, ``"sweep"`` or ``"kappa"``.

    Returns:
        {(cell, instance, setting): {method: record}} (failed runs left out).

    >>> group_runs([{"part": "main", "cell": "c", "instance": 0, "setting": "-", "method": "gd", "status": "ok"}],
    ...            "main")
    {('c', 0, '-'): {'gd': {'part': 'main', 'cell': 'c', 'instance': 0, 'setting': '-', 'method': 'gd', 'status': 'ok'}}}
    """
    out: dict[tuple[str, int, str], dict[str, dict]] = {}
    for r in records:
        if r.get("part") == part and _ok(r):
            out.setdefault((r["cell"], r["instance"], r["setting"]), {})[r["method"]] = r
    return out


def restricted(r: dict[str, Any], measure: str = "steps") -> tuple[float, bool]:
    """A run's restricted time and whether it reached the target.

    Args:
        r: a run's record.
        measure: ``"steps"`` or ``"cost"`` (example-gradient units).

    Returns:
        (steps or cost to the target if reached, else the horizon in steps — or, for cost, the cost
        of the whole run, or its cost extrapolated to the horizon if it diverged first —, reached).

    >>> restricted({"reached_target": False, "horizon": 300, "steps_to_target": None})
    (300.0, False)
    """
    if r.get("reached_target"):
        return float(r["steps_to_target"] if measure == "steps" else r["cost_to_target"]), True
    if measure == "steps":
        return float(r["horizon"]), False
    steps = max(1, int(r.get("steps_run") or 1))
    return float(r["cost_run"]) * max(1.0, r["horizon"] / steps), False


def compare(groups: dict[tuple, dict[str, dict]], a: str, b: str, measure: str = "steps") -> dict[str, Any]:
    """Paired comparison of method ``a`` against ``b`` over the units both ran (module docstring).

    Args:
        groups: :func:`group_runs` of one cell.
        a, b: method labels.
        measure: ``"steps"`` or ``"cost"``.

    Returns:
        ``n``, the counts ``both``/``only_a``/``only_b``/``neither`` reached, the Hodges–Lehmann
        ``log_ratio`` (a over b) with ``low``/``high`` and ``p``; ``ratio`` = exp(log_ratio) with
        ``ratio_low``/``ratio_high``; ``hazard`` (stratified Cox, a over b) when any run of the pairs
        missed the target; ``units`` the pairs' keys.
    """
    keys = [k for k in sorted(groups) if a in groups[k] and b in groups[k]]
    da, db = [restricted(groups[k][a], measure) for k in keys], [restricted(groups[k][b], measure) for k in keys]
    d = [math.log(x[0]) - math.log(y[0]) for x, y in zip(da, db)]
    hl = hodges_lehmann(d)
    out: dict[str, Any] = {
        "a": a, "b": b, "measure": measure, "n": len(keys),
        "both": sum(x[1] and y[1] for x, y in zip(da, db)), "only_a": sum(x[1] and not y[1] for x, y in zip(da, db)),
        "only_b": sum(y[1] and not x[1] for x, y in zip(da, db)),
        "neither": sum(not x[1] and not y[1] for x, y in zip(da, db)),
        "log_ratio": hl.estimate, "low": hl.low, "high": hl.high, "p": hl.p_value, "n_zero": hl.n_zero,
        "ratio": None if hl.estimate is None else math.exp(hl.estimate),
        "ratio_low": None if hl.low is None else math.exp(hl.low),
        "ratio_high": None if hl.high is None else math.exp(hl.high), "hazard": None}
    if measure == "steps" and any(not x[1] or not y[1] for x, y in zip(da, db)):
        out["hazard"] = stratified_hazard_ratio([f"{k}" for k in keys], [x[0] for x in da], [x[1] for x in da],
                                                [y[0] for y in db], [y[1] for y in db]).to_dict()
    return out


def _median(xs: Sequence[Any]) -> float | None:
    v = median([float(x) for x in xs if x is not None])
    return None if not math.isfinite(v) else v


def method_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One method in one cell: how many reached the target, diverged, median steps and cost (of
    those that reached it), median steps/theory, the secondary endpoint and the revert overhead.

    Args:
        runs: the method's records in the cell.

    Returns:
        A dict of counts and medians.
    """
    reached = [r for r in runs if r.get("reached_target")]
    stalls = [r["first_stall"] for r in runs if r.get("first_stall")]
    known = [s for s in stalls if not s.get("censored")]
    return {
        "n": len(runs), "reached": len(reached), "diverged": sum(r.get("status") == "nonfinite" for r in runs),
        "median_steps": _median([r["steps_to_target"] for r in reached]),
        "median_cost": _median([r["cost_to_target"] for r in reached]),
        "median_own_cost": _median([r["own_cost_to_target"] for r in reached]),
        "median_steps_over_theory": _median([r["steps_to_target"] / r["theory_steps"] for r in reached
                                             if r.get("theory_steps")]),
        "stall_detected": len(stalls), "stall_escaped": sum(bool(s.get("escaped")) for s in known),
        "stall_known": len(known), "escaped_by_rule": sum(s.get("escaped_by") == "rule" for s in known),
        "median_stall_step": _median([s["step"] for s in stalls]),
        "median_stall_escape_steps": _median([s["escape_steps"] for s in known if s.get("escaped")]),
        "runs_with_revert": sum((s.get("reverted_steps") or 0) > 0 for s in stalls),
        "median_reverted_steps": _median([s.get("reverted_steps") or 0 for s in stalls]),
        "total_reverted_steps": int(sum(s.get("reverted_steps") or 0 for s in stalls)),
    }


def censoring(groups: dict[tuple, dict[str, dict]]) -> dict[str, int]:
    """How many runs of a cell have no time to the target: stopped at the horizon (censored: their
    time is only known to exceed it) or diverged (they never reach it; counted at the horizon too).

    Args:
        groups: :func:`group_runs` of one cell.

    Returns:
        ``{"runs", "censored", "diverged"}``.

    >>> censoring({("c", 0, "-"): {"gd": {"reached_target": True}, "rms": {"reached_target": False,
    ...                                                                  "status": "nonfinite"}}})
    {'runs': 2, 'censored': 0, 'diverged': 1}
    """
    runs = [r for g in groups.values() for r in g.values()]
    missed = [r for r in runs if not r.get("reached_target")]
    div = sum(r.get("status") == "nonfinite" for r in missed)
    return {"runs": len(runs), "censored": len(missed) - div, "diverged": div}


def _beats(c: dict[str, Any] | None, alpha: float = FAMILY_ALPHA) -> bool:
    """a is faster than b: the ratio's 95 % interval lies below 1 and the Holm-adjusted p < alpha."""
    return bool(c and c.get("ratio_high") is not None and c["ratio_high"] < 1.0
                and c.get("p_holm") is not None and c["p_holm"] < alpha)


#: the fewest paired instances with a 95 % signed-rank interval (n = 6: 1/64 ≤ 0.025)
MIN_PAIRS = 6


def verdict(ca: dict[str, Any]) -> dict[str, Any]:
    """The cell's answer to the seed's question — does a SynaPrune rule reach the target sooner than
    GD, with step length and cost controlled? — from its paired comparisons.

    A rule *beats* a method when its steps ratio's 95 % interval lies below 1 and its Wilcoxon p,
    Holm-adjusted within its family (the cell's methods against GD; the cell's rules against their own
    length-matched controls), is below :data:`FAMILY_ALPHA`. The answer is ``"yes"`` when some rule
    beats both GD and its own whole-phase length-matched control, ``"length"`` when rules beat GD but
    none beats its control (the gain is the step length), ``"no"`` when none is detectably faster than
    GD, and ``"undetermined"`` with fewer than :data:`MIN_PAIRS` paired instances or when the design
    cannot detect anything (``powerless``: k·2^(1−n) ≥ α, the smallest exact signed-rank p of n pairs
    after Holm over the k comparisons with GD).

    Args:
        ca: :func:`cell_analysis` of a main cell (its ``vs_gd`` and ``vs_control``).

    Returns:
        ``answer``, ``rule`` (the rule the sentence is about: the best that beats both, else the fastest
        against GD), ``control`` (its control), ``n`` (paired instances), ``family`` (k), ``powerless``,
        ``beats_gd`` and ``beats_control`` (the rules that do).

    >>> c = lambda r, lo, hi, p: {"ratio": r, "ratio_low": lo, "ratio_high": hi, "p": p, "p_holm": p, "n": 8}
    >>> ca = {"n_instances": 8, "vs_gd": {"rms": {"steps": c(0.4, 0.3, 0.5, 0.01)}},
    ...       "vs_control": {"rms": {"control": "len-rms", "steps": c(1.0, 0.9, 1.1, 0.9)}}}
    >>> verdict(ca)["answer"]
    'length'
    """
    vs_gd, vs_c = ca.get("vs_gd") or {}, ca.get("vs_control") or {}
    rules = [r for r in CONTROL_OF if r in vs_gd]
    n = min((vs_gd[r]["steps"].get("n") or 0 for r in rules), default=0)
    beats_gd = [r for r in rules if _beats(vs_gd[r]["steps"])]
    beats_c = [r for r in rules if r in vs_c and _beats(vs_c[r]["steps"])]
    both = [r for r in beats_gd if r in beats_c]

    def ratio(c: dict[str, Any]) -> float:
        return c["ratio"] if c.get("ratio") is not None else math.inf

    k = max(1, sum(c["steps"].get("p") is not None for c in vs_gd.values()))
    # the exact two-sided signed-rank test's smallest p is 2/2^n; Holm multiplies it by the family size
    powerless = k * 2.0 ** (1 - n) >= FAMILY_ALPHA
    if not rules or n < MIN_PAIRS or powerless:
        answer = "undetermined"
        rule = min(rules, key=lambda r: ratio(vs_gd[r]["steps"])) if rules else None
    elif both:
        answer, rule = "yes", min(both, key=lambda r: ratio(vs_c[r]["steps"]))
    else:
        answer = "length" if beats_gd else "no"
        rule = min(beats_gd or rules, key=lambda r: ratio(vs_gd[r]["steps"]))
    return {"answer": answer, "rule": rule, "control": CONTROL_OF.get(rule) if rule else None, "n": n,
            "family": k, "powerless": bool(rules) and powerless, "beats_gd": beats_gd, "beats_control": beats_c}


def cell_analysis(records: Sequence[dict[str, Any]], cell: str, part: str = "main") -> dict[str, Any]:
    """Everything about one cell: per-method summaries, every method against GD (steps and cost,
    Holm over the cell's methods), every rule against its length-matched control and its no-revert
    variant.

    Args:
        records: the study's records.
        cell: the cell.
        part: ``"main"`` or ``"control"``.

    Returns:
        ``methods`` {label: summary}, ``vs_gd`` {label: {"steps", "cost"}}, ``vs_control``
        {rule: {"control", "steps", "cost"}} (Holm over the cell's rules), ``vs_revert`` {rule:
        comparison of the no-revert variant against the rule}, ``censoring`` (:func:`censoring`),
        ``verdict`` (:func:`verdict`), ``n_instances``.
    """
    groups = {k: v for k, v in group_runs(records, part).items() if k[0] == cell}
    labels = [m for m in METHODS if any(m in g for g in groups.values())]
    out: dict[str, Any] = {"cell": cell, "n_instances": len(groups),
                           "methods": {m: method_summary([g[m] for g in groups.values() if m in g]) for m in labels}}
    if part != "main" or BASELINE not in labels:
        return out
    vs = {m: {"steps": compare(groups, m, BASELINE), "cost": compare(groups, m, BASELINE, "cost")}
          for m in labels if m != BASELINE}
    for m, p in zip(vs, holm([vs[m]["steps"]["p"] for m in vs])):
        vs[m]["steps"]["p_holm"] = p
    out["vs_gd"] = vs
    out["vs_control"] = {r: {"control": c, "steps": compare(groups, r, c), "cost": compare(groups, r, c, "cost")}
                         for r, c in CONTROL_OF.items() if r in labels and c in labels}
    # the rule-vs-own-control comparisons are a second family (Holm within the cell)
    for r, p in zip(out["vs_control"], holm([v["steps"]["p"] for v in out["vs_control"].values()])):
        out["vs_control"][r]["steps"]["p_holm"] = p
    out["censoring"] = censoring(groups)
    out["verdict"] = verdict(out)
    out["vs_revert"] = {r: compare(groups, v, r) for r, v in NO_REVERT.items() if r in labels and v in labels}
    return out


def theory_check(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """GD against the theory, per main cell: the share of instances where GD reached the target
    within the horizon, and GD's steps / theory (median, range).

    Args:
        records: the study's records.

    Returns:
        {cell: {"n", "reached", "ratio_median", "ratio_min", "ratio_max", "horizon_mult"}}.
    """
    out = {}
    for cell in MAIN_CELLS:
        gd = [r for r in records if r.get("part") == "main" and r["cell"] == cell and r["method"] == BASELINE and _ok(r)]
        if not gd:
            continue
        ratios = [r["steps_to_target"] / r["theory_steps"] for r in gd if r.get("reached_target") and r.get("theory_steps")]
        out[cell] = {"n": len(gd), "reached": sum(bool(r.get("reached_target")) for r in gd),
                     "ratio_median": _median(ratios), "ratio_min": min(ratios, default=None),
                     "ratio_max": max(ratios, default=None),
                     "horizon_mult": _median([r["horizon"] / r["theory_steps"] for r in gd if r.get("theory_steps")])}
    return out


def sweep_fits(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sweep: per W = 0 saddle and method, the least-squares fit of log(steps to target) on
    log(theory steps) over the runs that reached the target (the others are counted, not fitted).

    Args:
        records: the study's records.

    Returns:
        {cell: {method: {"fit": LineFit dict, "n_runs", "n_missed", "points": [[theory, steps], …]}}}.
    """
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("part") != "sweep" or not _ok(r) or not r.get("theory_steps"):
            continue
        d = out.setdefault(r["cell"], {}).setdefault(r["method"], {"points": [], "n_runs": 0, "n_missed": 0})
        d["n_runs"] += 1
        if r.get("reached_target") and r["steps_to_target"] > 0:
            d["points"].append([r["theory_steps"], r["steps_to_target"]])
        else:
            d["n_missed"] += 1
    for cell in out:
        for m, d in out[cell].items():
            pts = d["points"]
            d["fit"] = ols_fit([math.log(p[0]) for p in pts], [math.log(p[1]) for p in pts]).to_dict()
    return out


def kappa_regression(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The seed's hypothesis at one saddle per cell: the paired log-ratio of each rule's steps against
    its length-matched control (and against GD) regressed on log10(1/κ) at the start, κ varied by label
    noise orthogonal to the inputs. A slope < 0 for "rule vs control" with its interval below 0 would
    mean the advantage left after matching grows as the per-example gradients cancel more. Only pairs
    where both runs reached the target are fitted (a restricted time is no time: two diverged runs would
    give a ratio of 1); the others are counted in ``missed`` (``a_only``: the rule missed and its
    comparison reached the target; ``b_only``; ``both``).

    Args:
        records: the study's records.

    Returns:
        {cell: {"levels" (noise level → κ at the start), "comparisons" {name: {"fit" (OLS),
        "slope_boot" (a seeded bootstrap interval over the starts), "points" [[log10(1/κ), log ratio], …],
        "n_starts", "missed", "x_range" (the fitted log10(1/κ))}}}}.
    """
    out: dict[str, Any] = {}
    pairs = [(r, CONTROL_OF[r]) for r in ("rms", "devarg", "rms@always")] + [(r, BASELINE) for r in ("rms", "devarg")]
    for (cell, inst, setting), g in sorted(group_runs(records, "kappa").items()):
        d = out.setdefault(cell, {"levels": {}, "comparisons": {}, "_pts": {}})
        k = next((r.get("kappa_start") for r in g.values() if r.get("kappa_start") is not None), None)
        if k is not None:
            d["levels"][setting.split("_r")[0]] = k
        for a, b in pairs:
            if a not in g or b not in g or not g[a].get("kappa_start"):
                continue
            ra, rb = bool(g[a].get("reached_target")), bool(g[b].get("reached_target"))
            missed = d.setdefault("_missed", {}).setdefault(f"{a} vs {b}", {"a_only": 0, "b_only": 0, "both": 0})
            if not (ra and rb):
                # a time restricted at the horizon is no time: two diverged runs would give a ratio of 1
                missed["both" if not (ra or rb) else "a_only" if not ra else "b_only"] += 1
                continue
            y = math.log(g[a]["steps_to_target"]) - math.log(g[b]["steps_to_target"])
            x = math.log10(1.0 / g[a]["kappa_start"])
            d["_pts"].setdefault(f"{a} vs {b}", {}).setdefault(setting.rsplit("_r", 1)[1], []).append([x, y])

    def slope(reps: list[list[list[float]]]) -> float | None:
        flat = [p for rep in reps for p in rep]
        return ols_fit([p[0] for p in flat], [p[1] for p in flat]).slope

    for cell, d in out.items():
        missed_all = d.pop("_missed", {})
        for name, by_rep in d.pop("_pts").items():
            pts = [p for k in sorted(by_rep) for p in by_rep[k]]
            if len(pts) < 3:
                continue
            lo, hi = bootstrap_ci([by_rep[k] for k in sorted(by_rep)], slope, n_boot=1000, seed=23)
            a, b = name.split(" vs ")
            missed = missed_all.get(name, {"a_only": 0, "b_only": 0, "both": 0})
            xs = [p[0] for p in pts]
            d["comparisons"][name] = {"a": a, "b": b, "fit": ols_fit(xs, [p[1] for p in pts]).to_dict(),
                                      "slope_boot": [lo, hi], "points": pts, "n_starts": len(by_rep),
                                      "missed": missed, "x_range": [min(xs), max(xs)]}
    return out


def control_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The controls (minima): per cell and method, how many runs reached the target (below a spurious
    minimum; none exists below a global one), diverged, were declared escaped by the Trainer's stall
    criterion, and the median excess of the final loss over the minimum's value.

    Args:
        records: the study's records.

    Returns:
        {cell: {method: {...}}}.
    """
    out: dict[str, Any] = {}
    for cell in CONTROL_CELLS:
        runs = [r for r in records if r.get("part") == "control" and r["cell"] == cell and _ok(r)]
        for m in METHODS:
            rs = [r for r in runs if r["method"] == m]
            if not rs:
                continue
            val = [r["instance_info"]["stall_value"] for r in rs]
            out.setdefault(cell, {})[m] = {
                "n": len(rs), "reached": sum(bool(r.get("reached_target")) for r in rs),
                "diverged": sum(r.get("status") == "nonfinite" for r in rs),
                "stall_escaped": sum(bool((r.get("first_stall") or {}).get("escaped")) for r in rs),
                "median_excess": _median([(r["final_loss"] - v) / max(abs(v), 1e-12) if r.get("final_loss") is not None
                                          else None for r, v in zip(rs, val)])}
    return out


def certificates(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The certificates of the main instances (GD's records) and the classifier's agreement with them.

    Args:
        records: the study's records.

    Returns:
        {cell: {"n", "closed_form_ok", "cause_ok", "classifier_at_point_agrees", "classifier_kinds",
        "nearest_agrees", "nearest_kinds", "n_nearest"}}.
    """
    out = {}
    for cell in MAIN_CELLS:
        gd = [r for r in records if r.get("part") == "main" and r["cell"] == cell and r["method"] == BASELINE and _ok(r)]
        if not gd:
            continue
        certs = [(r.get("instance_info") or {}).get("certificate") or {} for r in gd]
        at = [(r.get("classifier_at_stall_point") or {}).get("kind") for r in gd]
        near = [((r.get("first_stall") or {}).get("nearest_critical") or {}) for r in gd]
        near_kinds = [n.get("kind") for n in near if n.get("converged")]
        kinds: dict[str, int] = {}
        for k in at:
            kinds[str(k)] = kinds.get(str(k), 0) + 1
        nk: dict[str, int] = {}
        for k in near_kinds:
            nk[str(k)] = nk.get(str(k), 0) + 1
        out[cell] = {"n": len(gd), "closed_form_ok": sum(bool(c.get("closed_form_ok")) for c in certs),
                     "kind_ok": sum(c.get("kind") == gd[0]["kind"] for c in certs),
                     "cause_ok": sum(c.get("cause") == gd[0]["cause"] for c in certs),
                     "classifier_at_point_agrees": sum(k == gd[0]["kind"] for k in at), "classifier_kinds": kinds,
                     "n_nearest": len(near_kinds), "nearest_agrees": sum(k == gd[0]["kind"] for k in near_kinds),
                     "nearest_kinds": nk}
    return out


def analyse(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every number of the report.

    Args:
        records: the study's records.

    Returns:
        ``cells`` (:func:`cell_analysis` per main cell), ``controls``, ``theory``, ``sweep``,
        ``kappa``, ``certificates``, ``n_runs``, ``n_failed``.
    """
    return {"cells": {c: cell_analysis(records, c) for c in MAIN_CELLS
                      if any(r.get("part") == "main" and r["cell"] == c for r in records)},
            "controls": control_summary(records), "theory": theory_check(records), "sweep": sweep_fits(records),
            "kappa": kappa_regression(records), "certificates": certificates(records), "n_runs": len(records),
            "n_failed": sum(r.get("status") == "error" for r in records)}
