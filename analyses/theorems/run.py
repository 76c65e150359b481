"""The driver of ``landscape theorems``: every configuration's checks, the escape sweep, the verdicts
and the outputs (``theorems.json``, ``theorems.md``, figures; timings to the untracked ``timings.json``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from landscape.deep_linear import DeepLinearProblem
from landscape.results import write_json

from .numerics import escape_problem, escape_times, fit_escape
from .report import Settings, TheoremReport, markdown, write_figures
from .statements import (CONFIGS, CONFIGS_EXTRA, D_X, D_X2, D_Y, D_Y2, M, M2, fmt_lambda_min, max_bound, contrast_point,
                         statement1, statement2, statement3)

#: significant digits of the floats in theorems.json (a tracked output: no noise digits)
JSON_DIGITS = 8


def run_theorems(*, quick: bool = False, seed: int = 0, out: str | Path = "figures/theorems",
                 figures: bool = True, progress: bool | None = None) -> TheoremReport:
    """Run the four checks and write the outputs (single-threaded torch: every problem is tiny).

    Args:
        quick: fewer initialisations (25 instead of 100 per configuration), the six base
            configurations only and a smaller escape sweep.
        seed: the base seed.
        out: the output folder (created).
        figures: also draw the PNG/HTML figures.
        progress: a progress bar over the configurations (None: tqdm's default).

    Returns:
        :class:`~analyses.theorems.report.TheoremReport` (verdicts, the evidence, timings).
    """
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every problem here is tiny: threads only add overhead
    try:
        return _run_theorems(quick=quick, seed=seed, out=out, figures=figures, progress=progress)
    finally:
        torch.set_num_threads(old_threads)


def _settings(quick: bool, seed: int) -> tuple[Settings, dict[int, np.ndarray]]:
    """The run's settings and its escape sweep's ε per depth H."""
    escape_eps = ({1: np.logspace(-8, -1, 5), 2: np.logspace(-4, -1.5, 4), 3: np.logspace(-2.5, -1, 4)} if quick else
                  {1: np.logspace(-10, -1, 10), 2: np.logspace(-4.5, -1.5, 7), 3: np.logspace(-3, -1, 7)})
    settings = Settings(
        quick=quick, seed=seed, d_x=D_X, d_y=D_Y, m=M, n_init=25 if quick else 100, optimizer="L-BFGS", opt_max_iter=1000,
        opt_grad_tol=1e-8, n_classify_converged=2 if quick else 8,
        escape_eps={str(h): e.tolist() for h, e in escape_eps.items()}, escape_dirs=2 if quick else 6,
        escape_rho=0.01, escape_c_lip=0.05)
    return settings, escape_eps


def _check_configs(settings: Settings, seed: int, progress: bool | None, timings: dict[str, float]
                   ) -> tuple[list[dict[str, Any]], ...]:
    """Statements 1–3 and the W = 0 / S = {0} contrast on every configuration: (configs, s1, s2, s3, contrast)."""
    configs, s1, s2, s3, contrast = [], [], [], [], []
    disable = None if progress is None else not progress
    plan = [(name, widths, D_X, D_Y, M) for name, widths in CONFIGS]
    if not settings.quick:
        plan += [(name, widths, D_X2, D_Y2, M2) for name, widths in CONFIGS_EXTRA]
    for ci, (name, widths, d_x, d_y, m) in enumerate(tqdm(plan, desc="configurations", disable=disable)):
        prob = DeepLinearProblem.random(d_x, d_y, widths, m, seed + 1000 * ci)
        obj = prob.objective()
        lam, _ = prob.sigma_eigs()
        configs.append({"name": name, "H": prob.H, "widths": widths, "dims": prob.dims, "dim": prob.dim,
                        "p": prob.p, "L_star": prob.global_min(), "sigma_eigs": lam.tolist()})
        t = time.perf_counter()
        s1.append(statement1(prob, name, obj))
        timings["statement1"] = timings.get("statement1", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        s2.append(statement2(prob, name, obj, n_init=settings.n_init, max_iter=settings.opt_max_iter,
                             grad_tol=settings.opt_grad_tol, n_classify=settings.n_classify_converged,
                             seed=seed + 7 * ci))
        timings["statement2"] = timings.get("statement2", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        s3.append(statement3(prob, name, obj, seed=seed + ci))
        contrast.append(contrast_point(prob, name, obj, (), seed))
        if prob.r >= 2:
            contrast.append(contrast_point(prob, name, obj, (0,), seed))
        timings["statement3_4"] = timings.get("statement3_4", 0.0) + time.perf_counter() - t
    return configs, s1, s2, s3, contrast


def _escape_sweep(settings: Settings, escape_eps: dict[int, np.ndarray], seed: int
                  ) -> tuple[dict[str, Any], dict[int, Any]]:
    """Statement 4's escape times from W = 0 per depth: (the report's entries, the raw arrays for the figures)."""
    escape: dict[str, Any] = {}
    escape_raw: dict[int, Any] = {}
    for H, eps in escape_eps.items():
        prob = escape_problem(H, seed + 17 * H)
        T = escape_times(prob, eps.tolist(), settings.escape_dirs, seed + 31 * H,
                         rho=settings.escape_rho, c_lip=settings.escape_c_lip)
        med = np.nanmedian(T, axis=0) if np.isfinite(T).any() else np.full(len(eps), np.nan)
        fit = fit_escape(eps, med)
        better = None
        if "log_rms_lnT" in fit:
            better = "log" if fit["log_rms_lnT"] < fit["pow_rms_lnT"] else "power"
        sigma1 = float(torch.linalg.svdvals(prob.XtY)[0])
        escape[str(H)] = {"eps": eps.tolist(), "T": T.tolist(), "T_median": med.tolist(), "fit": fit,
                          "better_model": better, "sigma1": sigma1,
                          "theory": ("T ≈ ln(1/ε)/σ₁: slope 1/σ₁ = %.3f" % (1 / sigma1)) if H == 1 else
                          f"T ≈ ε^-{H - 1}/(c·σ₁·{H - 1}): exponent −{H - 1}"}
        escape_raw[H] = {"eps": eps, "T": T, "fit": fit, "sigma1": sigma1}
    return escape, escape_raw


def _contrast_ok(r: dict[str, Any]) -> bool:
    """W = 0 / S = {0}: a strict saddle with λ_min < 0 for H = 1; a non-strict one of probe order H + 1 for H ≥ 2."""
    if r["H"] == 1:
        return r["kind"] == "strict_saddle" and r["lambda_min"] < 0
    ok_order = r["probe_order"] is not None and abs(r["probe_order"] - (r["H"] + 1)) < 0.3
    return r["kind"] == "non_strict_saddle" and ok_order


def _fits_ok(escape: dict[str, Any]) -> list[bool]:
    """Per depth: the better model is the predicted one, with slope (H = 1) or exponent (H ≥ 2) near theory."""
    fits_ok = []
    for H, d in escape.items():
        f = d["fit"]
        if "log_slope" not in f:
            fits_ok.append(False)
        elif H == "1":
            fits_ok.append(d["better_model"] == "log" and abs(f["log_slope"] * d["sigma1"] - 1) < 0.2)
        else:
            fits_ok.append(d["better_model"] == "power" and abs(f["pow_exponent"] + (int(H) - 1)) < 0.25)
    return fits_ok


def _verdicts(settings: Settings, configs: list[dict[str, Any]], s1: list[dict[str, Any]], s2: list[dict[str, Any]],
              s3: list[dict[str, Any]], contrast: list[dict[str, Any]], escape: dict[str, Any]
              ) -> dict[str, dict[str, Any]]:
    """One verdict per statement: the statement, the configurations, the evidence (one line), pass."""
    hs = sorted({c["H"] for c in configs})
    cfg_list = ", ".join(c["name"] for c in configs)
    s1_pass = all(r["pass"] for r in s1)
    n_runs = sum(r["n_init"] for r in s2)
    n_global = sum(r["n_at_global"] for r in s2)
    n_above = sum(r["n_above"] for r in s2)
    above_kinds: dict[str, int] = {}
    for r in s2:
        for k, c in r["above_kinds"].items():
            above_kinds[k] = above_kinds.get(k, 0) + c
    s2_pass = all(r["pass"] for r in s2)
    n_pts = sum(r["n_points"] for r in s3)
    n_ng = sum(r["n_non_global"] for r in s3)
    n_ngs = sum(r["n_non_global_saddles"] for r in s3)
    s3_pass = all(r["pass"] for r in s3)
    zero_rows = [r for r in contrast if r["S"] == []]
    rd_rows = [r for r in contrast if r["S"] == [0]]
    s4_pass = all(_contrast_ok(r) for r in contrast) and all(_fits_ok(escape))
    esc_txt = "; ".join(
        (f"H={H}: slope of T vs ln(1/ε) {d['fit'].get('log_slope', float('nan')):.2f} (theory {1 / d['sigma1']:.2f})"
         if H == "1" else
         f"H={H}: exponent {d['fit'].get('pow_exponent', float('nan')):.2f} (theory −{int(H) - 1})")
        + f", better fit: {d['better_model']}" for H, d in escape.items())
    return {
        "1": {"statement": "1. L is non-convex and non-concave", "configurations": cfg_list,
              "evidence": (f"{sum(r['lambda_min'] < 0 < r['lambda_max'] for r in s1)}/{len(s1)} configs have a point "
                           f"with eigenvalues of both signs (min λ_min {min(r['lambda_min'] for r in s1):.3g}); "
                           f"convexity-violating chords {sum(r['convexity_chord']['margin'] > 0 for r in s1)}/{len(s1)}, "
                           f"concavity-violating {sum(r['concavity_chord']['margin'] > 0 for r in s1)}/{len(s1)}"),
              "verdict": "confirmed" if s1_pass else "NOT confirmed", "pass": s1_pass},
        "2": {"statement": "2. every local minimum is global", "configurations": f"{cfg_list}; {settings.n_init} inits each",
              "evidence": (f"{n_global}/{n_runs} L-BFGS runs end within tolerance of L* (max gap "
                           f"{max_bound(s2, 'max_gap', '.2e')}); {n_above} above L*, classified as "
                           f"{above_kinds or 'none'}; sampled converged runs classified as "
                           f"{_merge([r['classified_kinds'] for r in s2])}"),
              "verdict": "confirmed (no local minimum above L* found)" if s2_pass else "NOT confirmed", "pass": s2_pass},
        "3": {"statement": "3. every critical point that is not a global minimum is a saddle",
              "configurations": f"{cfg_list}; all index sets |S| ≤ r, random gauge",
              "evidence": (f"{n_pts} analytic critical points, max ‖g‖ {max_bound(s3, 'max_grad_norm')}, "
                           f"max |L − formula| {max_bound(s3, 'max_loss_err')}; "
                           f"{n_ngs}/{n_ng} non-global ones classified as saddles; kinds match prediction "
                           f"{sum(r['n_kind_ok'] for r in s3)}/{n_pts}, index {sum(r['n_index_ok'] for r in s3)}/"
                           f"{sum(r['n_index_checked'] for r in s3)}, nullity {sum(r['n_nullity_ok'] for r in s3)}/"
                           f"{sum(r['n_nullity_checked'] for r in s3)} (where a formula exists)"),
              "verdict": "confirmed" if s3_pass else "NOT confirmed", "pass": s3_pass},
        "4": {"statement": "4. H = 1: every saddle strict; H ≥ 2: bad (non-strict) saddles exist",
              "configurations": f"W = 0 and S = {{0}} in every config; escape from W = 0 for H = {', '.join(map(str, hs))}",
              "evidence": ("W = 0: " + ", ".join(f"{r['config']} {r['kind']} (λ_min {fmt_lambda_min(r, '.2g')}, order "
                                                f"{'—' if r['probe_order'] is None else format(r['probe_order'], '.2f')})"
                                                for r in zero_rows)
                           + "; S = {0}: " + ", ".join(f"{r['config']} {r['kind']}" for r in rd_rows)
                           + "; escape: " + esc_txt),
              "verdict": "confirmed" if s4_pass else "NOT confirmed", "pass": s4_pass},
    }


def _run_theorems(*, quick: bool, seed: int, out: str | Path, figures: bool, progress: bool | None
                  ) -> TheoremReport:
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings, escape_eps = _settings(quick, seed)
    timings: dict[str, float] = {}
    configs, s1, s2, s3, contrast = _check_configs(settings, seed, progress, timings)
    t = time.perf_counter()
    escape, escape_raw = _escape_sweep(settings, escape_eps, seed)
    timings["escape"] = time.perf_counter() - t
    verdicts = _verdicts(settings, configs, s1, s2, s3, contrast, escape)
    timings["total_before_output"] = time.perf_counter() - t_start
    report = TheoremReport(settings=settings, configs=configs, statement1=s1, statement2=s2, statement3=s3,
                           statement4={"contrast": contrast, "escape": escape}, verdicts=verdicts, timings_s=timings)
    if figures:
        t = time.perf_counter()
        write_figures(out, report, escape_raw)
        timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    # tracked outputs: no timings (they go to the untracked timings.json), sorted keys, no noise digits
    data = report.to_dict()
    data.pop("timings_s", None)
    write_json(out / "theorems.json", data, digits=JSON_DIGITS)
    write_json(out / "timings.json", {"theorems_s": report.timings_s}, digits=3)
    (out / "theorems.md").write_text(markdown(report), encoding="utf-8")
    return report


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, c in d.items():
            out[k] = out.get(k, 0) + c
    return out
