"""The SynaPrune seed repository's motivating experiment, on real data: a ReLU autoencoder's plateau.

The public repository behind the SynaPrune seed trains a 784-100-28-100-784 ReLU autoencoder (with
biases) on 1 000 MNIST images by full-batch gradient descent at lr 1 under MSE and reports the loss
creeping from 0.0627 to 0.0623 over 100 epochs: "stuck". MNIST cannot be downloaded here, but
scikit-learn ships 1 797 real 8×8 handwritten digits inside its package
(:func:`sklearn.datasets.load_digits`, no network), so the zoo problem ``digits_autoencoder`` is the
same experiment scaled to 64 inputs:

- data: every digit image, pixel values 0..16 scaled to [0, 1], shape (1797, 64);
- model: 64-32-8-32-64, ReLU after every hidden layer, biases, PyTorch's default initialisation
  seeded by ``seed`` (float64);
- loss: ``nn.MSELoss()`` (mean over examples and pixels), full-batch GD at lr 0.1 — the step size at
  which the plateau is long (at lr 1, the seed's, it lasts ~150 steps; at 0.1 ~800; see
  :data:`PLATEAU_LR`).

A user's own data (``mnist.npz`` with ``x_train`` as Keras ships it, or any ``(n, d)`` array in an
``.npz``/``.npy`` file) loads with :func:`load_array_file` and builds the seed repository's shape
(d-100-28-100-d: 784-100-28-100-784 for MNIST) with ``get_problem("digits_autoencoder",
data_file=...)``: the first 1 000 rows, lr 1, as in the seed.

:func:`analyse_plateau` answers what the plateau is (the nearest critical point and its kind, the
cause of the small gradient — cancelling or vanishing per-example gradients —, dead ReLU units,
whether the network outputs the mean image); :func:`study_section` runs it, then the method
comparison, and returns the report section (the section contract of analyses.study).

The method comparison is the escape study's protocol (:mod:`analyses.escape`), not a new one: every
method of :data:`ESCAPE_METHODS` / :data:`OPTIONAL_METHODS` × :data:`ESCAPE_SEEDS` seeds (each seed
a different network initialisation) is one job of :func:`analyses.sweep.run_sweep` through
:func:`analyses.escape.run_one`, so the records have the escape records' format (``censored``,
``escaped`` True/False/None, ``escaped_by`` rule/base, ``escape_steps``, ``cost_example_grads``…),
stream to ``digits/runs.jsonl`` (fsynced, resumable, byte-identical whatever the workers) and are
shipped as ``runs.jsonl.gz``, which the study continues (:func:`run_comparison`). Their statistics are
:func:`analyses.escape.summarize`'s (:func:`comparison_summary`): one stall per (run, kind, cause),
rates over the stalls with a known outcome with Wilson 95 % intervals, Kaplan–Meier escape times,
log-rank against GD with Holm over the methods of the cell, Newcombe differences against GD and
the step-length-matched controls, costs in example-gradient units.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .problems import Problem, _init_reference, _seeded_module, register

#: the digits problem's architecture (inputs, hidden…, outputs)
DIGITS_WIDTHS: tuple[int, ...] = (64, 32, 8, 32, 64)
#: the seed repository's MNIST architecture, hidden part (the input/output width is the data's)
SEED_HIDDEN: tuple[int, ...] = (100, 28, 100)
#: GD step size of the digits problem: the plateau after the first drop lasts ~800 steps (seed 0)
PLATEAU_LR = 0.1
#: the seed repository's step size and number of images (used for a user's own data file)
SEED_LR = 1.0
SEED_N = 1000
#: the digits problem's stall detector (scale-free): loss down by at most 0.2 % over 50 steps with
#: every ‖g‖ in the window ≤ 5 % of the run's own gradient scale (the run starts at ‖g‖ ≈ 0.15 and
#: sits at ≈ 3e-3 on the plateau: 2–3 % of it; the detector's default 1 % would miss the plateau).
#: On the plateau GD's loss still falls 0.1–0.2 % per 50 steps on most initialisations: at 0.1 %
#: the detector fired on 2 of 8 seeds (0, 1), at 0.2 % on 6 of seeds 0, 2–7 (all but 6), measured
#: over 1 200 GD steps — the method comparison needs the plateau of every initialisation that has one
DIGITS_STALL = {"window": 50, "rel_tol": 2e-3, "grad_rel": 0.05}
#: array names tried, in order, when a .npz file is given without a key
NPZ_KEYS: tuple[str, ...] = ("X", "x_train", "x", "data", "images")


# ---------------------------------------------------------------------------- data
def load_digits_data(n: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """scikit-learn's bundled 8×8 digits (no download), pixels /16 → [0, 1]; shape (n, 64).

    ``n``: the first n images (default all 1 797)."""
    from sklearn.datasets import load_digits

    data = load_digits().data  # (1797, 64), integer values 0..16 stored as float
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= data.shape[0]:
            raise ValueError(f"n must be an integer in 2..{data.shape[0]}, got {n!r}")
        data = data[: int(n)]
    return torch.as_tensor(data / 16.0, dtype=dtype)


def _scale_unit(arr: np.ndarray) -> np.ndarray:
    """Values to [0, 1]: unsigned-integer images divide by their type's full scale (uint8: 255);
    other data outside [0, 1] are min–max scaled; data already inside [0, 1] are kept."""
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    out = arr.astype(np.float64)
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    if hi == lo:
        raise ValueError(f"the data are constant ({lo}); nothing to autoencode")
    return (out - lo) / (hi - lo)


def load_array_file(path: str | os.PathLike, key: str | None = None, *, n: int | None = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A user's data matrix from ``.npz`` / ``.npy``, flattened to (n, d) and scaled to [0, 1].

    ``.npz``: the array ``key``, else the first of :data:`NPZ_KEYS` present (Keras's ``mnist.npz``
    holds ``x_train`` (60000, 28, 28) uint8), else the only array. Arrays of shape (n, a, b, …) are
    flattened to (n, a·b·…). Scaling: :func:`_scale_unit` (uint8 pixels /255). ``n``: keep the
    first n rows. Clear one-line errors for a missing file, key or empty / non-numeric /
    non-finite array.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a readable .npz/.npy file: {exc}") from exc
    if isinstance(f, np.lib.npyio.NpzFile):
        with f:
            keys = list(f.keys())
            if key is not None:
                if key not in keys:
                    raise ValueError(f"{path!r} has no array {key!r} (arrays present: {', '.join(keys) or 'none'})")
                chosen = key
            else:
                found = [k for k in NPZ_KEYS if k in keys]
                if found:
                    chosen = found[0]
                elif len(keys) == 1:
                    chosen = keys[0]
                else:
                    raise ValueError(f"{path!r} holds several arrays ({', '.join(keys) or 'none'}) and none is named "
                                     f"{' / '.join(NPZ_KEYS)}; pass key=")
            try:
                arr = f[chosen]
            except ValueError as exc:
                raise ValueError(f"array {chosen!r} in {path!r} cannot be read without pickle: {exc}") from exc
    else:
        if key is not None:
            raise ValueError(f"{path!r} is a single .npy array; key={key!r} applies to .npz files only")
        chosen, arr = "(npy)", f
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or arr.dtype == np.bool_:
        raise ValueError(f"array {chosen!r} in {path!r} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim < 2 or arr.shape[0] < 2 or int(np.prod(arr.shape[1:])) < 2:
        raise ValueError(f"array {chosen!r} in {path!r} must be (n examples, d features…) with n >= 2 and d >= 2, "
                         f"got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        arr = arr[: int(n)]
    if not np.isfinite(arr).all():
        raise ValueError(f"array {chosen!r} in {path!r} has non-finite entries")
    return torch.as_tensor(_scale_unit(arr), dtype=dtype)


# ---------------------------------------------------------------------------- model
def relu_autoencoder(widths: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``nn.Sequential`` of Linear layers with biases and ReLU between them (none after the output);
    widths (d, h_1, …, d). PyTorch's default initialisation drawn from ``seed``.
    Parameter names ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, …"""
    widths = [int(w) for w in widths]
    if len(widths) < 3 or min(widths) < 1:
        raise ValueError(f"widths must list at least input, one hidden and output width (all >= 1), got {widths}")

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    return _seeded_module(build, seed, dtype)


def hidden_activations(model: nn.Sequential, X: torch.Tensor) -> list[torch.Tensor]:
    """Post-ReLU activations of every hidden layer, each (n, width), and the output last."""
    acts = []
    h = X
    with torch.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                acts.append(h)
    return acts + [h]


@register("digits_autoencoder")
def _digits_autoencoder(n: int | None = None, lr: float | None = None, seed: int = 0,
                        data_file: str | None = None, key: str | None = None,
                        widths: Sequence[int] | None = None, steps: int = 3000,
                        stall: dict[str, Any] | None = None) -> Problem:
    """ReLU autoencoder with biases on real handwritten digits, full-batch GD, MSE (module docstring).

    Default: scikit-learn's 1 797 digits, 64-32-8-32-64, lr :data:`PLATEAU_LR`. ``data_file``: a
    user's ``.npz``/``.npy`` (:func:`load_array_file`), first ``n`` (default 1 000) rows, the seed
    repository's shape d-100-28-100-d and lr 1. ``widths`` overrides the architecture (input and
    output widths must equal the data's d). ``steps``: the run length the analyses use. ``stall``:
    the stall detector's options (default :data:`DIGITS_STALL`; the method comparison passes it
    explicitly so that worker processes and the records carry the configuration used)."""
    if data_file is not None:
        X = load_array_file(data_file, key, n=SEED_N if n is None else n)
        source = f"{X.shape[0]} rows of {data_file}" + (f" [{key}]" if key else "")
        default_widths = (int(X.shape[1]), *SEED_HIDDEN, int(X.shape[1]))
        default_lr = SEED_LR
    else:
        X = load_digits_data(n)
        source = f"{X.shape[0]} scikit-learn digits (8×8, pixels/16)"
        default_widths, default_lr = DIGITS_WIDTHS, PLATEAU_LR
    widths = tuple(int(w) for w in (widths if widths is not None else default_widths))
    d = int(X.shape[1])
    if widths[0] != d or widths[-1] != d:
        raise ValueError(f"autoencoder widths {widths} must start and end with the data width d = {d}")
    lr = default_lr if lr is None else float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")

    def make_model(seed: int = 0) -> nn.Module:
        return relu_autoencoder(widths, seed)

    mean_loss = float(((X - X.mean(0)) ** 2).mean())
    return Problem(
        name="digits_autoencoder",
        description=(f"ReLU autoencoder {'-'.join(map(str, widths))} with biases on {source}, MSE, full-batch GD "
                     f"at lr {lr:g}; the constant mean image scores {mean_loss:.4g}; global minimum unknown"),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, X.clone()), reference=_init_reference(make_model),
        global_min=None, dtype=torch.float64, reduction="mean", reference_kind="init",
        # no "max_steps" hint: the problem stays out of the escape benchmark's default problem set
        # (3 000 steps of a 4 744-parameter net per method and seed); its study section runs it
        hints={"lr": lr, "eps": 0.0, "span": 1.0, "normalization": "filter", "steps": int(steps),
               "stall": dict(DIGITS_STALL if stall is None else stall)},
        extra={"widths": widths, "mean_image_loss": mean_loss, "data_file": data_file, "key": key},
    )


# ---------------------------------------------------------------------------- what the plateau is
#: a stall is "cancelling" when the mean per-example gradient norm keeps at least this share of
#: its value at the start of the run while κ is small; "vanishing" when it has fallen below it
CAUSE_SCALE_RATIO = 0.1
KAPPA_CANCEL = 0.1
#: the network "outputs the mean image" when its outputs' mean squared deviation from the mean
#: image is below this share of the data's own (the loss of the constant mean image)
MEAN_IMAGE_SHARE = 0.01
#: (steps of the run, Newton-MR iterations for the nearest critical point, SLQ runs, SLQ steps)
PRESETS: dict[str, tuple[int, int, int, int]] = {"quick": (1200, 3, 2, 20), "default": (3000, 60, 6, 60)}
#: the method comparison (the escape study's protocol, :mod:`analyses.escape`): methods run on the
#: problem, each seed a different initialisation of the network (``make_model(seed)``; the start is
#: the seeded initialisation itself, eps = 0). ncd and sfn are left out: a Lanczos solve or Krylov
#: model every step costs ~100 HVPs a step on this 4 744-parameter net.
ESCAPE_METHODS = {"quick": ("gd", "synaprune-rms"),
                  "default": ("gd", "adam", "pgd", "synaprune-rms", "synaprune-devarg", "synaprune-noise",
                              "synaprune-penalty", "synaprune-hebbian")}
#: the step-length-matched controls (GD whose first escape step has rms's / devarg's length, then GD)
#: (the quick preset is a smoke run of the plumbing: GD and rms only)
OPTIONAL_METHODS = {"quick": (), "default": ("gd-matched", "gd-matched-devarg")}
#: seeds per method. Default 16: a Wilson 95 % half-width ≤ 0.22 at any rate (0.097 at 16/16 or 0/16).
#: Measured single-threaded, CPU seconds of one 1 500-step run (seed 3, one stall): gd 10, adam 6.7,
#: pgd 7.4, rms 9.6, devarg 35 (three reverted 50-step phases of per-example gradients), noise 5.4,
#: penalty 6.6, hebbian 20, gd-matched 6.8 — ~115 CPU-s a seed with one stall; a run with two
#: stalls (seed 0 at 2 000 steps: devarg 212 s wall, nine reverted phases) costs up to ~2× that.
#: The 160 default runs thus take ~15–30 min on 2 quiet cores from scratch (wall time on a shared
#: machine was 2–5× the CPU time), so the study ships their records (``digits/runs.jsonl.gz``) and
#: continues them.
ESCAPE_SEEDS = {"quick": 2, "default": 16}
#: steps per comparison run: GD's plateau is detected at steps 360–470 (seeds 0, 2–5, 7) and the
#: escape horizon is 1 000 steps, so a stall before step ESCAPE_STEPS − 1 000 has a known outcome;
#: a later one whose run ends first is censored (never counted as a failure). The unit is the run's
#: first stall of a (kind, cause) cell, so later stalls add cost, not data.
ESCAPE_STEPS = {"quick": 1200, "default": 1500}
#: trainer options of every comparison run: no per-stall classification (the nearest critical
#: point of one stall costs a Newton-MR solve on this net; the plateau analysis classifies it once)
RUN_OPTIONS: dict[str, Any] = {"classify": False}
#: the comparison's record file per preset, under ``digits/`` (the default one is shipped gzipped)
RECORDS_NAME = {"quick": "runs_quick.jsonl", "default": "runs.jsonl"}


def available_methods(preset: str) -> tuple[str, ...]:
    """:data:`ESCAPE_METHODS` plus the :data:`OPTIONAL_METHODS` this trainer provides (labels of
    :data:`analyses.escape.VARIANTS`)."""
    from .escape import available_variants

    avail = set(available_variants())
    return tuple(m for m in ESCAPE_METHODS[preset] + OPTIONAL_METHODS[preset] if m in avail)


def _sig(x: Any, digits: int = 8) -> Any:
    if isinstance(x, float):
        return x if (x == 0 or not math.isfinite(x)) else float(f"{x:.{digits - 1}e}")
    if isinstance(x, dict):
        return {k: _sig(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_sig(v, digits) for v in x]
    return x


def network_facts(problem: Problem, theta: torch.Tensor) -> dict[str, Any]:
    """Dead ReLU units per hidden layer (zero on every example), and how close the output is to
    the constant mean image: ``mean_image_share`` = mean ‖f(x_i) − x̄‖² / mean ‖x_i − x̄‖²
    (0: outputs the mean image), ``output_variance_share`` = Σ_j var_i f_j(x_i) / Σ_j var_i x_ij."""
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


def stall_cause(kappa: float, scale: float, ref_scale: float) -> dict[str, Any]:
    """Cancelling vs vanishing (THEORY.md §5): κ small with mean‖g_i‖ still ≥ CAUSE_SCALE_RATIO of
    its start-of-run value → cancelling; mean‖g_i‖ fallen below that → vanishing."""
    ratio = scale / ref_scale if ref_scale > 0 else math.nan
    if ratio < CAUSE_SCALE_RATIO:
        cause = "vanishing"
    elif kappa <= KAPPA_CANCEL:
        cause = "cancelling"
    else:
        cause = None
    return {"cause": cause, "kappa": kappa, "example_grad_scale": scale, "example_grad_scale_ratio": ratio,
            "cause_thresholds": {"scale_ratio": CAUSE_SCALE_RATIO, "kappa": KAPPA_CANCEL}}


def _stall_detector():
    from synaprune import StallDetector

    return StallDetector(**DIGITS_STALL)


def analyse_plateau(problem: Problem, *, seed: int = 0, steps: int = 3000, nmr_iter: int = 60, slq_runs: int = 6,
                    slq_steps: int = 60) -> dict[str, Any]:
    """Train plain GD (the problem's lr) from the seeded default initialisation for ``steps`` steps
    with :data:`DIGITS_STALL`; at the first stall report the loss, ‖g‖, cancellation (κ, mean‖g_i‖
    and its ratio to the start of the run → cause), extreme Hessian eigenvalues and SLQ density,
    network facts (:func:`network_facts`), and the nearest critical point
    (:func:`landscape.nearest_critical`, Newton-MR, at most ``nmr_iter`` iterations) with its own
    network facts. Returns a dict; tensors under ``"_arrays"`` (θ at start, stall, critical point,
    end; the curves; the spectral density)."""
    import landscape as ls
    from landscape.critical import nearest_critical

    tr = problem.trainer("gd", seed, stall=_stall_detector(), classify=False)
    theta0 = problem.init(seed, 0.0)
    res = tr.fit(int(steps), theta0=theta0)
    obj = tr.obj
    losses = np.asarray(res.losses, dtype=np.float64)
    out: dict[str, Any] = {"seed": seed, "steps": int(res.n_steps), "lr": tr.lr, "stall_detector": dict(DIGITS_STALL),
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
    ref = ls.cancellation_stats(obj, theta0)
    canc = ev.cancellation
    st: dict[str, Any] = {"step": ev.step, "loss": ev.loss, "grad_norm": ev.grad_norm,
                          "escaped": ev.escaped, "escape_steps": ev.escape_steps,
                          "escape_target": ev.escape_target, "escape_horizon": ev.escape_horizon,
                          "censored": (not ev.escaped) and ev.step + (ev.escape_horizon or 0) > res.n_steps,
                          "start_grad_norm": float(res.grad_norms[0]),
                          "start_example_grad_scale": ref.mean_example_grad_norm}
    st.update(stall_cause(canc.kappa, canc.mean_example_grad_norm, ref.mean_example_grad_norm))
    st["facts"] = network_facts(problem, ev.theta)
    eig = ls.extreme_eigs(obj, ev.theta, k=5, which="both", seed=seed)
    st["lambda_smallest"] = [float(v) for v in eig.values[:5]]
    st["lambda_largest"] = [float(v) for v in eig.values[-5:]]
    st["eigs_converged"] = bool(all(eig.converged))
    dens = ls.spectral_density(obj, ev.theta, n_runs=slq_runs, n_steps=slq_steps, seed=seed)
    arrays.update(theta_stall=ev.theta, density_grid=np.asarray(dens.grid), density=np.asarray(dens.density))
    nc = nearest_critical(obj, ev.theta, seed=seed, max_iter=nmr_iter)
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


# ---------------------------------------------------------------------------- escape protocol
def comparison_jobs(methods: Sequence[str], seeds: Sequence[int], steps: int,
                    problem_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The sweep's jobs (:func:`analyses.escape.run_one`): method-major, then seed. Each carries the
    problem options (with the stall detector :data:`DIGITS_STALL` in force now) and
    :data:`RUN_OPTIONS`, so that a record says how it was made and worker processes need no state."""
    popts = {**(problem_options or {}), "stall": dict(DIGITS_STALL)}
    return [{"problem": "digits_autoencoder", "method": m, "seed": int(s), "max_steps": int(steps),
             "options": dict(RUN_OPTIONS), "problem_options": popts} for m in methods for s in seeds]


def _same_config(record: dict[str, Any], job: dict[str, Any]) -> bool:
    """Was ``record`` made by ``job``'s configuration (steps, the variant's options with the job's,
    problem options)? A record of a failed run never is (it is rerun)."""
    from .escape import VARIANTS, _clean

    opts = {**VARIANTS.get(job["method"], ("", {}))[1], **(job.get("options") or {})}
    return (record.get("status") != "error" and record.get("max_steps") == job["max_steps"]
            and record.get("options") == _clean(opts)
            and record.get("problem_options") == _clean(job["problem_options"]))


def run_comparison(jobs: Sequence[dict[str, Any]], path: Path, *, workers: int | None = 1,
                   log: Any = None) -> list[dict[str, Any]]:
    """Run ``jobs`` through :func:`analyses.sweep.run_sweep` into ``path`` (JSON lines, streamed,
    fsynced; byte-identical whatever ``workers``), continuing the records already there: when only
    ``path``.gz exists it is unpacked first (the shipped records), and a stored run whose
    configuration (steps, trainer options, problem options with the stall detector) differs from
    its job's is dropped and rerun. Returns the records of ``jobs`` in job order."""
    import gzip
    import sys

    from .escape import KEY_FIELDS, run_one
    from .sweep import dumps, job_key, read_records, run_sweep

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and gz.exists():
        path.write_bytes(gzip.decompress(gz.read_bytes()))
        say(f"digits: continuing the records in {gz} (delete it to rerun every run)")
    by_key = {job_key(j, KEY_FIELDS): j for j in jobs}
    kept, dropped = [], 0
    for r in read_records(path):
        j = by_key.get(tuple(r.get(f) for f in KEY_FIELDS))
        if j is not None and not _same_config(r, j):
            dropped += 1
            continue
        kept.append(r)
    if dropped:
        say(f"digits: {dropped} stored run(s) in {path} were made with another configuration; rerunning them")
    path.write_text("".join(dumps(r) + "\n" for r in kept), encoding="utf-8")
    records = run_sweep(jobs, run_one, path, key_fields=KEY_FIELDS, workers=workers, resume=True, desc="digits",
                        progress=False, log=lambda msg: None)
    wanted = set(by_key)
    return [r for r in records if tuple(r.get(f) for f in KEY_FIELDS) in wanted]


def main_cell(rows: Sequence[Any]) -> tuple[str, str] | None:
    """The (kind, cause) cell of the plateau: the cell holding the most first stalls of GD runs
    (ties: the larger cell overall, then by name); None when GD never stalled."""
    from .escape import BASELINE, NO_STALL

    cells: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        if r.kind == NO_STALL:
            continue
        g, n = cells.get((r.kind, r.cause), (0, 0))
        cells[(r.kind, r.cause)] = (g + (r.n_stalls if r.method == BASELINE else 0), n + r.n_stalls)
    gd_cells = {c: v for c, v in cells.items() if v[0] > 0}
    if not gd_cells:
        return None
    return max(gd_cells, key=lambda c: (gd_cells[c], c))


def comparison_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The escape study's statistics on the digits runs (:func:`analyses.escape.summarize`: one
    stall per (run, kind, cause), censored stalls excluded from rates, Wilson 95 %, Kaplan–Meier,
    log-rank vs GD with Holm over the methods of a cell, Newcombe differences vs GD and the
    step-matched control, costs in example-gradient units). ``rows`` every cell's rows (dicts),
    ``cell`` the plateau's (kind, cause), ``main`` its rows with the verdict against GD, the cost
    relative to GD's and the rate's half-width, ``quiet`` the methods whose runs never stalled,
    ``failed`` the runs that raised."""
    from .escape import BASELINE, NO_STALL, summarize
    from .escape_report import verdict

    rows = summarize(records)
    cell = main_cell(rows)
    main = [r for r in rows if cell is not None and (r.kind, r.cause) == cell]
    gd = next((r for r in main if r.method == BASELINE), None)
    out_main = []
    for r in main:
        d = r.to_dict()
        d["half_width"] = None if r.ci_low is None else (r.ci_high - r.ci_low) / 2
        d["cost_vs_gd"] = (None if gd is None or not gd.median_cost_example_grads or r.median_cost_example_grads is None
                           else r.median_cost_example_grads / gd.median_cost_example_grads)
        d["verdict"] = "reference" if r is gd else verdict(r, gd)
        out_main.append(d)
    return {"rows": [r.to_dict() for r in rows], "cell": list(cell) if cell else None, "main": out_main,
            "quiet": [{"method": r.method, "runs": r.n_runs, "median_run_cost": r.median_run_cost}
                      for r in rows if r.kind == NO_STALL],
            "failed": [f"{r['method']}/{r['seed']}: {r.get('error')}" for r in records if r.get("status") == "error"],
            "stopped": [f"{r['method']}/{r['seed']}: {r.get('train_status')} at step {r.get('n_steps')}"
                        for r in records if r.get("status") != "error"
                        and r.get("train_status") not in (None, "completed")],
            "n_runs": len(records), "seeds": sorted({r["seed"] for r in records}),
            "max_half_width": max((d["half_width"] for d in out_main if d["half_width"] is not None), default=None)}


def _fmt(x: Any, digits: int = 3) -> str:
    from .escape_report import sig

    return sig(x, digits)


def _methods_text(cmp: dict[str, Any]) -> str:
    """What the comparison says, per method of the plateau's cell: escapes / known outcomes with
    the Wilson interval, the Kaplan–Meier median, the log-rank test against GD (Holm), the cost
    relative to GD — and the verdict; no ranking on point estimates."""
    if cmp["cell"] is None:
        return "GD never stalled in these runs: there is no plateau to compare escapes at."
    kind, cause = cmp["cell"]
    seeds = cmp["seeds"]
    parts = []
    for d in cmp["main"]:
        rate = ("outcome unknown (all censored)" if d["escape_rate"] is None else
                f"{d['n_escaped']}/{d['n_known']} [{_fmt(d['ci_low'], 2)}, {_fmt(d['ci_high'], 2)}]")
        med = "KM median –" if d["median_escape_steps"] is None else f"KM median {_fmt(d['median_escape_steps'])} steps"
        by = f", {d['n_by_rule']} by the rule's own phase" if d["method"].startswith("synaprune") else ""
        test = ("" if d["logrank_p_vs_gd"] is None else
                f", log-rank vs GD p {_fmt(d['logrank_p_vs_gd'], 2)} (Holm {_fmt(d['holm_p_vs_gd'], 2)})")
        cost = "" if d["cost_vs_gd"] is None or d["method"] == "gd" else f", cost ×{_fmt(d['cost_vs_gd'], 2)} GD's"
        cens = f", {d['n_censored']} censored" if d["n_censored"] else ""
        parts.append(f"{d['method']}: {rate}{by}{cens}, {med}{test}{cost} — {d['verdict']}")
    quiet = "".join(f"; {q['method']}: {q['runs']} of {len(seeds)} runs without any stall" for q in cmp["quiet"])
    hw = cmp["max_half_width"]
    return (f"{len(seeds)} seeds (network initialisations {seeds[0]}–{seeds[-1]}) per method; plateau cell "
            f"{kind.replace('_', ' ')} · {cause}, one stall per run, escaped / known outcome [Wilson 95 %]: "
            + "; ".join(parts) + quiet + "."
            + (f" Widest rate half-width {_fmt(hw, 2)}." if hw is not None else "")
            + (f" Failed runs: {'; '.join(cmp['failed'])}." if cmp["failed"] else "")
            + (f" Runs stopped early: {'; '.join(cmp['stopped'])}." if cmp.get("stopped") else ""))


def _methods_table(cmp: dict[str, Any]) -> str:
    """Every cell's rows (:data:`analyses.escape_report.TABLE_COLUMNS`: Wilson, KM, Newcombe,
    log-rank with Holm, costs), then the runs that never stalled."""
    from .escape import SummaryRow
    from .escape_report import summary_html

    rows = [SummaryRow(**r) for r in cmp["rows"]]
    return summary_html(rows)


# ---------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve_png(plateau: dict[str, Any], records: list[dict[str, Any]], path: Path) -> Path:
    """GD's loss and gradient norm with the stall (and its escape) marked; the other methods' curves
    are not kept, their first stalls are marked on GD's axis."""
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
    """SLQ density at the stall on a symmetric-log axis, extreme Lanczos eigenvalues marked."""
    from landscape.render import symlog

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
    the nearest critical point, and at the end of the run (after)."""
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


def study_section(out_dir: Path, *, quick: bool, seed: int = 0, workers: int | None = None,
                  problem_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The main report's section (the section contract of analyses.study). Writes ``out_dir/digits/``
    (``digits.json``, ``loss_curve.png``, ``spectrum.png``, ``reconstructions.png``,
    ``survival.png``, ``arrays.npz``; the comparison's records ``runs.jsonl`` (+ ``runs.jsonl.gz``,
    the copy ``figures/`` ships) or ``runs_quick.jsonl``; wall times to ``timings.jsonl`` and
    ``runs.timings.jsonl``, untracked); paths returned are relative to ``out_dir``.
    The method comparison runs :data:`ESCAPE_SEEDS` seeds ``seed, seed+1, …`` per method
    (:func:`run_comparison`, continuing stored records) on ``workers`` processes (default: the
    cores; 1 = in this process). ``problem_options`` go to the problem's factory (tests use a
    smaller net)."""
    import html
    import json
    import time

    from .escape import write_gzip_copy
    from .escape_report import survival_png

    out_dir = Path(out_dir)
    sub = out_dir / "digits"
    sub.mkdir(parents=True, exist_ok=True)
    key = "quick" if quick else "default"
    steps, nmr_iter, slq_runs, slq_steps = PRESETS[key]
    problem = _digits_autoencoder(**(problem_options or {}))
    t0 = time.perf_counter()
    pl = analyse_plateau(problem, seed=seed, steps=steps, nmr_iter=nmr_iter, slq_runs=slq_runs, slq_steps=slq_steps)
    times = {"plateau": time.perf_counter() - t0}
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
    from .escape import stall_units

    units = stall_units(records)
    if units:
        figs.append(survival_png(units, "digits_autoencoder", sub / "survival.png"))
    arrays = {k: (v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
              for k, v in pl["_arrays"].items()}
    from .critical_points import save_npz

    save_npz(sub / "arrays.npz", **arrays)
    text = _methods_text(cmp)
    answer = _answer(pl) + " Methods compared with the escape study's protocol: " + text
    summary = _sig({"problem": problem.description, "preset": key, "plateau": {k: v for k, v in pl.items()
                                                                             if k != "_arrays"},
                    "comparison": {k: v for k, v in cmp.items() if k != "rows"}, "methods": cmp["rows"],
                    "comparison_steps": jobs[0]["max_steps"] if jobs else None,
                    "records": RECORDS_NAME[key] + ("" if quick else ".gz"), "answer": answer})
    (sub / "digits.json").write_text(json.dumps(summary, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (sub / "timings.jsonl").write_text(json.dumps({k: round(v, 2) for k, v in times.items()}, sort_keys=True) + "\n")
    rel = [p.relative_to(out_dir).as_posix() for p in figs]
    body = (f"<p>{html.escape(problem.description)}. Stall detector: {html.escape(str(DIGITS_STALL))}; "
            f"{pl['steps']} steps for the plateau analysis; escape = a 1 % drop below the stall's loss within "
            "1 000 steps.</p>"
            + "".join(f'<p><img src="{html.escape(r)}" width="800"></p>' for r in rel)
            + f"<h4>Methods, {len(seeds)} seeds each ({jobs[0]['max_steps'] if jobs else 0} steps per run; the seed "
              "draws the network's initialisation)</h4>"
            + "<p>The escape study's protocol (analyses.escape): one stall per run and (kind, cause) cell; "
              "a stall whose run ends inside the 1 000-step horizon is censored, not a failure, and is left out "
              "of the rates; escapes credited to the rule's own accepted phase or to the base method after a "
              "revert; Kaplan–Meier escape times (figure above) with a log-rank test against GD, Holm-adjusted "
              "over the methods of the cell; costs in example-gradient units (a per-example gradient = 1, a "
              "full-batch gradient = n, an HVP = the measured HVP/gradient ratio × n). Kinds are not computed "
              "per run (unclassified); the plateau's nearest critical point is analysed once, above.</p>"
            + _methods_table(cmp) + f"<p>{html.escape(text)}</p>"
            + f"<p>Records: digits/{html.escape(summary['records'])}.</p>")
    return {"title": "The seed repository's plateau, on real digits", "lead": f"<p>{html.escape(answer)}</p>",
            "html": body, "summary": summary, "figures": rel}
