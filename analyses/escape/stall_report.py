"""Tables and survival curves of the stall-conditioned protocol (one stall per run and cell:
escape rates with Wilson intervals, Kaplan–Meier escape times, log-rank against GD with Holm), the
statistics of :mod:`analyses.escape.summary`. The digits comparison (:mod:`analyses.digits_comparison`,
:mod:`analyses.digits_plateau`) reports with them; the escape study's own report is
:mod:`analyses.escape.report`.
"""
from __future__ import annotations

import html as _html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..stats import kaplan_meier
from .protocol import BASELINE, CONTROLS, VARIANTS
from .summary import SummaryRow, sig

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
