"""The escape study: ``landscape escape`` — does a SynaPrune rule escape stalls more often or sooner
than gradient descent, per stall cause × kind, per problem?

Runs. A *job* trains one method *variant* (:data:`VARIANTS`: a method of :data:`synaprune.METHODS`
plus options, e.g. ``synaprune-rms@always`` = rms with ``mode="always"``) on one zoo problem
(:mod:`analyses.problems`) from ``problem.init(seed, hints["eps"])`` for ``hints["max_steps"]``
steps (``hints["quick_steps"]`` with ``--quick``), with the problem's stall detector and step size
(the same for every method, so stalls are comparable). One JSON line per run goes to
``escape.jsonl`` through :func:`analyses.sweep.run_sweep` (bit-identical whatever ``--workers``,
job order or ``--resume``; timings go to the untracked ``escape.timings.jsonl``).

Records. Every stall event carries (from the trainer's :class:`synaprune.StallEvent`): ``kind``
(of the critical point it approaches: the problem's certified kind when that point's loss is the
certified critical value, else ``nearest_critical["kind"]`` when that search converged, else the
trainer's approximate kind at the stall point, ``kind_at_stall``; ``kind_source`` says which),
``nearest_critical``, ``cause`` (``"cancelling"`` /
``"vanishing"``), ``kappa``, ``example_grad_scale`` (mean‖g_i‖) and its ratio to the run's
reference scale, ``censored`` (the run ended before the escape horizon), ``escaped``
(True / False / None when censored), ``escaped_by`` (``"rule"`` / ``"base"``), ``escape_steps``,
``cost_example_grads`` and the escape ``attempts``.

Statistical unit: one stall per (run, cell), cell = (problem, kind, cause, method) — the run's
first stall of that kind and cause. Later stalls of the same run in the same cell are dropped from
every estimate (they are not independent of the first); they stay in the records and in the stall
map. Rates exclude censored stalls (Wilson 95 % intervals); escape times are survival data
(Kaplan–Meier, log-rank against GD, Holm over the methods of a cell): :mod:`analyses.escape_report`.
"""
from __future__ import annotations

import argparse
import gzip
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.results import JsonResult

from .stats import holm, kaplan_meier, logrank, newcombe_difference, wilson_interval
from .sweep import SweepInterrupted, read_records, run_sweep

#: method variants: label -> (method of synaprune.METHODS, options)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gd": ("gd", {}), "gd-matched": ("gd-matched", {}), "sgd": ("sgd", {}), "adam": ("adam", {}),
    "pgd": ("pgd", {}), "pgd-fixed": ("pgd-fixed", {}), "ncd": ("ncd", {}), "sfn": ("sfn", {}),
    "synaprune-rms": ("synaprune-rms", {}), "synaprune-devarg": ("synaprune-devarg", {}),
    "synaprune-noise": ("synaprune-noise", {}), "synaprune-penalty": ("synaprune-penalty", {}),
    "synaprune-hebbian": ("synaprune-hebbian", {}),
    "gd-matched-devarg": ("gd-matched", {"match": "synaprune-devarg"}),
    "synaprune-rms@always": ("synaprune-rms", {"mode": "always"}),
    "synaprune-devarg@always": ("synaprune-devarg", {"mode": "always"}),
}
#: the reference method every comparison is made against, and the step-length-matched control
BASELINE, MATCHED = "gd", "gd-matched"
#: each rule's own step-length-matched control (gd-matched copies rms's first step by default)
MATCHED_FOR: dict[str, str] = {"synaprune-devarg": "gd-matched-devarg", "synaprune-devarg@always": "gd-matched-devarg"}
CONTROLS = ("gd", "gd-matched", "gd-matched-devarg")
#: the default study's methods: GD, its step-matched control, PGD (Jin et al.), the SynaPrune rules
#: at stalls and rms always on
MAIN_METHODS: tuple[str, ...] = ("gd", "gd-matched", "gd-matched-devarg", "pgd", "synaprune-rms", "synaprune-devarg",
                                 "synaprune-noise", "synaprune-rms@always")
#: the quick smoke run: few problems, fewer methods, few seeds
QUICK_PROBLEMS: tuple[str, ...] = ("deep_linear_h1_zero", "deep_linear_h2_padded", "noisy_regression")
QUICK_METHODS: tuple[str, ...] = ("gd", "gd-matched", "synaprune-rms")
QUICK_SEEDS = 4
#: 48 seeds: with one stall per run a cell has up to 48 stalls, and a Wilson 95 % interval at 48
#: has half-width ≤ 0.136 at any rate (worst at 1/2); a difference of two rates near 0 or 1 (what the
#: study meets) has a Newcombe half-width below 0.15, one of two rates near 1/2 would need ~86 —
#: the report flags every headline interval wider than HALF_WIDTH_TARGET
DEFAULT_SEEDS = 48
HALF_WIDTH_TARGET = 0.15
KEY_FIELDS = ("problem", "method", "seed")
NO_STALL = "(no stall)"
#: significant digits kept for floats in the records (removes last-bit noise from the tracked file)
RECORD_DIGITS = 10


def default_problems() -> list[str]:
    """The study's problem set: every zoo problem with a ``study`` hint (a (kind, cause) it certifies)."""
    from .problems import get_problem, list_problems

    return [n for n in list_problems() if get_problem(n).hints.get("study")]


def available_variants() -> list[str]:
    from synaprune import METHODS

    return [v for v, (m, _) in VARIANTS.items() if m in METHODS]


# ---------------------------------------------------------------------------- one run
def _fin(x: Any, digits: int = RECORD_DIGITS) -> float | None:
    """A finite float rounded to ``digits`` significant digits, or None (JSON has no nan)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _clean(v: Any) -> Any:
    """JSON-able copy with floats rounded (:func:`_fin`) and non-finite floats as None."""
    from landscape.results import to_jsonable

    v = to_jsonable(v)
    if isinstance(v, float):
        return _fin(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _attempt_record(a: Any) -> dict[str, Any]:
    d = a.to_dict() if hasattr(a, "to_dict") else dict(a)
    return _clean(d)


#: a stall is at its problem's certified critical point when the loss of the critical point it
#: approaches matches the certified value to this relative tolerance (relative to the larger of the
#: value and the loss at the model's seeded initialisation, so a value of 0 is handled)
CERTIFIED_REL_TOL = 1e-6


def event_record(ev: Any, n_steps: int, certified: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record of one trainer stall event (fields in the module docstring). Fields the
    trainer does not provide stay None; ``censored`` falls back to "not escaped and the run ended
    before the horizon", and ``escaped`` is None for a censored stall.

    ``certified`` (``{"kind", "critical_value", "scale"}``): the problem's analytic certificate.
    A stall whose nearest critical point (converged search) has the certified loss within
    :data:`CERTIFIED_REL_TOL`·max(|value|, scale) takes the certified kind (``kind_source``
    ``"certificate"``; the analytic truth outranks the numerical classifier, whose verdicts stay in
    ``kind_at_stall`` and ``nearest_critical``)."""
    rep, canc = getattr(ev, "report", None), getattr(ev, "cancellation", None)
    horizon = getattr(ev, "escape_horizon", None)
    escaped = getattr(ev, "escaped", None)
    censored = getattr(ev, "censored", None)
    if censored is None:
        censored = (not escaped) and horizon is not None and (n_steps - ev.step) < horizon
    nc = getattr(ev, "nearest_critical", None)
    if nc is not None and hasattr(nc, "to_dict"):
        nc = nc.to_dict()
    # THEORY.md §4: a stall is identified by the critical point it approaches, not by the
    # (indefinite-looking) Hessian at the stall point itself
    converged = isinstance(nc, dict) and bool(nc.get("converged"))
    kind, source = ev.kind or "unclassified", "at_stall"
    if converged and nc.get("kind"):
        kind, source = nc["kind"], "nearest_critical"
    at_cert = None
    if certified is not None and certified.get("critical_value") is not None and converged \
            and nc.get("loss") is not None:
        value = float(certified["critical_value"])
        at_cert = abs(float(nc["loss"]) - value) <= CERTIFIED_REL_TOL * max(abs(value), float(certified["scale"]))
        if at_cert:
            kind, source = certified["kind"], "certificate"
    return _clean({
        "index": ev.index, "step": ev.step, "loss": ev.loss, "grad_norm": ev.grad_norm,
        "kind": kind, "kind_source": source, "at_certified_point": at_cert,
        "kind_at_stall": ev.kind, "nearest_critical": nc,
        "cause": getattr(ev, "cause", None),
        "kappa": getattr(ev, "kappa", None) if getattr(ev, "kappa", None) is not None else getattr(canc, "kappa", None),
        "example_grad_scale": (getattr(ev, "example_grad_scale", None) if getattr(ev, "example_grad_scale", None)
                               is not None else getattr(canc, "mean_example_grad_norm", None)),
        "example_grad_scale_ratio": getattr(ev, "example_grad_scale_ratio", None),
        "cause_thresholds": getattr(ev, "cause_thresholds", None),
        "lambda_min": getattr(rep, "lambda_min", None), "morse_index": getattr(rep, "index", None),
        "censored": bool(censored), "escaped": None if censored else bool(escaped),
        "escaped_by": getattr(ev, "escaped_by", None) if not censored else None,
        "escape_steps": ev.escape_steps if escaped else None, "escape_horizon": horizon,
        "observed_steps": (getattr(ev, "observed_steps", None) if getattr(ev, "observed_steps", None) is not None
                           else ev.escape_steps if escaped else (horizon if not censored else n_steps - ev.step)),
        "resolution": getattr(ev, "resolution", None),
        "cost_example_grads": getattr(ev, "cost_example_grads", None),
        "analysis_cost_example_grads": getattr(ev, "analysis_cost_example_grads", None),
        "attempts": [_attempt_record(a) for a in (getattr(ev, "attempts", None) or [])],
        "distance_moved": getattr(ev, "distance_moved", None), "next_kind": getattr(ev, "next_kind", None),
        "next_is_final": getattr(ev, "next_is_final", None),
    })


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train ``job["method"]`` (a :data:`VARIANTS` label) on ``job["problem"]`` with
    ``job["seed"]`` for ``job["max_steps"]`` steps. Optional: ``job["options"]`` (Trainer / method
    options on top of the variant's, recorded as ``options``) and ``job["problem_options"]`` (to the
    problem's factory, recorded when given). Returns the run's record (deterministic fields
    only; wall and CPU time under ``"timing"``, which the sweep moves to its side file). Never
    raises on a failing run: ``status="error"`` and the message are recorded."""
    import torch

    from .problems import get_problem

    rec: dict[str, Any] = {k: job[k] for k in KEY_FIELDS}
    rec.update(max_steps=job["max_steps"], status="ok", error=None, events=[])
    if job.get("problem_options"):
        rec["problem_options"] = _clean(job["problem_options"])
    t0, c0 = time.perf_counter(), time.process_time()
    timing: dict[str, Any] = {}
    try:
        if job["method"] not in VARIANTS:
            raise ValueError(f"unknown method variant {job['method']!r}")
        method, vopts = VARIANTS[job["method"]]
        # built afresh: no state shared between jobs
        p = get_problem(job["problem"], **(job.get("problem_options") or {}))
        eps = p.hints.get("eps", 1e-2)
        opts = {**vopts, **(job.get("options") or {})}
        study = p.hints.get("study") or {}
        certified = None
        if study.get("critical_value") is not None:
            obj0 = p.objective(job["seed"])
            certified = {"kind": study["kind"], "critical_value": study["critical_value"],
                         "scale": abs(obj0.loss(obj0.initial_point()))}
        torch.manual_seed(job["seed"])
        tr = p.trainer(method, job["seed"], meta={"eps": eps}, **opts)
        res = tr.fit(job["max_steps"], theta0=p.init(job["seed"], eps))
        d = res.to_dict()
        rec.update(
            base_method=method, options=_clean(opts), lr=_fin(tr.lr), eps=_fin(eps), global_min=_fin(p.global_min),
            train_status=res.status, message=res.message or None, n_steps=res.n_steps,
            initial_loss=_fin(res.losses[0]) if len(res.losses) else None, final_loss=_fin(res.final_loss),
            gap=None if p.global_min is None else _fin(res.final_loss - p.global_min), final_kind=res.final_kind,
            cost_example_grads=_fin(d.get("cost_example_grads")), hvp_over_grad=_fin(d.get("hvp_over_grad")),
            n_hvp=res.n_hvp, n_classify_hvp=res.n_classify_hvp, n_per_example_grads=res.n_per_example_grads,
            n_grad_evals=res.n_grad_evals, n_minibatch_grads=res.n_minibatch_grads, n_loss_evals=res.n_loss_evals,
            method_options=_clean(d.get("method_options")),
            events=[event_record(e, res.n_steps, certified) for e in res.events])
        timing = {"train_wall_time_s": res.wall_time_s, "classify_time_s": d.get("classify_time_s")}
        if res.status == "nonfinite":
            rec["status"] = "nonfinite"
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        timing["traceback"] = traceback.format_exc(limit=6)
    rec["timing"] = {**timing, "wall_time_s": time.perf_counter() - t0, "cpu_time_s": time.process_time() - c0}
    return rec


# ---------------------------------------------------------------------------- units and summary
def stall_units(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statistical units: for every run that did not fail, its first stall of each (kind,
    cause), flattened with the run's ``problem``, ``method``, ``seed`` and ``later_in_cell`` (how
    many further stalls of that run fell in the same cell and were dropped). ``cause`` None →
    ``"unknown"``. Survival fields: ``duration`` = ``observed_steps`` and ``event`` = escaped."""
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
    from .stats import median

    return _fin(median([float(x) for x in xs if x is not None]), 6)


def summarize(records: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Rows per (problem, kind, cause, method), sorted by problem, kind, cause, then the method
    order of :data:`VARIANTS`. Never pooled across problems. Runs without any stall form the kind
    :data:`NO_STALL` (cause ``"-"``, ``n_stalls`` 0). Runs that raised contribute nothing."""
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
            escape_rate=_fin(k / len(known), 6) if known else None, ci_low=_fin(lo, 6), ci_high=_fin(hi, 6),
            median_escape_steps=km.median,
            # S(horizon) is estimable when some stall was followed that far, or the curve reached 0
            km_at_horizon=(_fin(km.at(horizon), 6) if horizon and (max(u["duration"] for u in us) >= horizon
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
                r.rate_diff_vs_gd, r.diff_low, r.diff_high = _fin(d, 6), _fin(lo, 6), _fin(hi, 6)
                a, b = cells[(problem, kind, cause, r.method)], cells[(problem, kind, cause, BASELINE)]
                lr = logrank([u["duration"] for u in a], [u["event"] for u in a],
                             [u["duration"] for u in b], [u["event"] for u in b])
                r.logrank_p_vs_gd = _fin(lr.p_value, 6)
                tests.append(r)
            matched = ref.get(MATCHED_FOR.get(r.method, MATCHED))
            if matched is not None and r.method not in CONTROLS:
                d, lo, hi = newcombe_difference(r.n_escaped, r.n_known, matched.n_escaped, matched.n_known)
                r.rate_diff_vs_matched, r.matched_diff_low, r.matched_diff_high = _fin(d, 6), _fin(lo, 6), _fin(hi, 6)
        for r, p in zip(tests, holm([r.logrank_p_vs_gd for r in tests])):
            r.holm_p_vs_gd = _fin(p, 6)


# ---------------------------------------------------------------------------- the benchmark
@dataclass
class EscapeBenchmark(JsonResult):
    """A finished study: the configuration, ``records`` (one dict per run, as in ``escape.jsonl``),
    the ``summary`` rows and the output paths (relative to ``out_dir``)."""

    problems: list[str]
    methods: list[str]
    seeds: list[int]
    max_steps: dict[str, int]
    records: list[dict[str, Any]] = field(repr=False)
    summary: list[SummaryRow]
    workers: int
    jsonl: str
    wall_time_s: float = 0.0
    outputs: list[str] = field(default_factory=list)
    out_dir: str = ""

    def to_dict(self) -> dict:
        d = super().to_dict()
        # the summary file is tracked: no timings, no paths, nothing that depends on --workers
        for k in ("records", "wall_time_s", "out_dir", "workers"):
            d.pop(k, None)
        return d

    def _path(self, name: str) -> str | None:
        return str(Path(self.out_dir) / name) if name in self.outputs else None

    @property
    def png(self) -> str | None:
        """The stall map (absolute path), for callers of the former benchmark API."""
        return self._path("stall_map.png")

    @property
    def html(self) -> str | None:
        return self._path("escape_report.html")

    @property
    def summary_md(self) -> str | None:
        return self._path("escape_summary.md")


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return out


def plan(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int], *,
         max_steps: int | None = None, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, int], list[str],
                                                                     list[str], list[int]]:
    """Validate the configuration and list the jobs (problem-major, then method, then seed).
    ``ValueError`` naming the first bad item."""
    from .problems import PROBLEMS, get_problem

    problems = list(problems) if problems else (list(QUICK_PROBLEMS) if quick else default_problems())
    avail = available_variants()
    lacking: list[str] = []
    if methods:
        methods = list(methods)
    else:  # the default list, less the variants this trainer lacks (said on stderr)
        wanted = list(QUICK_METHODS if quick else MAIN_METHODS)
        methods = [m for m in wanted if m in avail]
        lacking = [m for m in wanted if m not in avail]
    bad = [p for p in problems if p not in PROBLEMS]
    if bad:
        raise ValueError(f"unknown problem(s) {', '.join(bad)}; known: {', '.join(sorted(PROBLEMS))}")
    bad = [m for m in methods if m not in avail]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(avail)}")
    if len(set(problems)) != len(problems) or len(set(methods)) != len(methods):
        raise ValueError("a problem or method is listed twice")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"--steps must be a positive integer, got {max_steps!r}")
    seed_list = _seed_list(seeds)
    steps = {}
    for name in problems:
        h = get_problem(name).hints
        steps[name] = max_steps or int(h.get("quick_steps" if quick else "max_steps", h.get("max_steps", 1000)))
    jobs = [{"problem": p, "method": m, "seed": s, "max_steps": steps[p]}
            for p in problems for m in methods for s in seed_list]
    if lacking:
        print(f"landscape escape: note: this trainer lacks {', '.join(lacking)}; running the other default methods",
              file=sys.stderr)
    return jobs, steps, problems, methods, seed_list


def run_benchmark(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int],
                  out_dir: str | os.PathLike, *, workers: int | None = None, resume: bool = False,
                  max_steps: int | None = None, progress: bool | None = None, quick: bool = False,
                  figures: bool = True, scheduler: str | None = None, executor: Any = None,
                  log: Any = None) -> EscapeBenchmark:
    """Run every method × problem × seed (``seeds``: a count N → 0..N−1, or a list), write
    ``escape.jsonl`` and ``escape_summary.json`` to ``out_dir`` and, with ``figures``, the report
    (:func:`analyses.escape_report.build_report`). ``workers`` processes (default: cores; 1 = in this
    process), ``scheduler`` a Dask address or ``"local"``, ``executor`` any ``submit``-able executor.
    ``progress``: progress lines on stderr (None/True on, False off). Problems None →
    :func:`default_problems` (``quick``: :data:`QUICK_PROBLEMS`); methods None → :data:`MAIN_METHODS`
    (``quick``: :data:`QUICK_METHODS`). :class:`~analyses.sweep.SweepInterrupted` on Ctrl-C."""
    jobs, steps, problems, methods, seed_list = plan(problems, methods, seeds, max_steps=max_steps, quick=quick)
    workers = workers or os.cpu_count() or 1
    out = Path(out_dir)
    if resume:  # a resumed sweep must continue the same configuration
        steps_of = {tuple(j[k] for k in KEY_FIELDS): j["max_steps"] for j in jobs}
        for r in read_records(out / "escape.jsonl"):
            k = tuple(r.get(f) for f in KEY_FIELDS)
            if k in steps_of and r.get("max_steps") != steps_of[k]:
                raise ValueError(f"--resume: {out / 'escape.jsonl'} holds {'/'.join(map(str, k))} run for "
                                 f"{r.get('max_steps')} steps, this sweep asks for {steps_of[k]}; use the same --steps "
                                 "or a fresh --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    all_records = run_sweep(jobs, run_one, out / "escape.jsonl", key_fields=KEY_FIELDS, workers=workers,
                            resume=resume, desc="escape", progress=progress is not False, scheduler=scheduler,
                            executor=executor, log=log)
    wanted = {tuple(j[k] for k in KEY_FIELDS) for j in jobs}
    records = [r for r in all_records if tuple(r.get(k) for k in KEY_FIELDS) in wanted]
    write_gzip_copy(out / "escape.jsonl")
    rows = summarize(records)
    bench = EscapeBenchmark(problems=problems, methods=methods, seeds=seed_list, max_steps=steps, records=records,
                            summary=rows, workers=workers, jsonl="escape.jsonl", wall_time_s=time.perf_counter() - t0,
                            out_dir=str(out))
    if figures:
        from .escape_report import build_report

        bench.outputs = build_report(out, records=records)
    bench.save_json(out / "escape_summary.json")
    return bench


def write_gzip_copy(path: Path) -> Path:
    """``path`` + ``.gz``, byte-identical on rerun (no file name, mtime 0): the copy ``figures/`` tracks."""
    gz = path.with_name(path.name + ".gz")
    with open(gz, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh:
        fh.write(path.read_bytes())
    return gz


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of ``escape.jsonl`` or ``escape.jsonl.gz`` (a directory: whichever it holds)."""
    p = Path(path)
    if p.is_dir():
        cands = [p / "escape.jsonl", p / "escape.jsonl.gz"]
        found = [c for c in cands if c.exists()]
        if not found:
            raise FileNotFoundError(f"{p} holds neither escape.jsonl nor escape.jsonl.gz")
        p = found[0]
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if p.suffix == ".gz":
        import json

        out = []
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return out
    return read_records(p)


def load_benchmark(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``out_dir/escape.jsonl`` (complete lines only)."""
    return read_records(Path(out_dir) / "escape.jsonl")


# ---------------------------------------------------------------------------- CLI
def _csv(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _positive_int(name: str):
    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {s!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer (>= 1), got {v}")
        return v
    return conv


_SCHEDULER = re.compile(r"^(local|tcp://[^\s:/]+:\d{1,5})$")


def _scheduler(s: str) -> str:
    if not _SCHEDULER.match(s):
        raise argparse.ArgumentTypeError(f"--scheduler must be 'local' or tcp://HOST:PORT, got {s!r}")
    return s


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option whose default is a value (None defaults are
    described in the option's help text: they mean "chosen from other options")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape escape`` arguments; defaults shown by ``--help``; a bad argument is one line on
    stderr and exit code 2."""
    parser.formatter_class = _DefaultsFormatter

    def error(message: str) -> None:
        print(f"landscape escape: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]
    parser.add_argument("--problems", default=None,
                        help="comma-separated zoo problems (default: every problem with a 'study' hint; "
                             f"with --quick: {','.join(QUICK_PROBLEMS)})")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated method variants (default: {','.join(MAIN_METHODS)}; with --quick: "
                             f"{','.join(QUICK_METHODS)}); known: {','.join(VARIANTS)}")
    parser.add_argument("--seeds", type=_positive_int("--seeds"), default=None,
                        help=f"seeds per (problem, method) (default: {DEFAULT_SEEDS}; with --quick: {QUICK_SEEDS})")
    parser.add_argument("--steps", type=_positive_int("--steps"), default=None,
                        help="steps per run (default: each problem's max_steps hint, quick_steps with --quick)")
    parser.add_argument("--workers", type=_positive_int("--workers"), default=None,
                        help="worker processes (default: the number of cores)")
    parser.add_argument("--scheduler", type=_scheduler, default=None,
                        help="run on Dask: 'local' (a LocalCluster of --workers processes) or tcp://HOST:PORT "
                             "(default: the local process pool)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in OUT/escape.jsonl (default: start afresh)")
    parser.add_argument("--quick", action="store_true", help="the smoke run, about 1 minute on 2 cores (default: off)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr (default: a line every few seconds)")
    parser.add_argument("--out", default="figures/escape", help="output directory")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="rebuild every table and figure from DIR/escape.jsonl(.gz) and run nothing "
                             "(default: run the study)")


def _fail(msg: str) -> int:
    print(f"landscape escape: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.report is not None:
        d = Path(args.report)
        if not d.is_dir():
            return _fail(f"--report {d}: not a directory")
        if not any((d / n).exists() for n in ("escape.jsonl", "escape.jsonl.gz")):
            return _fail(f"--report {d}: holds neither escape.jsonl nor escape.jsonl.gz")
        from .escape_report import build_report

        outs = build_report(d)
        if not args.quiet:
            print(f"rebuilt {len(outs)} files in {d}: {', '.join(outs)}")
        return 0
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return _fail("--scheduler needs dask[distributed]: pip install 'landscape-toolkit[cluster]'")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out}: exists and is not a directory")
    try:
        plan(_csv(args.problems), _csv(args.methods), seeds, max_steps=args.steps, quick=args.quick)
    except ValueError as exc:
        return _fail(str(exc))
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        bench = run_benchmark(_csv(args.problems), _csv(args.methods), seeds, out, workers=args.workers,
                              resume=args.resume, max_steps=args.steps, quick=args.quick,
                              progress=not args.quiet, scheduler=args.scheduler, log=log)
    except SweepInterrupted as exc:
        print(f"\nlandscape escape: interrupted; {exc.n_saved} of {exc.n_total} runs are saved in {exc.path}; "
              f"run the same command with --resume to continue", file=sys.stderr, flush=True)
        return 130
    except ValueError as exc:
        return _fail(str(exc))
    if not args.quiet:
        from .escape_report import summary_markdown

        print(summary_markdown(bench.summary, bench.records))
        print(f"{len(bench.records)} runs in {bench.wall_time_s:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["escape", *sys.argv[1:]]))
