"""The figures of a spectrum report (:mod:`analyses.spectrum_report`): one PNG per stall on a
symmetric-log eigenvalue axis, and the interactive (plotly) loss curve and stall panels."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape.render import fmt_num, kind_style, symlog

if TYPE_CHECKING:  # the report's result types (the report imports this module)
    from synaprune.events import RunLog

    from .spectrum_report import StallSpectrum


def _linthresh(st: StallSpectrum) -> float:
    scale = max(abs(st.lambda_min), abs(st.lambda_max), 1e-300)
    return max(1e-3 * scale, 1e-12)


def symlog_ticks(lim: float, c: float, max_per_side: int = 4) -> list[float]:
    """Tick values for a symmetric-log axis over [−lim, lim] with linear threshold ``c``: 0 and
    ±10^k for decades at least 10·c (so no label crowds the one at 0), thinned to at most
    ``max_per_side`` per side.

    Args:
        lim: the axis' half-range.
        c: the linear threshold.
        max_per_side: ticks per side at most.

    Returns:
        The tick values, ascending.
    """
    if not lim > 0:
        return [0.0]
    k_lo = math.ceil(math.log10(10 * c))
    k_hi = math.floor(math.log10(lim))
    ks = list(range(k_lo, k_hi + 1))
    if len(ks) > max_per_side:
        step = math.ceil(len(ks) / max_per_side)
        ks = ks[::-1][::step][::-1]
    pos = [10.0 ** k for k in ks]
    return [-v for v in reversed(pos)] + [0.0] + pos


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    k = round(math.log10(abs(v)))
    return f"{'-' if v < 0 else ''}1e{k}"


def _finite(vals: Any) -> list[float]:
    return [float(v) if v is not None and math.isfinite(v) else float("nan") for v in vals]


def stall_png(st: StallSpectrum, run: RunLog, path: Path) -> Path:
    """Five panels: SLQ density with its quadrature nodes (Ritz values, weights as stems) and the
    dense spectrum as a rug; the dense spectrum by rank; κ by layer; GSNR by layer; loss curve.

    Args:
        st: the stall's spectrum.
        run: the run's log.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig = plt.figure(figsize=(13, 8))
    gs = fig.add_gridspec(2, 3, height_ratios=[1.1, 1])
    c = _linthresh(st)
    lim = max(abs(st.lambda_min), abs(st.lambda_max)) * 1.15
    ticks = symlog_ticks(lim, c)

    def symlog_x(ax: Any) -> None:
        ax.set_xscale("symlog", linthresh=c)
        ax.set_xlim(-lim, lim)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([_tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())

    ax = fig.add_subplot(gs[0, :2])
    ax.plot(st.density_grid, st.density, color="#1f77b4", lw=1.2, label=f"SLQ density (Gaussian σ = {st.slq_sigma:.2g})")
    ax.set_yscale("log")
    pos = [d for d in st.density if d > 0]
    ax.set_ylim(max(max(pos, default=1.0) * 1e-8, min(pos, default=1e-8)), max(pos, default=1.0) * 3)
    ax.set_ylabel("SLQ density (log)")
    symlog_x(ax)
    axw = ax.twinx()
    if st.ritz_nodes:
        axw.vlines(st.ritz_nodes, 0, st.ritz_weights, color="#444", lw=1.0, alpha=0.8)
        axw.plot(st.ritz_nodes, st.ritz_weights, "o", color="#444", ms=2.5, label="Ritz values (stem = quadrature weight)")
        axw.set_ylim(0, max(st.ritz_weights) * 1.1 if max(st.ritz_weights) > 0 else 1)
    axw.set_ylabel("quadrature weight")
    if st.dense_eigs is not None:
        axw.plot(st.dense_eigs, [0.0] * len(st.dense_eigs), "|", color="#2ca02c", ms=14, mew=1.2,
                 label=f"dense eigenvalues ({len(st.dense_eigs)})")
    for v, ok in zip(st.eig_values, st.eig_converged):
        ax.axvline(v, color="#d62728", lw=0.8, ls="-" if ok else ":")
    ax.plot([], [], color="#d62728", lw=0.8, label="Lanczos extremes (dotted: not converged)")
    ax.set_xlabel(f"eigenvalue (symlog: linear within ±{c:.1e})")
    ax.set_title("Hessian spectrum: smoothed density, quadrature nodes and exact eigenvalues")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axw.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)

    ax = fig.add_subplot(gs[0, 2])
    if st.dense_eigs is not None:
        ev = np.asarray(st.dense_eigs)
        ax.plot(np.arange(ev.size), ev, ".", ms=3)
        ax.set_yscale("symlog", linthresh=c)
        ax.set_ylim(-lim, lim)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.set_yticklabels([_tick_label(t) for t in ticks])
        ax.yaxis.set_minor_locator(NullLocator())
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"dense spectrum ({ev.size} eigenvalues)")
        ax.set_xlabel("rank")
    else:
        ax.text(0.5, 0.5, "model too large for a dense spectrum", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()

    names = list(st.layer_kappa)
    x = np.arange(len(names))
    for col, (vals, label, colour) in enumerate(((_finite(st.layer_kappa.values()), "κ = ‖mean g_i‖ / mean ‖g_i‖", "#1f77b4"),
                                                  (_finite(st.layer_gsnr.values()), "median GSNR", "#ff7f0e"))):
        ax = fig.add_subplot(gs[1, col])
        ax.bar(x, vals, 0.6, color=colour)
        if any(v > 0 for v in vals if math.isfinite(v)):
            ax.set_yscale("log")
        for xi, v in zip(x, vals):
            if math.isfinite(v) and v > 0:
                ax.annotate(fmt_num(v, 2), (xi, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label + " (log)")
        ax.set_title(("cancellation" if col == 0 else "signal-to-noise") + " by layer")

    ax = fig.add_subplot(gs[1, 2])
    if run.losses.size:
        ax.semilogy(run.steps, np.maximum(run.losses, 1e-300), color="k", lw=1)
    for ev in run.events:
        color, _ = kind_style(ev.get("kind") or "")
        ax.plot(ev["step"], max(ev["loss"], 1e-300), "o", color=color, ms=8 if ev["index"] == st.index else 4,
                mec="k" if ev["index"] == st.index else color)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss curve (this stall enlarged)")
    fig.suptitle(f"stall {st.index} at step {st.step}: {st.kind} (index {st.morse_index}, nullity {st.n_zero}, "
                 f"λ_min {fmt_num(st.lambda_min)}, κ {fmt_num(st.kappa)})", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def loss_figure(run: RunLog) -> Any:
    """The run's loss curve with its stalls marked, as a plotly figure.

    Args:
        run: the run's log.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=run.steps, y=run.losses, mode="lines", name="loss", line={"color": "black"}))
    by_kind: dict[str, list[dict]] = {}
    for ev in run.events:
        by_kind.setdefault(ev.get("kind") or "unclassified", []).append(ev)
    for kind, evs in by_kind.items():
        color, symbol = kind_style(kind)
        fig.add_trace(go.Scatter(x=[e["step"] for e in evs], y=[e["loss"] for e in evs], mode="markers", name=kind,
                                 marker={"color": color, "symbol": symbol, "size": 11},
                                 text=[f"stall {e['index']}" for e in evs]))
    fig.update_layout(yaxis_type="log", xaxis_title="step", yaxis_title="loss", height=380,
                      title="loss curve, stalls marked by kind", legend={"orientation": "h", "y": -0.25})
    return fig


def stall_figure(st: StallSpectrum) -> Any:
    """One stall's spectrum panels (SLQ density, dense spectrum, κ and GSNR by layer), as a plotly figure.

    Args:
        st: the stall's spectrum.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = _linthresh(st)
    fig = make_subplots(rows=2, cols=2, specs=[[{"secondary_y": True}, {}], [{}, {}]],
                        subplot_titles=("SLQ density, Ritz values (stems) and dense eigenvalues (symlog x)",
                                        "dense spectrum (symlog)", "κ by layer (log)", "median GSNR by layer (log)"),
                        vertical_spacing=0.18)
    xg = symlog(np.asarray(st.density_grid), c)
    fig.add_trace(go.Scatter(x=xg, y=st.density, mode="lines", name="SLQ density",
                             text=[f"λ={v:.4g}" for v in st.density_grid], hoverinfo="text+y"), row=1, col=1)
    if st.ritz_nodes:
        sx, sy = [], []
        for v, w in zip(symlog(np.asarray(st.ritz_nodes), c), st.ritz_weights):
            sx += [float(v), float(v), None]
            sy += [0.0, float(w), None]
        fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines", name="Ritz values (weight)", line={"color": "#444"}),
                      row=1, col=1, secondary_y=True)
    if st.dense_eigs is not None:
        ev = np.asarray(st.dense_eigs)
        fig.add_trace(go.Scatter(x=symlog(ev, c), y=[0.0] * ev.size, mode="markers", name="dense eigenvalues",
                                 marker={"symbol": "line-ns-open", "size": 12, "color": "#2ca02c"},
                                 text=[f"{v:.4g}" for v in ev]), row=1, col=1, secondary_y=True)
    fig.add_trace(go.Scatter(x=symlog(np.asarray(st.eig_values), c), y=[0.0] * len(st.eig_values),
                             mode="markers", name="Lanczos extremes", marker={"color": "#d62728", "symbol": "x", "size": 9},
                             text=[f"λ={v:.4g}, residual {r:.1e}" for v, r in zip(st.eig_values, st.eig_residuals)]),
                  row=1, col=1, secondary_y=True)
    lim = max(abs(st.lambda_min), abs(st.lambda_max)) * 1.15
    ticks = symlog_ticks(lim, c)
    fig.update_xaxes(tickvals=[float(symlog(t, c)) for t in ticks], ticktext=[_tick_label(t) for t in ticks],
                     range=[-float(symlog(lim, c)), float(symlog(lim, c))], row=1, col=1)
    top = max([d for d in st.density if d > 0], default=1.0)
    # eight decades below the peak: the Gaussian tails far from every node are not information
    fig.update_yaxes(type="log", title_text="density", range=[math.log10(top) - 8, math.log10(top) + 0.3],
                     row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="quadrature weight", rangemode="tozero", row=1, col=1, secondary_y=True)
    if st.dense_eigs is not None:
        ev = np.asarray(st.dense_eigs)
        fig.add_trace(go.Scatter(x=np.arange(ev.size), y=symlog(ev, c), mode="markers", name="dense (by rank)",
                                 marker={"size": 3}, text=[f"{v:.4g}" for v in ev], showlegend=False), row=1, col=2)
        fig.update_yaxes(tickvals=[float(symlog(t, c)) for t in ticks], ticktext=[_tick_label(t) for t in ticks],
                         row=1, col=2)
    names = list(st.layer_kappa)
    fig.add_trace(go.Bar(x=names, y=[None if not math.isfinite(v) else v for v in _finite(st.layer_kappa.values())],
                         name="κ", marker={"color": "#1f77b4"}), row=2, col=1)
    fig.add_trace(go.Bar(x=names, y=[None if not math.isfinite(v) else v for v in _finite(st.layer_gsnr.values())],
                         name="median GSNR", marker={"color": "#ff7f0e"}), row=2, col=2)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(type="log", row=2, col=2)
    fig.update_layout(height=720, title=f"stall {st.index} (step {st.step}): {st.kind}",
                      legend={"orientation": "h", "y": -0.12})
    return fig
