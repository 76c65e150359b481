"""The escape study's figures, drawn from the records and :func:`analyses.escape.analysis.analyse`.

- :func:`answer_png`: per main cell, every method's speed-up over GD and each rule's over its
  length-matched control, with their 95 % intervals (the report's first figure);
- :func:`loss_cost_png`: the loss against the cost for every method (main cells; controls);
- :func:`survival_png`: the share of instances that have not reached the target against
  steps / theory, the horizon drawn and named;
- :func:`sweep_png`, :func:`kappa_png`: the two sub-experiments;
- :func:`loss_cost_figure`: an interactive (plotly) loss-against-cost page.

Every label uses characters that DejaVu Sans draws (``tests/test_escape_report.py`` checks).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..problems.escape_instances import CONTROL_CELLS, MAIN_CELLS
from ..stats import kaplan_meier
from .analysis import group_runs, restricted
from .design import BASELINE, METHODS

#: two panels of methods: the SynaPrune rules with their controls, and the other baselines
RULE_ROW = ("gd", "rms", "len-rms", "devarg", "len-devarg", "noise", "rms@always", "len-rms@always",
            "devarg@always", "len-devarg@always", "rms-norevert", "devarg-norevert")
BASE_ROW = ("gd", "adam", "rmsprop", "sign-gd", "normalized-gd", "sgd-m/8", "sgd-m/2", "pgd")
COLOURS = {"gd": "#000000", "rms": "#1f77b4", "len-rms": "#1f77b4", "devarg": "#ff7f0e", "len-devarg": "#ff7f0e",
           "noise": "#2ca02c", "rms@always": "#9467bd", "len-rms@always": "#9467bd", "devarg@always": "#8c564b",
           "len-devarg@always": "#8c564b", "rms-norevert": "#17becf", "devarg-norevert": "#bcbd22",
           "adam": "#e377c2", "rmsprop": "#d62728", "sign-gd": "#7f7f7f", "normalized-gd": "#bcbd22",
           "sgd-m/8": "#8c564b", "sgd-m/2": "#c49c94", "pgd": "#17becf"}
TITLES = {"cancelling_strict": "cancelling x strict saddle", "cancelling_nonstrict": "cancelling x non-strict saddle",
          "vanishing_strict": "vanishing x strict saddle", "vanishing_nonstrict": "vanishing x non-strict saddle",
          "cancelling_global": "cancelling x global minimum", "vanishing_global": "vanishing x global minimum",
          "cancelling_spurious": "cancelling x spurious minimum", "vanishing_spurious": "vanishing x spurious minimum"}


def style(method: str) -> dict[str, Any]:
    """A method's line style (length controls dashed, their rule's colour).

    Args:
        method: a method label.

    Returns:
        matplotlib keyword arguments ``color``, ``ls``, ``lw``.

    >>> style("len-rms")["ls"], style("rms")["ls"]
    ('--', '-')
    """
    return {"color": COLOURS.get(method, "#000000"), "ls": "--" if method.startswith("len-") else "-",
            "lw": 2.2 if method == BASELINE else 1.4}


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    _mpl().close(fig)
    return path


def answer_png(an: dict[str, Any], path: Path) -> Path:
    """Per main cell: each method's steps-to-target speed-up over GD (GD's steps / the method's,
    Hodges–Lehmann over the paired instances, 95 % signed-rank interval), and each rule's speed-up
    over its own length-matched control (open squares). Log axis; 1 = no difference.

    Args:
        an: :func:`analyses.escape.analysis.analyse`.
        path: the PNG.

    Returns:
        ``path``.
    """
    plt = _mpl()
    from matplotlib.ticker import FuncFormatter, LogLocator

    cells = [c for c in MAIN_CELLS if c in an["cells"]]
    fig, axes = plt.subplots(1, max(1, len(cells)), figsize=(4.1 * max(1, len(cells)), 6.2), squeeze=False,
                             sharey=True, sharex=True)
    labels = [m for m in METHODS if m != BASELINE and any(m in an["cells"][c]["methods"] for c in cells)]
    for ax, cell in zip(axes[0], cells):
        ca = an["cells"][cell]
        for i, m in enumerate(labels):
            c = (ca.get("vs_gd") or {}).get(m, {}).get("steps")
            if c and c.get("ratio") is not None:
                x = 1.0 / c["ratio"]
                lo = None if c.get("ratio_high") is None else 1.0 / c["ratio_high"]
                hi = None if c.get("ratio_low") is None else 1.0 / c["ratio_low"]
                ax.plot([x], [i], "o", color=COLOURS.get(m, "k"), ms=5)
                if lo is not None:
                    ax.plot([lo, hi], [i, i], "-", color=COLOURS.get(m, "k"), lw=1.5)
            v = (ca.get("vs_control") or {}).get(m, {}).get("steps")
            if v and v.get("ratio") is not None:
                x = 1.0 / v["ratio"]
                ax.plot([x], [i + 0.3], "s", mfc="none", color=COLOURS.get(m, "k"), ms=5)
                if v.get("ratio_low") is not None:
                    ax.plot([1.0 / v["ratio_high"], 1.0 / v["ratio_low"]], [i + 0.3, i + 0.3], ":",
                            color=COLOURS.get(m, "k"), lw=1.2)
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_title(f"{TITLES[cell]}\n({ca['n_instances']} instances)", fontsize=9)
        ax.set_xlabel("speed-up in steps to the target\n(>1: faster)", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].set_yticks(range(len(labels)))
    axes[0][0].set_yticklabels(labels, fontsize=8)
    axes[0][0].invert_yaxis()
    handles = [plt.Line2D([], [], color="k", marker="o", ls="-", label="vs GD (95 % CI)"),
               plt.Line2D([], [], color="k", marker="s", mfc="none", ls=":", label="rule vs its length-matched control")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Steps to the target, paired by instance (Hodges-Lehmann, signed-rank 95 % interval)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return _save(fig, path)


def _normalised_curve(r: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(cost / (n·theory, or n·horizon/3 without theory), y) of one run: y = (L − L_next)/(L_stall −
    L_next) at a saddle; at a minimum (a control) the relative excess (L − L_min)/|L_min|."""
    info = r.get("instance_info") or {}
    stall, nxt = info.get("stall_value"), info.get("next_value")
    if stall is None or not r.get("curve"):
        return None
    unit = r["n_examples"] * (r.get("theory_steps") or r["horizon"] / 3.0)
    c = np.array([max(p[1], 1e-12) / unit for p in r["curve"]])
    if r.get("part") == "control":
        z = np.array([(p[2] - stall) / max(abs(stall), 1e-12) for p in r["curve"]])
    elif nxt is None or stall == nxt:
        return None
    else:
        z = np.array([(p[2] - nxt) / (stall - nxt) for p in r["curve"]])
    return c, z


def _median_curve(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """The median over runs at each grid point; a run that stopped holds its last value (at or below
    the target), one not started yet its first."""
    vals = []
    for c, z in curves:
        vals.append(np.interp(np.log(grid), np.log(c), z, left=z[0], right=z[-1]))
    return np.median(np.array(vals), axis=0)


def loss_cost_png(records: Sequence[dict[str, Any]], path: Path, cells: Sequence[str] = MAIN_CELLS,
                  part: str = "main") -> Path:
    """The loss against the cost for every method: median over instances of (L − L_next)/(L_stall −
    L_next) (1: the stall's value, ½: the target, 0: the next critical value) against the cost in
    units of n·theory steps (what GD would spend in the theory's time). Runs stop at the target, so
    the median holds there once half of the runs have reached it.

    Args:
        records: the records.
        path: the PNG.
        cells: the cells drawn (one column each).
        part: ``"main"`` or ``"control"``.

    Returns:
        ``path``.
    """
    plt = _mpl()
    cells = [c for c in cells if any(r.get("part") == part and r["cell"] == c for r in records)]
    fig, axes = plt.subplots(2, max(1, len(cells)), figsize=(3.9 * max(1, len(cells)) + 2.2, 6.6), squeeze=False)
    grid = np.geomspace(1e-2, 1e2, 160)
    groups = group_runs(records, part)
    for j, cell in enumerate(cells):
        for i, row in enumerate((RULE_ROW, BASE_ROW)):
            ax = axes[i][j]
            for m in row:
                cs = [_normalised_curve(g[m]) for k, g in groups.items() if k[0] == cell and m in g]
                cs = [c for c in cs if c is not None]
                if not cs:
                    continue
                ax.plot(grid, _median_curve(cs, grid), label=m, **style(m))
            ax.set_xscale("log")
            if part == "control":
                ax.set_yscale("symlog", linthresh=1e-6)
            else:
                ax.axhline(0.5, color="0.6", ls=":", lw=1)
                ax.set_ylim(-0.05, 1.1)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(TITLES[cell], fontsize=9)
            if i == 1:
                ax.set_xlabel("cost / (n x theory steps)", fontsize=8)
            if j == 0:
                ax.set_ylabel("(L - L_min) / |L_min|" if part == "control" else "(L - L_next) / (L_stall - L_next)",
                              fontsize=8)
    present = {r["method"] for r in records if r.get("part") == part}
    for i, row in enumerate((RULE_ROW, BASE_ROW)):
        h = [plt.Line2D([], [], label=m, **style(m)) for m in row if m in present]
        if i == 1 and part != "control":
            h.append(plt.Line2D([], [], color="0.6", ls=":", label="target (runs stop)"))
        fig.legend(handles=h, loc="upper left", bbox_to_anchor=(1 - 2.1 / (3.9 * max(1, len(cells)) + 2.2),
                                                                0.97 - 0.48 * i), fontsize=7, frameon=False)
    fig.suptitle(("Controls (minima): excess loss" if part == "control" else "Loss")
                 + " against cost (example-gradient units as the Trainer counts them), median over instances",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / (3.9 * max(1, len(cells)) + 2.2), 0.95))
    return _save(fig, path)


def survival_png(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Per main cell: the Kaplan-Meier share of instances that have not yet reached the target
    against steps / theory, every method; runs stop at their horizon, HORIZON_MULT × theory (3 at
    strict saddles, 10 at order ≥ 3), drawn as a vertical line: a curve still above 0 there is the
    share censored (not reached within the horizon), not a failure to escape ever.

    Args:
        records: the records.
        path: the PNG.

    Returns:
        ``path``.
    """
    plt = _mpl()
    cells = [c for c in MAIN_CELLS if any(r.get("part") == "main" and r["cell"] == c for r in records)]
    fig, axes = plt.subplots(2, max(1, len(cells)), figsize=(3.9 * max(1, len(cells)) + 2.2, 6.6), squeeze=False)
    groups = group_runs(records, "main")
    for j, cell in enumerate(cells):
        mult = None
        for i, row in enumerate((RULE_ROW, BASE_ROW)):
            ax = axes[i][j]
            for m in row:
                rs = [g[m] for k, g in groups.items() if k[0] == cell and m in g and g[m].get("theory_steps")]
                if not rs:
                    continue
                t = [restricted(r)[0] / r["theory_steps"] for r in rs]
                e = [restricted(r)[1] for r in rs]
                mult = max(r["horizon"] / r["theory_steps"] for r in rs)
                km = kaplan_meier(t, e)
                xs, ys = [0.0], [1.0]
                for ti, si in zip(km.times, km.survival):
                    xs += [ti, ti]
                    ys += [ys[-1], si]
                xs.append(max(t))
                ys.append(ys[-1])
                ax.plot(xs, ys, label=m, **style(m))
            if mult:
                ax.axvline(mult, color="0.3", ls=":", lw=1.2)
                ax.text(mult, 0.98, " horizon", fontsize=7, va="top", color="0.3")
            ax.set_xscale("symlog", linthresh=0.1)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(TITLES[cell], fontsize=9)
            if i == 1:
                ax.set_xlabel("steps / theory steps", fontsize=8)
            if j == 0:
                ax.set_ylabel("share not yet at the target", fontsize=8)
    present = {r["method"] for r in records if r.get("part") == "main"}
    for i, row in enumerate((RULE_ROW, BASE_ROW)):
        h = [plt.Line2D([], [], label=m, **style(m)) for m in row if m in present]
        if i == 1:
            h.append(plt.Line2D([], [], color="0.3", ls=":", label="horizon: the runs stop\n(3 x theory strict,\n"
                                                                   "10 x order >= 3);\nabove 0 there = censored"))
        fig.legend(handles=h, loc="upper left", bbox_to_anchor=(1 - 2.1 / (3.9 * max(1, len(cells)) + 2.2),
                                                                0.97 - 0.48 * i), fontsize=7, frameon=False)
    fig.suptitle("Time to the target (Kaplan-Meier over instances; censored at the horizon)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / (3.9 * max(1, len(cells)) + 2.2), 0.95))
    return _save(fig, path)


def sweep_png(an: dict[str, Any], path: Path) -> Path:
    """The sweep: log(steps to the target) against log(theory steps) per method, with the fitted
    lines and the slope-1 reference (steps = theory).

    Args:
        an: :func:`analyses.escape.analysis.analyse`.
        path: the PNG.

    Returns:
        ``path``.
    """
    plt = _mpl()
    sw = an.get("sweep") or {}
    cells = list(sw) or ["(no sweep)"]
    fig, axes = plt.subplots(1, len(cells), figsize=(5.2 * len(cells) + 1.8, 4.4), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        lo_all, hi_all = [], []
        for m, d in (sw.get(cell) or {}).items():
            pts = np.array(d["points"]) if d["points"] else np.zeros((0, 2))
            if not len(pts):
                continue
            st = style(m)
            ax.plot(pts[:, 0], pts[:, 1], "o", color=st["color"], ms=3.5, alpha=0.8,
                    mfc="none" if m.startswith("len-") else st["color"])
            f = d["fit"]
            if f.get("slope") is not None:
                xs = np.geomspace(pts[:, 0].min(), pts[:, 0].max(), 10)
                ax.plot(xs, np.exp(f["intercept"]) * xs ** f["slope"], label=f"{m}: slope {f['slope']:.2f}", **st)
            lo_all.append(pts.min())
            hi_all.append(pts.max())
        if lo_all:
            a, b = min(lo_all), max(hi_all)
            ax.plot([a, b], [a, b], color="0.6", ls=":", lw=1, label="steps = theory")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("theory steps (from the start's epsilon and lr)", fontsize=8)
        ax.set_ylabel("steps to the target", fontsize=8)
        ax.set_title(TITLES.get(cell, cell) + " at W = 0", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, frameon=False, loc="upper left")
    fig.suptitle("lr x distance sweep: measured against theoretical escape time", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _save(fig, path)


def kappa_png(an: dict[str, Any], path: Path) -> Path:
    """The κ experiment: each paired log-ratio (rule over its length control, rule over GD) against
    log10(1/κ) at the start, with the least-squares line; one panel per saddle.

    Args:
        an: :func:`analyses.escape.analysis.analyse`.
        path: the PNG.

    Returns:
        ``path``.
    """
    plt = _mpl()
    ks = {c: d for c, d in (an.get("kappa") or {}).items() if d.get("comparisons")} or {"(none)": {"comparisons": {}}}
    fig, axes = plt.subplots(1, len(ks), figsize=(6.6 * len(ks), 4.6), squeeze=False)
    for ax, (cell, kd) in zip(axes[0], ks.items()):
        for i, (name, d) in enumerate(kd["comparisons"].items()):
            pts = np.array(d["points"])
            colour = f"C{i}"
            ax.plot(pts[:, 0], pts[:, 1], "o", color=colour, ms=3.5, alpha=0.7)
            f = d["fit"]
            if f.get("slope") is not None:
                xs = np.linspace(pts[:, 0].min(), pts[:, 0].max(), 10)
                ci = "" if f.get("low") is None else f" [{f['low']:.2f}, {f['high']:.2f}]"
                ax.plot(xs, f["intercept"] + f["slope"] * xs, color=colour, label=f"{name}: slope {f['slope']:.2f}{ci}")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel("log10(1 / kappa) at the start (more cancellation to the right)", fontsize=8)
        ax.set_ylabel("log(steps of a / steps of b)  (< 0: a faster)", fontsize=8)
        ax.set_title(f"One {TITLES.get(cell, cell)}, label noise orthogonal to the inputs", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def loss_cost_figure(records: Sequence[dict[str, Any]]) -> Any:
    """Interactive loss-against-cost medians (plotly), one panel per main cell.

    Args:
        records: the records.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cells = [c for c in MAIN_CELLS if any(r.get("part") == "main" and r["cell"] == c for r in records)]
    fig = make_subplots(rows=1, cols=max(1, len(cells)), subplot_titles=[TITLES[c] for c in cells])
    grid = np.geomspace(1e-2, 1e2, 120)
    groups = group_runs(records, "main")
    for j, cell in enumerate(cells):
        for m in METHODS:
            cs = [_normalised_curve(g[m]) for k, g in groups.items() if k[0] == cell and m in g]
            cs = [c for c in cs if c is not None]
            if not cs:
                continue
            st = style(m)
            fig.add_trace(go.Scatter(x=grid.tolist(), y=_median_curve(cs, grid).round(5).tolist(), mode="lines",
                                     name=m, legendgroup=m, showlegend=j == 0,
                                     line={"color": st["color"], "dash": "dash" if st["ls"] == "--" else "solid"}),
                          row=1, col=j + 1)
    fig.update_xaxes(type="log", title_text="cost / (n x theory steps)")
    fig.update_yaxes(title_text="(L - L_next) / (L_stall - L_next)", range=[-0.05, 1.1])
    fig.update_layout(height=430, legend={"x": 1.02, "y": 1})
    return fig


def draw_all(records: Sequence[dict[str, Any]], an: dict[str, Any], out: Path) -> list[str]:
    """Every PNG of the report.

    Args:
        records: the records.
        an: :func:`analyses.escape.analysis.analyse`.
        out: the folder.

    Returns:
        The file names written (the answer figure first).
    """
    names = [answer_png(an, out / "answer.png").name, loss_cost_png(records, out / "loss_vs_cost.png").name,
             survival_png(records, out / "survival.png").name]
    if any(r.get("part") == "control" for r in records):
        names.append(loss_cost_png(records, out / "controls_loss_vs_cost.png", CONTROL_CELLS, "control").name)
    if an.get("sweep"):
        names.append(sweep_png(an, out / "sweep.png").name)
    if any(d.get("comparisons") for d in (an.get("kappa") or {}).values()):
        names.append(kappa_png(an, out / "kappa.png").name)
    return names


__all__ = ["answer_png", "loss_cost_png", "survival_png", "sweep_png", "kappa_png", "loss_cost_figure", "draw_all",
           "style"]
