"""The escape study's report: tables, survival curves, the stall map and one HTML page, all drawn
from the records alone (``landscape escape --report DIR`` reads ``DIR/escape.jsonl`` or
``escape.jsonl.gz``); the numbers come from :mod:`analyses.escape.summary`.

What it answers, per problem (never pooled) and per stall cause × kind: does a rule escape more
often than GD (escape rate over the stalls with a known outcome, Newcombe 95 % interval of the
difference), sooner (Kaplan–Meier curves; log-rank against GD, Holm-adjusted over the methods of
the cell), and than the step-length-matched control ``gd-matched`` — at what cost (example-gradient
units) and where it fails.

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

from landscape.render import write_html

from ..problems import get_problem
from ..stats import kaplan_meier
from .protocol import BASELINE, CONTROLS, NO_STALL, VARIANTS
from .records import load_records
from .summary import (ALPHA, SummaryRow, classifier_agreement, findings, headline, sig, stall_units,
                      summarize)

OUTCOME_MARKERS = {"escaped": "o", "held": "X", "censored": "^"}
#: one distinct colour per method variant (controls in greys, dashed in the survival plots)
METHOD_COLOURS = {"gd": "#000000", "gd-matched": "#7f7f7f", "gd-matched-devarg": "#bdbdbd", "pgd": "#d62728",
                  "pgd-fixed": "#ff9896", "sgd": "#8c564b", "adam": "#e377c2", "ncd": "#bcbd22", "sfn": "#17becf",
                  "synaprune-rms": "#1f77b4", "synaprune-devarg": "#ff7f0e", "synaprune-noise": "#2ca02c",
                  "synaprune-penalty": "#9467bd", "synaprune-hebbian": "#c49c94", "synaprune-rms@always": "#6baed6",
                  "synaprune-devarg@always": "#fdae6b"}
#: kind colours of the stall map (every kind its own hue)
KIND_COLOURS = {"strict_saddle": "#d62728", "non_strict_saddle": "#9467bd", "minimum": "#ff7f0e",
                "global_minimum": "#2ca02c", "maximum": "#1f77b4", "not_critical": "#000000",
                "inconclusive": "#7f7f7f", "degenerate": "#8c564b", "unclassified": "#bdbdbd"}


def method_colour(method: str) -> str:
    """A method variant's colour in every figure (controls in greys).

    Args:
        method: a variant label.

    Returns:
        A hex colour (black for an unknown label).
    """
    return METHOD_COLOURS.get(method, "#000000")


def method_dash(method: str) -> str:
    """A method's line style: dashed for the controls other than GD.

    Args:
        method: a variant label.

    Returns:
        ``"--"`` or ``"-"``.
    """
    return "--" if method in CONTROLS and method != BASELINE else "-"


def kind_colour(kind: str) -> str:
    """A stall kind's colour in the stall map.

    Args:
        kind: a critical-point kind.

    Returns:
        A hex colour (pink for an unknown kind).
    """
    return KIND_COLOURS.get(kind, "#e377c2")


def _rate(r: SummaryRow) -> str:
    if r.escape_rate is None:
        return "–"
    return f"{r.n_escaped}/{r.n_known} = {sig(r.escape_rate, 2)} [{sig(r.ci_low, 2)}, {sig(r.ci_high, 2)}]"


def _diff(d: float | None, lo: float | None, hi: float | None) -> str:
    if d is None:
        return "–"
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"


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
    """One Markdown table per problem (plus a line on failed and stall-free runs).

    Args:
        rows: :func:`~analyses.escape.summary.summarize`'s rows.
        records: the runs' records (for the line on failed and stall-free runs), or None.

    Returns:
        The Markdown text (:data:`TABLE_COLUMNS`).
    """
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
    """One HTML table per problem (:data:`TABLE_COLUMNS`).

    Args:
        rows: :func:`~analyses.escape.summary.summarize`'s rows.

    Returns:
        The HTML.
    """
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
    (share of stalls still held against steps since the stall; ticks = censored stalls).

    Args:
        units: :func:`~analyses.escape.summary.stall_units`.
        problem: the problem drawn.
        path: the PNG to write (folders created).

    Returns:
        ``path``.
    """
    plt = _mpl()
    us = [u for u in units if u["problem"] == problem]
    cells = sorted({(u["kind"], u["cause"]) for u in us})
    methods = [m for m in VARIANTS if any(u["method"] == m for u in us)]
    ncol = min(3, max(1, len(cells)))
    nrow = max(1, math.ceil(len(cells) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol + 2.4, 3.3 * nrow), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    offset = 0.008  # curves that coincide (e.g. every method held) stay visible
    for ax, (kind, cause) in zip(axes.flat, cells):
        ns = []
        horizon = 0
        for i, m in enumerate(methods):
            mu = [u for u in us if (u["kind"], u["cause"], u["method"]) == (kind, cause, m)]
            if not mu:
                continue
            km = kaplan_meier([u["duration"] for u in mu], [u["event"] for u in mu])
            ns.append(len(mu))
            horizon = max(horizon, max((u.get("escape_horizon") or 0) for u in mu))
            dy = -offset * i
            xs, ys = [0.0], [1.0]
            for t, s in zip(km.times, km.survival):
                xs += [t, t]
                ys += [ys[-1], s]
            xs.append(max(u["duration"] for u in mu))
            ys.append(ys[-1])
            ax.plot(xs, [y + dy for y in ys], color=method_colour(m), ls=method_dash(m), lw=1.6, label=m)
            cens = [u["duration"] for u in mu if u.get("censored")]
            ax.plot(cens, [km.at(t) + dy for t in cens], "|", color=method_colour(m), ms=7, mew=1.2)
        if horizon:
            ax.axvline(horizon, color="0.6", ls=":", lw=1)
        ax.set_ylim(-0.03 - offset * len(methods), 1.03)
        ax.set_xlabel("steps since the stall")
        ax.set_ylabel("share still stalled")
        ax.set_title(f"{kind.replace('_', ' ')} · {cause}\n(n = {min(ns)}–{max(ns)} stalls per method)"
                     if ns and min(ns) != max(ns) else f"{kind.replace('_', ' ')} · {cause} (n = {ns[0] if ns else 0})",
                     fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=method_colour(m), ls=method_dash(m), lw=1.6, label=m) for m in methods]
    handles.append(plt.Line2D([], [], color="k", marker="|", ls="", ms=7, label="censored (run ended)"))
    handles.append(plt.Line2D([], [], color="0.6", ls=":", label="escape horizon"))
    right = 1 - 2.4 / (4.2 * ncol + 2.4)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(right + 0.01, 0.9), fontsize=8, frameon=False,
               title="method")
    fig.suptitle(f"{problem}: Kaplan–Meier escape curves, one stall per run and cell"
                 + ("\n" if ncol < 3 else " ")
                 + f"(curve i drawn {offset}·i lower so that equal curves stay visible)", fontsize=10)
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


KAPPA_FLOOR, SCALE_FLOOR = 1e-8, 1e-12


def _thresholds(records: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    for r in records:
        for ev in r.get("events") or []:
            t = ev.get("cause_thresholds")
            if t and t.get("kappa_max") is not None and t.get("ratio_max") is not None:
                return {"kappa_max": float(t["kappa_max"]), "ratio_max": float(t["ratio_max"])}
    return None


def stall_map_png(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Every stall of every run on (κ, per-example gradient scale), a panel per problem; colour =
    kind, marker = outcome (escaped / held past the horizon / censored). Log axes; κ below 1e-8 and
    scales below 1e-12 are drawn at those floors (a stall whose per-example gradients are all 0
    has κ undefined: drawn at both floors and counted in the panel). Grey lines: the trainer's cause
    boundaries (cancelling: κ ≤ κ_max and κ ≤ ratio; vanishing: ratio ≤ ratio_max and ratio < κ).

    Args:
        records: the runs' records.
        path: the PNG to write (folders created).

    Returns:
        ``path``.
    """
    plt = _mpl()
    kind_style = lambda k: (kind_colour(k), None)  # noqa: E731
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
        undefined = 0
        for p in (q for q in pts if q["problem"] == problem):
            x, y = _floor(p.get("kappa"), KAPPA_FLOOR), _floor(p.get("scale"), SCALE_FLOOR)
            if y is None:
                continue
            if x is None:
                x, undefined = KAPPA_FLOOR, undefined + 1
            colour = kind_style(p["kind"])[0]
            m = OUTCOME_MARKERS[p["outcome"]]
            ax.scatter(x, y, s=22, marker=m, facecolors=colour if m != "^" else "none", edgecolors=colour,
                       linewidths=0.8, alpha=0.75)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(5e-9, 2.0)  # κ ∈ [0, 1]: one fixed axis for every panel
        ys = [_floor(q.get("scale"), SCALE_FLOOR) for q in pts
              if q["problem"] == problem and q.get("scale") is not None]
        if ys:  # at least two decades, so a narrow range does not print ticks to six digits
            lo, hi = min(ys), max(ys)
            mid = math.sqrt(lo * hi)
            ax.set_ylim(min(lo / 2, mid / 10), max(hi * 2, mid * 10))
        th = _thresholds(records) if ratio else None
        if th is not None:
            y0, y1 = ax.get_ylim()
            d = np.geomspace(5e-9, min(th["kappa_max"], th["ratio_max"]), 50)
            ax.plot(d, d, color="0.5", lw=0.8, ls=":")
            ax.text(0.03, 0.95, "cancelling", transform=ax.transAxes, fontsize=7, color="0.4", va="top")
            ax.text(0.97, 0.04 if not undefined else 0.2, "vanishing", transform=ax.transAxes, fontsize=7,
                    color="0.4", ha="right")
            ax.plot([th["kappa_max"]] * 2, [max(y0, th["kappa_max"]), y1], color="0.5", lw=0.8, ls="--")
            ax.plot([max(5e-9, th["ratio_max"]), 2.0], [th["ratio_max"]] * 2, color="0.5", lw=0.8, ls="--")
            ax.set_ylim(y0, y1)
        if undefined:
            ax.text(0.03, 0.04, f"{undefined} stall(s) with every g_i = 0\n(κ undefined, drawn at the floors)",
                    transform=ax.transAxes, fontsize=7, va="bottom")
        ax.set_title(problem, fontsize=9)
        ax.set_xlabel("κ = ‖mean g_i‖ / mean ‖g_i‖")
        ax.set_ylabel("mean ‖g_i‖ / run's reference" if ratio else "mean ‖g_i‖")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=kind_style(k)[0], marker="s", ls="", label=k.replace("_", " "))
               for k in kinds]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", mfc="none" if o == "censored" else "k", label=o)
                for o, m in OUTCOME_MARKERS.items()]
    if ratio and _thresholds(records):
        handles += [plt.Line2D([], [], color="0.5", ls="--", lw=0.8, label="κ_max, ratio_max"),
                    plt.Line2D([], [], color="0.5", ls=":", lw=0.8, label="κ = ratio (cause boundary)")]
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
    """Plotly version of :func:`stall_map_png` (one panel per problem; hover: run, kind, cause, outcome).

    Args:
        records: the runs' records.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

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
            if p["problem"] == problem and p.get("scale") is not None:
                groups.setdefault((p["kind"], p["outcome"]), []).append(p)
        for (kind, outcome), ps in sorted(groups.items()):
            name = f"{kind.replace('_', ' ')}, {outcome}"
            fig.add_trace(go.Scatter(
                x=[_floor(p["kappa"], KAPPA_FLOOR) or KAPPA_FLOOR for p in ps],
                y=[_floor(p["scale"], SCALE_FLOOR) for p in ps], mode="markers",
                name=name, legendgroup=name, showlegend=name not in shown,
                marker={"color": kind_colour(kind), "symbol": sym[outcome], "size": 7, "opacity": 0.75},
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
    """Plotly Kaplan–Meier curves of one problem (a panel per (kind, cause) cell).

    Args:
        units: :func:`~analyses.escape.summary.stall_units`.
        problem: the problem drawn.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
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
                                     "color": method_colour(m), "dash": "dash" if method_dash(m) == "--" else "solid"},
                                     name=m, legendgroup=m, showlegend=m not in shown,
                                     hovertemplate=f"{m} (n = {len(mu)})<br>%{{x}} steps: %{{y:.2f}} held"),
                          row=i // ncol + 1, col=i % ncol + 1)
            shown.add(m)
    fig.update_yaxes(range=[-0.03, 1.03], title_text="share still stalled")
    fig.update_xaxes(title_text="steps since the stall")
    fig.update_layout(height=300 * nrow + 80, legend={"x": 1.02, "y": 1})
    return fig


def lead_html(rows: Sequence[SummaryRow], records: Sequence[dict[str, Any]] | None = None) -> str:
    """The answer first: a matrix of the main cells (cause × kind, one problem each) × methods.

    Args:
        rows: :func:`~analyses.escape.summary.summarize`'s rows.
        records: the runs' records (for the certificate agreement line), or None.

    Returns:
        The HTML of the report's lead: the matrix, where the rules fail, runs without stalls, the
        classifier's agreement with the certificates and the widest interval.
    """
    h = headline(rows)
    if not h["cells"]:
        return "<p>No run met its problem's certified stall: nothing to compare.</p>"
    methods = [m for m in VARIANTS if any(c["method"] == m for c in h["cells"])]
    by = {(c["problem"], c["method"]): c for c in h["cells"]}
    problems = list(dict.fromkeys((c["cause"], c["kind"], c["problem"]) for c in h["cells"]))
    head = "<tr><th>cause · kind</th><th>problem</th>" + "".join(f"<th>{_html.escape(m)}</th>" for m in methods) + "</tr>"
    body = []
    for cause, kind, problem in sorted(problems):
        tds = []
        for m in methods:
            c = by.get((problem, m))
            if c is None:
                tds.append("<td>–</td>")
                continue
            rate = "–" if c["escape_rate"] is None else f"{c['n_escaped']}/{c['n_known']}"
            med = "" if c["km_median"] is None else f", median {sig(c['km_median'], 2)} steps"
            cost = "" if c["cost_vs_gd"] is None or m == BASELINE else f", cost ×{sig(c['cost_vs_gd'], 2)}"
            tds.append(f"<td>{rate}{med}{cost} <b>{c['mark']}</b></td>")
        certified = get_problem(problem).hints["study"]["kind"]
        note = "" if certified == kind else f" (certified {certified.replace('_', ' ')}; the classifier says {kind})"
        body.append(f"<tr><td>{_html.escape(cause)} · {_html.escape(kind.replace('_', ' ') + note)}</td>"
                    f"<td>{_html.escape(problem)}</td>{''.join(tds)}</tr>")
    fails = sorted({f"{c['method']} at {c['cause']} {c['kind'].replace('_', ' ')}s ({c['problem']})"
                    for c in h["cells"] if c["escape_rate"] is not None and c["escape_rate"] <= 0.1
                    and c["method"] not in CONTROLS and not c["kind"].endswith("minimum")})
    hw = h["max_half_width"]
    quiet = [f"{r.method} on {r.problem} ({r.n_runs} run(s))" for r in rows if r.kind == NO_STALL]
    return (
        "<p><b>Each problem's certified stall</b> (the cause × kind its reference point is built to have), one stall "
        "per run: escaped / stalls with a known outcome (censored stalls excluded), the Kaplan–Meier median escape "
        "time, the cost per stall relative to GD (example-gradient units). ▲ / ▼: escapes more / less often than GD "
        f"(Newcombe 95 % interval of the difference excludes 0); ⏩ / ⏪: sooner / later (log-rank, Holm-adjusted p < "
        f"{ALPHA}). Minima are controls: nothing should escape them.</p>"
        f"<div style='overflow-x:auto'><table class='escape'>{head}{''.join(body)}</table></div>"
        + (f"<p><b>Where the rules fail</b> (escape rate ≤ 0.1 at a saddle): {_html.escape('; '.join(fails))}.</p>"
           if fails else "")
        + (f"<p><b>Runs without any stall</b> (no row above): {_html.escape('; '.join(quiet))}.</p>" if quiet else "")
        + (("<p><b>Kinds from the certificates.</b> A stall whose nearest critical point has its problem's certified "
            "critical value (relative 1e-6) takes the certified kind; the numerical classifier agreed in: "
            + _html.escape("; ".join(f"{p} {d['n_agree']}/{d['n_certified']}"
                                     for p, d in classifier_agreement(records).items())) + ".</p>")
           if records is not None and classifier_agreement(records) else "")
        + f"<p>At least {h['min_stalls_per_main_cell']} stalls per main cell; widest 95 % half-width "
          f"{sig(hw, 2)} (target ≤ {h['half_width_target']}; {h['n_wider_than_target']} interval(s) wider).</p>")


def build_report(out_dir: str | Path, records: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Write every table and figure of the study, from the records alone.

    Args:
        out_dir: the study's folder; the outputs are written there.
        records: the runs' records; default: read ``out_dir/escape.jsonl(.gz)``.

    Returns:
        The written file names, relative to ``out_dir``: ``escape_summary.md``,
        ``escape_table.json``, ``survival_<problem>.png`` per problem, ``stall_map.png``,
        ``escape_report.html``.
    """
    out = Path(out_dir)
    if records is None:
        records = load_records(out)
    rows = summarize(records)
    units = stall_units(records)
    written = []
    (out / "escape_summary.md").write_text("# Escape study: per problem, stall kind × cause × method\n\n"
                                           + summary_markdown(rows, records), encoding="utf-8")
    written.append("escape_summary.md")
    (out / "escape_table.json").write_text(json.dumps({"rows": [r.to_dict() for r in rows], "findings": findings(rows),
                                                       "headline": headline(rows),
                                                       "classifier_agreement": classifier_agreement(records)},
                                                      indent=1, sort_keys=True,
                                                      allow_nan=False) + "\n", encoding="utf-8")
    written.append("escape_table.json")
    problems = sorted({u["problem"] for u in units})
    pngs = []
    for problem in problems:
        pngs.append(survival_png(units, problem, out / f"survival_{problem}.png").name)
    pngs.append(stall_map_png(records, out / "stall_map.png").name)
    written += pngs
    sections: list[tuple[str, Any]] = [("The answer", lead_html(rows, records))]
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
