"""The theorems' report: :class:`TheoremReport`, its figures and ``theorems.md``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.render import write_html
from landscape.results import JsonResult

from .statements import ROUNDOFF_ULPS, fmt_lambda_min, fmt_bound

#: gap histograms: left edge (log10, below every round-off floor ≥ 1000 ε ≈ 2e-13) and bin width (decades)
GAP_HIST_LO, GAP_HIST_BIN = -14.0, 0.25
#: one colour per depth H (matplotlib names, and the same as hex for plotly)
COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
PCOLORS = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c"}


@dataclass
class Settings(JsonResult):
    """The configuration of one ``landscape theorems`` run (sizes, optimiser, escape sweep)."""

    quick: bool
    seed: int
    d_x: int
    d_y: int
    m: int
    n_init: int
    optimizer: str
    opt_max_iter: int
    opt_grad_tol: float
    n_classify_converged: int
    escape_eps: dict[str, list[float]]
    escape_dirs: int
    escape_rho: float
    escape_c_lip: float


@dataclass
class TheoremReport(JsonResult):
    """Everything ``landscape theorems`` measured (see the module docstring)."""

    settings: Settings
    configs: list[dict[str, Any]]
    statement1: list[dict[str, Any]]
    statement2: list[dict[str, Any]]
    statement3: list[dict[str, Any]]
    statement4: dict[str, Any]
    verdicts: dict[str, dict[str, Any]]
    timings_s: dict[str, float] = field(default_factory=dict)


def _escape_time_figures(out: Path, escape_raw: dict[int, Any], plt: Any, go: Any) -> Any:
    """``escape_time.png`` (written) and its plotly figure (returned): escape time against ε per depth."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    pfig1 = go.Figure()
    for H, d in escape_raw.items():
        eps = np.asarray(d["eps"])
        T = np.asarray(d["T"], dtype=float)
        med = np.nanmedian(T, axis=0)
        for row in T:
            ax.loglog(eps, row, ".", color=COLORS[H], alpha=0.35)
        ax.loglog(eps, med, "o-", color=COLORS[H], label=f"H = {H} (median)")
        pfig1.add_trace(go.Scatter(x=eps, y=med, mode="lines+markers", name=f"H = {H} median",
                                   line={"color": PCOLORS[H]}))
        for j, row in enumerate(T):
            pfig1.add_trace(go.Scatter(x=eps, y=row, mode="markers", name=f"H = {H} dir {j}", showlegend=False,
                                       marker={"color": PCOLORS[H], "opacity": 0.4, "size": 5}))
        fit = d["fit"]
        if H >= 2 and "pow_prefactor" in fit:
            ref = fit["pow_prefactor"] * eps ** (-(H - 1.0))
            ax.loglog(eps, ref, "-", color=COLORS[H], lw=5, alpha=0.25, zorder=0, label=f"slope −{H - 1} (theory)")
            pfig1.add_trace(go.Scatter(x=eps, y=ref, mode="lines", name=f"ε^-{H - 1} (theory slope)",
                                       line={"color": PCOLORS[H], "dash": "dash"}))
        if H == 1 and "log_intercept" in fit:
            ref = fit["log_intercept"] + np.log(1 / eps) / d.get("sigma1", 1.0)
            ax.loglog(eps, ref, "-", color=COLORS[H], lw=5, alpha=0.25, zorder=0, label="a + ln(1/ε)/σ₁ (theory)")
            pfig1.add_trace(go.Scatter(x=eps, y=ref, mode="lines", name="a + ln(1/ε)/σ₁ (theory)",
                                       line={"color": PCOLORS[H], "dash": "dash"}))
    ax.set_xlabel("ε (perturbation size of W = 0)")
    ax.set_ylabel("escape time T (gradient-flow time, σ₁ = 1)")
    ax.set_title("Escape from W = 0: log (H = 1) vs power law (H ≥ 2)")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)  # tight_layout costs seconds here
    fig.savefig(out / "escape_time.png", dpi=110)
    plt.close(fig)
    pfig1.update_layout(title="Escape time from W = 0 vs ε", xaxis={"type": "log", "title": "ε"},
                        yaxis={"type": "log", "title": "escape time T"})

    return pfig1


def _gap_figures(out: Path, report: TheoremReport, plt: Any, go: Any, make_subplots: Any) -> Any:
    """``gap_hist.png`` (written) and its plotly figure (returned): L_final − L* per configuration."""
    s2 = report.statement2
    n = len(s2)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(3.2 * ((n + 1) // 2), 5.5), squeeze=False)
    pfig2 = make_subplots(rows=2, cols=(n + 1) // 2,
                          subplot_titles=[f"{r['config']} ({r['n_at_global']}/{r['n_init']} at L*)" for r in s2])
    # One fixed range and fixed bin edges (a quarter decade) for every panel. Gaps within the round-off
    # floor are 0 in the report: they are drawn at the floor, so round-off never moves a bar.
    logs = [np.log10(np.maximum(np.abs(np.asarray(r["gaps"], dtype=float)), r["roundoff_floor"])) for r in s2]
    lo_all = GAP_HIST_LO
    hi_all = max(0.0, math.ceil(max(float(lg.max()) for lg in logs)) + 1.0)
    edges = np.linspace(lo_all, hi_all, int(round((hi_all - lo_all) / GAP_HIST_BIN)) + 1)
    for i, (r, lg) in enumerate(zip(s2, logs)):
        ax = axes[i % 2][i // 2]
        ax.hist(lg, bins=edges, color="tab:purple")
        ax.set_xlim(lo_all, hi_all)
        ax.set_ylim(0, r["n_init"])
        ax.axvline(math.log10(r["gap_tol"]), color="k", ls="--", lw=0.8)
        ax.axvline(math.log10(r["roundoff_floor"]), color="0.5", ls=":", lw=0.8)
        ax.set_title(f"{r['config']} ({r['n_at_global']}/{r['n_init']} at L*)", fontsize=8)
        ax.set_xlabel("log10 max(|L_final − L*|, round-off floor)", fontsize=7)
        pfig2.add_trace(go.Histogram(x=lg, xbins={"start": lo_all, "end": hi_all, "size": GAP_HIST_BIN},
                                     name=r["config"], marker={"color": "#9467bd"}), row=i % 2 + 1, col=i // 2 + 1)
        fl = math.log10(r["roundoff_floor"])
        pfig2.add_trace(go.Scatter(x=[fl, fl], y=[0, r["n_init"]], mode="lines", name="round-off floor",
                                   line={"color": "gray", "dash": "dot"}, showlegend=i == 0,
                                   hovertext=f"round-off floor {r['roundoff_floor']:.2g}", hoverinfo="text"),
                        row=i % 2 + 1, col=i // 2 + 1)
        tol = math.log10(r["gap_tol"])
        pfig2.add_trace(go.Scatter(x=[tol, tol], y=[0, r["n_init"]], mode="lines", name="global-minimum tolerance",
                                   line={"color": "black", "dash": "dash"}, showlegend=i == 0,
                                   hovertext=f"tolerance {r['gap_tol']:.2g}", hoverinfo="text"),
                        row=i % 2 + 1, col=i // 2 + 1)
        pfig2.update_xaxes(range=[lo_all, hi_all], title_text="log10 max(|L_final − L*|, floor)", row=i % 2 + 1, col=i // 2 + 1)
        pfig2.update_yaxes(range=[0, r["n_init"]], title_text="runs" if i < 2 else None, row=i % 2 + 1,
                           col=i // 2 + 1)
    for j in range(n, axes.size):  # an odd number of configurations leaves one panel empty
        axes[j % 2][j // 2].axis("off")
    fig.suptitle("L_final − L* over random initialisations (dashed: global-minimum tolerance; dotted: round-off "
                 f"floor {ROUNDOFF_ULPS:.0f}·ε·max(1, tr YᵀY), gaps below it drawn at it)", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.88, hspace=0.45, wspace=0.3)
    fig.savefig(out / "gap_hist.png", dpi=110)
    plt.close(fig)
    pfig2.update_layout(title="log10 |L_final − L*| per configuration (gaps below the round-off floor drawn at it; "
                              "dashed: global-minimum tolerance)",
                        height=650, legend={"orientation": "h", "y": -0.12})

    return pfig2


def _index_figures(out: Path, report: TheoremReport, plt: Any, go: Any) -> Any:
    """``index_vs_loss.png`` (written) and its plotly figure (returned): the analytic critical points."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    pfig3 = go.Figure()
    markers = {"global_minimum": "*", "strict_saddle": "o", "non_strict_saddle": "s"}
    pm = {"global_minimum": "star", "strict_saddle": "circle", "non_strict_saddle": "square"}
    for r in report.statement3:
        pts = r["points"]
        for kind in markers:
            sel = [p for p in pts if p["kind"] == kind]
            if not sel:
                continue
            x = [p["loss"] for p in sel]
            y = [p["index"] for p in sel]
            ax.scatter(x, y, marker=markers[kind], color=COLORS[r["H"]], alpha=0.6, s=30)
            pfig3.add_trace(go.Scatter(
                x=x, y=y, mode="markers", name=f"{r['config']} {kind}",
                marker={"symbol": pm[kind], "color": PCOLORS[r["H"]], "size": 9, "opacity": 0.7},
                text=[f"S={p['S']} n_zero={p['n_zero']} order={p['probe_order']}" for p in sel]))
    for H in (1, 2, 3):
        ax.scatter([], [], color=COLORS[H], label=f"H = {H}")
    for kind, mk in markers.items():
        ax.scatter([], [], marker=mk, color="gray", label=kind)
    ax.set_xlabel("loss at the critical point")
    ax.set_ylabel("index (# negative Hessian eigenvalues)")
    ax.set_title("Enumerated analytic critical points: index vs loss")
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(out / "index_vs_loss.png", dpi=110)
    plt.close(fig)
    pfig3.update_layout(title="Index vs loss of the enumerated critical points",
                        xaxis={"title": "loss"}, yaxis={"title": "index"})

    return pfig3


def write_figures(out: Path, report: TheoremReport, escape_raw: dict[int, Any]) -> list[str]:
    """Draw the theorems' figures.

    Args:
        out: the output folder.
        report: the checks' results.
        escape_raw: per depth H, ``{"eps" (k,), "T" (n_dirs, k) escape times, "fit", "sigma1"}``.

    Returns:
        The written file names: ``escape_time.png``, ``gap_hist.png``, ``index_vs_loss.png`` and
        ``theorems.html`` (the three as interactive plotly figures).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pfig1 = _escape_time_figures(out, escape_raw, plt, go)
    pfig2 = _gap_figures(out, report, plt, go, make_subplots)
    pfig3 = _index_figures(out, report, plt, go)
    write_html(out / "theorems.html", [("Escape time from W = 0", pfig1), ("Gaps to the global minimum", pfig2),
                                       ("Index against loss of the analytic critical points", pfig3)],
               title="Kawaguchi's deep-linear-network statements: figures",
               intro_html="<p>Numbers: <code>theorems.json</code>; table: <code>theorems.md</code>.</p>")
    return ["escape_time.png", "gap_hist.png", "index_vs_loss.png", "theorems.html"]


def markdown(report: TheoremReport) -> str:
    """``theorems.md``: the verdict table and the per-statement tables.

    Args:
        report: the checks' results.

    Returns:
        The Markdown text.
    """
    v = report.verdicts
    lines = ["# Kawaguchi (2016) deep linear networks: empirical verification", "",
             f"Data: random, Kawaguchi's assumptions checked (dims = [d_x, hidden widths..., d_y]); "
             f"configurations: {', '.join(c['name'] + ' ' + str(c['dims']) for c in report.configs)}; "
             f"seed {report.settings.seed}{' (quick run)' if report.settings.quick else ''}.", "",
             f"Round-off: gaps, ‖g‖ and |L − formula| within a configuration's round-off floor "
             f"{ROUNDOFF_ULPS:.0f}·ε·max(1, tr YᵀY) are reported as \"≤ floor\" (0 in theorems.json), an eigenvalue "
             "within the classifier's zero tolerance eig_tol as 0.", "",
             "| statement | configurations | evidence | verdict |", "|---|---|---|---|"]
    for key in ("1", "2", "3", "4"):
        d = v[key]
        cells = [d["statement"], d["configurations"], d["evidence"], d["verdict"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # a | inside a cell is escaped
    lines += ["", "## Statement 3: enumerated critical points", "",
              "| config | points | max ‖g‖ | max \\|L − formula\\| | kind ok | index ok | nullity ok | non-global saddles |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report.statement3:
        lines.append(f"| {r['config']} | {r['n_points']} | {fmt_bound(r['max_grad_norm'], r['roundoff_floor'])} | "
                     f"{fmt_bound(r['max_loss_err'], r['roundoff_floor'])} | "
                     f"{r['n_kind_ok']}/{r['n_points']} | {r['n_index_ok']}/{r['n_index_checked']} | "
                     f"{r['n_nullity_ok']}/{r['n_nullity_checked']} | {r['n_non_global_saddles']}/{r['n_non_global']} |")
    lines += ["", "## Statement 4: W = 0 and the rank-deficient point S = {0}", "",
              "| config | S | kind | λ_min | λ_max | probe order (expected) |", "|---|---|---|---|---|---|"]
    for r in report.statement4["contrast"]:
        exp = "—" if r["expected_order"] is None else str(r["expected_order"])
        po = "—" if r["probe_order"] is None else f"{r['probe_order']:.2f}"
        lines.append(f"| {r['config']} | {r['S']} | {r['kind']} | {fmt_lambda_min(r, '.3g')} | {r['lambda_max']:.3g} | "
                     f"{po} ({exp}) |")
    lines += ["", "## Escape time from W = 0", "",
              "| H | ε range | log model: slope of T vs ln(1/ε) (theory 1/σ₁ = 1 for H = 1), rms ln T | "
              "power model: exponent (theory −(H−1)), rms ln T | better model |", "|---|---|---|---|---|"]
    for H, d in report.statement4["escape"].items():
        f = d["fit"]
        if "log_slope" not in f:
            lines.append(f"| {H} | — | too few escapes | — | — |")
            continue
        lines.append(f"| {H} | {min(d['eps']):.0e}–{max(d['eps']):.0e} | {f['log_slope']:.3f}, {f['log_rms_lnT']:.3f} | "
                     f"{f['pow_exponent']:.3f}, {f['pow_rms_lnT']:.3f} | {d['better_model']} |")
    lines += [""]
    return "\n".join(lines)
