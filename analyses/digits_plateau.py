"""The SynaPrune seed repository's plateau, on real digits: the main job's digits part and
``landscape digits``.

The problem is the zoo's ``digits_autoencoder`` (:mod:`analyses.problems.digits`: scikit-learn's
1 797 bundled 8×8 digits, a 64-32-8-32-64 ReLU autoencoder, full-batch GD at lr 0.1).
:func:`analyse_plateau` answers what the plateau is (the nearest critical point and its kind, the
cause of the small gradient — cancelling or vanishing per-example gradients —, dead ReLU units,
whether the network outputs the mean image); the method comparison
(:mod:`analyses.digits_comparison`) runs the escape study's protocol on it; :func:`run_part`
writes both into one folder, :func:`study_section` returns the report's section (the section
contract of :mod:`analyses.study`) and :func:`run` is the command.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import cancellation_stats, extreme_eigs, spectral_density
from landscape.critical import nearest_critical
from landscape.monitor import KAPPA_MAX, RATIO_MAX, stall_cause
from landscape.render import symlog
from landscape.results import round_sig
from synaprune import StallDetector

from .cli_common import Heartbeat, add_quiet, positive_int
from .digits_comparison import (ESCAPE_SEEDS, ESCAPE_STEPS, RECORDS_NAME, available_methods, comparison_jobs,
                                comparison_summary, methods_table, methods_text, run_comparison)
from .escape.stall_report import survival_png
from .escape.summary import stall_units
from .outputs import save_npz
from .problems import Problem, get_problem
from .problems import digits as digits_problem
from .problems.digits import hidden_activations
from .sweep import SweepFailed, SweepInterrupted, write_gzip_copy

#: significant digits of the floats in digits.json (a tracked output: no noise digits)
JSON_DIGITS = 8
#: the network "outputs the mean image" when its outputs' mean squared deviation from the mean
#: image is below this share of the data's own (the loss of the constant mean image)
MEAN_IMAGE_SHARE = 0.01
#: (steps of the run, Newton-MR iterations for the nearest critical point, SLQ runs, SLQ steps)
PRESETS: dict[str, tuple[int, int, int, int]] = {"quick": (1200, 3, 2, 20), "default": (3000, 60, 6, 60)}
def network_facts(problem: Problem, theta: torch.Tensor) -> dict[str, Any]:
    """What the network does at a point: dead ReLU units and how close it is to the mean image.

    Args:
        problem: a ``digits_autoencoder`` problem.
        theta: the point, flat (dim,).

    Returns:
        ``dead_units`` per hidden layer (zero on every example), ``widths`` of the hidden layers,
        ``mean_image_share`` = mean ‖f(x_i) − x̄‖² / mean ‖x_i − x̄‖² (0: outputs the mean image),
        ``output_variance_share`` = Σ_j var_i f_j(x_i) / Σ_j var_i x_ij, and ``outputs_mean_image``
        (share ≤ :data:`MEAN_IMAGE_SHARE`).
    """
    X = problem.data[0]
    model = problem.make_model(0)
    obj = problem.objective()
    obj.write_to_module(model, theta.to(obj.dtype))
    acts = hidden_activations(model, X)
    widths = list(problem.extra["widths"][1:-1])
    dead = [int((a.max(0).values <= 0).sum()) for a in acts[:-1]]
    out = acts[-1]
    xbar = X.mean(0)
    data_dev = float(((X - xbar) ** 2).sum(1).mean())
    return {"dead_units": dead, "widths": widths,
            "mean_image_share": float(((out - xbar) ** 2).sum(1).mean()) / data_dev,
            "output_variance_share": float(out.var(0, unbiased=False).sum()) / float(X.var(0, unbiased=False).sum()),
            "outputs_mean_image": float(((out - xbar) ** 2).sum(1).mean()) / data_dev <= MEAN_IMAGE_SHARE}


def stall_cause_record(kappa: float, scale: float, ref_scale: float) -> dict[str, Any]:
    """The plateau's cause by the one rule, :func:`landscape.monitor.stall_cause` (the Trainer's and
    the monitor's), with the run's starting point — the model's seeded default initialisation — as
    the reference per-example gradient scale.

    Args:
        kappa: the cancellation κ = ‖mean g_i‖ / mean ‖g_i‖ at the stall.
        scale: mean ‖g_i‖ at the stall.
        ref_scale: mean ‖g_i‖ at the start of the run (the reference scale r).

    Returns:
        ``cause`` ("vanishing", "cancelling" or None), ``kappa``, ``example_grad_scale``,
        ``example_grad_scale_ratio`` (scale / r, None when r is 0) and ``cause_thresholds``
        (``kappa_max``, ``ratio_max`` and the reference, as on the Trainer's stall events).
    """
    ratio = scale / ref_scale if ref_scale > 0 else None
    return {"cause": stall_cause(kappa, ratio), "kappa": kappa, "example_grad_scale": scale,
            "example_grad_scale_ratio": ratio,
            "cause_thresholds": {"kappa_max": KAPPA_MAX, "ratio_max": RATIO_MAX,
                                 "reference": {"source": "initial", "value": ref_scale}}}


def _stall_detector() -> StallDetector:
    return StallDetector(**digits_problem.DIGITS_STALL)


def analyse_plateau(problem: Problem, *, seed: int = 0, steps: int = 3000, nmr_iter: int = 60, slq_runs: int = 6,
                    slq_steps: int = 60) -> dict[str, Any]:
    """What the plateau is: train plain GD (the problem's lr) from the seeded default
    initialisation with :data:`analyses.problems.digits.DIGITS_STALL`; at the first stall report
    the loss, ‖g‖, cancellation (κ, mean‖g_i‖ and its ratio to the start of the run → cause),
    extreme Hessian eigenvalues and SLQ density, network facts (:func:`network_facts`), and the
    nearest critical point (:func:`landscape.nearest_critical`, Newton-MR) with its own network facts.

    Args:
        problem: a ``digits_autoencoder`` problem.
        seed: seed of the network's initialisation and of the spectral estimates.
        steps: GD steps.
        nmr_iter: Newton-MR iterations at most for the nearest critical point.
        slq_runs: SLQ runs of the spectral density.
        slq_steps: Lanczos steps per SLQ run.

    Returns:
        A dict (``stall`` None when GD never stalled); tensors under ``"_arrays"`` (θ at start,
        stall, critical point, end; the loss and gradient-norm curves; the spectral density).
    """
    tr = problem.trainer("gd", seed, stall=_stall_detector(), classify=False)
    theta0 = problem.init(seed, 0.0)
    res = tr.fit(int(steps), theta0=theta0)
    obj = tr.obj
    losses = np.asarray(res.losses, dtype=np.float64)
    out: dict[str, Any] = {"seed": seed, "steps": int(res.n_steps), "lr": tr.lr, "stall_detector": dict(digits_problem.DIGITS_STALL),
                           "initial_loss": float(losses[0]), "final_loss": float(res.final_loss),
                           "mean_image_loss": problem.extra["mean_image_loss"], "n_stalls": res.n_stalls,
                           "stall_steps": [e.step for e in res.events]}
    arrays: dict[str, Any] = {"losses": losses, "grad_norms": np.asarray(res.grad_norms), "theta_start": theta0,
                              "theta_end": res.final_theta}
    out["facts_start"] = network_facts(problem, theta0)
    out["facts_end"] = network_facts(problem, res.final_theta)
    if not res.events:
        out["stall"] = None
        out["_arrays"] = arrays
        return out
    ev = res.events[0]
    ref = cancellation_stats(obj, theta0)
    canc = ev.cancellation
    st: dict[str, Any] = {"step": ev.step, "loss": ev.loss, "grad_norm": ev.grad_norm,
                          "escaped": ev.escaped, "escape_steps": ev.escape_steps,
                          "escape_target": ev.escape_target, "escape_horizon": ev.escape_horizon,
                          "censored": (not ev.escaped) and ev.step + (ev.escape_horizon or 0) > res.n_steps,
                          "start_grad_norm": float(res.grad_norms[0]),
                          "start_example_grad_scale": ref.mean_example_grad_norm}
    st.update(stall_cause_record(canc.kappa, canc.mean_example_grad_norm, ref.mean_example_grad_norm))
    st["facts"] = network_facts(problem, ev.theta)
    eig = extreme_eigs(obj, ev.theta, k=5, which="both", seed=seed)
    st["lambda_smallest"] = [float(v) for v in eig.values[:5]]
    st["lambda_largest"] = [float(v) for v in eig.values[-5:]]
    st["eigs_converged"] = bool(all(eig.converged))
    dens = spectral_density(obj, ev.theta, n_runs=slq_runs, n_steps=slq_steps, seed=seed)
    arrays.update(theta_stall=ev.theta, density_grid=np.asarray(dens.grid), density=np.asarray(dens.density))
    nc = nearest_critical(obj, ev.theta, seed=seed, max_iter=nmr_iter, max_hvp=None)   # the full search, unbudgeted
    ncd = nc.to_dict()
    keep = ("kind", "index", "loss", "distance", "grad_norm", "converged", "gradient_flat", "probe_radius",
            "degenerate", "tolerances", "loss_gap", "n_zero", "lambda_min", "lambda_max", "reason", "n_hvp")
    crit = {k: ncd.get(k) for k in keep}
    crit["max_iter"] = nmr_iter
    crit["n_iter"] = nc.search.n_iter if nc.search is not None else None
    crit["facts"] = network_facts(problem, nc.theta)
    crit["loss_minus_mean_image_loss"] = nc.loss - problem.extra["mean_image_loss"]
    arrays["theta_critical"] = nc.theta
    st["nearest_critical"] = crit
    out["stall"] = st
    out["_arrays"] = arrays
    return out


# ---------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve_png(plateau: dict[str, Any], records: list[dict[str, Any]], path: Path) -> Path:
    """GD's loss (and a zoom) and gradient norm with the stall and its escape marked.

    Args:
        plateau: :func:`analyse_plateau`'s result.
        records: the comparison's records (their curves are not kept).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    plt = _plt()
    a = plateau["_arrays"]
    fig, (ax, axz, ax2) = plt.subplots(3, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]})
    steps = np.arange(len(a["losses"]))
    ax.plot(steps, a["losses"], color="#1f77b4", label=f"GD, lr {plateau['lr']:g}")
    # the plateau is a 1 % effect: a linear zoom around the mean-image loss shows it
    lo = float(a["losses"].min())
    hi = plateau["mean_image_loss"] * 1.02
    axz.plot(steps, a["losses"], color="#1f77b4")
    axz.axhline(plateau["mean_image_loss"], color="0.4", ls="--", lw=1)
    axz.set_ylim(lo - 0.05 * (hi - lo), hi)
    axz.set_ylabel("MSE loss (zoom)")
    ax.axhline(plateau["mean_image_loss"], color="0.4", ls="--", lw=1, label="constant mean image")
    st = plateau.get("stall")
    if st is not None:
        ax.axvline(st["step"], color="red", lw=1.2, label=f"stall detected (step {st['step']})")
        if st["escaped"]:
            e = st["step"] + st["escape_steps"]
            ax.axvspan(st["step"], e, color="red", alpha=0.08, label=f"until escape (step {e}, 1 % lower)")
        nc = st.get("nearest_critical") or {}
        if nc.get("loss") is not None:
            ax.axhline(nc["loss"], color="purple", ls=":", lw=1.2,
                       label=f"nearest critical point ({nc.get('kind')}), loss {nc['loss']:.5f}")
    ax.set_yscale("log")
    ax.set_ylabel("MSE loss")
    ax.legend(fontsize=8)
    ax.set_title("digits autoencoder 64-32-8-32-64: full-batch GD")
    ax2.semilogy(steps, a["grad_norms"], color="#2ca02c")
    if st is not None:
        for a_ in (ax2, axz):
            a_.axvline(st["step"], color="red", lw=1.2)
        if st["escaped"]:
            axz.axvspan(st["step"], st["step"] + st["escape_steps"], color="red", alpha=0.08)
            axz.axhline(st["escape_target"], color="red", ls=":", lw=1)
    ax2.set_ylabel("‖g‖")
    ax2.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def spectrum_png(plateau: dict[str, Any], path: Path) -> Path:
    """SLQ density at the stall on a symmetric-log axis, extreme Lanczos eigenvalues marked.

    Args:
        plateau: :func:`analyse_plateau`'s result (with a stall).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    plt = _plt()
    st = plateau["stall"]
    a = plateau["_arrays"]
    lam = st["lambda_smallest"] + st["lambda_largest"]
    c = max(1e-4, min(abs(v) for v in lam if v != 0) / 2)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.semilogy(symlog(a["density_grid"], c), np.maximum(a["density"], 1e-12), color="0.3",
                label="SLQ density (normalised)")
    for i, v in enumerate(lam):
        ax.axvline(symlog(v, c), color="red" if v < 0 else "#1f77b4", lw=1, alpha=0.8,
                   label=("Lanczos: negative eigenvalues" if v < 0 else "Lanczos: largest eigenvalues")
                   if i in (0, len(lam) - 1) else None)
    ticks = [t for t in (-1, -0.1, -0.01, -1e-3, 0, 1e-3, 0.01, 0.1, 1) if t == 0 or abs(t) >= 2 * c]
    ax.set_xticks([symlog(t, c) for t in ticks], [f"{t:g}" for t in ticks])
    ax.set_ylim(1e-8, None)
    ax.set_xlabel(f"Hessian eigenvalue (symmetric log, linear within ±{c:.1g})")
    ax.set_title(f"Hessian spectrum at the stall (step {st['step']}): λ_min {st['lambda_smallest'][0]:.3g}, "
                 f"λ_max {st['lambda_largest'][-1]:.3g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def reconstructions_png(problem: Problem, plateau: dict[str, Any], path: Path) -> Path:
    """One digit of each class: the image, its reconstruction at the stall (before the escape), at
    the nearest critical point, and at the end of the run (after).

    Args:
        problem: the ``digits_autoencoder`` problem (scikit-learn's digits).
        plateau: :func:`analyse_plateau`'s result.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    from sklearn.datasets import load_digits

    plt = _plt()
    X = problem.data[0]
    labels = load_digits().target[: X.shape[0]]
    idx = [int(np.nonzero(labels == k)[0][0]) for k in range(10)]
    a = plateau["_arrays"]
    rows = [("data", None)]
    if plateau.get("stall") is not None:
        rows.append((f"stall (step {plateau['stall']['step']})", a["theta_stall"]))
        rows.append(("nearest critical pt", a["theta_critical"]))
    rows.append((f"end (step {plateau['steps']})", a["theta_end"]))
    model = problem.make_model(0)
    obj = problem.objective()
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, 1.15 * len(rows) + 0.3))
    for r, (name, th) in enumerate(rows):
        if th is None:
            imgs = X[idx]
        else:
            obj.write_to_module(model, th.to(obj.dtype))
            with torch.no_grad():
                imgs = model(X[idx])
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(imgs[c].reshape(8, 8).clamp(0, 1).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("reconstructions (one digit per class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- the report section
def _answer(pl: dict[str, Any]) -> str:
    st = pl.get("stall")
    if st is None:
        return (f"GD on the digits autoencoder recorded no stall in {pl['steps']} steps (final loss "
                f"{pl['final_loss']:.5g}); the plateau of the seed repository was not reproduced here.")
    f = st["facts"]
    nc = st["nearest_critical"]
    dead = ", ".join(f"{d}/{w}" for d, w in zip(f["dead_units"], f["widths"]))
    if nc["converged"]:
        crit = (f"Newton-MR from the stall converges ({nc['n_iter']} iterations, ‖g‖ = {nc['grad_norm']:.2g}) to a "
                f"critical point {nc['distance']:.3g} away in parameter space whose loss {nc['loss']:.6g} is the "
                f"constant-mean-image loss {pl['mean_image_loss']:.6g} (difference "
                f"{nc['loss_minus_mean_image_loss']:.2g}); there the network outputs the mean image "
                f"(share {nc['facts']['mean_image_share']:.1e})"
                + (f" (λ_min {nc['lambda_min']:.3g}, λ_max {nc['lambda_max']:.3g})" if nc.get("lambda_min") is not None
                   else "")
                + (f". The classifier's verdict there is inconclusive: {nc.get('reason') or 'undecided'}."
                   if nc["kind"] == "inconclusive" else
                   f", and the point is a {nc['kind'].replace('_', ' ')}"
                   + (f" of index ≥ {nc['index']}" if nc.get("index") else "") + "."))
        band = (nc.get("tolerances") or {}).get("curvature_band")
        if (nc["kind"] in ("minimum", "global_minimum") and nc.get("lambda_min") is not None and nc["lambda_min"] < 0
                and band is not None and band >= -nc["lambda_min"]):
            crit += (f" That verdict is doubtful: λ_min = {nc['lambda_min']:.3g} is negative far outside round-off, "
                     f"but the classifier's curvature band there is {band:.3g} ({band / nc['lambda_max']:.0%} of "
                     "λ_max), so it counted the negative eigenvalues as zero and its probe (radius "
                     f"{nc.get('probe_radius')}) found no descent; read it as a saddle-or-degenerate point, not a "
                     "certified minimum.")
    else:
        crit = (f"Newton-MR from the stall did not converge within {nc['max_iter']} iterations (‖g‖ "
                f"{st['grad_norm']:.3g} → {nc['grad_norm']:.3g}, moved {nc['distance']:.3g}, loss {nc['loss']:.6g} vs the "
                f"mean-image loss {pl['mean_image_loss']:.6g}): the nearest critical point is inconclusive at this "
                "budget.")
    cause = st["cause"] or "neither cancelling nor vanishing by the stated thresholds"
    return (f"The plateau of full-batch GD (lr {pl['lr']:g}) on 1 797 real digits is detected at step {st['step']} "
            f"(loss {st['loss']:.5g}, ‖g‖ {st['grad_norm']:.2g} against {st['start_grad_norm']:.2g} at the start) "
            + (f"and lasts {st['escape_steps']} steps (until the loss is 1 % lower). " if st["escaped"] else
               "and is still unresolved when the run ends (censored). " if st["censored"] else
               f"and is not escaped within the {st['escape_horizon']}-step horizon. ")
            + 
            f"The network there outputs {'nearly ' if f['outputs_mean_image'] else 'not '}the mean image "
            f"(mean ‖f(x) − x̄‖² is {f['mean_image_share']:.2%} of the data's), dead ReLU units (hidden layers "
            f"{'-'.join(map(str, f['widths']))}): {dead}. "
            f"Its small gradient is {cause}: κ = {st['kappa']:.3f} while the mean per-example gradient norm is "
            f"{st['example_grad_scale']:.3g} ({st['example_grad_scale_ratio']:.2f}× its start-of-run value). "
            f"The Hessian at the stall has {'negative eigenvalues' if st['lambda_smallest'][0] < 0 else 'no negative eigenvalue'}"
            f" (λ_min {st['lambda_smallest'][0]:.3g} against λ_max {st['lambda_largest'][-1]:.3g}). {crit}")


def run_part(sub: Path, *, quick: bool, seed: int = 0, workers: int | None = None,
             problem_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analyse the plateau, run the method comparison and write every output into ``sub``.

    Writes ``digits.json``, ``loss_curve.png``, ``spectrum.png``, ``reconstructions.png``,
    ``survival.png``, ``arrays.npz``; the comparison's records ``runs.jsonl`` (+ ``runs.jsonl.gz``,
    the copy ``figures/`` ships) or ``runs_quick.jsonl``; wall times to ``timings.jsonl`` and
    ``runs.timings.jsonl`` (untracked). The comparison continues the records already in ``sub``.

    Args:
        sub: the output folder (created).
        quick: the quick preset (:data:`PRESETS`; GD and rms, 2 seeds).
        seed: the plateau run's seed and the comparison's first seed (seeds ``seed, seed+1, …``).
        workers: the comparison's processes (default: the cores; 1 = in this process).
        problem_options: options of the ``digits_autoencoder`` factory (tests use a smaller net).

    Returns:
        ``problem``, ``plateau`` (:func:`analyse_plateau`), ``comparison``
        (:func:`~analyses.digits_comparison.comparison_summary`), ``seeds``, ``jobs``, ``text`` (the
        comparison in words), ``answer``, ``summary`` (the content of digits.json) and ``figures``
        (the PNG paths).
    """
    sub = Path(sub)
    sub.mkdir(parents=True, exist_ok=True)
    key = "quick" if quick else "default"
    steps, nmr_iter, slq_runs, slq_steps = PRESETS[key]
    problem = get_problem("digits_autoencoder", **(problem_options or {}))
    t0 = time.perf_counter()
    pl = analyse_plateau(problem, seed=seed, steps=steps, nmr_iter=nmr_iter, slq_runs=slq_runs, slq_steps=slq_steps)
    times: dict[str, Any] = {"plateau": time.perf_counter() - t0}
    seeds = [seed + i for i in range(ESCAPE_SEEDS[key])]
    jobs = comparison_jobs(available_methods(key), seeds, min(ESCAPE_STEPS[key], steps), problem_options)
    t0 = time.perf_counter()
    records = run_comparison(jobs, sub / RECORDS_NAME[key], workers=workers or os.cpu_count() or 1)
    times["comparison"] = time.perf_counter() - t0
    if not quick:
        write_gzip_copy(sub / RECORDS_NAME[key])
    cmp = comparison_summary(records)
    figs = [loss_curve_png(pl, records, sub / "loss_curve.png")]
    if pl.get("stall") is not None:
        figs.append(spectrum_png(pl, sub / "spectrum.png"))
    figs.append(reconstructions_png(problem, pl, sub / "reconstructions.png"))
    units = stall_units(records)
    if units:
        figs.append(survival_png(units, "digits_autoencoder", sub / "survival.png"))
    arrays = {k: (v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
              for k, v in pl["_arrays"].items()}
    save_npz(sub / "arrays.npz", **arrays)
    text = methods_text(cmp)
    answer = _answer(pl) + " Methods compared with the escape study's protocol: " + text
    plateau = {k: v for k, v in pl.items() if k != "_arrays"}
    if plateau.get("stall"):  # a cost that moves with round-off, like a timing: untracked
        nc = dict(plateau["stall"]["nearest_critical"])
        times["nearest_critical_n_hvp"] = nc.pop("n_hvp", None)
        plateau["stall"] = dict(plateau["stall"], nearest_critical=nc)
    summary = round_sig({"problem": problem.description, "preset": key,
                         "plateau": plateau,
                         "comparison": {k: v for k, v in cmp.items() if k != "rows"}, "methods": cmp["rows"],
                         "comparison_steps": jobs[0]["max_steps"] if jobs else None,
                         "records": RECORDS_NAME[key] + ("" if quick else ".gz"), "answer": answer}, JSON_DIGITS)
    (sub / "digits.json").write_text(json.dumps(summary, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (sub / "timings.jsonl").write_text(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                                                   for k, v in times.items()}, sort_keys=True) + "\n")
    return {"problem": problem, "plateau": pl, "comparison": cmp, "seeds": seeds, "jobs": jobs, "text": text,
            "answer": answer, "summary": summary, "figures": figs}


def study_section(out_dir: Path, *, quick: bool, seed: int = 0, workers: int | None = None,
                  problem_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``landscape study``'s digits part: :func:`run_part` into ``out_dir/digits/``.

    Args:
        out_dir: the main job's output folder.
        quick: the quick preset.
        seed: the base seed.
        workers: the comparison's processes (default: the cores).
        problem_options: options of the ``digits_autoencoder`` factory.

    Returns:
        The report's section (``title``, ``lead``, ``html``, ``summary``, ``figures``; paths
        relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    part = run_part(out_dir / "digits", quick=quick, seed=seed, workers=workers, problem_options=problem_options)
    problem, pl, cmp, jobs, summary = part["problem"], part["plateau"], part["comparison"], part["jobs"], part["summary"]
    rel = [p.relative_to(out_dir).as_posix() for p in part["figures"]]
    body = (f"<p>{html.escape(problem.description)}. Stall detector: {html.escape(str(digits_problem.DIGITS_STALL))}; "
            f"{pl['steps']} steps for the plateau analysis; escape = a 1 % drop below the stall's loss within "
            "1 000 steps.</p>"
            + "".join(f'<p><img src="{html.escape(r)}" width="800"></p>' for r in rel)
            + f"<h4>Methods, {len(part['seeds'])} seeds each ({jobs[0]['max_steps'] if jobs else 0} steps per run; "
              "the seed draws the network's initialisation)</h4>"
            + "<p>The escape study's protocol (analyses.escape): one stall per run and (kind, cause) cell; "
              "a stall whose run ends inside the 1 000-step horizon is censored, not a failure, and is left out "
              "of the rates; escapes credited to the rule's own accepted phase or to the base method after a "
              "revert; Kaplan–Meier escape times (figure above) with a log-rank test against GD, Holm-adjusted "
              "over the methods of the cell; costs in example-gradient units (a per-example gradient = 1, a "
              "full-batch gradient = n, an HVP = the measured HVP/gradient ratio × n). Kinds are not computed "
              "per run (unclassified); the plateau's nearest critical point is analysed once, above.</p>"
            + methods_table(cmp) + f"<p>{html.escape(part['text'])}</p>"
            + f"<p>Records: digits/{html.escape(summary['records'])}.</p>")
    return {"title": "The seed repository's plateau, on real digits", "lead": f"<p>{html.escape(part['answer'])}</p>",
            "html": body, "summary": summary, "figures": rel}


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape digits``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    p.add_argument("--out", default="figures/digits",
                   help="output folder; the comparison continues the records there (runs.jsonl(.gz))")
    p.add_argument("--quick", action="store_true",
                   help="GD and rms on 2 seeds, a shorter plateau run (~1 min on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the plateau run and first seed of the comparison")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="the comparison's worker processes (default: the number of cores)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape digits``: the study's digits part into ``--out``; print the answer.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code: 0; 1 when the comparison's workers kept dying (one line: how many runs are
        saved; rerunning continues them); 130 when interrupted.
    """
    hb = Heartbeat("digits", quiet=args.quiet)
    try:
        with hb.step("the digits plateau and the method comparison" + (" (quick)" if args.quick else "")):
            part = run_part(Path(args.out), quick=args.quick, seed=args.seed, workers=args.workers)
    except SweepFailed as exc:
        print(f"landscape digits: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    except SweepInterrupted as exc:
        print(f"\nlandscape digits: interrupted; {exc.n_saved} of {exc.n_total} runs are saved in {exc.path}; "
              "run the same command again to continue", file=sys.stderr, flush=True)
        return 130
    finally:
        hb.close()
    print(part["answer"])
    print(f"wrote {Path(args.out) / 'digits.json'} and {len(part['figures'])} figures")
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["digits", *sys.argv[1:]]))
