"""The escape study's report: tables, survival curves, the stall map and one HTML page, all rebuilt
from the records alone (``landscape escape --report DIR`` reads ``DIR/escape.jsonl`` or
``escape.jsonl.gz``).

What it answers, per problem (never pooled) and per stall cause × kind: does a rule escape more
often than GD (escape rate over the stalls with a known outcome, Newcombe 95 % interval of the
difference), sooner (Kaplan–Meier curves; log-rank against GD, Holm-adjusted over the methods of
the cell), and than the step-length-matched control ``gd-matched`` — at what cost (example-gradient
units) and where it fails. Statistical unit: one stall per (run, cell), see :mod:`analyses.escape`.

Outputs (relative to the directory): ``escape_summary.md``, ``escape_table.json`` (the rows),
``survival_<problem>.png``, ``stall_map.png``, ``escape_report.html`` (+ the shared plotly.js that
:func:`landscape.render.write_html` places next to it).
"""
from __future__ import annotations

import html as _html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .escape import BASELINE, MATCHED, NO_STALL, VARIANTS, SummaryRow, load_records, stall_units, summarize
from .stats import kaplan_meier

#: a comparison counts when its 95 % interval excludes 0 (rates) or its Holm-adjusted p < ALPHA
ALPHA = 0.05
OUTCOME_MARKERS = {"escaped": "o", "held": "X", "censored": "^"}
_METHOD_COLOURS = ["#1f77b4", "#7f7f7f", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94"]


def method_colour(method: str) -> str:
    return _METHOD_COLOURS[list(VARIANTS).index(method) % len(_METHOD_COLOURS)] if method in VARIANTS else "#000000"


def sig(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits ('–' for None)."""
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


def _rate(r: SummaryRow) -> str:
    if r.escape_rate is None:
        return "–"
    return f"{r.n_escaped}/{r.n_known} = {sig(r.escape_rate, 2)} [{sig(r.ci_low, 2)}, {sig(r.ci_high, 2)}]"


def _diff(d: float | None, lo: float | None, hi: float | None) -> str:
    if d is None:
        return "–"
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"


# ---------------------------------------------------------------------------- verdicts
def verdict(r: SummaryRow, gd: SummaryRow | None) -> str:
    """One phrase: does this method escape more often / sooner than GD in its cell."""
    if gd is None:
        return "no GD runs in this cell"
    if r.n_known == 0 or gd.n_known == 0:
        return "outcome unknown (every stall censored)"
    parts = []
    if r.diff_low is not None and r.diff_low > 0:
        parts.append("escapes more often than GD")
    elif r.diff_high is not None and r.diff_high < 0:
        parts.append("escapes less often than GD")
    else:
        parts.append("no detectable difference in escape rate from GD")
    if r.holm_p_vs_gd is not None and r.holm_p_vs_gd < ALPHA:
        faster = (r.km_at_horizon or 0) < (gd.km_at_horizon or 0) or (
            r.median_escape_steps is not None and (gd.median_escape_steps is None or
                                                   r.median_escape_steps < gd.median_escape_steps))
        parts.append("sooner (log-rank, Holm p = " + sig(r.holm_p_vs_gd, 2) + ")" if faster else
                     "later (log-rank, Holm p = " + sig(r.holm_p_vs_gd, 2) + ")")
    if r.rate_diff_vs_matched is not None:
        if r.matched_diff_low is not None and r.matched_diff_low > 0:
            parts.append("and more often than the step-matched control")
        elif r.matched_diff_high is not None and r.matched_diff_high < 0:
            parts.append("and less often than the step-matched control")
        else:
            parts.append("and not detectably differently from the step-matched control")
    return ", ".join(parts)


def findings(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    """Per (problem, kind, cause) cell and non-GD method: the verdict and its numbers."""
    out = []
    cells: dict[tuple[str, str, str], dict[str, SummaryRow]] = {}
    for r in rows:
        if r.kind != NO_STALL:
            cells.setdefault((r.problem, r.kind, r.cause), {})[r.method] = r
    for (problem, kind, cause), ms in sorted(cells.items()):
        gd = ms.get(BASELINE)
        for m, r in ms.items():
            if m in (BASELINE, MATCHED):
                continue
            out.append({"problem": problem, "kind": kind, "cause": cause, "method": m, "verdict": verdict(r, gd),
                        "n_stalls": r.n_stalls, "n_censored": r.n_censored, "escape_rate": r.escape_rate,
                        "gd_escape_rate": None if gd is None else gd.escape_rate, "rate_diff_vs_gd": r.rate_diff_vs_gd,
                        "diff_low": r.diff_low, "diff_high": r.diff_high, "holm_p_vs_gd": r.holm_p_vs_gd,
                        "rate_diff_vs_matched": r.rate_diff_vs_matched,
                        "median_cost_example_grads": r.median_cost_example_grads,
                        "gd_median_cost_example_grads": None if gd is None else gd.median_cost_example_grads})
    return out


# ---------------------------------------------------------------------------- tables
TABLE_COLUMNS = [
    ("stall kind", lambda r: r.kind.replace("_", " ")), ("cause", lambda r: r.cause), ("method", lambda r: r.method),
    ("stalls (censored)", lambda r: f"{r.n_stalls} ({r.n_censored})"),
    ("escaped / known = rate [Wilson 95 %]", _rate), ("by the rule", lambda r: str(r.n_by_rule)),
    ("KM median escape steps", lambda r: sig(r.median_escape_steps)),
    ("share held at horizon (KM)", lambda r: sig(r.km_at_horizon, 2)),
    ("rate − GD [Newcombe 95 %]", lambda r: _diff(r.rate_diff_vs_gd, r.diff_low, r.diff_high)),
    ("log-rank p vs GD (Holm)", lambda r: "–" if r.logrank_p_vs_gd is None else
     f"{sig(r.logrank_p_vs_gd, 2)} ({sig(r.holm_p_vs_gd, 2)})"),
    ("rate − gd-matched [95 %]", lambda r: _diff(r.rate_diff_vs_matched, r.matched_diff_low, r.matched_diff_high)),
    ("median cost per stall (example grads)", lambda r: sig(r.median_cost_example_grads)),
    ("median run cost (example grads)", lambda r: sig(r.median_run_cost)),
    ("median final gap to L*", lambda r: sig(r.median_gap)),
]


def summary_markdown(rows: Sequence[SummaryRow], records: Sequence[dict[str, Any]] | None = None) -> str:
    """One Markdown table per problem (plus a line on failed and stall-free runs)."""
    lines = []
    for problem in sorted({r.problem for r in rows}):
        lines += [f"## {problem}", "", "| " + " | ".join(h for h, _ in TABLE_COLUMNS) + " |",
                  "|" + "---|" * len(TABLE_COLUMNS)]
        for r in rows:
            if r.problem == problem:
                lines.append("| " + " | ".join(f(r) for _, f in TABLE_COLUMNS) + " |")
        lines.append("")
    if records is not None:
        bad = [r for r in records if r.get("status") == "error"]
        lines.append(f"{len(records)} runs; {sum(1 for r in records if not r.get('events'))} without any stall; "
                     f"{len(bad)} failed" + (": " + "; ".join(f"{r['problem']}/{r['method']}/{r['seed']}: "
                                                             f"{r.get('error')}" for r in bad[:10]) if bad else "")
                     + ".")
    return "\n".join(lines) + "\n"


def summary_html(rows: Sequence[SummaryRow]) -> str:
    parts = []
    for problem in sorted({r.problem for r in rows}):
        head = "".join(f"<th>{_html.escape(h)}</th>" for h, _ in TABLE_COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{_html.escape(f(r))}</td>" for _, f in TABLE_COLUMNS) + "</tr>"
                       for r in rows if r.problem == problem)
        parts.append(f"<h3>{_html.escape(problem)}</h3><div style='overflow-x:auto'><table class='escape'>"
                     f"<tr>{head}</tr>{body}</table></div>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------- figures
def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def survival_png(units: Sequence[dict[str, Any]], problem: str, path: Path) -> Path:
    """Kaplan–Meier curves of one problem: a panel per (kind, cause) cell, a curve per method
    (share of stalls still held against steps since the stall; ticks = censored stalls)."""
    plt = _mpl()
    us = [u for u in units if u["problem"] == problem]
    cells = sorted({(u["kind"], u["cause"]) for u in us})
    methods = [m for m in VARIANTS if any(u["method"] == m for u in us)]
    ncol = min(3, max(1, len(cells)))
    nrow = max(1, math.ceil(len(cells) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol + 2.4, 3.3 * nrow), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, (kind, cause) in zip(axes.flat, cells):
        ns = []
        for m in methods:
            mu = [u for u in us if (u["kind"], u["cause"], u["method"]) == (kind, cause, m)]
            if not mu:
                continue
            km = kaplan_meier([u["duration"] for u in mu], [u["event"] for u in mu])
            ns.append(len(mu))
            xs, ys = [0.0], [1.0]
            for t, s in zip(km.times, km.survival):
                xs += [t, t]
                ys += [ys[-1], s]
            xs.append(max(u["duration"] for u in mu))
            ys.append(ys[-1])
            ax.plot(xs, ys, color=method_colour(m), lw=1.6, label=m)
            cens = [u["duration"] for u in mu if not u["event"]]
            ax.plot(cens, [km.at(t) for t in cens], "|", color=method_colour(m), ms=7, mew=1.2)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("steps since the stall")
        ax.set_ylabel("share still stalled")
        ax.set_title(f"{kind.replace('_', ' ')} · {cause}\n(n = {min(ns)}–{max(ns)} stalls per method)"
                     if ns and min(ns) != max(ns) else f"{kind.replace('_', ' ')} · {cause} (n = {ns[0] if ns else 0})",
                     fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=method_colour(m), lw=1.6, label=m) for m in methods]
    handles.append(plt.Line2D([], [], color="k", marker="|", ls="", ms=7, label="censored stall"))
    right = 1 - 2.4 / (4.2 * ncol + 2.4)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(right + 0.01, 0.9), fontsize=8, frameon=False,
               title="method")
    fig.suptitle(f"{problem}: Kaplan–Meier escape curves, one stall per run and cell", fontsize=11)
    fig.tight_layout(rect=(0, 0, right, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _map_points(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    pts = []
    for r in records:
        for ev in r.get("events") or []:
            scale = ev.get("example_grad_scale_ratio")
            use_ratio = scale is not None
            if scale is None:
                scale = ev.get("example_grad_scale")
            outcome = "censored" if ev.get("censored") else ("escaped" if ev.get("escaped") else "held")
            pts.append({**ev, "problem": r["problem"], "method": r["method"], "seed": r["seed"], "scale": scale,
                        "scale_is_ratio": use_ratio, "outcome": outcome})
    return pts


def _floor(x: float | None, lo: float) -> float | None:
    return None if x is None else max(float(x), lo)


def stall_map_png(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Every stall of every run on (κ, per-example gradient scale), a panel per problem; colour =
    kind, marker = outcome (escaped / held past the horizon / censored). Log axes; κ below 1e-8 and
    scales below 1e-12 are drawn at those floors."""
    from landscape.render import kind_style

    plt = _mpl()
    pts = _map_points(records)
    problems = sorted({p["problem"] for p in pts}) or ["(no stalls)"]
    ncol = min(4, len(problems))
    nrow = math.ceil(len(problems) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol + 2.6, 3.2 * nrow), squeeze=False)
    for ax in axes.flat[len(problems):]:
        ax.axis("off")
    kinds = sorted({p["kind"] for p in pts})
    ratio = any(p["scale_is_ratio"] for p in pts)
    for ax, problem in zip(axes.flat, problems):
        for p in (q for q in pts if q["problem"] == problem):
            x, y = _floor(p.get("kappa"), 1e-8), _floor(p.get("scale"), 1e-12)
            if x is None or y is None:
                continue
            colour = kind_style(p["kind"])[0]
            m = OUTCOME_MARKERS[p["outcome"]]
            ax.scatter(x, y, s=22, marker=m, facecolors=colour if m != "^" else "none", edgecolors=colour,
                       linewidths=0.8, alpha=0.75)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(5e-9, 2.0)  # κ ∈ [0, 1]: one fixed axis for every panel
        ys = [_floor(q.get("scale"), 1e-12) for q in pts if q["problem"] == problem and q.get("scale") is not None]
        if ys:  # at least two decades, so a narrow range does not print ticks to six digits
            lo, hi = min(ys), max(ys)
            mid = math.sqrt(lo * hi)
            ax.set_ylim(min(lo / 2, mid / 10), max(hi * 2, mid * 10))
        ax.set_title(problem, fontsize=9)
        ax.set_xlabel("κ = ‖mean g_i‖ / mean ‖g_i‖")
        ax.set_ylabel("mean ‖g_i‖ / run's reference" if ratio else "mean ‖g_i‖")
        ax.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], color=kind_style(k)[0], marker="s", ls="", label=k.replace("_", " "))
               for k in kinds]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", mfc="none" if o == "censored" else "k", label=o)
                for o, m in OUTCOME_MARKERS.items()]
    right = 1 - 2.4 / (3.6 * ncol + 2.6)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(right + 0.01, 0.9), fontsize=8, frameon=False,
               title="kind / outcome")
    fig.suptitle("every stall: cancellation κ against the per-example gradient scale", fontsize=11)
    fig.tight_layout(rect=(0, 0, right, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def stall_map_figure(records: Sequence[dict[str, Any]]) -> Any:
    """Plotly version of :func:`stall_map_png` (one panel per problem; hover: run, kind, cause, outcome)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from landscape.render import kind_style

    pts = _map_points(records)
    problems = sorted({p["problem"] for p in pts}) or ["(no stalls)"]
    ncol = min(3, len(problems))
    nrow = math.ceil(len(problems) / ncol)
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=problems)
    sym = {"escaped": "circle", "held": "x", "censored": "triangle-up-open"}
    shown = set()
    for i, problem in enumerate(problems):
        groups: dict[tuple[str, str], list[dict]] = {}
        for p in pts:
            if p["problem"] == problem and p.get("kappa") is not None and p.get("scale") is not None:
                groups.setdefault((p["kind"], p["outcome"]), []).append(p)
        for (kind, outcome), ps in sorted(groups.items()):
            name = f"{kind.replace('_', ' ')}, {outcome}"
            fig.add_trace(go.Scatter(
                x=[_floor(p["kappa"], 1e-8) for p in ps], y=[_floor(p["scale"], 1e-12) for p in ps], mode="markers",
                name=name, legendgroup=name, showlegend=name not in shown,
                marker={"color": kind_style(kind)[0], "symbol": sym[outcome], "size": 7, "opacity": 0.75},
                text=[f"{p['problem']} · {p['method']} · seed {p['seed']}<br>stall at step {p['step']}: {p['kind']}, "
                      f"{p.get('cause')}<br>κ = {sig(p['kappa'])}, scale = {sig(p['scale'])}<br>{p['outcome']}"
                      + (f" in {p['escape_steps']} steps by {p.get('escaped_by')}" if p["outcome"] == "escaped" else "")
                      for p in ps], hoverinfo="text"), row=i // ncol + 1, col=i % ncol + 1)
            shown.add(name)
    fig.update_xaxes(type="log", title_text="κ")
    fig.update_yaxes(type="log", title_text="per-example gradient scale")
    fig.update_layout(height=320 * nrow + 80, legend={"x": 1.02, "y": 1})
    return fig


def survival_figure(units: Sequence[dict[str, Any]], problem: str) -> Any:
    """Plotly Kaplan–Meier curves of one problem (a panel per (kind, cause) cell)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    us = [u for u in units if u["problem"] == problem]
    cells = sorted({(u["kind"], u["cause"]) for u in us})
    ncol = min(3, max(1, len(cells)))
    nrow = max(1, math.ceil(len(cells) / ncol))
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=[f"{k.replace('_', ' ')} · {c}" for k, c in cells])
    shown = set()
    for i, (kind, cause) in enumerate(cells):
        for m in VARIANTS:
            mu = [u for u in us if (u["kind"], u["cause"], u["method"]) == (kind, cause, m)]
            if not mu:
                continue
            km = kaplan_meier([u["duration"] for u in mu], [u["event"] for u in mu])
            fig.add_trace(go.Scatter(x=[0.0, *km.times], y=[1.0, *km.survival], mode="lines", line={"shape": "hv",
                                     "color": method_colour(m)}, name=m, legendgroup=m, showlegend=m not in shown,
                                     hovertemplate=f"{m} (n = {len(mu)})<br>%{{x}} steps: %{{y:.2f}} held"),
                          row=i // ncol + 1, col=i % ncol + 1)
            shown.add(m)
    fig.update_yaxes(range=[-0.03, 1.03], title_text="share still stalled")
    fig.update_xaxes(title_text="steps since the stall")
    fig.update_layout(height=300 * nrow + 80, legend={"x": 1.02, "y": 1})
    return fig


# ---------------------------------------------------------------------------- the report
def lead_html(rows: Sequence[SummaryRow]) -> str:
    """The answer first: per cause × kind, each problem's verdicts for the SynaPrune rules."""
    fs = findings(rows)
    if not fs:
        return "<p>No stall cell has both GD and another method: nothing to compare.</p>"
    by: dict[tuple[str, str], list[dict]] = {}
    for f in fs:
        by.setdefault((f["cause"], f["kind"]), []).append(f)
    items = []
    for (cause, kind), group in sorted(by.items()):
        lines = "".join(
            f"<li><b>{_html.escape(f['problem'])}</b>, {_html.escape(f['method'])} "
            f"({f['n_stalls']} stalls, {f['n_censored']} censored): {_html.escape(f['verdict'])}; "
            f"rate {sig(f['escape_rate'], 2)} vs GD {sig(f['gd_escape_rate'], 2)}, "
            f"cost per stall {sig(f['median_cost_example_grads'])} vs GD {sig(f['gd_median_cost_example_grads'])} "
            "example gradients</li>" for f in group)
        items.append(f"<li><b>{_html.escape(cause)} stalls at {_html.escape(kind.replace('_', ' '))}s</b><ul>{lines}"
                     "</ul></li>")
    return ("<p>Per stall cause × kind and per problem (never pooled), one stall per run and cell; a rate "
            "difference counts when its Newcombe 95 % interval excludes 0, a speed difference when the Holm-adjusted "
            f"log-rank p is below {ALPHA}. Censored stalls are excluded from rates and enter the survival curves as "
            "censored.</p><ul>" + "".join(items) + "</ul>")


def build_report(out_dir: str | Path, records: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Write every table and figure of the study into ``out_dir`` from ``records`` (default: read
    ``out_dir/escape.jsonl(.gz)``). Returns the written file names (relative to ``out_dir``)."""
    from landscape.render import write_html

    out = Path(out_dir)
    if records is None:
        records = load_records(out)
    rows = summarize(records)
    units = stall_units(records)
    written = []
    (out / "escape_summary.md").write_text("# Escape study: per problem, stall kind × cause × method\n\n"
                                           + summary_markdown(rows, records), encoding="utf-8")
    written.append("escape_summary.md")
    (out / "escape_table.json").write_text(json.dumps({"rows": [r.to_dict() for r in rows],
                                                       "findings": findings(rows)}, indent=1, sort_keys=True,
                                                      allow_nan=False) + "\n", encoding="utf-8")
    written.append("escape_table.json")
    problems = sorted({u["problem"] for u in units})
    pngs = []
    for problem in problems:
        pngs.append(survival_png(units, problem, out / f"survival_{problem}.png").name)
    pngs.append(stall_map_png(records, out / "stall_map.png").name)
    written += pngs
    sections: list[tuple[str, Any]] = [("The answer", lead_html(rows))]
    sections.append(("Survival curves (Kaplan–Meier), per problem",
                     "".join(f"<p><img src='{p}' alt='{p}' style='max-width:100%'></p>" for p in pngs[:-1])))
    sections.append(("Every stall on (κ, per-example gradient scale)", f"<p><img src='stall_map.png' "
                     "alt='stall map' style='max-width:100%'></p>"))
    sections.append(("Interactive stall map", stall_map_figure(records)))
    for problem in problems:
        sections.append((f"Interactive survival curves: {problem}", survival_figure(units, problem)))
    sections.append(("Tables, per problem", summary_html(rows)))
    write_html(out / "escape_report.html", sections, title="Escape study",
               intro_html="<p>Rebuilt from escape.jsonl by <code>landscape escape --report DIR</code>.</p>")
    written.append("escape_report.html")
    return written


# ---------------------------------------------------------------------------- the main report's section
def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict:
    """Run the escape study (``quick``: the smoke run; else the default study) into
    ``out_dir/escape`` with seeds ``seed, seed+1, …`` and return the study report's section
    (keys ``title``, ``lead``, ``html``, ``summary``, ``figures``; paths relative to ``out_dir``)."""
    from .escape import DEFAULT_SEEDS, QUICK_SEEDS, run_benchmark

    out_dir = Path(out_dir)
    n = QUICK_SEEDS if quick else DEFAULT_SEEDS
    bench = run_benchmark(None, None, [seed + i for i in range(n)], out_dir / "escape", quick=quick, progress=False)
    rows = bench.summary
    figs = [f"escape/{p}" for p in bench.outputs if p.endswith(".png")]
    body = ("".join(f"<p><img src='{p}' alt='{p}' style='max-width:100%'></p>" for p in figs)
            + summary_html(rows) + "<p>Interactive: <a href='escape/escape_report.html'>escape/escape_report.html</a>; "
            "records: escape/escape.jsonl.</p>")
    return {"title": "Does SynaPrune escape stalls? (escape study)", "lead": lead_html(rows), "html": body,
            "summary": {"problems": bench.problems, "methods": bench.methods, "n_seeds": len(bench.seeds),
                        "n_runs": len(bench.records), "findings": findings(rows)},
            "figures": figs}
