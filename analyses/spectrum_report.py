"""Hessian spectrum report at every stall of a training run: ``landscape spectrum``.

For each stall event of a SynaPrune trainer run (its ``log_dir``): extreme eigenpairs with
residuals (Lanczos), the SLQ spectral density on a symmetric-log axis (so negative outliers
show), the dense spectrum when the model is small, the per-layer cancellation statistics (κ and
GSNR by layer), the classification with index and nullity; plus the loss curve with every stall
marked by its kind. Writes ``spectrum_report.html`` (one page, plotly embedded once, a table of
stalls), ``stall_XXXX.png`` per stall and ``spectrum_report.json``.

``landscape spectrum --problem NAME --method METHOD [--out DIR]`` trains on an embedded problem
and reports; ``landscape spectrum --from LOG_DIR`` reports an existing run (the run must carry
``meta.problem`` in its ``run.json`` so its objective can be rebuilt, or pass ``obj=`` in Python).
"""
from __future__ import annotations

import argparse
import html
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import landscape as ls
from landscape.render import kind_style, symlog, write_html
from landscape.results import JsonResult
from synaprune import StallDetector, load_run
from synaprune.events import RunLog

from .problems import Problem, get_problem, list_problems

DENSE_MAX_DIM = 1500


@dataclass
class StallSpectrum(JsonResult):
    """Spectral facts at one stall. Eigenvalues ascending; ``density`` on ``density_grid``."""

    index: int
    step: int
    loss: float
    grad_norm: float
    kind: str | None
    morse_index: int | None
    n_zero: int | None
    lambda_min: float
    lambda_max: float
    eig_values: list[float]
    eig_residuals: list[float]
    eig_converged: list[bool]
    density_grid: list[float]
    density: list[float]
    dense_eigs: list[float] | None
    layer_kappa: dict[str, float]
    layer_gsnr: dict[str, float]
    kappa: float | None
    png: str | None = None


@dataclass
class SpectrumReport(JsonResult):
    """A whole report: the run it describes and one :class:`StallSpectrum` per stall."""

    log_dir: str
    method: str
    problem: str | None
    dim: int
    n_steps: int
    stalls: list[StallSpectrum] = field(default_factory=list)
    html: str | None = None
    json: str | None = None


# ---------------------------------------------------------------------------- training
def train_problem(problem: Problem, method: str, log_dir: str | Path, *, max_steps: int = 1500, seed: int = 0,
                  lr: float | None = None, eps: float | None = None, stall: StallDetector | None = None,
                  progress: bool | None = None, problem_options: dict | None = None, **method_options: Any):
    """Train ``method`` on an embedded ``problem`` from ``problem.init(seed, eps)``, logging to ``log_dir``.

    ``meta`` in ``run.json`` records the problem so :func:`report_run` can rebuild the objective.
    """
    eps = problem.hints.get("eps", 1e-2) if eps is None else eps
    trainer = problem.trainer(method, seed, lr=lr, stall=stall, log_dir=str(log_dir), progress=progress,
                              meta={"problem_options": dict(problem_options or {}), "eps": eps}, **method_options)
    return trainer.fit(max_steps, theta0=problem.init(seed, eps))


def _rebuild_objective(run: RunLog) -> ls.Objective:
    meta = run.config.get("meta") or {}
    name = meta.get("problem")
    if not name:
        raise ValueError(f"{run.log_dir}/run.json has no meta.problem: cannot rebuild the objective; "
                         "pass obj= to report_run, or train with meta={'problem': NAME}")
    problem = get_problem(name, **(meta.get("problem_options") or {}))
    return problem.objective(seed=int(meta.get("problem_seed", 0)))


# ---------------------------------------------------------------------------- analysis
def analyse_stall(obj: ls.Objective, theta: torch.Tensor, event: dict[str, Any], *, k: int = 5, slq_runs: int = 8,
                  slq_steps: int = 60, dense_max_dim: int = DENSE_MAX_DIM, seed: int = 0) -> StallSpectrum:
    """Spectral facts at one stall (``event`` is the trainer's event dict)."""
    op = obj.hvp_operator(theta)
    kk = max(1, min(k, obj.dim // 2))
    eig = ls.extreme_eigs(obj, theta, k=kk, which="both", seed=seed, operator=op)
    sd = ls.spectral_density(obj, theta, n_runs=slq_runs, n_steps=min(slq_steps, obj.dim), seed=seed, operator=op,
                             n_grid=400)
    dense = None
    if obj.dim <= dense_max_dim:
        dense = torch.linalg.eigvalsh(obj.hessian(theta, max_dim=dense_max_dim)).cpu().double().tolist()
    canc = event.get("cancellation")
    if not canc:
        canc = ls.cancellation_stats(obj, theta, chunk_size=256).to_dict()
    per_layer = canc.get("per_layer") or {}
    report = event.get("report") or {}
    values = eig.values.double().tolist()
    return StallSpectrum(
        index=int(event["index"]), step=int(event["step"]), loss=float(event["loss"]),
        grad_norm=float(event["grad_norm"]), kind=event.get("kind"),
        morse_index=report.get("index"), n_zero=report.get("n_zero"),
        lambda_min=min(values) if dense is None else min(min(values), dense[0]),
        lambda_max=max(values) if dense is None else max(max(values), dense[-1]),
        eig_values=values, eig_residuals=eig.residuals.double().tolist(),
        eig_converged=[bool(c) for c in eig.converged.tolist()],
        density_grid=sd.grid.tolist(), density=sd.density.tolist(), dense_eigs=dense,
        layer_kappa={n: s.get("kappa") for n, s in per_layer.items()},
        layer_gsnr={n: s.get("gsnr_median") for n, s in per_layer.items()},
        kappa=canc.get("kappa"),
    )


def _linthresh(st: StallSpectrum) -> float:
    scale = max(abs(st.lambda_min), abs(st.lambda_max), 1e-300)
    return max(1e-3 * scale, 1e-12)


def stall_png(st: StallSpectrum, run: RunLog, path: Path) -> Path:
    """Four panels: SLQ density (symlog x), dense spectrum, κ/GSNR by layer, loss curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    c = _linthresh(st)
    ax = axes[0, 0]
    ax.plot(st.density_grid, st.density, color="#1f77b4")
    for v, ok in zip(st.eig_values, st.eig_converged):
        ax.axvline(v, color="#d62728" if v < 0 else "#2ca02c", lw=0.8, ls="-" if ok else ":")
    ax.set_xscale("symlog", linthresh=c)
    ax.set_yscale("log")
    ax.set_ylim(max(1e-8, min((d for d in st.density if d > 0), default=1e-8)), None)
    ax.set_xlabel(f"eigenvalue (symlog, linthresh {c:.1e})")
    ax.set_ylabel("SLQ density")
    ax.set_title("spectral density; lines: Lanczos extremes")
    ax = axes[0, 1]
    if st.dense_eigs is not None:
        ev = np.asarray(st.dense_eigs)
        ax.plot(np.arange(ev.size), ev, ".", ms=3)
        ax.set_yscale("symlog", linthresh=c)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"dense spectrum ({ev.size} eigenvalues)")
        ax.set_xlabel("rank")
    else:
        ax.text(0.5, 0.5, "model too large for a dense spectrum", ha="center", va="center", transform=ax.transAxes)
    ax = axes[1, 0]
    names = list(st.layer_kappa)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [v if v is not None else np.nan for v in st.layer_kappa.values()], 0.4, label="κ")
    ax2 = ax.twinx()
    gs = [v if v is not None and math.isfinite(v) else np.nan for v in st.layer_gsnr.values()]
    ax2.bar(x + 0.2, gs, 0.4, color="#ff7f0e", label="median GSNR")
    # κ and GSNR span decades between layers (e.g. 0.6 next to 7e-5): log axes keep both visible.
    for a, vals in ((ax, list(st.layer_kappa.values())), (ax2, gs)):
        if any(v is not None and np.isfinite(v) and v > 0 for v in vals):
            a.set_yscale("log")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("κ = ‖mean g‖ / mean ‖g_i‖ (log)")
    ax2.set_ylabel("median GSNR (log)")
    ax.set_title("cancellation by layer (blue κ, orange GSNR)")
    ax = axes[1, 1]
    if run.losses.size:
        ax.semilogy(run.steps, np.maximum(run.losses, 1e-300), color="k", lw=1)
    for ev in run.events:
        color, _ = kind_style(ev.get("kind") or "")
        ax.plot(ev["step"], max(ev["loss"], 1e-300), "o", color=color, ms=7 if ev["index"] == st.index else 4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"stall {st.index} at step {st.step}: {st.kind} (index {st.morse_index}, nullity {st.n_zero})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _loss_figure(run: RunLog):
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
                      title="loss curve, stalls marked by kind")
    return fig


def _stall_figure(st: StallSpectrum):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = _linthresh(st)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("SLQ density (symlog x)", "dense spectrum (symlog)",
                                                        "cancellation by layer"))
    xg = symlog(np.asarray(st.density_grid), c)
    fig.add_trace(go.Scatter(x=xg, y=st.density, mode="lines", name="density"), row=1, col=1)
    fig.add_trace(go.Scatter(x=symlog(np.asarray(st.eig_values), c), y=[max(st.density) * 1.05] * len(st.eig_values),
                             mode="markers", name="Lanczos extremes", marker={"color": "#d62728", "symbol": "line-ns-open",
                                                                              "size": 14},
                             text=[f"λ={v:.4g}, residual {r:.1e}" for v, r in zip(st.eig_values, st.eig_residuals)]),
                  row=1, col=1)
    lim = float(np.max(np.abs(xg))) if xg.size else 1.0
    ticks = np.linspace(-lim, lim, 7)
    fig.update_xaxes(tickvals=ticks, ticktext=[f"{np.sign(t) * c * (10 ** abs(t) - 1):.2g}" for t in ticks], row=1, col=1)
    if st.dense_eigs is not None:
        ev = np.asarray(st.dense_eigs)
        fig.add_trace(go.Scatter(x=np.arange(ev.size), y=symlog(ev, c), mode="markers", name="dense eigenvalues",
                                 marker={"size": 3}, text=[f"{v:.4g}" for v in ev]), row=1, col=2)
    names = list(st.layer_kappa)
    fig.add_trace(go.Bar(x=names, y=list(st.layer_kappa.values()), name="κ"), row=1, col=3)
    fig.add_trace(go.Bar(x=names, y=[v if v is not None and math.isfinite(v) else None for v in st.layer_gsnr.values()],
                         name="median GSNR"), row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=380, title=f"stall {st.index} (step {st.step}): {st.kind}")
    return fig


def _table(stalls: list[StallSpectrum]) -> str:
    head = ("<table><tr><th>stall</th><th>step</th><th>loss</th><th>‖g‖</th><th>kind</th><th>index</th>"
            "<th>nullity</th><th>λ_min</th><th>λ_max</th><th>max residual</th><th>κ</th></tr>")
    rows = []
    for st in stalls:
        rows.append(
            f"<tr><td>{st.index}</td><td>{st.step}</td><td>{st.loss:.6g}</td><td>{st.grad_norm:.2e}</td>"
            f"<td>{html.escape(str(st.kind))}</td><td>{st.morse_index}</td><td>{st.n_zero}</td>"
            f"<td>{st.lambda_min:.4g}</td><td>{st.lambda_max:.4g}</td><td>{max(st.eig_residuals):.1e}</td>"
            f"<td>{'' if st.kappa is None else f'{st.kappa:.3f}'}</td></tr>")
    return head + "".join(rows) + "</table>"


def report_run(log_dir: str | Path, out_dir: str | Path | None = None, *, obj: ls.Objective | None = None,
               k: int = 5, slq_runs: int = 8, slq_steps: int = 60, dense_max_dim: int = DENSE_MAX_DIM,
               seed: int = 0, title: str | None = None) -> SpectrumReport:
    """Write the spectrum report of the run in ``log_dir`` to ``out_dir`` (default: ``log_dir``)."""
    run = load_run(log_dir)
    out = Path(out_dir) if out_dir is not None else Path(log_dir)
    out.mkdir(parents=True, exist_ok=True)
    obj = obj if obj is not None else _rebuild_objective(run)
    meta = run.config.get("meta") or {}
    rep = SpectrumReport(log_dir=str(log_dir), method=str(run.config.get("method")), problem=meta.get("problem"),
                         dim=obj.dim, n_steps=int(run.steps[-1]) if run.steps.size else 0)
    for ev in tqdm(run.events, desc="stall spectra", disable=None):
        if ev["index"] not in run.stall_thetas:
            continue
        theta = torch.as_tensor(run.stall_thetas[ev["index"]], dtype=obj.dtype, device=obj.device)
        st = analyse_stall(obj, theta, ev, k=k, slq_runs=slq_runs, slq_steps=slq_steps, dense_max_dim=dense_max_dim,
                           seed=seed)
        st.png = stall_png(st, run, out / f"stall_{st.index:04d}.png").name
        rep.stalls.append(st)
    heading = title or f"Hessian spectra at the stalls of {rep.method} on {rep.problem or 'a user problem'}"
    intro = (f"<p>{len(rep.stalls)} stall(s); dim = {obj.dim}; run status: {html.escape(run.status)}. "
             "Eigenvalues from torch-native Lanczos (explicit residuals ‖Hv − λv‖), densities from stochastic Lanczos "
             "quadrature; the classification is the trainer's (landscape.classify_point).</p>" + _table(rep.stalls))
    sections: list[tuple[str, Any]] = [("Loss curve", _loss_figure(run))]
    for st in rep.stalls:
        sections.append((f"Stall {st.index}: {st.kind}", _stall_figure(st)))
        sections.append(("", f'<p><img src="{st.png}" width="900"></p>'))
    rep.html = str(write_html(out / "spectrum_report.html", sections, title=heading, intro_html=intro))
    rep.json = str(out / "spectrum_report.json")
    rep.save_json(rep.json)
    return rep


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--problem", choices=list_problems(), help="train on this embedded problem, then report")
    src.add_argument("--from", dest="from_dir", metavar="LOG_DIR", help="report an existing run directory")
    p.add_argument("--method", default="synaprune-rms", help="trainer method (with --problem)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (with --problem)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default figures/spectrum_<problem>_<method>, "
                                               "or LOG_DIR with --from)")
    p.add_argument("--k", type=int, default=5, help="eigenpairs from each end")


def run(args: argparse.Namespace) -> int:
    if args.from_dir:
        rep = report_run(args.from_dir, args.out, k=args.k, seed=args.seed)
    else:
        out = Path(args.out or f"figures/spectrum_{args.problem}_{args.method}")
        problem = get_problem(args.problem)
        train_problem(problem, args.method, out / "run", max_steps=args.steps, seed=args.seed)
        rep = report_run(out / "run", out, k=args.k, seed=args.seed)
    print(f"{len(rep.stalls)} stall(s) reported -> {rep.html}")
    for st in rep.stalls:
        print(f"  stall {st.index} step {st.step}: {st.kind}, λ_min {st.lambda_min:.3g}, λ_max {st.lambda_max:.3g}")
    return 0


if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main(["spectrum", *sys.argv[1:]]))
