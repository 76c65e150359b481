"""How much of the Hessian's negative curvature comes from outside the Gauss-Newton part (H − G).

With G the generalised Gauss-Newton matrix (:class:`landscape.operators.GGNOperator`),
H − G = Σ_b w_b Σ_k (∂ℓ_b/∂f_k) ∇²_θ f_k is the curvature of the model's own second derivatives;
at a stall, negative curvature of H can only come from it when G ⪰ 0 (a loss convex in the outputs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .eigs import extreme_eigs
from .errors import NonFiniteError
from .operators import make_operator
from .results import JsonResult
from .tolerances import default_solver_tol

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


@dataclass(frozen=True)
class NonGGNCurvature(JsonResult):
    """How much of the Hessian's most negative curvature at a point comes from H − G.

    ``hessian_min``: λ_min(H) with unit eigenvector v; ``ggn_along`` = vᵀGv and ``residual_along`` =
    vᵀ(H − G)v, which sum to ``hessian_min``; ``residual_share`` = residual_along / hessian_min (≥ 1 when
    λ_min < 0 and G ⪰ 0: all negative curvature, and more, comes from H − G; NaN when λ_min ≥ 0).
    ``ggn_min`` = λ_min(G) (≥ 0 up to round-off for losses convex in the outputs) and ``residual_min`` =
    λ_min(H − G). ``converged``: whether each of the three Lanczos runs met ``tol`` (relative to the
    operator's spectral scale); ``scale`` = max |Ritz value| of H. ``tol``: the tolerance used;
    ``n_matvec``: products per operator.

    Example: see :func:`nongg_negative_curvature`.
    """

    hessian_min: float
    ggn_along: float
    residual_along: float
    residual_share: float
    ggn_min: float
    residual_min: float
    scale: float
    tol: float
    converged: dict[str, bool] = field(default_factory=dict)
    n_matvec: dict[str, int] = field(default_factory=dict)


def nongg_negative_curvature(obj: "Objective", theta: torch.Tensor, *, tol: float | None = None,
                             max_iter: int | None = None, seed: int = 0) -> NonGGNCurvature:
    """Split the Hessian's most negative curvature at ``theta`` into its GGN and non-GGN parts.

    Three Lanczos runs (:func:`landscape.extreme_eigs`): λ_min of H (with its vector), of G and of
    H − G; the split along the eigenvector is exact (two products). At a stall, negative curvature
    of H can only come from H − G (the model's own second derivatives) when G ⪰ 0.

    Args:
        obj: a model objective (the GGN needs the model's outputs).
        theta: the point, shape ``(dim,)``.
        tol: relative residual tolerance of the three runs (default by dtype: 1e-8 / 1e-4).
        max_iter: Lanczos steps per run (default 400).
        seed: seeds the three runs.

    Returns:
        :class:`NonGGNCurvature`.

    Raises:
        landscape.NonFiniteError: a non-finite eigenvalue or product.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
        >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(), (X, Y))
        >>> abs(nongg_negative_curvature(obj, obj.initial_point()).residual_along) < 1e-12   # linear model: H = G
        True
    """
    H = make_operator(obj, theta, "hessian")
    G = make_operator(obj, theta, "ggn")
    R = H - G
    rh = extreme_eigs(H, k=1, which="smallest", tol=tol, max_iter=max_iter, seed=seed)
    rg = extreme_eigs(G, k=1, which="smallest", tol=tol, max_iter=max_iter, seed=seed)
    rr = extreme_eigs(R, k=1, which="smallest", tol=tol, max_iter=max_iter, seed=seed)
    v = rh.vectors[:, 0].to(obj.dtype)
    v = v / torch.linalg.vector_norm(v)
    lam = float(rh.values[0])
    g_along = float(torch.dot(v.double(), G.matvec(v).double()))
    r_along = float(torch.dot(v.double(), R.matvec(v).double()))
    if not all(math.isfinite(x) for x in (lam, g_along, r_along)):
        raise NonFiniteError("non-finite curvature in the H/GGN split")
    used_tol = tol if tol is not None else default_solver_tol(obj.dtype)
    return NonGGNCurvature(
        hessian_min=lam, ggn_along=g_along, residual_along=r_along,
        residual_share=(r_along / lam) if lam < 0 else float("nan"),
        ggn_min=float(rg.values[0]), residual_min=float(rr.values[0]),
        scale=float(getattr(rh, "scale", float("nan"))), tol=used_tol,
        converged={"hessian": bool(rh.converged[0]), "ggn": bool(rg.converged[0]), "residual": bool(rr.converged[0])},
        n_matvec={"hessian": H.n_matvec, "ggn": G.n_matvec, "residual": R.n_matvec},
    )
