"""Figures: matplotlib PNGs and offline plotly HTML (plotly.js embedded, no CDN).

Generic HTML helpers (:func:`figure_div`, :func:`write_html`) are shared by every report;
:func:`surface_figure` / :func:`surface_png` draw a :class:`~landscape.surface.SurfaceResult`
(interactive surface + contour with the trajectory and marked points; labelled contour + 3-D
surface in the PNG). matplotlib and plotly are imported lazily.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .surface import SurfaceResult

# One colour and marker per critical-point kind, shared by every figure.
KIND_STYLE: dict[str, tuple[str, str]] = {
    "minimum": ("#2ca02c", "circle"), "global_minimum": ("#2ca02c", "circle"),
    "strict_saddle": ("#d62728", "x"), "non_strict_saddle": ("#9467bd", "diamond"),
    "maximum": ("#8c564b", "square"), "not_critical": ("#7f7f7f", "cross"),
}
_DEFAULT_STYLE = ("#ff7f0e", "circle")
_MPL_MARKERS = {"circle": "o", "x": "X", "diamond": "D", "square": "s", "cross": "P"}


def symlog(x: Any, c: float) -> Any:
    """Symmetric-log transform sign(x)·log10(1 + |x|/c) (linear below ``c``), for plotly axes,
    which have no symlog scale; works on floats and arrays."""
    return np.sign(x) * np.log10(1.0 + np.abs(x) / c)


def kind_style(kind: str) -> tuple[str, str]:
    """(colour, plotly marker symbol) for a critical-point kind."""
    return KIND_STYLE.get(kind, _DEFAULT_STYLE)


# ---------------------------------------------------------------------------- offline HTML
def figure_div(fig: Any, *, include_plotlyjs: bool = False, div_id: str | None = None) -> str:
    """A plotly figure as an HTML ``<div>``; ``include_plotlyjs=True`` embeds plotly.js (do it once
    per page). Never uses a CDN."""
    return fig.to_html(full_html=False, include_plotlyjs=bool(include_plotlyjs), div_id=div_id,
                       config={"responsive": True})


def write_html(path: str | Path, sections: Sequence[tuple[str, Any]] | Any, *, title: str = "landscape",
               intro_html: str = "") -> Path:
    """Write a self-contained page: ``sections`` is a plotly figure, or a list of
    ``(heading, figure_or_html_string)``; plotly.js is embedded once (works offline)."""
    if not isinstance(sections, (list, tuple)):
        sections = [("", sections)]
    parts, js_done = [], False
    for heading, item in sections:
        if heading:
            parts.append(f"<h2>{html.escape(str(heading))}</h2>")
        if isinstance(item, str):
            parts.append(item)
        else:
            parts.append(figure_div(item, include_plotlyjs=not js_done))
            js_done = True
    body = "\n".join(parts)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>\n"
            f"</head><body>\n<h1>{html.escape(title)}</h1>\n{intro_html}\n{body}\n</body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- surfaces
def _axis_labels(res: "SurfaceResult") -> tuple[str, str]:
    kind = res.kind
    if kind == "eigen":
        vals = res.meta.get("eigenvalues") or [None, None]
        fmt = [f"λ = {v:.3g}" if isinstance(v, (int, float)) else "" for v in vals]
        return f"eigenvector 1 ({fmt[0]})", f"eigenvector 2 ({fmt[1] if len(fmt) > 1 else ''})"
    if kind == "pca":
        ev = res.meta.get("explained_variance") or [float("nan")] * 2
        return f"PC 1 ({100 * ev[0]:.1f}% var.)", f"PC 2 ({100 * ev[1]:.1f}% var.)"
    if kind == "interpolation":
        return "t (θ_a → θ_b)", ""
    return "direction 1 (a)", "direction 2 (b)"


def _z(res: "SurfaceResult", log: bool) -> np.ndarray:
    z = np.asarray(res.loss, dtype=np.float64).copy()
    z[~np.isfinite(z)] = np.nan
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(np.where(z > 0, z, np.nan))
    return z


def _marks_xy(res: "SurfaceResult") -> list[dict]:
    return [m for m in res.marks if m.get("coords") is not None]


def _mark_label(m: dict) -> str:
    kind = m.get("kind") or ""
    return m["label"] if not kind or kind.replace("_", " ") == m["label"] else f"{m['label']} ({kind})"


def _level_format(levels: Sequence[float]) -> str:
    """The shortest ``%.Ng`` format that tells adjacent contour levels apart."""
    for digits in range(3, 13):
        labels = [f"%.{digits}g" % v for v in levels]
        if len(set(labels)) == len(labels):
            return f"%.{digits}g"
    return "%.12g"


def surface_figure(res: "SurfaceResult", *, title: str | None = None, log: bool = False):
    """Interactive plotly figure: 3-D surface and contour side by side (2-D results) or a line
    (1-D), with the trajectory and marked points (labelled by kind). ``log``: plot log10(loss)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    xl, yl = _axis_labels(res)
    zl = "log10 loss" if log else "loss"
    z = _z(res, log)
    title = title or f"loss surface ({res.kind})"

    def tz(v: Any) -> float:
        v = float(v) if v is not None else float("nan")
        return (np.log10(v) if v > 0 else float("nan")) if log else v

    if res.ndim == 1:
        fig = go.Figure(go.Scatter(x=res.coords[0], y=z, mode="lines", name="loss"))
        for m in _marks_xy(res):
            c, sym = kind_style(m.get("kind", ""))
            fig.add_trace(go.Scatter(x=[m["coords"][0]], y=[tz(m["loss"])], mode="markers+text", text=[m["label"]],
                                     textposition="top center", marker=dict(color=c, symbol=sym, size=11),
                                     name=m["label"]))
        fig.update_layout(title=title, xaxis_title=xl, yaxis_title=zl, template="plotly_white")
        return fig

    a, b = res.coords
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "surface"}, {"type": "xy"}]],
                        subplot_titles=("surface", "contour"), horizontal_spacing=0.06)
    # loss[i, j] is at (a_i, b_j): plotly wants z[row=y][col=x], so x = a means z = loss.T.
    fig.add_trace(go.Surface(x=a, y=b, z=z.T, colorscale="Viridis", showscale=False, name=zl,
                             hovertemplate="a=%{x:.3g}<br>b=%{y:.3g}<br>" + zl + "=%{z:.5g}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Contour(x=a, y=b, z=z.T, colorscale="Viridis", ncontours=25, name=zl,
                             contours=dict(showlabels=True, labelfont=dict(size=9, color="white")),
                             colorbar=dict(title=zl, x=1.02)), row=1, col=2)
    if res.trajectory is not None:
        tr = np.asarray(res.trajectory)
        tl = (np.array([tz(v) for v in res.trajectory_loss]) if res.trajectory_loss is not None
              else np.full(tr.shape[0], np.nan))
        fig.add_trace(go.Scatter3d(x=tr[:, 0], y=tr[:, 1], z=tl, mode="lines+markers", name="trajectory",
                                   line=dict(color="red", width=4), marker=dict(size=2, color="red"),
                                   showlegend=False), row=1, col=1)
        fig.add_trace(go.Scatter(x=tr[:, 0], y=tr[:, 1], mode="lines+markers", name="trajectory",
                                 line=dict(color="red", width=2), marker=dict(size=3, color="red")), row=1, col=2)
        fig.add_trace(go.Scatter(x=[tr[0, 0]], y=[tr[0, 1]], mode="markers", name="start",
                                 marker=dict(color="white", line=dict(color="red", width=2), size=10)), row=1, col=2)
    for m in _marks_xy(res):
        col, sym = kind_style(m.get("kind", ""))
        x, y = m["coords"][:2]
        hover = f"{m['label']}<br>kind: {m.get('kind', '')}<br>loss: {m['loss']:.6g}<br>off plane: {m['off_plane']:.3g}"
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers+text", text=[_mark_label(m)],
                                 textposition="top center", name=m["label"], hovertext=[hover], hoverinfo="text",
                                 marker=dict(color=col, symbol=sym, size=12, line=dict(color="black", width=1))),
                      row=1, col=2)
        fig.add_trace(go.Scatter3d(x=[x], y=[y], z=[tz(m["loss"])], mode="markers", name=m["label"],
                                   marker=dict(color=col, size=6), showlegend=False, hovertext=[hover],
                                   hoverinfo="text"), row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=560,
                      scene=dict(xaxis_title=xl, yaxis_title=yl, zaxis_title=zl))
    fig.update_xaxes(title_text=xl, row=1, col=2)
    fig.update_yaxes(title_text=yl, row=1, col=2)
    return fig


def write_surface_html(res: "SurfaceResult", path: str | Path, *, title: str | None = None, log: bool = False,
                       notes: str = "") -> Path:
    """Offline HTML page with :func:`surface_figure` and a short description."""
    title = title or f"loss surface ({res.kind})"
    intro = f"<p>{html.escape(notes)}</p>" if notes else ""
    intro += (f"<p>{res.n_points} points, span ±{res.span:g}, centre loss {res.center_loss:.6g}, "
              f"{res.ms_per_point:.3g} ms/point.</p>")
    return write_html(path, [("", surface_figure(res, title=title, log=log))], title=title, intro_html=intro)


def surface_png(res: "SurfaceResult", path: str | Path, *, title: str | None = None, log: bool = False,
                levels: int = 15, dpi: int = 110) -> Path:
    """PNG: labelled contour plot and 3-D surface (2-D results) or a line plot (1-D), with the
    trajectory and marked points."""
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    xl, yl = _axis_labels(res)
    zl = "log10 loss" if log else "loss"
    z = _z(res, log)
    title = title or f"loss surface ({res.kind})"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def tz(v: Any) -> float:
        v = float(v) if v is not None else float("nan")
        return (np.log10(v) if v > 0 else float("nan")) if log else v

    if res.ndim == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(res.coords[0], z, lw=1.8)
        for m in _marks_xy(res):
            col, sym = kind_style(m.get("kind", ""))
            ax.plot([m["coords"][0]], [tz(m["loss"])], _MPL_MARKERS.get(sym, "o"), color=col, label=m["label"])
        if res.marks:
            ax.legend(fontsize=8)
        ax.set_xlabel(xl)
        ax.set_ylabel(zl)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    else:
        a, b = res.coords
        A, B = np.meshgrid(a, b, indexing="ij")
        fig = plt.figure(figsize=(12, 5))
        ax = fig.add_subplot(1, 2, 1)
        finite = z[np.isfinite(z)]
        if finite.size and finite.max() > finite.min():
            cs = ax.contour(A, B, z, levels=levels, cmap="viridis", linewidths=1)
            ax.clabel(cs, inline=True, fontsize=7, fmt=_level_format(cs.levels))
            ax.contourf(A, B, z, levels=levels, cmap="viridis", alpha=0.25)
        if res.trajectory is not None:
            tr = np.asarray(res.trajectory)
            ax.plot(tr[:, 0], tr[:, 1], "-", color="red", lw=1.5, label="trajectory")
            ax.plot(tr[:1, 0], tr[:1, 1], "o", mfc="white", mec="red", label="start")
        for m in _marks_xy(res):
            col, sym = kind_style(m.get("kind", ""))
            ax.plot([m["coords"][0]], [m["coords"][1]], _MPL_MARKERS.get(sym, "o"), color=col, ms=9, mec="black",
                    label=_mark_label(m))
        if res.trajectory is not None or res.marks:
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{title}: contour")
        ax.set_aspect("equal", adjustable="box")
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        ax3.plot_surface(A, B, np.ma.masked_invalid(z), cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
        if res.trajectory is not None and res.trajectory_loss is not None:
            tr = np.asarray(res.trajectory)
            ax3.plot(tr[:, 0], tr[:, 1], [tz(v) for v in res.trajectory_loss], color="red", lw=1.5)
        ax3.set_xlabel(xl)
        ax3.set_ylabel(yl)
        ax3.set_zlabel(zl)
        ax3.set_title("surface")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
