"""The plateau study's two figures, drawn from the records and the summary alone.

- :func:`traces_figure` (``traces.png``): one panel per case, the exact loss of the monitored GD/SGD
  runs against the step (logarithmic steps: the plateaus of one run span three decades; a
  logarithmic loss where it spans more than a factor 20), theory's levels as dashed lines, the
  target as a dotted one, and every stall the monitor found, coloured by the kind of the nearest
  critical point.
- :func:`effects_figure` (``effects.png``): per case, every method's paired Gehan score against
  GD with its 95 % bootstrap interval (+1: reaches the target first on every seed), and each
  SynaPrune rule against its step-length control (hollow): the picture of the report's sentences.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KIND_COLORS = {"strict_saddle": "#d62728", "non_strict_saddle": "#ff7f0e", "minimum": "#2ca02c",
               "global_minimum": "#2ca02c", "maximum": "#9467bd", "inconclusive": "#7f7f7f"}
METHOD_COLORS = {"momentum": "#1f77b4", "adam": "#9467bd", "rms": "#d62728", "devarg": "#8c564b",
                 "gd-len-rms": "#ff9896", "gd-len-devarg": "#c49c94"}
RUN_STYLES = ("-", "--", ":")


def traces_figure(summary: dict[str, Any], records: list[dict[str, Any]], path: Path) -> Path | None:
    """The monitored runs' exact loss against theory's levels, one panel per case.

    Args:
        summary: :func:`.report.summarize`'s result (titles, levels, targets, stall rows).
        records: the sweep's records (the ``monitor`` ones carry ``trace``: [step, loss] pairs).
        path: the PNG to write.

    Returns:
        ``path``, or None when no case has a monitored run.

    Example:
        >>> traces_figure({}, [], Path("never_written.png")) is None   # nothing monitored: no file
        True
    """
    names = [n for n in summary if any(r["case"] == n and r["kind"] == "monitor" for r in records)]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    kinds_seen: set[str] = set()
    for ax, name in zip(axes.flat, names):
        c = summary[name]
        runs = sorted((r for r in records if r["case"] == name and r["kind"] == "monitor"), key=lambda r: r["seed"])
        lo_hi: list[float] = []
        for j, r in enumerate(runs):
            pts = [(s + 1, v) for s, v in r.get("trace", []) if v is not None and v > 0]
            lo_hi += [v for _, v in pts]
            if pts:
                ax.plot(*zip(*pts), color="black", lw=1.0, ls=RUN_STYLES[j % len(RUN_STYLES)], alpha=0.8,
                        label=f"seed {r['seed']}")
        for label, v in c["levels"].items():
            if v > 0:
                ax.axhline(v, color="#1f77b4", ls="--", lw=0.8)
                ax.annotate(label, (1.0, v), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                            textcoords="offset points", ha="right", va="bottom", fontsize=6.5, color="#1f77b4")
        ax.axhline(c["target"], color="black", ls=":", lw=0.8)
        for s in c["stalls"]:
            if s.get("exact_loss") is None or s["exact_loss"] <= 0:
                continue
            kind = s.get("nearest_kind") or "inconclusive"
            kinds_seen.add(kind)
            ax.plot(s["step"] + 1, s["exact_loss"], "o", ms=5, mfc=KIND_COLORS.get(kind, "#17becf"), mec="black",
                    mew=0.5, zorder=5)
        ax.set_xscale("log")
        pos = [v for v in c["levels"].values() if v > 0]
        if lo_hi and max(lo_hi) > 20 * min(lo_hi):   # a narrow range reads better on a linear axis
            ax.set_yscale("log")
            ax.margins(y=0.08)
        elif lo_hi and pos:   # linear: cut the descent to the first plateau, show the plateaus
            bottom = min(min(lo_hi), c["target"], min(pos))
            span = max(pos) - bottom
            ax.set_ylim(bottom - 0.08 * span, max(pos) + 0.5 * span)
        ax.set_title(c["title"], fontsize=7.5)
        ax.set_xlabel("step + 1", fontsize=7)
        ax.set_ylabel("exact loss", fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.legend(fontsize=6, loc="lower left")
    handles = [plt.Line2D([], [], ls="", marker="o", mfc=KIND_COLORS.get(k, "#17becf"), mec="black", mew=0.5,
                          label=f"stall; nearest critical point: {k.replace('_', ' ')}") for k in sorted(kinds_seen)]
    handles += [plt.Line2D([], [], color="#1f77b4", ls="--", lw=0.8, label="theory's level"),
                plt.Line2D([], [], color="black", ls=":", lw=0.8, label="target")]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7, frameon=False)
    fig.suptitle("Monitored GD/SGD runs: the exact loss, theory's plateau levels and the stalls StallMonitor found",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.6 / (3.6 * rows), 1, 1 - 0.3 / (3.6 * rows)))   # room for the legend and title
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def effects_figure(summary: dict[str, Any], path: Path) -> Path | None:
    """Every method's paired Gehan score against GD (filled) and each rule's against its
    step-length control (hollow), with 95 % bootstrap intervals, one row per case.

    Args:
        summary: :func:`.report.summarize`'s result.
        path: the PNG to write.

    Returns:
        ``path``, or None when no case has a paired comparison.

    Example:
        >>> effects_figure({"c": {"vs_gd": {}}}, Path("never_written.png")) is None   # no pairs: no file
        True
    """
    names = [n for n, c in summary.items() if c["vs_gd"]]
    if not names:
        return None
    rows: list[tuple[str, str, dict[str, Any], bool]] = []   # (case, method, paired summary, against its control)
    for n in names:
        c = summary[n]
        for m, s in c["vs_gd"].items():
            rows.append((n, m, s, False))
        for rule, s in c.get("vs_control", {}).items():
            rows.append((n, rule, s, True))
    fig, ax = plt.subplots(figsize=(7.5, 0.2 * (len(rows) + 1.6 * len(names)) + 1.4))
    y = 0.0
    ticks, labels = [], []
    for j, n in enumerate(names):
        top = y + 0.5
        ax.text(-1.06, y, summary[n]["title"], fontsize=7, fontweight="bold", va="center", ha="left")
        y -= 1
        for case, m, s, control in (r for r in rows if r[0] == n):
            g, ci = s.get("gehan"), s.get("gehan_ci") or [None, None]
            if g is not None:
                col = METHOD_COLORS.get(m, "black")
                if ci[0] is not None:
                    ax.plot(ci, [y, y], color=col, lw=1.4)
                ax.plot(g, y, "s" if control else "o", ms=5, color=col, mfc="white" if control else col, mew=1.2)
            ticks.append(y)
            labels.append(f"{m} vs gd-len-{m}" if control else f"{m} vs GD")
            y -= 1
        if j % 2 == 0:
            ax.axhspan(y + 0.5, top, color="#f2f2f2", zorder=0)
        y -= 0.6
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=6.5)
    ax.set_xlim(-1.08, 1.08)
    ax.set_ylim(y + 0.4, 0.9)
    ax.set_xlabel("paired Gehan score, 95 % bootstrap CI (+1: first on every seed; a censored run has not reached)",
                  fontsize=7)
    ax.set_title("Who leaves the plateau first: each method against GD (filled),\n"
                 "each SynaPrune rule against GD taking steps of the rule's length (hollow)", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
