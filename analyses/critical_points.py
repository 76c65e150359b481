"""Frye et al. (2021) on a linear autoencoder: do numerically "found" critical points pass a cut-off?

``landscape critical-points [--quick] [--out DIR]`` (default ``figures/critical-points``).

Setting (Frye, Simon, Wadia, Ligeralde, DeWeese & Bouchard, Neural Computation 33, 2021): a linear
autoencoder x ↦ W₂W₁x with 16 inputs and 4 hidden units, no biases, on synthetic data whose
(uncentred) second-moment matrix XᵀX has the chosen spectrum λ_i = 0.79^i (i = 0…15: the ratio in
0.6…0.95 that best separates the critical values; every pair of the 2 517 values differs by more
than 2.7e-6 relatively, so a relative loss tolerance of 1e-6 identifies the class). Loss
L(W) = ½‖X(W₂W₁)ᵀ − X‖²_F = ½ tr((P − I) XᵀX (P − I)ᵀ) with P = W₂W₁ (the deep-linear convention of
THEORY.md §2, a sum over examples).

Analytic critical points (Baldi & Hornik 1989; :class:`landscape.DeepLinearProblem`): for every
index set S of at most 4 eigenvectors (Σ_{k≤4} C(16, k) = 2 517 classes) the loss is
½(tr XᵀX − Σ_{i∈S} λ_i) and the Hessian index is ``DeepLinearProblem.predicted(S)``.

Protocol: :func:`landscape.find_critical_point` with ``method="newton-mr"`` and, for contrast,
``"gradient-norm"`` from seeded starts — random initialisations (N(0, σ²/fan_in), σ cycling through
:data:`INIT_SCALES`) and points along gradient-descent trajectories (small random start, snapshots
at :data:`TRAJECTORY_STEPS`). Each search runs to ‖g‖ ≤ :data:`SEARCH_GRAD_TOL` or its iteration
budget; its end point is a *candidate*. For each cut-off c in {1e-10, 1e-8, 1e-6, none} the
candidates with ‖g‖² < c are counted, and those that match an analytic critical point

- in loss: |L − L_S| ≤ 1e-6·|L_S| for the nearest analytic value L_S, and
- in index: additionally the number of Hessian eigenvalues below −1e-5 (Frye's absolute
  threshold; the *index fraction* is that number over dim = 128) equals S's analytic index.
  A scale-relative variant counts eigenvalues below −1e-5·max|λ(H)| instead.

Outputs: ``critical_points.json`` (``cutoffs``: list of {cutoff, n_candidates, n_match_loss,
n_match_index, n_match_index_rel, by_method}; the spectrum, the starts, per-candidate records),
``candidates.npz`` (the arrays), ``loss_vs_index.png`` (loss against index fraction per cut-off,
analytic points overlaid); ``timings.jsonl`` (wall times; untracked). Everything but the timings
is deterministic for a given ``--seed``.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import DeepLinearProblem, Objective
from landscape.critical import find_critical_point
from landscape.results import JsonResult, round_sig

from .outputs import save_npz

D_IN = 16
HIDDEN = 4
N_EXAMPLES = 32
SPECTRUM_RATIO = 0.79
CUTOFFS: tuple[float | None, ...] = (1e-10, 1e-8, 1e-6, None)
#: Frye et al.'s index threshold: eigenvalues below −1e-5 count as negative
NEG_EIG_ABS = 1e-5
#: the scale-relative variant: below −NEG_EIG_REL·max|λ(H)|
NEG_EIG_REL = 1e-5
LOSS_RTOL = 1e-6
#: round-off floors of the stored records: ‖g‖² below 1e-24 and relative loss differences below
#: 1e-12 are round-off (their digits change between runs) and are stored as 0
GRAD_SQ_FLOOR = 1e-24
RDIFF_FLOOR = 1e-12
#: searches run past every cut-off, to ‖g‖ ≤ this (or their iteration budget)
SEARCH_GRAD_TOL = 1e-13
METHODS = ("newton-mr", "gradient-norm")
INIT_SCALES = (0.1, 0.3, 1.0)
TRAJECTORY_STEPS = (0, 5, 10, 15, 20, 30, 50, 100)
TRAJECTORY_LR = 0.5
TRAJECTORY_INIT = 1e-3
#: trajectory j starts at scale TRAJECTORY_INITS[j % 3] (small: saddle-to-saddle; larger: other routes)
TRAJECTORY_INITS = (TRAJECTORY_INIT, 0.3, 1.0)
DEFAULT_OUT = Path("figures") / "critical-points"
#: significant digits of the floats in critical_points.json and the section's summary (no noise digits)
JSON_DIGITS = 10
#: (random starts, GD trajectories, Newton-MR iterations, gradient-norm iterations, trajectory snapshot steps)
PRESETS: dict[str, tuple[int, int, int, int, tuple[int, ...]]] = {
    "quick": (3, 1, 30, 200, (10, 20, 30, 50)),
    "default": (18, 3, 60, 1000, TRAJECTORY_STEPS)}


# ---------------------------------------------------------------------------- the problem
def spectrum(d: int = D_IN, ratio: float = SPECTRUM_RATIO) -> torch.Tensor:
    """The chosen eigenvalues of XᵀX, descending: ratio^i, i = 0…d−1; shape (d,), float64.

    Args:
        d: the dimension.
        ratio: the geometric ratio of the spectrum.

    Returns:
        The eigenvalues (d,).

    >>> spectrum(3, 0.5).tolist()
    [1.0, 0.5, 0.25]
    """
    return ratio ** torch.arange(d, dtype=torch.float64)


def make_data(lam: torch.Tensor, m: int = N_EXAMPLES, seed: int = 0) -> torch.Tensor:
    """Data X (m, d) with XᵀX = Q diag(lam) Qᵀ exactly (Q a seeded random rotation):
    X = A diag(√lam) Qᵀ with A (m, d) orthonormal columns.

    Args:
        lam: the eigenvalues of XᵀX (d,).
        m: examples (≥ d).
        seed: the rotations' seed.

    Returns:
        X (m, d), float64.
    """
    d = int(lam.numel())
    if m < d:
        raise ValueError(f"need m >= d examples for a full-rank XᵀX, got m = {m} < d = {d}")
    g = torch.Generator().manual_seed(int(seed))
    A = torch.linalg.qr(torch.randn(m, d, generator=g, dtype=torch.float64)).Q
    Q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    return A @ torch.diag(lam.sqrt()) @ Q.T


def autoencoder_objective(X: torch.Tensor, hidden: int = HIDDEN) -> Objective:
    """½‖X(W₂W₁)ᵀ − X‖²_F as ``Objective.from_function`` through the d×d moment matrix C = XᵀX:
    ½ tr((P − I) C (P − I)ᵀ). Flat layout as :class:`DeepLinearProblem` (W₁ (h, d) row-major, then
    W₂ (d, h)); dim = 2·d·h.

    Args:
        X: the data (m, d).
        hidden: the bottleneck width h.

    Returns:
        The objective (float64, loss summed over examples).
    """
    d = int(X.shape[1])
    C = (X.T @ X).to(torch.float64)
    C = 0.5 * (C + C.T)
    eye = torch.eye(d, dtype=torch.float64)

    def f(theta: torch.Tensor) -> torch.Tensor:
        W1 = theta[: hidden * d].reshape(hidden, d)
        W2 = theta[hidden * d:].reshape(d, hidden)
        R = W2 @ W1 - eye
        return 0.5 * torch.sum((R @ C) * R)

    return Objective.from_function(f, torch.zeros(2 * d * hidden, dtype=torch.float64))


@dataclass
class AnalyticTable:
    """Every Baldi–Hornik class: index sets ``S``, losses (n,), analytic indices (n,)."""

    S: list[tuple[int, ...]]
    loss: np.ndarray
    index: np.ndarray
    dim: int

    def match(self, loss: float) -> tuple[int, float]:
        """Position of the nearest analytic loss and the relative difference |L − L_S|/|L_S|.

        Args:
            loss: a candidate's loss.

        Returns:
            ``(j, |L − L_j| / |L_j|)`` for the nearest analytic critical value L_j.
        """
        j = int(np.argmin(np.abs(self.loss - loss)))
        return j, abs(loss - float(self.loss[j])) / max(abs(float(self.loss[j])), 1e-300)


def analytic_table(dl: DeepLinearProblem) -> AnalyticTable:
    """All index sets of at most p = min(hidden) eigenvectors, their critical values and the
    predicted Hessian index (H = 1: swaps + (p − s)(d_y − s)).

    Args:
        dl: the linear autoencoder as a deep linear problem (Y = X, one hidden layer).

    Returns:
        :class:`AnalyticTable` (index sets, losses, indices).
    """
    sets = dl.index_sets()
    loss = np.array([dl.critical_value(S) for S in sets])
    index = np.array([dl.predicted(S)[1] for S in sets], dtype=np.int64)
    return AnalyticTable(S=sets, loss=loss, index=index, dim=dl.dim)


# ---------------------------------------------------------------------------- starts
def random_start(dims: tuple[int, int], hidden: int, scale: float, seed: int) -> torch.Tensor:
    """W₁ ~ N(0, scale²/d), W₂ ~ N(0, scale²/h) flattened; seeded.

    Args:
        dims: (d_in, d_out).
        hidden: the bottleneck width h.
        scale: the weights' scale.
        seed: the generator's seed.

    Returns:
        θ (2·d·h,), float64.
    """
    d, _ = dims
    g = torch.Generator().manual_seed(int(seed))
    w1 = torch.randn(hidden * d, generator=g, dtype=torch.float64) * (scale / math.sqrt(d))
    w2 = torch.randn(d * hidden, generator=g, dtype=torch.float64) * (scale / math.sqrt(hidden))
    return torch.cat([w1, w2])


def trajectory_starts(obj: Objective, hidden: int, d: int, seed: int, steps: tuple[int, ...] = TRAJECTORY_STEPS,
                      lr: float = TRAJECTORY_LR, init: float = TRAJECTORY_INIT) -> list[tuple[int, torch.Tensor]]:
    """Points along full-batch GD (step ``lr``) from a random start of scale ``init``, at ``steps``.

    Args:
        obj: the objective.
        hidden: the bottleneck width h.
        d: the dimension.
        seed: the start's seed.
        steps: the GD steps at which points are taken.
        lr: the GD step size.
        init: the start's scale.

    Returns:
        ``[(step, θ)]``, one per entry of ``steps`` reached.
    """
    theta = random_start((d, d), hidden, init, seed)
    out = []
    for t in range(max(steps) + 1):
        if t in steps:
            out.append((t, theta.clone()))
        theta = theta - lr * obj.grad(theta)
    return out


# ---------------------------------------------------------------------------- candidates
@dataclass
class Candidate(JsonResult):
    """One search's end point. ``grad_sq`` = ‖g‖² (0 below :data:`GRAD_SQ_FLOOR`); ``n_neg_abs`` / ``n_neg_rel``: Hessian
    eigenvalues below −1e-5 / −1e-5·max|λ|; ``nearest``: the nearest analytic class, ``loss_rdiff``
    its relative loss difference, ``analytic_index`` its index."""

    start: str
    method: str
    loss: float
    grad_sq: float
    converged: bool
    gradient_flat: bool
    n_iter: int
    n_hvp: int
    n_neg_abs: int
    n_neg_rel: int
    index_frac: float
    lambda_min: float
    lambda_max: float
    nearest: list[int]
    loss_rdiff: float
    analytic_index: int
    match_loss: bool
    match_index: bool
    match_index_rel: bool


def assess(obj: Objective, table: AnalyticTable, theta: torch.Tensor, loss: float, grad_sq: float) -> dict[str, Any]:
    """Index (dense Hessian, both thresholds) and analytic match of a point.

    Args:
        obj: the objective.
        table: the analytic critical points.
        theta: the point (dim,).
        loss: its loss.
        grad_sq: its ‖g‖².

    Returns:
        Negative-eigenvalue counts (absolute :data:`NEG_EIG_ABS` and scale-relative
        :data:`NEG_EIG_REL` thresholds), λ_min, λ_max, the nearest analytic point, its relative loss
        difference and index, and whether loss / loss + index match.
    """
    ev = torch.linalg.eigvalsh(obj.hessian(theta))
    scale = float(ev.abs().max())
    n_abs = int((ev < -NEG_EIG_ABS).sum())
    n_rel = int((ev < -NEG_EIG_REL * scale).sum())
    j, rdiff = table.match(loss)
    ml = rdiff <= LOSS_RTOL
    return {"n_neg_abs": n_abs, "n_neg_rel": n_rel, "index_frac": n_abs / table.dim,
            "lambda_min": float(ev[0]), "lambda_max": float(ev[-1]), "nearest": list(table.S[j]),
            "loss_rdiff": rdiff, "analytic_index": int(table.index[j]), "match_loss": ml,
            "match_index": ml and n_abs == int(table.index[j]), "match_index_rel": ml and n_rel == int(table.index[j])}


def run_search(obj: Objective, table: AnalyticTable, theta: torch.Tensor, method: str, start: str, *,
               max_iter: int, seed: int) -> Candidate:
    """One critical-point search (:func:`landscape.find_critical_point`) from ``theta``, assessed.

    Args:
        obj: the objective.
        table: the analytic critical points.
        theta: the start (dim,).
        method: ``"newton-mr"`` or ``"gradient-norm"``.
        start: the start's label.
        max_iter: iterations at most.
        seed: the search's seed.

    Returns:
        :class:`Candidate` (‖g‖² below :data:`GRAD_SQ_FLOOR` and loss differences below
        :data:`RDIFF_FLOOR` recorded as 0).
    """
    cs = find_critical_point(obj, theta, method=method, grad_tol=SEARCH_GRAD_TOL, max_iter=max_iter, seed=seed)
    gsq = cs.grad_norm ** 2
    a = assess(obj, table, cs.theta, cs.loss, gsq)
    if a["loss_rdiff"] < RDIFF_FLOOR:
        a["loss_rdiff"] = 0.0
    return Candidate(start=start, method=method, loss=cs.loss, grad_sq=gsq if gsq >= GRAD_SQ_FLOOR else 0.0,
                     converged=cs.converged,
                     gradient_flat=cs.gradient_flat, n_iter=cs.n_iter, n_hvp=cs.n_hvp, **a)


def cutoff_table(cands: list[Candidate], cutoffs: tuple[float | None, ...] = CUTOFFS) -> list[dict[str, Any]]:
    """Per cut-off: candidates accepted (‖g‖² < cutoff; None accepts all) and their matches, in
    total and by method.

    Args:
        cands: the candidates.
        cutoffs: ‖g‖² cut-offs (None: accept all).

    Returns:
        One row per cut-off: counts in total and ``by_method``.
    """
    rows = []
    for c in cutoffs:
        acc = [x for x in cands if c is None or x.grad_sq < c]

        def counts(xs: list[Candidate]) -> dict[str, int]:
            return {"n_candidates": len(xs), "n_match_loss": sum(x.match_loss for x in xs),
                    "n_match_index": sum(x.match_index for x in xs),
                    "n_match_index_rel": sum(x.match_index_rel for x in xs),
                    "n_classes": len({tuple(x.nearest) for x in xs if x.match_index})}

        rows.append({"cutoff": c, **counts(acc),
                     "by_method": {m: counts([x for x in acc if x.method == m]) for m in METHODS}})
    return rows


# ---------------------------------------------------------------------------- driver
@dataclass
class CriticalPointsResult(JsonResult):
    quick: bool
    seed: int
    setting: dict[str, Any]
    analytic: dict[str, Any]
    cutoffs: list[dict[str, Any]]
    findings: list[str]
    candidates: list[dict[str, Any]] = field(default_factory=list)


def run_experiment(*, quick: bool = False, seed: int = 0, d: int = D_IN, hidden: int = HIDDEN,
                   presets: tuple[int, int, int, int, tuple[int, ...]] | None = None, progress: bool = False
                   ) -> tuple[CriticalPointsResult, list[Candidate], AnalyticTable, dict[str, float]]:
    """Run the protocol (module docstring); returns the result, the candidates, the analytic table
    and wall times (s).

    Args:
        quick: the reduced preset.
        seed: the base seed.
        d: the autoencoder's dimension.
        hidden: its bottleneck width.
        presets: (random starts, trajectories, Newton-MR iterations, gradient-norm iterations,
            trajectory steps), overriding the preset.
        progress: print every search's outcome on stderr.

    Returns:
        ``(result, candidates, analytic table, wall times (s))``.
    """
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    n_rand, n_traj, it_nmr, it_gn, traj_steps = presets or PRESETS["quick" if quick else "default"]
    lam = spectrum(d)
    X = make_data(lam, max(N_EXAMPLES, d), seed)
    dl = DeepLinearProblem(X, X, [hidden])
    obj = autoencoder_objective(X, hidden)
    table = analytic_table(dl)
    starts: list[tuple[str, torch.Tensor]] = []
    for i in range(n_rand):
        sc = INIT_SCALES[i % len(INIT_SCALES)]
        starts.append((f"random:{i}:scale={sc:g}", random_start((d, d), hidden, sc, 1000 * (seed + 1) + i)))
    for j in range(n_traj):
        for t, th in trajectory_starts(obj, hidden, d, 2000 * (seed + 1) + j, traj_steps,
                                       init=TRAJECTORY_INITS[j % len(TRAJECTORY_INITS)]):
            starts.append((f"gd:{j}:init={TRAJECTORY_INITS[j % len(TRAJECTORY_INITS)]:g}:step={t}", th))
    times["setup"] = time.perf_counter() - t0
    cands: list[Candidate] = []
    for k, (name, th) in enumerate(starts):
        for method in METHODS:
            t1 = time.perf_counter()
            cands.append(run_search(obj, table, th, method, name, max_iter=it_nmr if method == "newton-mr" else it_gn,
                                    seed=seed + k))
            times[f"search:{method}"] = times.get(f"search:{method}", 0.0) + time.perf_counter() - t1
            if progress:
                c = cands[-1]
                print(f"[critical-points] {name} {method}: ‖g‖² {c.grad_sq:.2e} loss {c.loss:.6f} "
                      f"match {c.match_loss}/{c.match_index}", file=sys.stderr, flush=True)
    rows = cutoff_table(cands)
    setting = {"d": d, "hidden": hidden, "dim": dl.dim, "m": int(X.shape[0]), "spectrum": lam.tolist(),
               "spectrum_ratio": SPECTRUM_RATIO, "loss": "½‖X(W₂W₁)ᵀ − X‖²_F (sum over examples)",
               "loss_rtol": LOSS_RTOL, "neg_eig_abs": NEG_EIG_ABS, "neg_eig_rel": NEG_EIG_REL,
               "search_grad_tol": SEARCH_GRAD_TOL, "grad_sq_floor": GRAD_SQ_FLOOR, "rdiff_floor": RDIFF_FLOOR, "methods": list(METHODS),
               "max_iter": {"newton-mr": it_nmr, "gradient-norm": it_gn},
               "n_random_starts": n_rand, "init_scales": list(INIT_SCALES), "n_trajectories": n_traj,
               "trajectory_steps": list(traj_steps), "trajectory_lr": TRAJECTORY_LR,
               "trajectory_inits": list(TRAJECTORY_INITS), "n_starts": len(starts), "n_searches": len(cands)}
    v = np.sort(table.loss)
    analytic = {"n_classes": len(table.S), "loss_min": float(v[0]), "loss_max": float(v[-1]),
                "min_relative_gap": float(np.min(np.diff(v) / v[1:])),
                "index_max": int(table.index.max())}
    res = CriticalPointsResult(quick=quick, seed=seed, setting=setting, analytic=analytic, cutoffs=rows,
                               findings=findings(rows, cands, table), candidates=[c.to_dict() for c in cands])
    times["total"] = time.perf_counter() - t0
    return res, cands, table, times


def _pct(a: int, b: int) -> str:
    return f"{a}/{b}" + (f" ({100 * a / b:.0f} %)" if b else "")


def findings(rows: list[dict[str, Any]], cands: list[Candidate], table: AnalyticTable) -> list[str]:
    """Plain-language statements, each with its numbers.

    Args:
        rows: :func:`cutoff_table`.
        cands: the candidates.
        table: the analytic critical points.

    Returns:
        The statements.
    """
    out = []
    for r in rows:
        name = "no cut-off" if r["cutoff"] is None else f"‖g‖² < {r['cutoff']:g}"
        bm = "; ".join(f"{m}: {_pct(c['n_match_index'], c['n_candidates'])}" for m, c in r["by_method"].items())
        out.append(f"{name}: {r['n_candidates']} candidates, {_pct(r['n_match_loss'], r['n_candidates'])} match an "
                   f"analytic critical value, {_pct(r['n_match_index'], r['n_candidates'])} match value and index "
                   f"(scale-relative index: {r['n_match_index_rel']}); {r['n_classes']} distinct classes of "
                   f"{len(table.S)} [{bm}].")
    strict = rows[0]
    if strict["n_candidates"]:
        bad = strict["n_candidates"] - strict["n_match_index"]
        out.append(f"At Frye's cut-off 1e-10, {bad} accepted candidate(s) fail to match an analytic point in value and "
                   "index" + (" — the cut-off recovers the analytic loss–index relation." if bad == 0 else "."))
    loose = [c for c in cands if c.grad_sq >= 1e-10]
    if loose:
        nl = sum(c.match_index for c in loose)
        out.append(f"Candidates above the 1e-10 cut-off: {len(loose)}, of which {nl} still match in value and index, "
                   f"{sum(c.match_loss and not c.match_index for c in loose)} match the value but not the index, "
                   f"{sum(not c.match_loss for c in loose)} match no analytic value; gradient-flat stops: "
                   f"{sum(c.gradient_flat for c in loose)}.")
    first_bad = next((r["cutoff"] for r in rows if r["n_match_index"] < r["n_candidates"]), "never")
    name = "no cut-off" if first_bad is None else first_bad if isinstance(first_bad, str) else f"{first_bad:g}"
    out.append(f"Against the paper: Frye et al. saw 1e-8 already mis-recover loss and index; here the first cut-off "
               f"that admits a mismatch is {name}, and the searches reach {rows[-1]['n_classes']} of the "
               f"{len(table.S)} analytic classes (the paper's starts covered the loss–index relation far more "
               "widely; ours are few and mostly end at W = 0, the global minimum or a few saddles).")
    differ = [c for c in cands if c.match_loss and c.match_index != c.match_index_rel]
    if differ:
        out.append(f"The index threshold matters: {len(differ)} value-matched candidate(s) get the analytic index "
                   f"with one threshold but not the other (absolute −1e-5 vs −1e-5·max|λ|): "
                   + "; ".join(f"‖g‖² {c.grad_sq:.1e}: {c.n_neg_abs} vs {c.n_neg_rel} negative, analytic "
                               f"{c.analytic_index}" for c in differ[:3]) + ".")
    return out


def loss_index_png(cands: list[Candidate], table: AnalyticTable, path: Path,
                   cutoffs: tuple[float | None, ...] = CUTOFFS) -> Path:
    """Loss against index fraction, one panel per cut-off, analytic points overlaid.

    Args:
        cands: the candidates.
        table: the analytic critical points.
        path: the PNG to write.
        cutoffs: the panels' cut-offs.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cutoffs), figsize=(4.2 * len(cutoffs), 4.2), sharey=True)
    af = table.index / table.dim
    styles = {"newton-mr": ("o", "#1f77b4"), "gradient-norm": ("^", "#ff7f0e")}
    for ax, c in zip(axes, cutoffs):
        ax.scatter(af, table.loss, s=40, facecolors="none", edgecolors="0.6", linewidths=0.6,
                   label=f"analytic ({len(table.S)} classes)", zorder=1)
        for m in METHODS:
            xs = [x for x in cands if x.method == m and (c is None or x.grad_sq < c)]
            mk, col = styles[m]
            good = [x for x in xs if x.match_index]
            bad = [x for x in xs if not x.match_index]
            ax.scatter([x.index_frac for x in good], [x.loss for x in good], s=18, marker=mk, color=col,
                       label=f"{m}: match ({len(good)})", zorder=3)
            ax.scatter([x.index_frac for x in bad], [x.loss for x in bad], s=30, marker=mk, facecolors="none",
                       edgecolors="red" if m == "newton-mr" else "darkred", linewidths=1.0,
                       label=f"{m}: no match ({len(bad)})", zorder=4)
        ax.set_title("no cut-off" if c is None else f"‖g‖² < {c:g}")
        ax.set_xlabel("index fraction (eigenvalues < −1e-5) / 128")
        ax.set_xlim(-0.02, max(0.55, float(af.max()) + 0.05))
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("loss ½‖X(W₂W₁)ᵀ − X‖²")
    fig.suptitle("Linear autoencoder 16-4-16: candidates of find_critical_point against the Baldi–Hornik points")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def write_outputs(res: CriticalPointsResult, cands: list[Candidate], table: AnalyticTable, times: dict[str, float],
                  out: Path) -> dict[str, Path]:
    """Write ``critical_points.json``, ``candidates.npz``, ``loss_vs_index.png`` and the untracked ``timings.jsonl``.

    Args:
        res: the result.
        cands: the candidates.
        table: the analytic critical points.
        times: wall times (s).
        out: the output folder (created).

    Returns:
        ``{"json", "npz", "png"}`` → paths.
    """
    out.mkdir(parents=True, exist_ok=True)
    js = out / "critical_points.json"
    js.write_text(json.dumps(round_sig(res.to_dict(), JSON_DIGITS), sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    npz = out / "candidates.npz"
    save_npz(npz, loss=np.array([c.loss for c in cands]), grad_sq=np.array([c.grad_sq for c in cands]),
             index_frac=np.array([c.index_frac for c in cands]), n_neg_abs=np.array([c.n_neg_abs for c in cands]),
             n_neg_rel=np.array([c.n_neg_rel for c in cands]),
             method=np.array([c.method for c in cands]), analytic_loss=table.loss, analytic_index=table.index)
    png = loss_index_png(cands, table, out / "loss_vs_index.png")
    (out / "timings.jsonl").write_text(json.dumps({k: round(v, 2) for k, v in times.items()}, sort_keys=True) + "\n")
    return {"json": js, "npz": npz, "png": png}


def study_section(out_dir: Path, *, quick: bool, seed: int = 0, **experiment_options: Any) -> dict[str, Any]:
    """The main report's section (the section contract of analyses.study): runs the experiment into ``out_dir/critical-points``;
    paths in ``html`` / ``figures`` are relative to ``out_dir``. ``experiment_options`` go to
    :func:`run_experiment` (tests use a smaller autoencoder).

    Args:
        out_dir: the main job's output folder.
        quick: the reduced preset.
        seed: the base seed.
        **experiment_options: options of :func:`run_experiment`.

    Returns:
        The report's section (``title``, ``lead``, ``html``, ``summary``, ``figures``).
    """
    out_dir = Path(out_dir)
    sub = out_dir / "critical-points"
    res, cands, table, times = run_experiment(quick=quick, seed=seed, **experiment_options)
    paths = write_outputs(res, cands, table, times, sub)
    rel = paths["png"].relative_to(out_dir).as_posix()
    strict = res.cutoffs[0]
    lead = (f"<p>Frye et al.'s cut-off on a 16-4-16 linear autoencoder: of {res.setting['n_searches']} searches, "
            f"{strict['n_candidates']} end with ‖g‖² &lt; 1e-10 and {strict['n_match_index']} of those match a "
            f"Baldi–Hornik point in loss and index; with no cut-off "
            f"{res.cutoffs[-1]['n_match_index']}/{res.cutoffs[-1]['n_candidates']} match.</p>")
    rows = "".join(
        f"<tr><td>{'none' if r['cutoff'] is None else format(r['cutoff'], 'g')}</td><td>{r['n_candidates']}</td>"
        f"<td>{r['n_match_loss']}</td><td>{r['n_match_index']}</td><td>{r['n_match_index_rel']}</td>"
        f"<td>{r['n_classes']}</td></tr>" for r in res.cutoffs)
    body = ("<table><tr><th>cut-off ‖g‖²</th><th>candidates</th><th>match loss</th><th>match loss + index</th>"
            "<th>match (scale-relative index)</th><th>distinct classes</th></tr>" + rows + "</table>"
            + "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in res.findings) + "</ul>"
            + f'<p><img src="{html.escape(rel)}" width="1100"></p>')
    return {"title": "Critical-point cut-offs (Frye et al. 2021) on a linear autoencoder", "lead": lead,
            "html": body, "summary": round_sig({"cutoffs": res.cutoffs, "setting": res.setting,
                                                 "analytic": res.analytic}, JSON_DIGITS),
            "figures": [rel]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape critical-points``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    p.add_argument("--quick", action="store_true", help="a reduced run (~10 s on 2 cores)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="print every search's outcome")


def run(args: argparse.Namespace) -> int:
    """Run ``landscape critical-points``: print the findings.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code, 0.
    """
    res, cands, table, times = run_experiment(quick=args.quick, seed=args.seed, progress=args.progress)
    paths = write_outputs(res, cands, table, times, Path(args.out))
    for s in res.findings:
        print(f"  - {s}")
    print(f"wrote {paths['json']} and {paths['png']} ({times['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main(["critical-points", *sys.argv[1:]]))
