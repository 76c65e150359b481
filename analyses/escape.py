"""The escape benchmark: ``landscape escape`` — every method × problem × seed through the trainer.

Each run trains one method of :data:`synaprune.METHODS` on one zoo problem (:mod:`analyses.problems`)
from ``problem.init(seed, hints["eps"])`` for ``hints["max_steps"]`` steps (``hints["quick_steps"]``
with ``--quick``), with the problem's own stall detector (``hints["stall"]``, the same for every
method, so stalls are comparable) and learning rate ``hints["lr"]`` (``adam`` and ``sfn`` keep
their own defaults, 1e-3 and 1.0: a step size tuned for GD means nothing to them). One JSON line
per run streams to ``escape.jsonl`` (:func:`analyses.sweep.run_sweep`; ``--resume`` skips the
finished (problem, method, seed) triples): the stall events with kind, κ, λ_min, escape outcome and
time, next kind; final loss, gap to L*, wall time and cost counters; ``status``/``error`` (a run
that raises is recorded, not fatal).

The summary groups stall events by (stall kind × method): number of stalls, escape rate with a
Wilson 95 % interval, median escape time (steps, escaped stalls only), median final gap to L* and
median cost of the runs the stalls belong to. Outputs in ``--out`` (default ``figures/escape``):
``escape.jsonl``, ``escape_summary.json``, ``escape_summary.md``, ``escape_outcome.png`` and
``escape_outcome.html`` (escape outcome against κ and against λ_min at the stall).
"""
from __future__ import annotations

import argparse
import html as _html
import math
import os
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.render import symlog
from landscape.results import JsonResult

from .stats import median, wilson_interval
from .sweep import read_records, run_sweep

#: the reduced benchmark (``landscape study`` and ``--quick``): a non-strict saddle (deep linear
#: H = 2 near W = 0), a strict saddle, the autoencoder, and the noisy-regression control.
QUICK_PROBLEMS: tuple[str, ...] = ("deep_linear_h2_zero", "deep_linear_h2_saddle", "autoencoder", "noisy_regression")
#: every method of the trainer
QUICK_METHODS: tuple[str, ...] = ("gd", "sgd", "adam", "pgd", "ncd", "sfn", "synaprune-rms", "synaprune-devarg",
                                  "synaprune-noise", "synaprune-penalty", "synaprune-hebbian")
QUICK_SEEDS = 2
DEFAULT_SEEDS = 20
KEY_FIELDS = ("problem", "method", "seed")
#: summary pseudo-kind of the runs that never stalled
NO_STALL = "(no stall)"
#: cheaper settings of the two Hessian-based baselines in the reduced benchmark (``quick``): a
#: looser, shorter Lanczos for NCD's curvature test and an 8-dimensional Krylov space for SFN
#: (defaults: tol 1e-6 / no iteration cap, 20 dimensions); they halve its cost on these small
#: problems. The full benchmark uses the defaults. Recorded per run as ``method_options``.
QUICK_METHOD_OPTIONS: dict[str, dict[str, Any]] = {"ncd": {"lanczos_tol": 1e-3, "lanczos_max_iter": 10},
                                                   "sfn": {"krylov_dim": 8}}


def default_problems() -> list[str]:
    """Every zoo problem that carries benchmark hints (``max_steps`` and ``stall``)."""
    from .problems import get_problem, list_problems

    return [n for n in list_problems() if {"max_steps", "stall"} <= set(get_problem(n).hints)]


# ---------------------------------------------------------------------------- one run
_PROBLEM_CACHE: dict[str, Any] = {}


def _problem(name: str) -> Any:
    from .problems import get_problem

    if name not in _PROBLEM_CACHE:
        _PROBLEM_CACHE[name] = get_problem(name)
    return _PROBLEM_CACHE[name]


def _fin(x: Any) -> float | None:
    """A finite float or None (JSON has no nan)."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _event_record(ev: Any) -> dict[str, Any]:
    rep, canc = ev.report, ev.cancellation
    return {
        "index": ev.index, "step": ev.step, "loss": _fin(ev.loss), "grad_norm": _fin(ev.grad_norm),
        "kind": ev.kind or "unclassified",
        "kappa": _fin(getattr(canc, "kappa", None)),
        "lambda_min": _fin(getattr(rep, "lambda_min", None)),
        "morse_index": getattr(rep, "index", None),
        "escaped": bool(ev.escaped), "escape_steps": ev.escape_steps,
        "escape_accepted": ev.escape_accepted, "n_attempts": len(ev.attempts),
        "distance_moved": _fin(ev.distance_moved), "next_kind": ev.next_kind,
        "next_is_final": ev.next_is_final,
    }


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train ``job["method"]`` on ``job["problem"]`` with ``job["seed"]`` for ``job["max_steps"]``
    steps; returns the run's record (never raises: a failure gives ``status="error"``)."""
    import torch

    rec: dict[str, Any] = {k: job[k] for k in KEY_FIELDS}
    rec.update(max_steps=job["max_steps"], status="ok", error=None, events=[])
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        p = _problem(job["problem"])
        eps = p.hints.get("eps", 1e-2)
        opts = {**(p.hints.get("method_options") or {}).get(job["method"], {}), **(job.get("options") or {})}
        rec["method_options"] = opts
        torch.manual_seed(job["seed"])
        tr = p.trainer(job["method"], job["seed"], meta={"eps": eps}, **(job.get("options") or {}))
        res = tr.fit(job["max_steps"], theta0=p.init(job["seed"], eps))
        gap = None if p.global_min is None else _fin(res.final_loss - p.global_min)
        rec.update(
            lr=tr.lr, eps=eps, global_min=p.global_min, train_status=res.status, message=res.message or None,
            n_steps=res.n_steps, initial_loss=_fin(res.losses[0]) if len(res.losses) else None,
            final_loss=_fin(res.final_loss), gap=gap, final_kind=res.final_kind,
            n_hvp=res.n_hvp, n_classify_hvp=res.n_classify_hvp, n_per_example_grads=res.n_per_example_grads,
            n_grad_evals=res.n_grad_evals, n_minibatch_grads=res.n_minibatch_grads, n_loss_evals=res.n_loss_evals,
            train_wall_time_s=res.wall_time_s, events=[_event_record(e) for e in res.events])
        if res.status == "nonfinite":
            rec["status"] = "nonfinite"
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=6))
    rec["wall_time_s"] = time.perf_counter() - t0
    rec["cpu_time_s"] = time.process_time() - c0
    return rec


# ---------------------------------------------------------------------------- summary
@dataclass
class SummaryRow(JsonResult):
    """Escape statistics of one (stall kind × method) cell.

    ``n_stalls`` stall events of that kind in ``n_runs`` runs; ``escape_rate`` = n_escaped/n_stalls
    with its Wilson 95 % interval (``ci_low``, ``ci_high``; nan-free: None when no stalls);
    ``median_escape_steps`` over escaped stalls; ``median_gap`` (final loss − L*) and the median
    costs (``median_hvp`` method HVPs, ``median_per_example_grads``, ``median_wall_time_s``) over
    the events' runs (one value per event, so a run with two stalls counts twice).
    """

    kind: str
    method: str
    n_stalls: int
    n_runs: int
    n_escaped: int
    escape_rate: float | None
    ci_low: float | None
    ci_high: float | None
    median_escape_steps: float | None
    median_gap: float | None
    median_hvp: float | None
    median_per_example_grads: float | None
    median_wall_time_s: float | None


def _med(xs: Iterable[Any]) -> float | None:
    return _fin(median([float(x) for x in xs if x is not None]))


def summarize(records: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Rows by (stall kind × method), sorted by kind then method. Runs that finished without any
    stall form the kind :data:`NO_STALL` (``n_stalls`` 0, ``n_runs`` those runs, their median gap
    and cost), so a method that never stalls is still visible. Runs that raised (status "error")
    contribute nothing; the stalls of a run stopped by a non-finite loss still count."""
    cells: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for r in records:
        for ev in r.get("events") or []:
            cells.setdefault((ev.get("kind") or "unclassified", r["method"]), []).append((ev, r))
        if r.get("status") == "ok" and not r.get("events"):
            cells.setdefault((NO_STALL, r["method"]), []).append(({}, r))
    order = {m: i for i, m in enumerate(QUICK_METHODS)}
    rows = []
    for (kind, method), items in sorted(cells.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99), kv[0][1])):
        n = 0 if kind == NO_STALL else len(items)
        k = sum(1 for ev, _ in items if ev.get("escaped"))
        lo, hi = wilson_interval(k, n)
        runs = {(r["problem"], r["seed"]) for _, r in items}
        rows.append(SummaryRow(
            kind=kind, method=method, n_stalls=n, n_runs=len(runs), n_escaped=k,
            escape_rate=k / n if n else None, ci_low=_fin(lo), ci_high=_fin(hi),
            median_escape_steps=_med(ev.get("escape_steps") for ev, _ in items if ev.get("escaped")),
            median_gap=_med(r.get("gap") for _, r in items),
            median_hvp=_med(r.get("n_hvp") for _, r in items),
            median_per_example_grads=_med(r.get("n_per_example_grads") for _, r in items),
            median_wall_time_s=_med(r.get("wall_time_s") for _, r in items)))
    return rows


def _fmt(x: Any, spec: str = ".3g") -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def summary_markdown(rows: Sequence[SummaryRow], records: Sequence[dict[str, Any]] | None = None) -> str:
    """The summary as a Markdown table (plus a line on failed runs)."""
    head = ("| stall kind | method | stalls | runs | escaped | escape rate [95% Wilson] | median escape steps "
            "| median final gap | median HVPs | median per-example grads | median wall s |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        rate = "–" if r.escape_rate is None else f"{r.escape_rate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
        lines.append(f"| {r.kind} | {r.method} | {r.n_stalls} | {r.n_runs} | {r.n_escaped} | {rate} | "
                     f"{_fmt(r.median_escape_steps, '.0f')} | {_fmt(r.median_gap)} | {_fmt(r.median_hvp, '.0f')} | "
                     f"{_fmt(r.median_per_example_grads, '.0f')} | {_fmt(r.median_wall_time_s, '.2f')} |")
    if records is not None:
        bad = [r for r in records if r.get("status") != "ok"]
        no_stall = sum(1 for r in records if r.get("status") == "ok" and not r.get("events"))
        lines.append("")
        lines.append(f"{len(records)} runs; {no_stall} without any stall; {len(bad)} failed"
                     + (": " + "; ".join(f"{r['problem']}/{r['method']}/{r['seed']}: {r.get('error') or r['status']}"
                                         for r in bad[:10]) if bad else "") + ".")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- figures
def _event_points(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    pts = []
    for r in records:
        if r["method"] not in methods:
            continue
        for ev in r.get("events") or []:
            pts.append({**ev, "method": r["method"], "problem": r["problem"], "seed": r["seed"]})
    return pts


def outcome_png(records: Sequence[dict[str, Any]], methods: Sequence[str], path: Path) -> Path:
    """Two panels: escape outcome (colour) of every stall, method on the y axis, against κ and
    against λ_min (symlog); marker = stall kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import SymmetricalLogLocator

    from landscape.render import kind_style

    _MPL_MARKERS = {"circle": "o", "x": "X", "diamond": "D", "square": "s", "cross": "P"}

    pts = _event_points(records, methods)
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(methods) + 2.5), sharey=True)
    ypos = {m: i for i, m in enumerate(methods)}
    kappa_label = "κ = ‖mean g‖ / mean ‖g_i‖ at the stall (symlog, linear < 1e-3)"
    for ax, key, label in ((axes[0], "kappa", kappa_label),
                           (axes[1], "lambda_min", "λ_min at the stall (symlog)")):
        kinds_seen = set()
        for p in pts:
            x = p.get(key)
            if x is None:
                continue
            _, sym = kind_style(p["kind"])
            kinds_seen.add(p["kind"])
            ax.scatter(x, ypos[p["method"]] + rng.uniform(-0.3, 0.3), s=22, marker=_MPL_MARKERS.get(sym, "o"),
                       c="#2ca02c" if p.get("escaped") else "#d62728", alpha=0.7, linewidths=0.5)
        if key == "lambda_min":
            vals = [abs(p["lambda_min"]) for p in pts if p.get("lambda_min")]
            c = max(min(vals), 1e-6) if vals else 1e-6
            ax.set_xscale("symlog", linthresh=c)
            ax.xaxis.set_major_locator(SymmetricalLogLocator(linthresh=c, base=100))
        else:
            ax.set_xscale("symlog", linthresh=1e-3)  # κ ≈ 0 (cancellation) and κ ≈ 1 both visible
            ax.set_xlim(-1e-4, 1.1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        for kd in sorted(kinds_seen):
            ax.scatter([], [], marker=_MPL_MARKERS.get(kind_style(kd)[1], "o"), c="grey", label=kd)
    axes[0].set_yticks(range(len(methods)), methods)
    axes[1].legend(fontsize=8, loc="best", title="stall kind (green: escaped, red: not)")
    fig.suptitle("escape outcome at every stall")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def outcome_figure(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> Any:
    """Plotly version of :func:`outcome_png` (hover: problem, seed, kind, κ, λ_min, escape steps)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from landscape.render import kind_style

    pts = _event_points(records, methods)
    rng = np.random.default_rng(0)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                        subplot_titles=("escape outcome vs κ",
                                        "escape outcome vs λ_min (symlog: sign·log10(1+|λ|/c))"))
    lam = [abs(p["lambda_min"]) for p in pts if p.get("lambda_min")]
    c = max(min(lam), 1e-6) if lam else 1e-6
    ypos = {m: i for i, m in enumerate(methods)}
    groups: dict[tuple[str, bool], list[dict]] = {}
    for p in pts:
        groups.setdefault((p["kind"], bool(p.get("escaped"))), []).append(p)
    for (kind, esc), ps in sorted(groups.items()):
        _, sym = kind_style(kind)
        y = [ypos[p["method"]] + rng.uniform(-0.3, 0.3) for p in ps]
        text = [f"{p['problem']} seed {p['seed']}<br>{p['method']}: {kind}<br>κ={p.get('kappa')}<br>"
                f"λ_min={p.get('lambda_min')}<br>escaped={p.get('escaped')} in {p.get('escape_steps')} steps"
                for p in ps]
        name = f"{kind}, {'escaped' if esc else 'not escaped'}"
        color = "#2ca02c" if esc else "#d62728"
        for col, xs in ((1, [p.get("kappa") for p in ps]),
                        (2, [None if p.get("lambda_min") is None else symlog(p["lambda_min"], c) for p in ps])):
            fig.add_trace(go.Scatter(x=xs, y=y, mode="markers", name=name, legendgroup=name, showlegend=col == 1,
                                     marker={"color": color, "symbol": sym, "size": 8, "opacity": 0.7},
                                     text=text, hoverinfo="text"), row=1, col=col)
    fig.update_yaxes(tickvals=list(range(len(methods))), ticktext=list(methods), row=1, col=1)
    fig.update_xaxes(title_text="κ at the stall", row=1, col=1)
    fig.update_xaxes(title_text=f"symlog λ_min (c = {c:.2g})", row=1, col=2)
    fig.update_layout(height=max(400, 40 * len(methods) + 150))
    return fig


# ---------------------------------------------------------------------------- the benchmark
@dataclass
class EscapeBenchmark(JsonResult):
    """A finished benchmark: its ``records`` (one dict per run, as in ``escape.jsonl``), the
    ``summary`` rows, the configuration and the output paths."""

    problems: list[str]
    methods: list[str]
    seeds: list[int]
    max_steps: dict[str, int]
    records: list[dict[str, Any]] = field(repr=False)
    summary: list[SummaryRow]
    wall_time_s: float
    workers: int
    jsonl: str
    summary_json: str | None = None
    summary_md: str | None = None
    png: str | None = None
    html: str | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("records", None)
        return d


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return out


def run_benchmark(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int],
                  out_dir: str | os.PathLike, *, workers: int | None = None, resume: bool = False,
                  max_steps: int | None = None, progress: bool | None = None, quick: bool = False,
                  figures: bool = True) -> EscapeBenchmark:
    """Run every method × problem × seed (``seeds``: a count N → 0..N−1, or a list) and write the
    outputs to ``out_dir``. ``max_steps``: steps per run for every problem (default: each problem's
    ``hints["quick_steps"]`` with ``quick``, else ``hints["max_steps"]``). ``workers``: processes
    (default = cores; 1 = in this process). ``resume``: keep the finished runs of
    ``out_dir/escape.jsonl``. ``progress``: tqdm bar (None = only on a TTY, False = never).
    Problems None → :func:`default_problems`; methods None → every method.
    """
    from synaprune import METHODS

    from .problems import PROBLEMS

    problems = list(problems) if problems else default_problems()
    methods = list(methods) if methods else list(QUICK_METHODS)
    bad = [p for p in problems if p not in PROBLEMS]
    if bad:
        raise ValueError(f"unknown problem(s) {bad}; known: {', '.join(sorted(PROBLEMS))}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; known: {', '.join(METHODS)}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
    seed_list = _seed_list(seeds)
    steps = {}
    for name in problems:
        h = _problem(name).hints
        steps[name] = max_steps or int(h.get("quick_steps" if quick else "max_steps", h.get("max_steps", 1000)))
    workers = workers or os.cpu_count() or 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = QUICK_METHOD_OPTIONS if quick else {}
    jobs = [{"problem": p, "method": m, "seed": s, "max_steps": steps[p], "options": extra.get(m, {})}
            for p in problems for m in methods for s in seed_list]
    t0 = time.perf_counter()
    from . import sweep as _sweep

    orig_tqdm = _sweep.tqdm
    if progress is not None:  # run_sweep's bar is automatic (TTY only); force it on or off
        _sweep.tqdm = lambda *a, **k: orig_tqdm(*a, **{**k, "disable": not progress})
    try:
        all_records = run_sweep(jobs, run_one, out / "escape.jsonl", key_fields=KEY_FIELDS, workers=workers,
                                resume=resume, desc="escape")
    finally:
        _sweep.tqdm = orig_tqdm
    wanted = {tuple(j[k] for k in KEY_FIELDS): i for i, j in enumerate(jobs)}
    records = sorted((r for r in all_records if tuple(r.get(k) for k in KEY_FIELDS) in wanted),
                     key=lambda r: wanted[tuple(r[k] for k in KEY_FIELDS)])
    rows = summarize(records)
    bench = EscapeBenchmark(problems=problems, methods=methods, seeds=seed_list, max_steps=steps, records=records,
                            summary=rows, wall_time_s=time.perf_counter() - t0, workers=workers,
                            jsonl=str(out / "escape.jsonl"))
    md = summary_markdown(rows, records)
    (out / "escape_summary.md").write_text("# Escape benchmark: stall kind × method\n\n" + md, encoding="utf-8")
    bench.summary_md = str(out / "escape_summary.md")
    if figures:
        from landscape.render import write_html

        bench.png = str(outcome_png(records, methods, out / "escape_outcome.png"))
        table = _html_table(rows)
        bench.html = str(write_html(out / "escape_outcome.html", [("escape outcome against κ and λ_min at the stall",
                                                                   outcome_figure(records, methods)),
                                                                  ("summary by stall kind × method", table)],
                                    title="escape benchmark"))
    bench.summary_json = str(out / "escape_summary.json")
    bench.save_json(bench.summary_json)
    return bench


def _html_table(rows: Sequence[SummaryRow]) -> str:
    cols = ["kind", "method", "n_stalls", "n_runs", "n_escaped", "escape_rate", "ci_low", "ci_high",
            "median_escape_steps", "median_gap", "median_hvp", "median_per_example_grads", "median_wall_time_s"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_html.escape(_fmt(getattr(r, c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def load_benchmark(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``out_dir/escape.jsonl`` (complete lines only)."""
    return read_records(Path(out_dir) / "escape.jsonl")


# ---------------------------------------------------------------------------- CLI
def _csv(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", help="comma-separated zoo problems (default: all with benchmark hints; "
                                           f"--quick: {','.join(QUICK_PROBLEMS)})")
    parser.add_argument("--methods", help="comma-separated methods (default: all)")
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per cell (default {DEFAULT_SEEDS}; "
                                                                f"--quick: {QUICK_SEEDS})")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: per-problem hints)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    parser.add_argument("--resume", action="store_true", help="skip runs already in OUT/escape.jsonl")
    parser.add_argument("--quick", action="store_true", help="the reduced benchmark (about 2 minutes on 2 cores)")
    parser.add_argument("--out", default="figures/escape", help="output directory (default figures/escape)")


def run(args: argparse.Namespace) -> int:
    problems = _csv(args.problems) or (list(QUICK_PROBLEMS) if args.quick else None)
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    try:
        bench = run_benchmark(problems, _csv(args.methods), seeds, args.out, workers=args.workers,
                              resume=args.resume, max_steps=args.steps, quick=args.quick)
    except ValueError as exc:
        print(f"landscape escape: {exc}", file=sys.stderr)
        return 2
    print(Path(bench.summary_md).read_text())
    print(f"{len(bench.records)} runs in {bench.wall_time_s:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["escape", *sys.argv[1:]]))
