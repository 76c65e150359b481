"""Figures: matplotlib PNGs and offline plotly HTML (one local plotly.js per output folder, no CDN).

Generic HTML helpers (:func:`figure_div`, :func:`write_html`, :func:`html_table`,
:func:`fmt_num`, :func:`shared_assets`) are shared by every report;
:func:`surface_figure` / :func:`surface_png` draw a :class:`~landscape.surface.SurfaceResult`
(interactive surface + contour with the trajectory and marked points; labelled contour + 3-D
surface in the PNG). matplotlib and plotly are imported lazily.
"""
from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    which have no symlog scale; works on floats and arrays.

    Args:
        x: a float or an array. c: the linear threshold (> 0).

    Returns:
        The transform, same shape.

    Example:
        >>> float(symlog(99.0, 1.0)), float(symlog(-99.0, 1.0))
        (2.0, -2.0)
    """
    return np.sign(x) * np.log10(1.0 + np.abs(x) / c)


def kind_style(kind: str) -> tuple[str, str]:
    """The drawing style of a critical-point kind.

    Args:
        kind: one of :data:`landscape.classify.KINDS` (others get a default).

    Returns:
        ``(colour, plotly marker symbol)``.

    Example:
        >>> kind_style("no such kind")
        ('#ff7f0e', 'circle')
    """
    return KIND_STYLE.get(kind, _DEFAULT_STYLE)


# ---------------------------------------------------------------------------- numbers
def fmt_num(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits (``"–"`` for None / NaN, ``"0"`` for 0, ints as
    ints): never fixed decimals, which print 1e-4 as ``0.000``.

    Args:
        x: a number, None or anything printable. digits: significant digits.

    Returns:
        The text.

    Example:
        >>> fmt_num(0.000123456), fmt_num(None), fmt_num(7), fmt_num(float("inf"))
        ('0.000123', '–', '7', 'inf')
    """
    if x is None or isinstance(x, bool):
        return "–" if x is None else str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "–" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str] | tuple[str, str, Any]], *,
               css_class: str = "data") -> str:
    """An HTML table with readable headers: ``columns`` lists ``(key, header)`` or
    ``(key, header, formatter)`` (default :func:`fmt_num` for numbers, escaped text otherwise);
    wrapped in a horizontally scrolling box so wide tables never overflow the page.

    Args:
        rows: one dict per row. columns: ``(key, header[, formatter])``; a formatter is a callable
            or a format spec. css_class: the table's class.

    Returns:
        The HTML text.

    Example:
        >>> html_table([{"a": 0.5}], [("a", "A")])
        '<div class="table-wrap"><table class="data"><thead><tr><th>A</th></tr></thead><tbody><tr><td>0.5</td></tr></tbody></table></div>'
    """
    head = "".join(f"<th>{html.escape(c[1])}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c[0])
            f = c[2] if len(c) > 2 else None
            if f is not None:
                text = f(v) if not isinstance(f, str) else format(v, f)
            elif isinstance(v, (int, float, np.integer, np.floating)) or v is None:
                text = html.escape(fmt_num(v))
            else:
                text = html.escape(str(v))
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class=\"table-wrap\"><table class=\"{css_class}\"><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")


# ---------------------------------------------------------------------------- offline HTML
PAGE_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
            "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
            ".table-wrap{overflow-x:auto;max-width:100%}img{max-width:100%;height:auto}"
            ".lead{font-size:110%;background:#f6f8fa;border-left:4px solid #4a7;padding:.5em 1em}"
            ".note{color:#555;font-size:90%}")

_ASSET_ROOTS: list[Path] = []


@contextmanager
def shared_assets(root: str | Path) -> Iterator[Path]:
    """Inside this block every :func:`write_html` page links the one plotly.js in ``root``
    (e.g. the whole ``landscape study`` output), instead of one copy per page folder.

    Args:
        root: the folder of the shared plotly.js.

    Yields:
        ``root`` as a ``Path``.

    Example (not run: it writes files)::

        with shared_assets("out"):
            write_html("out/a/page.html", fig)   # links out/plotly-<version>.min.js
    """
    root = Path(root)
    _ASSET_ROOTS.append(root)
    try:
        yield root
    finally:
        _ASSET_ROOTS.pop()


def plotly_js_file(folder: str | Path) -> Path:
    """Write (once) plotly.js into ``folder`` as ``plotly-<version>.min.js``; returns its path.
    Offline: the library ships the file, nothing is fetched.

    Args:
        folder: where to write it.

    Returns:
        The file's path.

    Example (not run: it writes a 3.5 MB file)::

        plotly_js_file("out")   # out/plotly-2.x.y.min.js
    """
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    path = Path(folder) / f"plotly-{get_plotlyjs_version()}.min.js"
    js = get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(js.encode("utf-8")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(js, encoding="utf-8")
    return path


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    return out or "page"


def figure_div(fig: Any, *, include_plotlyjs: bool = False, div_id: str | None = None) -> str:
    """A plotly figure as an HTML ``<div>``; ``include_plotlyjs=True`` inlines plotly.js. Never
    uses a CDN. Without ``div_id`` the id is derived from the figure's content (plotly's own are
    random UUIDs, which would make every rerun's page differ).

    Args:
        fig: a plotly figure. include_plotlyjs: inline plotly.js. div_id: the element id.

    Returns:
        The HTML text.

    Example:
        >>> import plotly.graph_objects as go
        >>> 'id="f"' in figure_div(go.Figure(), div_id="f")
        True
    """
    if div_id is None:
        div_id = "fig-" + hashlib.sha1(fig.to_json().encode("utf-8")).hexdigest()[:12]
    return fig.to_html(full_html=False, include_plotlyjs=bool(include_plotlyjs), div_id=div_id,
                       config={"responsive": True})


def write_html(path: str | Path, sections: Sequence[tuple[str, Any]] | Any, *, title: str = "landscape",
               intro_html: str = "") -> Path:
    """Write an offline page: ``sections`` is a plotly figure, or a list of
    ``(heading, figure_or_html_string)``. The page links one shared ``plotly-<version>.min.js``
    written next to it (or in the folder of an enclosing :func:`shared_assets` block); element ids
    are derived from the page name, so a rerun writes the same bytes.

    Args:
        path: the page. sections: a figure or ``[(heading, figure or HTML)]``.
        title: the page title. intro_html: HTML under the title.

    Returns:
        The path.

    Example:
        >>> import pathlib, tempfile
        >>> p = write_html(pathlib.Path(tempfile.mkdtemp()) / "t.html", [("Notes", "<p>no figure</p>")], title="t")
        >>> "<h2>Notes</h2>" in p.read_text()
        True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(sections, (list, tuple)):
        sections = [("", sections)]
    parts, n_fig = [], 0
    slug = _slug(path.stem)
    for heading, item in sections:
        if heading:
            parts.append(f"<h2>{html.escape(str(heading))}</h2>")
        if isinstance(item, str):
            parts.append(item)
        else:
            parts.append(figure_div(item, div_id=f"{slug}-fig{n_fig}"))
            n_fig += 1
    script = ""
    if n_fig:
        js = plotly_js_file(_ASSET_ROOTS[-1] if _ASSET_ROOTS else path.parent)
        src = Path(os.path.relpath(js, path.parent)).as_posix()
        script = f'<script src="{html.escape(src)}" charset="utf-8"></script>\n'
    body = "\n".join(parts)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>{PAGE_CSS}</style>\n{script}"
            f"</head><body>\n<h1>{html.escape(title)}</h1>\n{intro_html}\n{body}\n</body></html>\n")
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


def loss_levels(z: np.ndarray, n: int = 15) -> np.ndarray | None:
    """Contour levels for a loss grid ``z`` (NaNs ignored): log-spaced, ``geomspace(min, max)``,
    when the loss is positive and spans a decade or more (linear levels would put a trajectory
    descending into the basin inside one band), else evenly spaced (a saddle's neighbourhood,
    where the loss changes by a few percent). None when the grid is flat.

    Args:
        z: the loss grid. n: the number of levels.

    Returns:
        (n,) levels, or None.

    Example:
        >>> loss_levels([[1.0, 100.0]], 3).tolist(), loss_levels([[2.0, 2.0]]) is None
        ([1.0, 10.0, 100.0], True)
    """
    finite = np.asarray(z, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        return None
    if lo > 0 and hi / lo >= 10:
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def _is_log(levels: np.ndarray) -> bool:
    return bool(levels[0] > 0 and levels[-1] / levels[0] >= 10
                and np.allclose(np.diff(np.log(levels)), np.log(levels[1] / levels[0])))


def _level_transform(levels: np.ndarray) -> Any:
    """Monotone map under which ``levels`` are evenly spaced (for plotly colour scales)."""
    if _is_log(levels):
        return lambda v: np.log10(np.asarray(v, dtype=np.float64))
    return lambda v: np.asarray(v, dtype=np.float64)


def surface_figure(res: "SurfaceResult", *, title: str | None = None, log: bool = False):
    """Interactive plotly figure: 3-D surface and contour side by side (2-D results) or a line
    (1-D), with the trajectory and marked points (labelled by kind). ``log``: plot log10(loss).

    Args:
        res: the surface. title: the figure title. log: plot log10(loss).

    Returns:
        A ``plotly.graph_objects.Figure``.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> res = ls.surface_2d(obj, obj.initial_point(), *torch.eye(2, dtype=torch.float64), steps=5, progress=False)
        >>> len(surface_figure(res).data) >= 2
        True
    """
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
    levels = None if log else loss_levels(z)
    if levels is None:
        colour, cz = None, z.T
        contours = dict(showlabels=True, labelfont=dict(size=9, color="white"))
        cbar = dict(title=zl, x=1.02)
        cextra: dict[str, Any] = {"ncontours": 25}
    else:
        # Log-spaced loss levels: colour by the transformed loss, label the colour bar in loss units.
        tf = _level_transform(levels)
        tl = tf(levels)
        cz = tf(z.T)
        colour = cz
        contours = dict(start=float(tl[0]), end=float(tl[-1]), size=float((tl[-1] - tl[0]) / (len(tl) - 1)))
        ticks = np.linspace(0, len(levels) - 1, 6).round().astype(int)
        cbar = dict(title=zl, x=1.02, tickvals=[float(tl[i]) for i in ticks],
                    ticktext=[fmt_num(levels[i], 3) for i in ticks])
        cextra = {"customdata": z.T, "autocontour": False,
                  "hovertemplate": "a=%{x:.3g}<br>b=%{y:.3g}<br>loss=%{customdata:.6g}<extra></extra>"}
    fig.add_trace(go.Surface(x=a, y=b, z=z.T, surfacecolor=colour, colorscale="Viridis", showscale=False, name=zl,
                             hovertemplate="a=%{x:.3g}<br>b=%{y:.3g}<br>" + zl + "=%{z:.5g}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Contour(x=a, y=b, z=cz, colorscale="Viridis", name=zl, contours=contours, colorbar=cbar,
                             **cextra), row=1, col=2)
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
                      legend=dict(orientation="h", yanchor="top", y=-0.15, x=0.5, xanchor="center"),
                      scene=dict(xaxis_title=xl, yaxis_title=yl, zaxis_title=zl))
    fig.update_xaxes(title_text=xl, row=1, col=2)
    fig.update_yaxes(title_text=yl, row=1, col=2)
    return fig


def write_surface_html(res: "SurfaceResult", path: str | Path, *, title: str | None = None, log: bool = False,
                       notes: str = "") -> Path:
    """Offline HTML page with :func:`surface_figure` and a short description.

    Args:
        res: the surface. path: the page. title: its title. log: log10(loss). notes: text under the title.

    Returns:
        The path.

    Example (not run: it writes plotly.js next to the page)::

        write_surface_html(ls.surface_2d(obj, theta), "out/surface.html")
    """
    title = title or f"loss surface ({res.kind})"
    intro = f"<p>{html.escape(notes)}</p>" if notes else ""
    intro += f"<p>{res.n_points} points, span ±{res.span:g}, centre loss {res.center_loss:.6g}.</p>"
    if not log and res.ndim == 2 and loss_levels(_z(res, False)) is not None:
        if _is_log(loss_levels(_z(res, False))):
            intro += "<p class=\"note\">Contour levels are log-spaced (colour bar in loss units).</p>"
    return write_html(path, [("", surface_figure(res, title=title, log=log))], title=title, intro_html=intro)


def surface_png(res: "SurfaceResult", path: str | Path, *, title: str | None = None, log: bool = False,
                levels: int = 15, dpi: int = 110) -> Path:
    """PNG: labelled contour plot and 3-D surface (2-D results) or a line plot (1-D), with the
    trajectory and marked points.

    Args:
        res: the surface. path: the PNG. title: its title. log: log10(loss).
        levels: contour levels. dpi: resolution.

    Returns:
        The path.

    Example (not run: matplotlib takes a second)::

        surface_png(ls.surface_2d(obj, theta), "out/surface.png")
    """
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
        lv = np.linspace(np.nanmin(z), np.nanmax(z), levels) if log else loss_levels(z, levels)
        if lv is not None and np.all(np.diff(lv) > 0):
            from matplotlib.colors import BoundaryNorm

            cmap = plt.get_cmap("viridis")
            norm = BoundaryNorm(lv, cmap.N, extend="both")
            cs = ax.contour(A, B, z, levels=lv, cmap=cmap, norm=norm, linewidths=1)
            ax.clabel(cs, cs.levels[::2], inline=True, fontsize=7, fmt=_level_format(cs.levels))
            cf = ax.contourf(A, B, z, levels=lv, cmap=cmap, norm=norm, alpha=0.3, extend="both")
            cb = fig.colorbar(cf, ax=ax, shrink=0.85, pad=0.02)
            cb.set_label(zl + (" (log-spaced levels)" if not log and _is_log(lv) else ""))
            cb.set_ticks(lv[::2])
            cb.set_ticklabels([_level_format(lv) % v for v in lv[::2]])
        if res.trajectory is not None:
            tr = np.asarray(res.trajectory)
            ax.plot(tr[:, 0], tr[:, 1], "-", color="red", lw=1.5, label="trajectory")
            ax.plot(tr[:1, 0], tr[:1, 1], "o", mfc="white", mec="red", label="start")
        for m in _marks_xy(res):
            col, sym = kind_style(m.get("kind", ""))
            ax.plot([m["coords"][0]], [m["coords"][1]], _MPL_MARKERS.get(sym, "o"), color=col, ms=9, mec="black",
                    label=_mark_label(m))
        if res.trajectory is not None or res.marks:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{title}: contour")
        ax.set_aspect("equal", adjustable="box")
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        if lv is not None and not log:
            # colour the surface by level band, like the contour plot
            from matplotlib.colors import BoundaryNorm

            fc = plt.get_cmap("viridis")(BoundaryNorm(lv, 256, extend="both")(np.nan_to_num(z, nan=lv[-1])))
            ax3.plot_surface(A, B, np.ma.masked_invalid(z), facecolors=fc, linewidth=0, antialiased=True, alpha=0.9,
                             shade=False)
        else:
            ax3.plot_surface(A, B, np.ma.masked_invalid(z), cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
        if res.trajectory is not None and res.trajectory_loss is not None:
            tr = np.asarray(res.trajectory)
            ax3.plot(tr[:, 0], tr[:, 1], [tz(v) for v in res.trajectory_loss], color="red", lw=1.5)
        ax3.set_xlabel(xl)
        ax3.set_ylabel(yl)
        ax3.set_zlabel(zl)
        ax3.set_title("surface")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path
