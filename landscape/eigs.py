"""Extreme eigenpairs of a curvature operator: thick-restart Lanczos (:func:`extreme_eigs`).

:func:`extreme_eigs` is a thick-restart Lanczos (Wu & Simon 2000) with full Gram-Schmidt
reorthogonalisation: the basis holds at most ``max_basis`` vectors (default k + 26), so memory is
bounded whatever the number of steps, and both ends of the spectrum converge in one Krylov space.
Every dot product and norm (the Gram-Schmidt coefficients included) is accumulated in float64 over
blocks of the parameter vector (:func:`landscape.linalg.dot64`; no float64 copy of the basis is
held): float32 operators certify residuals of 1e-4 relative at 10^6-10^7 parameters, where torch's
float32 norms are off by ~5e-4. On an invariant subspace (breakdown: a low-rank Hessian, a
repeated eigenvalue) it continues from a fresh random vector orthogonal to the basis, and after
convergence a short verification phase from a fresh random vector looks for further copies of the
wanted eigenvalues, so repeated extreme eigenvalues are found with their multiplicity. The start
vector mixes a seeded random vector with the gradient the cached Hessian operator holds anyway,
which lies mostly in the top eigenspace of a network's Hessian (Gur-Ari et al. 2018).

It works on any operator (``extreme_eigs(op, k=...)``); ``extreme_eigs(obj, theta, ...)`` builds
the operator through :func:`landscape.operators.make_operator`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from .defaults import BASIS_BUDGET_ELEMS, BASIS_EXTRA, LANCZOS_MAX_ITER, LOOSE_TOL
from .errors import ConvergenceWarning
from .linalg import BLOCK, combine, dot64, norm64, random_unit, sub_comb
from .operators import CURVATURES, as_operator, check_curvature, is_operator
from .results import JsonResult
from .tolerances import default_solver_tol, roundoff_allowance

__all__ = ["EigResult", "extreme_eigs", "CURVATURES", "BASIS_BUDGET_ELEMS", "LOOSE_TOL"]


@dataclass(frozen=True)
class EigResult(JsonResult):
    """Eigenpairs of the Hessian, eigenvalues ascending.

    ``values`` (m,), ``vectors`` (dim, m) unit columns, ``residuals`` (m,) = ‖H v − λ v‖ computed
    explicitly, ``converged`` (m,) bool: residual ≤ ``tol`` · ``scale``, where ``scale`` is the
    spectral-norm estimate max|Ritz value|. ``n_hvp`` counts operator products (Lanczos steps plus
    one per returned pair for the explicit residuals), ``n_iter`` the Lanczos steps of all phases,
    ``max_basis`` the most basis vectors held, ``n_restarts`` the thick restarts, ``verify_steps``
    the steps spent looking for further copies of the wanted eigenvalues and ``n_copies_found``
    how many such copies entered the result. ``tol`` is the relative residual tolerance used,
    ``which`` the ends asked for, ``ritz_values`` the Ritz values before the explicit residuals
    (order of the wanted indices), ``curvature`` the operator's matrix ("hessian", "ggn", ...).

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> r = extreme_eigs(DiagonalOperator(torch.arange(1.0, 9.0, dtype=torch.float64)), k=2, which="largest")
        >>> r.values.tolist(), r.all_converged, tuple(r.vectors.shape), "vectors" in r.to_dict()
        ([7.0, 8.0], True, (8, 2), False)
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    n_hvp: int
    n_iter: int = 0
    tol: float = 0.0
    scale: float = 0.0
    which: str = "both"
    ritz_values: torch.Tensor | None = field(default=None, repr=False)
    curvature: str = "hessian"
    max_basis: int = 0
    n_restarts: int = 0
    verify_steps: int = 0
    n_copies_found: int = 0

    @property
    def all_converged(self) -> bool:
        """True when every returned pair met the tolerance."""
        return bool(self.converged.all())

    def to_dict(self) -> dict:
        """The result as JSON types, without the (dim, m) vectors."""
        d = super().to_dict()
        d.pop("vectors")  # (dim, m) belongs in an .npz, not in JSON
        return d


def _thick_restart(Q: torch.Tensor, T: torch.Tensor, lost: torch.Tensor, j: int, vals: torch.Tensor,
                   S: torch.Tensor, keep: list[int], last: float = 0.0) -> int:
    """Thick restart in place: keep the Ritz vectors ``keep`` (indices into the eigenpairs
    ``vals`` (j,), ``S`` (j, j) of T[:j, :j]) of the basis Q[:j] as Q[:p], p = len(keep); T becomes
    diag(vals[keep]) and ``lost`` their couplings to the dropped directions (the old couplings
    through S, plus ``last``·|S[j-1, keep]| when the pending residual direction is dropped too).
    Returns p, the new basis size."""
    S_k = S[:, keep]
    lost_new = lost[:j].abs() @ S_k.abs()
    if last:
        lost_new = lost_new + last * S[j - 1, keep].abs()
    _restart_inplace(Q, j, S_k)
    T.zero_()
    lost.zero_()
    p = len(keep)
    T[:p, :p] = torch.diag(vals[keep])
    lost[:p] = lost_new
    return p


def _restart_inplace(Q: torch.Tensor, j: int, S: torch.Tensor) -> None:
    """``Q[:p] = Sᵀ Q[:j]`` in place, a block of entries at a time (S (j, p), p <= j)."""
    St = S.T.to(device=Q.device, dtype=Q.dtype).contiguous()
    p = St.shape[0]
    for a in range(0, Q.shape[1], BLOCK):
        Q[:p, a:a + BLOCK] = St @ Q[:j, a:a + BLOCK]


def _wanted(m: int, k_small: int, k_large: int) -> list[int]:
    idx = list(range(min(k_small, m))) + list(range(max(m - k_large, 0), m))
    return sorted(set(idx))


def _keep(m: int, k_small: int, k_large: int, n_keep: int) -> list[int]:
    """Indices (ascending Ritz order) kept at a thick restart: the wanted ones and the nearest
    further Ritz values at each wanted end (they carry the next-to-converge directions)."""
    extra = max(n_keep - k_small - k_large, 0)
    if k_small and k_large:
        es, el = extra // 2, extra - extra // 2
    elif k_small:
        es, el = extra, 0
    else:
        es, el = 0, extra
    lo = min(k_small + es, m) if k_small else 0
    hi = min(k_large + el, m - lo) if k_large else 0
    return sorted(set(range(lo)) | set(range(m - hi, m)))


def _start_vector(start: str | torch.Tensor, op, dim: int, gen: torch.Generator, dtype: torch.dtype,
                  device: torch.device | str, *, use_gradient: bool) -> torch.Tensor:
    """The unit start vector of :func:`extreme_eigs` (see its ``start``)."""
    if isinstance(start, torch.Tensor):
        v = start.to(device=device, dtype=dtype)
        return v / norm64(v)
    r = random_unit(dim, gen, dtype, device)
    g = getattr(op, "gradient", None) if start == "auto" and use_gradient else None
    if g is None:
        return r
    g = g.to(device=device, dtype=dtype)
    gn = norm64(g)
    if not (math.isfinite(gn) and gn > 0.0):
        return r
    v = r + g / gn
    return v / norm64(v)


class _Request(NamedTuple):
    """The validated arguments of one :func:`extreme_eigs` call."""

    which: str
    k_small: int
    k_large: int
    n_want: int
    tol: float
    loose: bool
    max_iter: int
    m_max: int
    n_keep: int
    verify_steps: int | None
    start: Any


def _space(x: Any) -> tuple[int, torch.dtype, torch.device]:
    """(dim, dtype, device) of an objective or an operator."""
    dim = x.dim if hasattr(x, "dim") else int(x.shape[0])
    return int(dim), x.dtype, x.device


def _request(dim: int, dtype: torch.dtype, k: int | tuple[int, int], which: str, tol: float | None,
             max_iter: int | None, max_basis: int | None, verify_steps: int | None, start: Any) -> _Request:
    """Validate :func:`extreme_eigs`'s arguments (``which`` and ``curvature`` checked before)."""
    if isinstance(k, tuple):
        if which != "both":
            raise ValueError("a (k_smallest, k_largest) pair needs which='both'")
        k_small, k_large = (int(x) for x in k)
    else:
        k = int(k)
        k_small = k if which in ("both", "smallest") else 0
        k_large = k if which in ("both", "largest") else 0
    if min(k_small, k_large) < 0 or k_small + k_large < 1:
        raise ValueError(f"k must be positive, got {k}")
    n_want = k_small + k_large
    if n_want > dim:
        raise ValueError(f"asked for {n_want} eigenpairs (k={k}, which={which!r}) "
                         f"but the Hessian has dim {dim}")
    if tol is None:
        tol = default_solver_tol(dtype)
    if not (0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    loose = tol >= LOOSE_TOL  # at most ~3 digits asked: shorter verification, recurrence residuals
    max_iter = max_iter if max_iter is not None else LANCZOS_MAX_ITER
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if max_iter < n_want:
        raise ValueError(f"max_iter={max_iter} is smaller than the {n_want} eigenpairs asked for")
    if max_basis is None:
        max_basis = max(n_want + BASIS_EXTRA, min(dim + 1, BASIS_BUDGET_ELEMS // dim))
    if isinstance(max_basis, bool) or int(max_basis) != max_basis or max_basis < n_want + 4:
        raise ValueError(f"max_basis must be an integer >= k + 4 = {n_want + 4}, got {max_basis!r}")
    if verify_steps is not None and (isinstance(verify_steps, bool) or int(verify_steps) != verify_steps
                                     or verify_steps < 0):
        raise ValueError(f"verify_steps must be a non-negative integer or None, got {verify_steps!r}")
    if isinstance(start, torch.Tensor):
        if start.shape != (dim,):
            raise ValueError(f"start must be a vector of shape ({dim},), got shape {tuple(start.shape)}")
        bad = ("non-finite" if not bool(torch.isfinite(start).all())
               else "all zeros" if not bool((start != 0).any()) else None)
        if bad:
            raise ValueError(f"start must be a finite, non-zero vector ({bad})")
    elif start not in ("auto", "random"):
        raise ValueError(f"start must be 'auto', 'random' or a tensor, got {start!r}")
    # The basis plus the pending vector; no more than the whole space.
    m_max = min(int(max_basis), dim + 1)
    n_keep = max(n_want, (m_max + n_want) // 2)  # Ritz vectors a thick restart of a full basis keeps
    return _Request(which=which, k_small=k_small, k_large=k_large, n_want=n_want, tol=tol, loose=loose,
                    max_iter=max_iter, m_max=m_max, n_keep=n_keep, verify_steps=verify_steps, start=start)


def extreme_eigs(
    source: Any,
    theta: torch.Tensor | None = None,
    k: int | tuple[int, int] = 1,
    which: str = "both",
    *,
    tol: float | None = None,
    max_iter: int | None = None,
    seed: int = 0,
    operator: Any = None,
    curvature: str = "hessian",
    max_basis: int | None = None,
    verify_steps: int | None = None,
    explicit_residuals: bool | None = None,
    start: str | torch.Tensor = "auto",
    warn: bool = True,
) -> EigResult:
    """Extreme eigenpairs of a curvature operator by thick-restart Lanczos.

    ``which="largest"``/``"smallest"``: the ``k`` algebraically largest/smallest eigenpairs;
    ``"both"``: ``k`` from each end (or ``k=(k_smallest, k_largest)``) in one Krylov space.
    A pair is converged when ‖Hv − λv‖ ≤ ``tol``·‖H‖ (‖H‖ estimated by max |Ritz value|). The run
    stops as soon as the wanted pairs' Lanczos residual estimates plus the round-off allowance
    (:func:`landscape.tolerances.roundoff_allowance`) are within tol (or within tol/2, where that
    allowance exceeds tol/2: a float32 tol near round-off). The returned residuals are recomputed
    explicitly (one product per pair) when ``explicit_residuals=True``, or by default (``None``)
    when tol < 1e-3; at a loose tol ≥ 1e-3 (``None``), or with ``False``, they are the Lanczos
    estimates |β sₘ| plus any coupling dropped at restarts and breakdowns, plus the round-off
    allowance 10·√m·eps·‖H‖ (m basis vectors): with full reorthogonalisation the recurrence residual
    matches the explicit one to O(eps·‖H‖) (measured on the bench MLP in float32: within
    3e-6·|λ_max|), so at tol ≥ 1e-3 the extra products would not change the certificate. The values
    are then the Ritz values.

    Memory: a full basis (``max_basis`` vectors) is thick-restarted to the wanted Ritz vectors and
    their nearest neighbours, so memory is ``max_basis × dim`` numbers of the operator's dtype plus
    a few vectors of scratch.

    Multiplicity: one start vector's Krylov space holds one vector per eigenspace, so repeated
    eigenvalues appear once (copies only through breakdown restarts). After the wanted pairs
    converge, their Ritz vectors are locked and Lanczos continues for ``verify_steps`` steps
    from a fresh random vector orthogonal to them. A copy has been found when, after those steps,
    a wanted Ritz vector lies mostly (over half its weight) in the fresh directions and the wanted
    values have moved by more than tol·‖H‖: it is converged, enters the result, and another
    verification follows. A fresh direction that moves the values by less than that leaves every
    locked value within tol of the truth: the result is then the current pairs if they have
    converged, else the locked ones as they were (at a loose tol the k-th value may then be a
    neighbour of the k-th eigenvalue, within tol of it: a residual r puts *an* eigenvalue within
    r·‖H‖ of each value). A copy whose deflated Ritz value needs longer to climb past the innermost
    wanted value is not found.

    Args:
        source: a curvature operator (``.matvec``, ``.n_matvec``, ``.dim`` or ``.shape``, ``.dtype``,
            ``.device``; e.g. :class:`landscape.operators.HessianOperator`), or an
            :class:`landscape.Objective` (then ``theta`` is the point and ``curvature`` the matrix).
        theta: with an objective, the point, shape ``(dim,)``; with an operator, leave it out (pass
            ``k`` by keyword).
        k: the number of pairs per wanted end, or ``(k_smallest, k_largest)`` with ``which="both"``.
        which: ``"both"`` (default), ``"largest"`` or ``"smallest"``.
        tol: relative residual tolerance (default 1e-8 in float64, 1e-4 in float32:
            :func:`landscape.tolerances.default_solver_tol`).
        max_iter: the most Lanczos steps in all phases (default 400).
        seed: seeds the random start and fresh directions (the same on every device and rank).
        operator: with an objective, a prepared operator to use instead of building one (its
            curvature is then labelled ``curvature``).
        curvature: with an objective, ``"hessian"`` (default), ``"ggn"`` or ``"ef"``
            (:func:`landscape.operators.make_operator`).
        max_basis: the most basis vectors held (default k + 26, k the number of wanted pairs, or
            more while the basis stays within 2^23 numbers, so small problems never restart).
        verify_steps: steps of each verification phase (default steps so far // 6, and at least 8,
            or at least 4 at a loose tol ≥ 1e-3); 0 skips the check for copies.
        explicit_residuals: recompute the residuals with one product per pair (default: when tol < 1e-3).
        start: the Lanczos start vector. ``"auto"`` (default): where the largest end is wanted and
            the operator carries the gradient (``operator.gradient``: the cached Hessian operator
            computes it anyway), the normalised sum of a seeded random unit vector and the unit
            gradient (a network's gradient lies mostly in the top Hessian eigenspace, Gur-Ari et
            al. 2018: on the bench MLP 26 instead of 28 steps for the top-5 at 2.2e-2); otherwise
            the seeded random unit vector, which ``"random"`` always takes. A tensor (dim,) is
            used as given (normalised).
        warn: when a returned pair has not converged, emit one :class:`landscape.ConvergenceWarning`
            (a ``RuntimeWarning``) naming how many pairs, the worst residual relative to ‖H‖ and the
            tol; ``False`` (or the ``warnings`` filters) silences it. The result is the same either way.

    Returns:
        :class:`EigResult`: values ascending, unit vectors (dim, m), residuals, convergence.

    Raises:
        ValueError: for invalid arguments (named). FloatingPointError: a non-finite product.

    Example:
        >>> import torch, landscape as ls
        >>> A = torch.diag(torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64))
        >>> obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(4, dtype=torch.float64))
        >>> r = extreme_eigs(obj, obj.initial_point(), k=1)      # or extreme_eigs(obj.hvp_operator(θ), k=1)
        >>> r.values.tolist(), bool(r.all_converged)
        ([-1.0, 3.0], True)
    """
    if which not in ("both", "largest", "smallest"):
        raise ValueError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
    if is_operator(source):
        if theta is not None or operator is not None:
            raise TypeError("extreme_eigs(op, ...) takes the operator alone: pass k by keyword, "
                            "e.g. extreme_eigs(op, k=3), or call extreme_eigs(obj, theta, ...)")
        curvature = getattr(source, "curvature", "custom")
    else:
        check_curvature(curvature)
    dim, dtype, device = _space(source)
    req = _request(dim, dtype, k, which, tol, max_iter, max_basis, verify_steps, start)
    op = as_operator(source, theta, curvature=curvature, operator=operator)
    n0 = op.n_matvec
    run = _lanczos_phases(op, req, seed, dim, dtype, device)
    res = _result(op, req, run, n0, dtype, device, explicit_residuals, curvature)
    if warn and not res.all_converged:
        warnings.warn(unconverged_message(res, req.max_iter), ConvergenceWarning, stacklevel=2)
    return res


def unconverged_message(res: EigResult, max_iter: int | None = None, what: str = "extreme_eigs") -> str:
    """The one-line warning for a result with unconverged pairs: how many, the worst relative residual
    ‖Hv − λv‖/‖H‖ against the tol, and what to change.

    Args:
        res: the result. max_iter: the step budget it ran under. what: the caller's name.

    Returns:
        The message.

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> r = extreme_eigs(DiagonalOperator(torch.linspace(0, 1, 200, dtype=torch.float64)), k=3,
        ...                  which="largest", max_iter=5, warn=False)
        >>> unconverged_message(r, 5)[:55]
        'extreme_eigs: 3 of 3 eigenpairs did not converge within'
    """
    bad = ~res.converged
    rel = res.residuals.to(torch.float64) / max(res.scale, torch.finfo(torch.float64).tiny)
    worst = int(torch.argmax(torch.where(bad, rel, torch.zeros_like(rel))))
    budget = f"max_iter={max_iter}" if max_iter is not None else "the step budget"
    return (f"{what}: {int(bad.sum())} of {bad.numel()} eigenpairs did not converge within {res.n_iter} Lanczos "
            f"steps ({budget}): worst residual {float(rel[worst]):.2e}·‖H‖ (λ = {float(res.values[worst]):.6g}) "
            f"vs tol {res.tol:.1e}; raise max_iter, loosen tol, or read result.converged")


class _Run(NamedTuple):
    """The state :func:`_lanczos_phases` ends in: basis Q[:j], couplings ``lost``, Ritz pairs of T[:j, :j]."""

    Q: torch.Tensor
    lost: torch.Tensor
    j: int
    vals: torch.Tensor
    S: torch.Tensor
    idx: list[int]
    last: float
    steps: int
    scale: float
    n_restarts: int
    verify_done: int
    n_copies: int


def _lanczos_phases(op: Any, req: _Request, seed: int, dim: int, dtype: torch.dtype, device: torch.device) -> _Run:
    """The thick-restart Lanczos iteration with breakdown restarts and verification phases."""
    k_small, k_large, n_want, tol, loose = req.k_small, req.k_large, req.n_want, req.tol, req.loose
    max_iter, m_max, n_keep, verify_steps, start = req.max_iter, req.m_max, req.n_keep, req.verify_steps, req.start
    gen = torch.Generator().manual_seed(seed)
    eps = torch.finfo(dtype).eps
    tiny = torch.finfo(torch.float64).tiny

    Q = torch.empty(m_max, dim, dtype=dtype, device=device)
    T = torch.zeros(m_max, m_max, dtype=torch.float64)
    lost = torch.zeros(m_max, dtype=torch.float64)  # |coupling| of each basis vector to dropped directions
    Q[0] = _start_vector(start, op, dim, gen, dtype, device, use_gradient=k_large > 0)
    j = 0            # basis vectors with a complete column of T; Q[j] is the pending vector
    steps = 0
    scale = 0.0
    n_restarts = 0
    verifying = False
    verify_left = 0
    verify_total = 0
    n_copies = 0
    n_locked = 0     # during verification: Q[:n_locked] are the locked Ritz vectors, with values locked_vals
    locked_vals: torch.Tensor | None = None
    restarts_at_lock = 0
    vals = S = None
    idx: list[int] = []
    exhausted = False

    def fresh_direction(n_basis: int) -> torch.Tensor | None:
        """A random unit vector orthogonal to Q[:n_basis], or None when they span the space."""
        r = random_unit(dim, gen, dtype, device)
        for _ in range(2):
            sub_comb(r, Q[:n_basis], dot64(Q[:n_basis], r), fused=True)
        nr = norm64(r)
        if nr < 1e-6:
            return None
        return r / nr

    while steps < max_iter:
        w = op.matvec(Q[j]).to(dtype)
        steps += 1
        n_w = norm64(w)
        if not math.isfinite(n_w) and not bool(torch.isfinite(w).all()):
            raise FloatingPointError("the curvature operator returned a non-finite product")
        h = dot64(Q[: j + 1], w)
        sub_comb(w, Q[: j + 1], h, fused=True)
        beta = norm64(w)
        if beta < 0.7071 * n_w:  # DGKS: the first pass cancelled most of w, so repeat it once
            h2 = dot64(Q[: j + 1], w)
            sub_comb(w, Q[: j + 1], h2, fused=True)
            h += h2
            beta = norm64(w)
        T[: j + 1, j] = h
        T[j, : j + 1] = h
        j += 1
        vals, S = torch.linalg.eigh(T[:j, :j])
        scale = max(scale, float(vals.abs().max()))
        idx = _wanted(j, k_small, k_large)
        sc = max(scale, tiny)
        broke = beta <= 100 * eps * sc
        last = 0.0 if broke else beta
        est = last * S[j - 1, idx].abs() + lost[:j].abs() @ S[:, idx].abs()
        if broke:
            lost[j - 1] += beta  # the dropped coupling stays in the residual bound
        allow = roundoff_allowance(j, eps, sc)  # what the recurrence cannot see (reported at loose tols)
        converged = len(idx) == n_want and bool((est <= max(tol * sc - allow, 0.5 * tol * sc)).all())

        found = False
        if verifying:
            verify_left -= 1
            if verify_left <= 0:
                # A copy (or a pair the first start vector missed) is a wanted Ritz vector lying mostly
                # in the fresh directions that moves the wanted values by more than the tolerance (by
                # interlacing they only move outwards). A displacement within tol leaves every locked
                # value within tol of the truth; the locked vectors' own refinement moves little
                # weight into the fresh directions.
                fresh = (S[n_locked:, idx] ** 2).sum(0) > 0.5
                moved = bool(((vals[idx] - locked_vals).abs() > tol * sc).any())  # type: ignore[operator]
                found = moved and bool(fresh.any())
                if not found:
                    if converged:
                        break  # the current pairs refine the locked ones
                    if n_restarts == restarts_at_lock:
                        j = n_locked  # return the locked pairs: their couplings are still in lost
                        break
                    # a restart during verification rewrote the locked vectors: converge the current ones
        if converged and (not verifying or found):
            if found:
                n_copies += int(fresh.sum())
            vs = verify_steps if verify_steps is not None else max(4 if loose else 8, steps // 6)
            if vs == 0 or n_want >= dim or exhausted:
                break
            # Lock the wanted Ritz vectors and continue from a fresh direction orthogonal to them.
            j = _thick_restart(Q, T, lost, j, vals, S, idx, last=last)
            r = fresh_direction(j)
            if r is None:
                break
            Q[j] = r
            n_locked, locked_vals = j, vals[idx].clone()
            verifying, verify_left = True, vs
            verify_total += vs
            n_restarts += 1
            restarts_at_lock = n_restarts
            continue

        if broke:
            if j >= dim:
                exhausted = True
                break
            r = fresh_direction(j)
            if r is None:
                exhausted = True
                break
            if j == m_max:
                # Full basis at a breakdown: keep the wanted + neighbours, then the new direction.
                j = _thick_restart(Q, T, lost, j, vals, S, _keep(j, k_small, k_large, n_keep))
                n_restarts += 1
                r = fresh_direction(j)
                if r is None:
                    exhausted = True
                    break
            Q[j] = r
            continue

        w /= beta
        if j == m_max:
            j = _thick_restart(Q, T, lost, j, vals, S, _keep(j, k_small, k_large, n_keep))
            n_restarts += 1
        Q[j] = w
        del w

    assert vals is not None and S is not None
    if S.shape[0] != j:
        # The loop ended right after a lock or restart (step budget, or no fresh direction left), or a
        # verification that found nothing returned the locked pairs: the Ritz pairs are those of the
        # kept basis, whose couplings to dropped directions are in lost.
        vals, S = torch.linalg.eigh(T[:j, :j])
        idx = _wanted(j, k_small, k_large)
        last = 0.0
    verify_done = min(verify_total, verify_total - max(verify_left, 0)) if verify_total else 0
    return _Run(Q=Q, lost=lost, j=j, vals=vals, S=S, idx=idx, last=last, steps=steps, scale=scale,
                n_restarts=n_restarts, verify_done=verify_done, n_copies=n_copies)


def _result(op: Any, req: _Request, run: _Run, n0: int, dtype: torch.dtype, device: torch.device,
            explicit_residuals: bool | None, curvature: str) -> EigResult:
    """Ritz vectors of the final basis, their (explicit or estimated) residuals, sorted: the result."""
    Q, lost, j, vals, S, idx, last, scale = run.Q, run.lost, run.j, run.vals, run.S, run.idx, run.last, run.scale
    steps, n_restarts, verify_done, n_copies = run.steps, run.n_restarts, run.verify_done, run.n_copies
    del run
    eps = torch.finfo(dtype).eps
    tiny = torch.finfo(torch.float64).tiny
    vectors = combine(Q[:j], S[:, idx])
    del Q
    ritz = vals[idx].clone()
    for i in range(vectors.shape[1]):
        vectors[:, i] /= norm64(vectors[:, i])
    if explicit_residuals is None:
        explicit_residuals = not req.loose
    if explicit_residuals:
        values = torch.empty(len(idx), dtype=torch.float64)
        residuals = torch.empty(len(idx), dtype=torch.float64)
        for i in range(len(idx)):
            y = vectors[:, i]
            hy = op.matvec(y).to(dtype)
            lam = float(dot64(y[None], hy)[0])
            values[i] = lam
            sub_comb(hy, y[None], torch.tensor([lam], dtype=torch.float64), fused=True)
            residuals[i] = norm64(hy)
            del hy
    else:
        values = ritz.clone()
        residuals = (last * S[j - 1, idx].abs() + lost[:j].abs() @ S[:, idx].abs()
                     + roundoff_allowance(j, eps, max(scale, float(values.abs().max())))).clone()
    scale = max(scale, float(values.abs().max()))
    converged = residuals <= req.tol * max(scale, tiny)
    order = torch.argsort(values)
    out_dtype = dtype if dtype.is_floating_point else torch.float64
    return EigResult(
        values=values[order].to(out_dtype), vectors=vectors[:, order.to(device)].contiguous(),
        residuals=residuals[order].to(out_dtype), converged=converged[order],
        n_hvp=op.n_matvec - n0, n_iter=steps, tol=req.tol, scale=scale, which=req.which,
        ritz_values=ritz.to(out_dtype), curvature=curvature, max_basis=req.m_max, n_restarts=n_restarts,
        verify_steps=verify_done, n_copies_found=n_copies,
    )
