"""Figures of a spectral density (:class:`landscape.spectrum.SpectralDensity`): PNG and offline HTML.

Two panels sharing the eigenvalue axis: the smoothed density (log scale by default) with the region
below the negative-mass threshold shaded and its mass stated, and under it what the curve is made
of, every run's Gauss nodes (Ritz values) with their weights. The page is written by
:func:`landscape.render.write_html` (one local plotly.js, no CDN). matplotlib and plotly are
imported lazily. :meth:`SpectralDensity.plot` and :meth:`SpectralDensity.to_html` call these.
"""
from __future__ import annotations

import html
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .render import write_html

if TYPE_CHECKING:  # pragma: no cover
    from .spectrum import NegativeMass, SpectralDensity

#: a log-scaled density axis shows this many decades below the curve's maximum
LOG_DECADES = 6


def _curve(sd: "SpectralDensity", log: bool) -> tuple[np.ndarray, np.ndarray, float]:
    x = sd.grid.numpy()
    y = sd.density.numpy().copy()
    floor = float(y.max()) * 10.0 ** -LOG_DECADES if log and y.max() > 0 else 0.0
    if log:
        y = np.maximum(y, floor)
    return x, y, floor


def _nodes(sd: "SpectralDensity") -> tuple[np.ndarray, np.ndarray]:
    keep = sd.weights.numpy() > 0
    return sd.nodes.numpy()[keep], sd.weights.numpy()[keep]


def _title(sd: "SpectralDensity", title: str | None) -> str:
    how = ("per-node widths from Ritz spacing and residuals" if sd.smoothing == "adaptive"
           else f"Gaussian σ = {sd.sigma:.3g}")
    return title or f"spectral density (SLQ, {sd.nodes.shape[0]} runs × {sd.nodes.shape[1]} steps; {how})"


def density_png(sd: "SpectralDensity", path: str | Path, *, title: str | None = None, log: bool = True,
                note: "NegativeMass | None" = None, dpi: int = 110) -> Path:
    """Write the density figure as a PNG.

    Args:
        sd: the density. path: the PNG. title: its title (default: how it was computed).
        log: log-scaled density axis (``LOG_DECADES`` decades). note: its negative mass (shaded and
            stated under the title). dpi: resolution.

    Returns:
        The path.

    Example (not run: matplotlib takes a second)::

        density_png(sd, "out/density.png", note=sd.negative_mass())
    """
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x, y, floor = _curve(sd, log)
    nx, nw = _nodes(sd)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(x, y, color="#1f77b4", lw=1.3, label="smoothed density")
    if note is not None and x[0] < note.threshold:
        ax.axvspan(x[0], min(note.threshold, x[-1]), color="#d62728", alpha=0.08, lw=0,
                   label=f"λ < {(note.label or f'{note.threshold:.2g}').split(' (')[0]}: {100 * note.ritz:.3g} % of the quadrature weight")
    ax.axvline(0.0, color="k", lw=0.6, alpha=0.6)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    ax.set_ylabel("density (fraction per unit λ)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    head = _title(sd, title)
    if note is not None:
        head += "\n" + "\n".join(textwrap.wrap(note.describe(), 110))
    ax.set_title(head, fontsize=8.5, loc="left")
    ax2.vlines(nx, 0, nw, color="#555", lw=0.7, alpha=0.6)
    ax2.plot(nx, nw, "o", ms=2.2, color="#333", alpha=0.7)
    ax2.set_yscale("log")
    ax2.set_ylim(bottom=max(float(nw.min()) * 0.5, 1e-12) if nw.size else 1e-12)
    ax2.axvline(0.0, color="k", lw=0.6, alpha=0.6)
    ax2.set_ylabel("Gauss weight")
    ax2.set_xlabel("eigenvalue λ")
    ax2.grid(alpha=0.3)
    ax2.set_title("Ritz values (quadrature nodes) of every run and their weights", fontsize=8.5, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path


def density_figure(sd: "SpectralDensity", *, title: str | None = None, log: bool = True,
                   note: "NegativeMass | None" = None) -> Any:
    """The interactive density figure: the smoothed curve over the Gauss nodes and weights.

    Args:
        sd: the density. title: its title. log: log-scaled density axis. note: its negative mass (shaded).

    Returns:
        A ``plotly.graph_objects.Figure``.

    Example:
        >>> import torch, landscape as ls
        >>> from landscape.operators import DiagonalOperator
        >>> sd = ls.spectral_density(DiagonalOperator(torch.arange(1.0, 9.0, dtype=torch.float64)), n_runs=2)
        >>> len(density_figure(sd).data)
        2
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x, y, floor = _curve(sd, log)
    nx, nw = _nodes(sd)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="smoothed density",
                             hovertemplate="λ=%{x:.4g}<br>density=%{y:.3g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=nx, y=nw, mode="markers", name="Gauss nodes (Ritz values)", marker=dict(size=4),
                             hovertemplate="θ=%{x:.6g}<br>weight=%{y:.3g}<extra></extra>"), row=2, col=1)
    if note is not None and x[0] < note.threshold:
        fig.add_vrect(x0=float(x[0]), x1=float(min(note.threshold, x[-1])), fillcolor="#d62728", opacity=0.08,
                      line_width=0, row=1, col=1)
    fig.update_yaxes(type="log" if log else "linear", title_text="density", row=1, col=1)
    fig.update_yaxes(type="log", title_text="Gauss weight", row=2, col=1)
    fig.update_xaxes(title_text="eigenvalue λ", row=2, col=1)
    fig.update_layout(title=_title(sd, title), template="plotly_white", height=560, showlegend=True)
    return fig


def write_density_html(sd: "SpectralDensity", path: str | Path, *, title: str | None = None, log: bool = True,
                       note: "NegativeMass | None" = None) -> Path:
    """Offline HTML page with :func:`density_figure` and the negative mass stated above it.

    Args:
        sd: the density. path: the page. title: its title. log: log-scaled density axis.
        note: its negative mass.

    Returns:
        The path.

    Example (not run: it writes plotly.js next to the page)::

        write_density_html(sd, "out/density.html", note=sd.negative_mass())
    """
    intro = f"<p>{html.escape(note.describe())}.</p>" if note is not None else ""
    intro += ("<p class=\"note\">The lower panel is what the curve is made of: every run's Gauss quadrature "
              "nodes (Ritz values) and weights; a node's weight is the share of the spectrum it stands for.</p>")
    return write_html(path, [("", density_figure(sd, title=title, log=log, note=note))], title=_title(sd, title),
                      intro_html=intro)
