"""The gradient test before any spectrum work (Lanczos path): a point that is not critical is decided cheaply.

On the Lanczos path (:data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters and more) each Hessian-vector
product is a pass over the data, and the full recipe's spectrum (:func:`landscape.extreme_eigs`, up to
:data:`landscape.defaults.LANCZOS_MAX_ITER` products) is the cost. Whether θ is critical needs only ‖g‖
against ``grad_tol = default_grad_tol(dtype)·Λ·s`` and, for that, an *upper bound* on the spectral scale Λ:

- a short Lanczos run of :data:`landscape.defaults.GRADIENT_TEST_STEPS` products from a seeded uniformly
  random unit vector gives Ritz values θ_min ≤ … ≤ θ_max inside [λ_min, λ_max] (interlacing), so
  Λ_lo = max|θ| ≤ Λ;
- Kuczyński & Woźniakowski (1992, SIAM J. Matrix Anal. Appl. 13, Thm 4.2): after k steps from a uniformly
  random start, P(θ_max − λ_min < (1 − ε)(λ_max − λ_min)) ≤ 1.648·√n·exp(−√ε·(2k − 1)), and the same for
  the lower end. With ε = 0.45 both ends hold except with probability ≤ 3.3·√n·e^{−0.67(2k−1)} (k = 12,
  n = 4 000: 4e-5; k = 20: 1e-9), and then the spread D = λ_max − λ_min ≤ (θ_max − θ_min)/(1 − 2ε) ≤ 20·Λ_lo
  and each end lies within ε·D of its Ritz value, so Λ ≤ Λ_lo + 0.45·D ≤ 10·Λ_lo:
  Λ_up = :data:`landscape.defaults.SCALE_BOUND_FACTOR`·Λ_lo (20, a margin of 2) ≥ Λ.
- ‖g‖ > default_grad_tol·Λ_up·s: **not critical** (whatever the true Λ up to that bound), decided; else
  the full recipe runs (its Lanczos spectrum continues from the same operator).

What the early report says: ``kind="not_critical"``; ``grad_tol`` = default_grad_tol·Λ_lo·s (the full
recipe's formula at the estimated scale; ``tolerances["grad_tol_upper"]`` the one with Λ_up that decided);
``lambda_min`` / ``lambda_max`` the extreme Ritz values (upper / lower bounds on λ_min / λ_max);
``index`` the number of Ritz values below −eig_tol (a lower bound on the Hessian's index *here*, by
interlacing — a non-critical point has no Morse index; ``index_exact=False``); ``eigenvalues`` the Ritz
values; ``gradient_flatness`` an upper bound on ‖P_null g‖/‖g‖ from :data:`FLATNESS_KRYLOV_STEPS`
Lanczos steps on (H, g) (:func:`gradient_flatness`). A budget that runs out during the flatness estimate
leaves the verdict and omits the flatness (a note says so).

Example:
    >>> import torch, landscape as ls
    >>> obj = ls.Objective.from_function(lambda v: (v ** 2).sum() + v[0] ** 3, torch.ones(3000, dtype=torch.float64))
    >>> rep = ls.classify_point(obj, obj.initial_point())
    >>> rep.kind, rep.method, rep.n_hvp <= 12 + 50, rep.tolerances["gradient_test"]
    ('not_critical', 'lanczos', True, 'early')
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..budget import BudgetExhausted
from ..defaults import FLATNESS_KRYLOV_STEPS, GRADIENT_TEST_STEPS, SCALE_BOUND_FACTOR
from ..linalg import lanczos, random_unit
from ..point import PointState
from ..tolerances import default_eig_tol, default_grad_tol
from .report import CriticalPointReport

if TYPE_CHECKING:  # pragma: no cover
    from .options import ClassifyOptions


def ritz_scale(state: PointState, seed: int, steps: int = GRADIENT_TEST_STEPS) -> torch.Tensor:
    """Ritz values of the Hessian at θ from ``steps`` Lanczos products from a seeded random unit vector.

    Args:
        state: the point's state (its Hessian operator is built here if not yet, and shared).
        seed: seeds the start vector.
        steps: Lanczos steps (at most dim).

    Returns:
        The Ritz values, ascending, float64 (they lie in [λ_min, λ_max]).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda v: (torch.arange(1., 5., dtype=v.dtype) * v * v).sum(), torch.ones(4, dtype=torch.float64))
        >>> [round(float(x), 8) for x in ritz_scale(PointState.first_order(obj, obj.initial_point()), 0)]
        [2.0, 4.0, 6.0, 8.0]
    """
    gen = torch.Generator().manual_seed(int(seed))
    v0 = random_unit(state.dim, gen, state.obj.dtype, state.obj.device)
    run = lanczos(state.hessian_operator.matvec, v0, min(state.dim, int(steps)), reorth="full", generator=gen)
    return torch.linalg.eigvalsh(run.tridiagonal())


def gradient_flatness(state: PointState, etol: float, notes: list[str], steps: int = FLATNESS_KRYLOV_STEPS
                      ) -> float | None:
    """An upper bound on the gradient's share outside range(H): min ‖g + H p‖/‖g‖ over a Krylov space.

    ``steps`` Lanczos products on (H, g) give H Q_m = Q_{m+1} T̄_m with g = ‖g‖ q_1, so
    min_{p ∈ span Q_m} ‖g + H p‖ = min_y ‖ ‖g‖e_1 + T̄_m y ‖ (singular values of T̄_m below ``etol``
    truncated: eigen-directions that weak count as null) — no second pass of products. The
    exact share over all p is at most this.

    Args:
        state: the point's state. etol: the zero band (curvature units). notes: appended to.
        steps: the Krylov dimension (at most dim).

    Returns:
        The bound in [0, 1] (0 at g = 0).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda v: v[0] ** 2 + v[1], torch.ones(2, dtype=torch.float64))
        >>> round(gradient_flatness(PointState.first_order(obj, obj.initial_point()), 1e-12, []), 6)  # g = (2, 1)
        0.447214
    """
    g = state.grad
    gn = float(torch.linalg.vector_norm(g))
    if gn == 0:
        return 0.0
    run = lanczos(state.hessian_operator.matvec, g.detach().clone(), min(state.dim, int(steps)), reorth="full",
                  generator=torch.Generator().manual_seed(0))
    m = int(run.alpha.numel())
    Tbar = torch.zeros(m + 1, m, dtype=torch.float64)
    Tbar[:m] = run.tridiagonal()
    Tbar[m, m - 1] = run.last_beta
    U, S, _ = torch.linalg.svd(Tbar, full_matrices=False)
    keep = S > etol
    e1 = torch.zeros(m + 1, dtype=torch.float64)
    e1[0] = 1.0
    c = U[:, keep].T @ e1
    resid = math.sqrt(max(0.0, 1.0 - float(c @ c)))
    notes.append("gradient_flatness on the Lanczos path: ‖g + H p‖/‖g‖ minimised over a Krylov space of "
                 f"dimension {m} (an upper bound on the exact share)")
    return float(min(1.0, resid))


def early_not_critical(state: PointState, opts: "ClassifyOptions") -> CriticalPointReport | None:
    """The gradient test before the spectrum (module docstring): the report of a point that is not critical, or None.

    Args:
        state: the first-order state at θ (loss and gradient).
        opts: the settings (``grad_tol`` given: ‖g‖ against it, no scale needed for the test).

    Returns:
        A ``not_critical`` :class:`CriticalPointReport`, or None when the test does not decide
        (the full recipe must run).

    Example:
        >>> import torch, landscape as ls
        >>> from landscape.classify.options import ClassifyOptions
        >>> obj = ls.Objective.from_function(lambda v: (v ** 2).sum(), torch.ones(3, dtype=torch.float64))
        >>> early_not_critical(PointState.first_order(obj, obj.initial_point()), ClassifyOptions()).kind
        'not_critical'
        >>> early_not_critical(PointState.first_order(obj, 1e-9 * obj.initial_point()), ClassifyOptions()) is None
        True
    """
    dtype, dim, s_par, gn = state.obj.dtype, state.dim, state.param_scale, state.grad_norm
    if opts.grad_tol is not None and gn <= float(opts.grad_tol):
        return None
    ritz = ritz_scale(state, opts.seed)
    lam_lo = float(ritz.abs().max())
    gtol = default_grad_tol(dtype) * lam_lo * s_par if opts.grad_tol is None else float(opts.grad_tol)
    gtol_up = default_grad_tol(dtype) * SCALE_BOUND_FACTOR * lam_lo * s_par if opts.grad_tol is None else gtol
    if not gn > gtol_up:
        return None
    etol = default_eig_tol(dtype, dim, lam_lo) if opts.eig_tol is None else float(opts.eig_tol)
    notes = [f"gradient test before the spectrum: ‖g‖ = {gn:.3g} > {gtol_up:.3g} "
             + ("(the given grad_tol)" if opts.grad_tol is not None else
                f"(default_grad_tol·Λ·s with Λ ≤ {SCALE_BOUND_FACTOR:g}·{lam_lo:.3g}, the bound from "
                f"{ritz.numel()} Lanczos steps)") + ": not critical; λ_min / λ_max / index are Ritz-value bounds "
             "of the Hessian here (no spectrum computed)"]
    flat = None
    try:
        flat = gradient_flatness(state, etol, notes)
    except BudgetExhausted as exc:
        notes.append(f"gradient_flatness not estimated: {exc}")
    if flat is not None and flat > 0.9:
        notes.append(f"gradient-flat point: {flat:.3f} of ‖g‖ lies in the near-null "
                     "eigenspace (Newton-type finders stall here)")
    tol = {"grad_tol": gtol, "grad_tol_upper": gtol_up, "eig_tol": etol, "roundoff_band": etol,
           "spectral_scale": lam_lo, "spectral_scale_bound": SCALE_BOUND_FACTOR * lam_lo, "param_scale": s_par,
           "gradient_test": "early", "gradient_test_steps": int(ritz.numel()),
           "grad_tol_given": opts.grad_tol is not None, "eig_tol_given": opts.eig_tol is not None}
    return CriticalPointReport(
        kind="not_critical", loss=state.loss, grad_norm=gn, lambda_min=float(ritz[0]), lambda_max=float(ritz[-1]),
        index=int((ritz < -etol).sum()), n_zero=0, index_exact=False, degenerate=False, method="lanczos", dim=dim,
        grad_tol=gtol, eig_tol=etol, gradient_flatness=flat, tolerances=tol, notes=notes,
        eigenvalues=ritz.to(dtype).cpu())
