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
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import landscape as ls
from landscape.render import fmt_num, html_table, write_html
from landscape.results import JsonResult, write_json
from landscape.tolerances import default_eig_tol
from synaprune import METHODS, StallDetector, load_run
from synaprune.events import RunLog

from .cli_common import Heartbeat, UsageError, add_quiet, existing_dir, positive_int, show_bars
from .problems import Problem, get_problem, list_problems
from .roundoff import bound, fmt, is_bound
from .spectrum_figures import loss_figure, stall_figure, stall_png

DENSE_MAX_DIM = 1500
#: significant digits of the floats in spectrum_report.json (a tracked output: no noise digits)
JSON_DIGITS = 8
#: Eigenvalue-like numbers of a stall (Lanczos and dense eigenvalues, Ritz values, eigen-residuals,
#: per-layer extremes, the H − G split) are written against the stall's round-off band 10·ε·dim·Λ
#: (Λ = max|λ|, :func:`landscape.tolerances.default_eig_tol`) within this multiple, as bounds
#: (:mod:`analyses.roundoff`): their last bits moved by up to 1e-14 (Λ ≈ 8, dim 32) between two
#: numerical configurations, so they are written to an absolute resolution 1e4-fold coarser than that
EIG_MULTIPLE = 1e4
#: SLQ quadrature weights are written to this absolute resolution (a share of the spectrum's mass):
#: where Ritz values nearly coincide their weights moved by up to 4e-9 between two configurations
WEIGHT_FLOOR = 1e-5
#: a final loss's gap to the global minimum is written against 1000·ε·max(1, |L*|) within this multiple
GAP_MULTIPLE = 100.0
#: significant digits of the tolerances behind a stall's kind (estimates themselves: the curvature band
#: moved by 1.3e-5 relative between two numerical configurations)
TOL_DIGITS = 2
#: the Newton continuation's contraction ratios are written as bounds below this
RATIO_FLOOR = 1e-6
#: iteration counts of the classification, not written to the tracked report
UNTRACKED_COUNTS = ("newton_steps", "newton_relax_steps")
_EIG_LISTS = ("eig_values", "eig_residuals", "dense_eigs", "ritz_nodes")
_NONGG_EIGS = ("hessian_min", "ggn_along", "residual_along", "ggn_min", "residual_min")


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
    ritz_nodes: list[float] = field(default_factory=list)
    ritz_weights: list[float] = field(default_factory=list)
    slq_sigma: float | None = None
    tolerances: dict[str, Any] = field(default_factory=dict)
    #: per layer: [λ_min, λ_max] of the layer's diagonal Hessian block (the other layers fixed)
    layer_extremes: dict[str, list[float]] = field(default_factory=dict)
    layer_extremes_converged: dict[str, bool] = field(default_factory=dict)
    #: landscape.nongg_negative_curvature: λ_min(H) split along its eigenvector into vᵀGv + vᵀ(H−G)v
    nongg: dict[str, Any] | None = None
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
    note: str = ""
    html: str | None = None
    json: str | None = None


# ---------------------------------------------------------------------------- training
def train_problem(problem: Problem, method: str, log_dir: str | Path, *, max_steps: int = 1500, seed: int = 0,
                  lr: float | None = None, eps: float | None = None, stall: StallDetector | None = None,
                  progress: bool | None = None, problem_options: dict | None = None, **method_options: Any):
    """Train ``method`` on an embedded ``problem`` from ``problem.init(seed, eps)``, logging to ``log_dir``.

    ``meta`` in ``run.json`` records the problem so :func:`report_run` can rebuild the objective.

    Args:
        problem: the zoo problem.
        method: a method of :data:`synaprune.METHODS`.
        log_dir: the run's log folder.
        max_steps: training steps.
        seed: the run's seed.
        lr: step size (default: the problem's).
        eps: the start's perturbation (default ``hints["eps"]``).
        stall: a stall detector (default the problem's).
        progress: the trainer's progress bar.
        problem_options: recorded in ``run.json`` so the objective can be rebuilt.
        **method_options: Trainer / method options.

    Returns:
        The trainer's result.
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
    """Spectral facts at one stall (``event`` is the trainer's event dict).

    Args:
        obj: the run's objective.
        theta: the stall point (dim,).
        event: the trainer's stall event (dict).
        k: eigenpairs from each end.
        slq_runs: SLQ runs.
        slq_steps: Lanczos steps per SLQ run.
        dense_max_dim: the dense spectrum is computed up to this dimension.
        seed: the estimates' seed.

    Returns:
        :class:`StallSpectrum`.
    """
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
    n_runs = int(sd.nodes.shape[0]) if sd.nodes.ndim == 2 else 1
    blocks = ls.per_block_extremes(obj, theta, seed=seed).blocks
    try:
        nongg: dict[str, Any] | None = ls.nongg_negative_curvature(obj, theta, seed=seed).to_dict()
    except (ValueError, RuntimeError, NotImplementedError) as exc:  # e.g. a model whose GGN is not defined
        nongg = {"error": f"{type(exc).__name__}: {exc}"}
    tol = dict(report.get("tolerances") or {})
    for key in ("eig_tol", "grad_tol", "zero_tol"):
        if report.get(key) is not None and key not in tol:
            tol[key] = report.get(key)
    lam = max(abs(v) for v in values + (dense or [0.0]))
    tol = written_tolerances(tol, default_eig_tol(theta.dtype, obj.dim, lam))
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
        # Gauss quadrature of every SLQ run: node = Ritz value, weight = its mass (runs averaged).
        ritz_nodes=sd.nodes.reshape(-1).double().tolist(),
        ritz_weights=(sd.weights.reshape(-1).double() / n_runs).tolist(),
        slq_sigma=float(sd.sigma), tolerances=tol,
        layer_extremes={b["block"]: [float(b["smallest"]), float(b["largest"])] for b in blocks},
        layer_extremes_converged={b["block"]: bool(b["converged"]) for b in blocks},
        nongg=nongg,
    )


def written_tolerances(tol: dict[str, Any], floor: float) -> dict[str, Any]:
    """The tolerances behind a stall's kind as a tracked output writes them: each is itself an
    estimate (a curvature band from the Newton continuation's contraction, thresholds scaled from it),
    so floats keep :data:`TOL_DIGITS` significant digits; the round-off band and the in-band zero
    tolerance are eigenvalue-like (bounds against ``floor`` within :data:`EIG_MULTIPLE`); the
    continuation's contraction ratios are bounds below :data:`RATIO_FLOOR` (at the round-off floor of
    the continuation their digits move with the BLAS code path: measured 7.4e-8 vs 6.9e-8).

    Args:
        tol: the classification's tolerances (floats, ints, flags, None).
        floor: the stall's round-off band 10·ε·dim·Λ (curvature units).

    Returns:
        A new dict; non-float entries unchanged.

    >>> written_tolerances({"eig_tol": 13.960512, "newton_q": 7.4e-8, "newton_steps": 4, "n_in_band": 3}, 1e-12)
    {'eig_tol': 14.0, 'newton_q': {'at_most': 1e-06}, 'n_in_band': 3}
    """
    out: dict[str, Any] = {}
    for k, v in tol.items():
        if k in UNTRACKED_COUNTS:
            continue
        if not isinstance(v, float) or not math.isfinite(v):
            out[k] = v
        elif k in ("roundoff_band", "in_band_zero_tol") and floor > 0:
            out[k] = bound(v, floor, EIG_MULTIPLE)
        elif k in ("newton_q", "newton_g_ratio"):
            out[k] = bound(v, RATIO_FLOOR)
        else:
            out[k] = float(f"{v:.{TOL_DIGITS}g}")
    return out


def eig_floor(st: StallSpectrum, dim: int, dtype: torch.dtype = torch.float64) -> float:
    """A stall's round-off band 10·ε·dim·Λ (Λ = max(|λ_min|, |λ_max|)), the floor of its eigenvalue-like numbers.

    Args:
        st: the stall's spectrum.
        dim: the number of parameters.
        dtype: the objective's dtype (ε its machine epsilon).

    Returns:
        The band (curvature units; 0 for an exactly zero Hessian).
    """
    return default_eig_tol(dtype, dim, max(abs(st.lambda_min), abs(st.lambda_max)))


def written_stall(st: StallSpectrum, dim: int, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """A stall as ``spectrum_report.json`` holds it: eigenvalue-like numbers against the round-off
    band (:data:`EIG_MULTIPLE`), quadrature weights against :data:`WEIGHT_FLOOR`, as bounds where
    within them (:mod:`analyses.roundoff`).

    Args:
        st: the stall's spectrum.
        dim: the number of parameters.
        dtype: the objective's dtype.

    Returns:
        The stall's dict.
    """
    d = st.to_dict()
    floor = eig_floor(st, dim, dtype)
    if floor <= 0:  # an exactly zero Hessian: nothing is round-off
        return d

    def eig(x: Any) -> Any:
        return bound(x, floor, EIG_MULTIPLE)

    d["lambda_min"], d["lambda_max"] = eig(st.lambda_min), eig(st.lambda_max)
    for key in _EIG_LISTS:
        if d.get(key) is not None:
            d[key] = [eig(v) for v in d[key]]
    d["ritz_weights"] = [bound(w, WEIGHT_FLOOR) for w in d["ritz_weights"]]
    d["layer_extremes"] = {k: [eig(v) for v in lo_hi] for k, lo_hi in d["layer_extremes"].items()}
    if d.get("nongg") and "error" not in d["nongg"]:
        d["nongg"] = {k: (eig(v) if k in _NONGG_EIGS and isinstance(v, float) else v) for k, v in d["nongg"].items()}
    return d


def written_report(rep: SpectrumReport, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """The report as ``spectrum_report.json`` holds it (every stall by :func:`written_stall`).

    Args:
        rep: the report.
        dtype: the objective's dtype.

    Returns:
        The report's dict.
    """
    d = rep.to_dict()
    d["stalls"] = [written_stall(st, rep.dim, dtype) for st in rep.stalls]
    return d


def _tol_text(st: StallSpectrum) -> str:
    if not st.tolerances:
        return "–"
    return ", ".join(f"{k} {fmt_num(v) if isinstance(v, (int, float)) else v}" for k, v in sorted(st.tolerances.items())
                     if isinstance(v, (int, float, str)))


def _table(stalls: list[StallSpectrum]) -> str:
    rows = [{"stall": st.index, "step": st.step, "loss": st.loss, "grad": st.grad_norm, "kind": str(st.kind),
             "index": st.morse_index, "nullity": st.n_zero, "lmin": st.lambda_min, "lmax": st.lambda_max,
             "res": max(st.eig_residuals) if st.eig_residuals else None, "kappa": st.kappa, "tol": _tol_text(st)}
            for st in stalls]
    return html_table(rows, [("stall", "stall"), ("step", "step"), ("loss", "loss", lambda v: fmt_num(v, 6)),
                             ("grad", "‖g‖"), ("kind", "kind"), ("index", "index (# λ < 0)"),
                             ("nullity", "nullity (# λ ≈ 0)"), ("lmin", "λ_min", lambda v: fmt_num(v, 4)),
                             ("lmax", "λ_max", lambda v: fmt_num(v, 4)), ("res", "max residual ‖Hv − λv‖"),
                             ("kappa", "κ"), ("tol", "tolerances behind the kind")])


def _curvature_table(stalls: list[StallSpectrum]) -> str:
    """Per-layer extreme eigenvalues and the H − G share of the negative curvature, per stall."""
    rows = []
    for st in stalls:
        ng = st.nongg or {}
        split = ("–" if "error" in ng or not ng else
                 f"λ_min(H) {fmt_num(ng.get('hessian_min'), 4)} = vᵀGv {fmt_num(ng.get('ggn_along'), 4)} + "
                 f"vᵀ(H−G)v {fmt_num(ng.get('residual_along'), 4)}")
        layers = "; ".join(f"{name}: [{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]"
                           + ("" if st.layer_extremes_converged.get(name, True) else " (not converged)")
                           for name, (lo, hi) in st.layer_extremes.items())
        rows.append({"stall": st.index, "layers": layers or "–", "split": split,
                     "share": ng.get("residual_share") if "error" not in ng else None})
    return html_table(rows, [("stall", "stall"), ("layers", "per-layer [λ_min, λ_max] (one layer's block, others fixed)"),
                             ("split", "negative curvature along λ_min(H)'s eigenvector"),
                             ("share", "share from H − G")], css_class="data text")


def no_stall_reason(run: RunLog) -> str:
    """Why a run has no stall to report, from its own log.

    Args:
        run: the run's log.

    Returns:
        One sentence.
    """
    cfg = run.config
    det = cfg.get("stall_detector") or {}
    n = int(run.steps[-1]) if run.steps.size else 0
    g = cfg.get("final_grad_norm")
    parts = [f"the run had no stall: its stall detector ({', '.join(f'{k} {fmt_num(v)}' for k, v in sorted(det.items()))}) "
             f"never fired in {n} steps"]
    if g is not None:
        parts.append(f"final ‖g‖ {fmt_num(g)}, final loss {fmt_num(cfg.get('final_loss'), 6)}")
    parts.append("train longer (--steps) or loosen the detector to see one")
    return "; ".join(parts) + "."


def report_run(log_dir: str | Path, out_dir: str | Path | None = None, *, obj: ls.Objective | None = None,
               k: int = 5, slq_runs: int = 8, slq_steps: int = 60, dense_max_dim: int = DENSE_MAX_DIM,
               seed: int = 0, title: str | None = None, progress: bool | None = None) -> SpectrumReport:
    """Write the spectrum report of the run in ``log_dir`` to ``out_dir`` (default: ``log_dir``).

    Args:
        log_dir: the run's folder (``run.json``, the events).
        out_dir: the report's folder (default ``log_dir``).
        obj: the run's objective (default: rebuilt from ``meta.problem`` in ``run.json``).
        k: eigenpairs from each end.
        slq_runs: SLQ runs.
        slq_steps: Lanczos steps per SLQ run.
        dense_max_dim: dense spectra up to this dimension.
        seed: the estimates' seed.
        title: the page's title.
        progress: a progress bar over the stalls.

    Returns:
        :class:`SpectrumReport` (written as ``spectrum_report.json`` / ``.html`` and one PNG per stall).
    """
    run = load_run(log_dir)
    out = Path(out_dir) if out_dir is not None else Path(log_dir)
    out.mkdir(parents=True, exist_ok=True)
    obj = obj if obj is not None else _rebuild_objective(run)
    meta = run.config.get("meta") or {}
    # paths relative to the report folder: the JSON is a tracked output, the same wherever it is written
    rep = SpectrumReport(log_dir=Path(os.path.relpath(log_dir, out)).as_posix(), method=str(run.config.get("method")), problem=meta.get("problem"),
                         dim=obj.dim, n_steps=int(run.steps[-1]) if run.steps.size else 0)
    for ev in tqdm(run.events, desc="stall spectra", disable=None if progress is None else not progress):
        if ev["index"] not in run.stall_thetas:
            continue
        theta = torch.as_tensor(run.stall_thetas[ev["index"]], dtype=obj.dtype, device=obj.device)
        st = analyse_stall(obj, theta, ev, k=k, slq_runs=slq_runs, slq_steps=slq_steps, dense_max_dim=dense_max_dim,
                           seed=seed)
        st.png = stall_png(st, run, out / f"stall_{st.index:04d}.png").name
        rep.stalls.append(st)
    heading = title or f"Hessian spectra at the stalls of {rep.method} on {rep.problem or 'a user problem'}"
    if not rep.stalls:
        rep.note = no_stall_reason(run) if not run.events else (
            f"the run logged {len(run.events)} stall event(s) but no stall parameters (stall_thetas/) to analyse.")
    intro = (f"<p>{len(rep.stalls)} stall(s); dim = {obj.dim}; run status: {html.escape(run.status)}. "
             "Eigenvalues from torch-native Lanczos (explicit residuals ‖Hv − λv‖), densities from stochastic Lanczos "
             "quadrature, shown with its quadrature nodes (Ritz values) and weights, so no mass is read where no "
             "eigenvalue is; the classification is the trainer's (landscape.classify_point), with the tolerances it "
             "used.</p>" + (f"<p class=\"lead\">No stall to report: {html.escape(rep.note)}</p>" if rep.note else "")
             + (_table(rep.stalls) + _curvature_table(rep.stalls) if rep.stalls else ""))
    sections: list[tuple[str, Any]] = [("Loss curve", loss_figure(run))]
    for st in rep.stalls:
        sections.append((f"Stall {st.index}: {st.kind}", stall_figure(st)))
        sections.append(("", f'<p><img src="{st.png}" width="900"></p>'))
    write_html(out / "spectrum_report.html", sections, title=heading, intro_html=intro)
    rep.html, rep.json = "spectrum_report.html", "spectrum_report.json"
    write_json(out / rep.json, written_report(rep, obj.dtype), digits=JSON_DIGITS)
    return rep


# ---------------------------------------------------------------------------- the study's section
STUDY_PROBLEM = "autoencoder"


def _loss_floor(global_min: float) -> float:
    """The round-off floor of a loss near ``global_min``: 1000·ε·max(1, |L*|) (float64)."""
    return 1000.0 * float(torch.finfo(torch.float64).eps) * max(1.0, abs(global_min))
STUDY_METHODS = ("gd", "synaprune-rms")


def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict[str, Any]:
    """``landscape study``'s spectrum part: one GD and one SynaPrune run on the autoencoder, a
    spectrum report of each under ``out_dir/spectrum/<problem>_<method>/`` (the section contract of analyses.study).

    Args:
        out_dir: the main job's output folder.
        quick: fewer steps.
        seed: the runs' seed.

    Returns:
        The report's section (``title``, ``lead``, ``html``, ``summary``, ``figures``).
    """
    out_dir = Path(out_dir)
    problem = get_problem(STUDY_PROBLEM)
    steps = problem.hints.get("max_steps", 1500)
    if quick:
        steps = min(steps, 400)
    runs: dict[str, Any] = {}
    figures: list[str] = []
    rows = []
    for method in STUDY_METHODS:
        rel = f"spectrum/{STUDY_PROBLEM}_{method}"
        d = out_dir / rel
        result = train_problem(problem, method, d / "run", max_steps=steps, seed=seed, progress=False)
        rep = report_run(d / "run", d, k=3 if quick else 5, slq_runs=4 if quick else 8,
                         slq_steps=30 if quick else 60, seed=seed, progress=False)
        gap = None if problem.global_min is None else result.final_loss - problem.global_min
        written = [written_stall(st, rep.dim) for st in rep.stalls]
        runs[method] = {"final_loss": result.final_loss, "global_min": problem.global_min,
                        "gap": None if gap is None else bound(gap, _loss_floor(problem.global_min), GAP_MULTIPLE),
                        "n_steps": result.n_steps, "n_stalls": len(rep.stalls), "note": rep.note,
                        "json": f"{rel}/spectrum_report.json", "html": f"{rel}/spectrum_report.html",
                        "stalls": [{"step": st.step, "kind": st.kind, "loss": st.loss, "lambda_min": w["lambda_min"],
                                    "lambda_max": w["lambda_max"], "index": st.morse_index, "nullity": st.n_zero,
                                    "kappa": st.kappa, "tolerances": st.tolerances, "png": f"{rel}/{st.png}"}
                                   for st, w in zip(rep.stalls, written)]}
        figures += [f"{rel}/{st.png}" for st in rep.stalls]
        for st in rep.stalls:
            rows.append({"method": method, "step": st.step, "kind": str(st.kind), "loss": st.loss,
                         "lmin": st.lambda_min, "index": st.morse_index, "nullity": st.n_zero, "kappa": st.kappa,
                         "tol": _tol_text(st), "src": f"{rel}/spectrum_report.json"})
    kinds = {m: [st["kind"] for st in r["stalls"]] for m, r in runs.items()}
    lead = (f"<p>On the {STUDY_PROBLEM} problem ({steps} steps, seed {seed}) "
            + "; ".join(f"{html.escape(m)} stalled {len(k)} time(s) ({html.escape(', '.join(map(str, k))) or 'none'}) and "
                        f"ended {fmt(runs[m]['gap']) if is_bound(runs[m]['gap']) else fmt_num(runs[m]['gap'])} above the PCA optimum" for m, k in kinds.items())
            + ". Each stall's Hessian spectrum is shown with its exact eigenvalues where the model is small.</p>")
    body = [html_table(rows, [("method", "method"), ("step", "step"), ("kind", "kind"), ("loss", "loss",
                                                                                         lambda v: fmt_num(v, 6)),
                              ("lmin", "λ_min"), ("index", "index"), ("nullity", "nullity"), ("kappa", "κ"),
                              ("tol", "tolerances behind the kind"), ("src", "numbers from")])]
    for m, r in runs.items():
        if r["note"]:
            body.append(f"<p>{html.escape(m)}: {html.escape(r['note'])}</p>")
        body.append(f'<p>{html.escape(m)}: <a href="{r["html"]}">interactive spectrum report</a> '
                    f'(numbers: <code>{r["json"]}</code>)</p>')
        for st in r["stalls"][:3]:
            body.append(f'<p><img src="{st["png"]}" alt="spectrum at step {st["step"]}" width="1000"></p>')
    return {"title": "Hessian spectra at the autoencoder's stalls", "lead": lead, "html": "\n".join(body),
            "summary": {"problem": STUDY_PROBLEM, "steps": steps, "runs": runs}, "figures": figures}


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape spectrum``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--problem", choices=list_problems(), help="train on this embedded problem (needs --method), "
                     "then report")
    src.add_argument("--from", dest="from_dir", metavar="LOG_DIR", type=existing_dir,
                     help="report an existing run directory (one holding run.json)")
    p.add_argument("--method", choices=sorted(METHODS), default=None,
                   help="trainer method, required with --problem (no default)")
    p.add_argument("--steps", type=positive_int, default=1500, help="training steps (with --problem)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run and of the spectral estimates")
    p.add_argument("--out", default=None, help="output directory (default: figures/spectrum/<problem>_<method>, "
                                               "or LOG_DIR with --from)")
    p.add_argument("--k", type=positive_int, default=5, help="eigenpairs from each end")
    add_quiet(p)


def output_dirs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The folder ``landscape spectrum`` writes in (checked before any work by :func:`analyses.cli.main`).

    Args:
        args: the parsed arguments.

    Returns:
        ``[("--out", folder)]``: ``--out``, else LOG_DIR with ``--from``, else
        ``figures/spectrum/<problem>_<method>``.
    """
    if args.out:
        return [("--out", args.out)]
    if args.from_dir:
        return [("--from", str(args.from_dir))]
    return [("--out", f"figures/spectrum/{args.problem}_{args.method}")]


def run(args: argparse.Namespace) -> int:
    """Run ``landscape spectrum``: train on a zoo problem (or take a run directory), then report.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code, 0.

    Raises:
        analyses.cli_common.UsageError: ``--method`` with ``--from``, a folder without ``run.json``
            or without ``meta.problem``, ``--problem`` without ``--method``.
    """
    if args.from_dir:
        if args.method is not None:
            raise UsageError("--method applies to --problem runs only; a --from run has its own method")
        if not (args.from_dir / "run.json").is_file():
            raise UsageError(f"{args.from_dir} holds no run.json: not a trainer run directory")
        meta = (load_run(args.from_dir).config.get("meta") or {})
        if not meta.get("problem"):
            raise UsageError(f"{args.from_dir}/run.json has no meta.problem, so its objective cannot be rebuilt "
                             "(report it from Python: report_run(LOG_DIR, obj=...))")
    elif args.method is None:
        raise UsageError("--problem needs --method (one of: " + ", ".join(sorted(_methods())) + ")")
    hb = Heartbeat("spectrum", quiet=args.quiet)
    bars = show_bars(args.quiet)
    if args.from_dir:
        out = Path(args.out) if args.out else args.from_dir
        with hb.step(f"spectra of {args.from_dir}"):
            rep = report_run(args.from_dir, out, k=args.k, seed=args.seed, progress=bars)
    else:
        out = Path(args.out or f"figures/spectrum/{args.problem}_{args.method}")
        problem = get_problem(args.problem)
        with hb.step(f"training {args.method} on {args.problem} ({args.steps} steps)"):
            train_problem(problem, args.method, out / "run", max_steps=args.steps, seed=args.seed, progress=bars)
        with hb.step("spectra at the stalls"):
            rep = report_run(out / "run", out, k=args.k, seed=args.seed, progress=bars)
    print(f"{len(rep.stalls)} stall(s) reported -> {out / rep.html}")
    if rep.note:
        print(f"  {rep.note}")
    for st in rep.stalls:
        print(f"  stall {st.index} step {st.step}: {st.kind}, λ_min {fmt_num(st.lambda_min)}, "
              f"λ_max {fmt_num(st.lambda_max)}, κ {fmt_num(st.kappa)}")
    return 0


def _methods() -> list[str]:
    return list(METHODS)


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["spectrum", *sys.argv[1:]]))
