"""The monitor's offline page (``mon.report(path)``): what the loop did, where it stalled and why.

Three figures and a table, written by :func:`landscape.render.write_html` (one shared
``plotly-<version>.min.js`` next to the page, nothing fetched):

1. the loop's loss (and the monitor's own full-batch checks) against the step, every stall marked
   at its step with the kind's marker (:func:`landscape.render.kind_style`) and its cause in the
   label;
2. the scheduled sharpness against the optimizer's stability threshold (and the batch sharpness);
3. the spectrum at each stall: λ_min and λ_max of the whole Hessian and of each layer's block, on
   a symmetric-log axis (negative curvature is what makes a saddle);

then one table row per stall.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..render import fmt_num, html_table, kind_style, symlog, write_html

if TYPE_CHECKING:
    from .stall_monitor import StallMonitor

_CAUSE_COLOUR = {"cancelling": "#1f77b4", "vanishing": "#ff7f0e", None: "#7f7f7f"}


def _nearest(rec: dict[str, Any], key: str) -> Any:
    return (rec.get("nearest_critical") or {}).get(key)


def _label(rec: dict[str, Any]) -> str:
    return f"{rec.get('index')}: {_nearest(rec, 'kind') or rec.get('kind')}, {rec.get('cause') or 'cause ?'}"


def loss_figure(mon: StallMonitor) -> Any:
    """The loss curve with the stalls marked (plotly figure).

    Args:
        mon: the monitor.

    Returns:
        A ``plotly.graph_objects.Figure``.

    Example: :func:`write_report` draws it.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    steps = [i for i, v in enumerate(mon.losses) if v is not None]
    vals = [mon.losses[i] for i in steps]
    positive = all(v > 0 for v in vals) and all(r["loss"] > 0 for r in mon.checks)
    if vals:
        fig.add_trace(go.Scattergl(x=steps, y=vals, mode="lines", name="loop loss",
                                   line={"color": "#9aa5b1", "width": 1}))
    if mon.checks:
        fig.add_trace(go.Scatter(x=[r["step"] for r in mon.checks], y=[r["loss"] for r in mon.checks],
                                 mode="markers", name="monitor check (full-batch loss)",
                                 marker={"color": "#333", "size": 4}))
    for rec in mon.stalls:
        kind = _nearest(rec, "kind") or rec.get("kind") or "?"
        colour, symbol = kind_style(kind)
        text = (f"stall {rec['index']} at step {rec['step']}<br>kind at the stall: {rec.get('kind')}<br>"
                f"nearest: {kind} (index {_nearest(rec, 'index')}, loss {fmt_num(_nearest(rec, 'loss'), 6)}, "
                f"distance {fmt_num(_nearest(rec, 'distance'))})<br>cause: {rec.get('cause')} "
                f"(κ {fmt_num(rec.get('kappa'))}, scale ratio {fmt_num(rec.get('grad_scale_ratio'))})")
        fig.add_trace(go.Scatter(x=[rec["step"]], y=[rec["loss"]], mode="markers+text", name=_label(rec),
                                 text=[_label(rec)], textposition="top right", hovertext=[text], hoverinfo="text",
                                 marker={"color": colour, "symbol": symbol, "size": 14,
                                         "line": {"color": _CAUSE_COLOUR.get(rec.get("cause"), "#7f7f7f"), "width": 3}}))
        fig.add_vline(x=rec["step"], line={"color": colour, "width": 1, "dash": "dot"})
    fig.update_layout(title="Loss; stalls marked by the nearest critical point's kind (marker) and cause (outline)",
                      xaxis_title="step", yaxis_title="loss", yaxis_type="log" if positive else "linear",
                      height=480, legend={"font": {"size": 11}})
    return fig


def sharpness_figure(mon: StallMonitor) -> Any:
    """Sharpness against the stability threshold (plotly figure), or None without rows.

    Args:
        mon: the monitor.

    Returns:
        A figure, or None.

    Example: :func:`write_report` draws it.
    """
    import plotly.graph_objects as go

    rows = mon.sharpness
    if not rows:
        return None
    fig = go.Figure()
    for quantity, name in (("hessian", "λ_max(H)"), ("preconditioned", "λ_max(P⁻¹H)")):
        sel = [r for r in rows if r["quantity"] == quantity]
        if not sel:
            continue
        fig.add_trace(go.Scatter(x=[r["step"] for r in sel], y=[r["lambda_max"] for r in sel], mode="lines+markers",
                                 name=f"{name} (full batch)",
                                 error_y={"type": "data", "array": [r["residual_max"] for r in sel], "visible": True}))
        thr = [r for r in sel if r["threshold"] is not None]
        if thr:
            fig.add_trace(go.Scatter(x=[r["step"] for r in thr], y=[r["threshold"] for r in thr], mode="lines",
                                     line={"dash": "dash", "color": "#d62728", "shape": "hv"},
                                     name=f"threshold {thr[-1]['rule']}"))
        bs = [r for r in sel if r["batch_sharpness"] is not None]
        if bs:
            fig.add_trace(go.Scatter(x=[r["step"] for r in bs], y=[r["batch_sharpness"] for r in bs], mode="markers",
                                     marker={"symbol": "triangle-up", "size": 8}, name=f"batch sharpness ({quantity})"))
    fig.update_layout(title="Sharpness against the optimizer's stability threshold", xaxis_title="step",
                      yaxis_title="curvature", height=420)
    return fig


def spectrum_figure(mon: StallMonitor) -> Any:
    """λ_min and λ_max at each stall, of the whole Hessian and of each layer (plotly figure), or None.

    Args:
        mon: the monitor.

    Returns:
        A figure (symmetric-log y axis), or None without stalls.

    Example: :func:`write_report` draws it.
    """
    import plotly.graph_objects as go

    recs = [r for r in mon.stalls if r.get("lambda_max") is not None]
    if not recs:
        return None
    mags = [abs(v) for r in recs for v in (r["lambda_min"], r["lambda_max"]) if v]
    c = max(min(mags) if mags else 1.0, 1e-12 * max(mags or [1.0]))
    fig = go.Figure()
    for rec in recs:
        blocks = ["all"] + [b["block"] for b in (rec.get("per_layer") or [])]
        lo = [rec["lambda_min"]] + [b["smallest"] for b in (rec.get("per_layer") or [])]
        hi = [rec["lambda_max"]] + [b["largest"] for b in (rec.get("per_layer") or [])]
        colour, symbol = kind_style(_nearest(rec, "kind") or rec.get("kind") or "?")
        x = [f"{b}" for b in blocks]
        hover = [f"stall {rec['index']} (step {rec['step']}), {b}: λ_min {fmt_num(a, 4)}, λ_max {fmt_num(z, 4)}"
                 for b, a, z in zip(blocks, lo, hi)]
        fig.add_trace(go.Scatter(x=x, y=symlog(np.asarray(hi, dtype=float), c), mode="markers", name=f"{_label(rec)} λ_max",
                                 marker={"color": colour, "symbol": "triangle-up", "size": 10}, hovertext=hover,
                                 hoverinfo="text", legendgroup=str(rec["index"])))
        fig.add_trace(go.Scatter(x=x, y=symlog(np.asarray(lo, dtype=float), c), mode="markers", name=f"{_label(rec)} λ_min",
                                 marker={"color": colour, "symbol": "triangle-down", "size": 10}, hovertext=hover,
                                 hoverinfo="text", legendgroup=str(rec["index"])))
    ticks = sorted({0.0} | {s * v for v in (c, 10 * c, 100 * c, 1e3 * c, 1e4 * c, 1e6 * c) for s in (-1, 1)
                            if v <= 10 * max(mags or [c])})
    fig.update_layout(title=f"Extreme Hessian eigenvalues at each stall (symmetric log, linear below {fmt_num(c)})",
                      xaxis_title="block (all = the whole Hessian)", height=440,
                      yaxis={"title": "eigenvalue", "tickvals": [float(symlog(t, c)) for t in ticks],
                             "ticktext": [fmt_num(t, 2) for t in ticks]})
    return fig


_COLUMNS = [("index", "#"), ("step", "step"), ("loss", "loss"), ("kind", "kind at the stall"),
            ("nc_kind", "nearest critical point"), ("nc_index", "index"), ("nc_loss", "its loss"),
            ("nc_distance", "distance"), ("nc_converged", "converged"), ("cause", "cause"), ("kappa", "κ"),
            ("grad_scale_ratio", "scale ratio"), ("lambda_min", "λ_min"), ("lambda_max", "λ_max"),
            ("point", "point"), ("analysis_s", "analysis (s)")]


def write_report(mon: StallMonitor, path: str | Path) -> Path:
    """Write ``mon``'s offline page (see the module docstring).

    Args:
        mon: the monitor.
        path: the ``.html`` file.

    Returns:
        The path.

    Example: ``mon.report("runs/monitor.html")`` (see :class:`landscape.monitor.StallMonitor`).
    """
    t = mon.timings
    rows = [{**r, "nc_kind": _nearest(r, "kind"), "nc_index": _nearest(r, "index"), "nc_loss": _nearest(r, "loss"),
             "nc_distance": _nearest(r, "distance"), "nc_converged": str(_nearest(r, "converged"))}
            for r in mon.stalls]
    intro = (f"<p class=\"lead\">{len(mon.stalls)} stall{'s' if len(mon.stalls) != 1 else ''} in {t['steps']} steps "
             f"({html.escape(str(mon.mode))} detection: {html.escape(mon.mode_reason)}). "
             f"The monitor cost {fmt_num(100 * (t['overhead'] or 0.0), 2)} % of the loop's own time "
             f"({fmt_num(t['loop_s'])} s): detection {fmt_num(t['detection_s'])} s, scheduled sharpness "
             f"{fmt_num(t['sharpness_s'])} s; stall analysis {fmt_num(t['analysis_s'])} s.</p>"
             "<p class=\"note\">Kind: the nearest critical point (Newton-MR refinement, then classification at "
             "strict tolerances); cause: cancelling or vanishing per-example gradients, against the model's "
             "default initialisation. Events are in events.jsonl next to the run's other outputs.</p>")
    sections: list[tuple[str, Any]] = [("Loss and stalls", loss_figure(mon))]
    sf = sharpness_figure(mon)
    why = ("sharpness_every=0" if mon.sharpness_every == 0 else
           "the budgeted schedule never afforded a solve: detection used "
           f"{100 * t['detection_s'] / t['loop_s']:.1f} % of the loop's time of the {100 * mon.budget:.0f} % budget; "
           "pass sharpness_every=N (or a larger budget=) for a fixed schedule"
           if mon.sharpness_every is None and t["loop_s"] > 0 else "no step was due")
    sections.append(("Sharpness", sf if sf is not None
                     else f"<p class=\"note\">No sharpness measured ({html.escape(why)}).</p>"))
    spf = spectrum_figure(mon)
    sections.append(("Spectrum at each stall", spf if spf is not None else "<p class=\"note\">No stall.</p>"))
    sections.append(("Stalls", html_table(rows, _COLUMNS) if rows else "<p class=\"note\">No stall.</p>"))
    return write_html(path, sections, title="Stalls of the training run", intro_html=intro)
