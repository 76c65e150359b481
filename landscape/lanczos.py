"""Torch-native Lanczos for extreme Hessian eigenpairs.

Runs on the objective's device with full Gram-Schmidt reorthogonalisation (a second pass when the
first cancels most of the vector), so no ghost eigenvalues appear and both ends of the spectrum
converge in one Krylov space. On an
invariant subspace (breakdown, e.g. a Hessian of low rank or a repeated eigenvalue) it restarts
from a fresh random vector orthogonal to the basis, so repeated extreme eigenvalues are found.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .results import JsonResult

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EigResult(JsonResult):
    """Eigenpairs of the Hessian, eigenvalues ascending.

    ``values`` (m,), ``vectors`` (dim, m) unit columns, ``residuals`` (m,) = ‖H v − λ v‖ computed
    explicitly, ``converged`` (m,) bool: residual ≤ ``tol`` · ``scale``, where ``scale`` is the
    spectral-norm estimate max|Ritz value|. ``n_hvp`` counts Hessian-vector products,
    ``n_iter`` the Krylov dimension reached.
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

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("vectors")  # (dim, m) belongs in an .npz, not in JSON
        return d


@dataclass
class LanczosRun:
    """Raw output of :func:`lanczos`: ``alpha`` (m,), ``beta`` (m−1,), basis ``Q`` (m, dim)."""

    alpha: torch.Tensor
    beta: torch.Tensor
    Q: torch.Tensor
    last_beta: float
    n_matvec: int

    def tridiagonal(self) -> torch.Tensor:
        T = torch.diag(self.alpha)
        if self.beta.numel():
            T += torch.diag(self.beta, 1) + torch.diag(self.beta, -1)
        return T


def random_unit(dim: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A seeded random unit vector (dim,), drawn on the CPU so a seed gives the same vector on every device."""
    v = torch.randn(dim, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return v / torch.linalg.vector_norm(v)


def lanczos(
    matvec: MatVec,
    v0: torch.Tensor,
    max_steps: int,
    *,
    reorth: str = "full",
    generator: torch.Generator | None = None,
    stop: Callable[[torch.Tensor, torch.Tensor, float], bool] | None = None,
    check_every: int = 5,
) -> LanczosRun:
    """Run up to ``max_steps`` Lanczos steps on a symmetric operator from start vector ``v0``.

    ``reorth="full"`` re-orthogonalises every new vector against the whole basis (a second
    pass when the first cancels most of it);
    ``"none"`` is the plain three-term recurrence (enough for spectral densities).
    ``stop(alpha, beta, last_beta)`` is polled every ``check_every`` steps; True ends the run.
    Breakdowns restart from a random vector orthogonal to the basis (``generator`` seeds it).
    """
    if reorth not in ("full", "none"):
        raise ValueError(f"reorth must be 'full' or 'none', got {reorth!r}")
    dim = v0.numel()
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not bool(torch.isfinite(v0).all()) or float(torch.linalg.vector_norm(v0)) == 0.0:
        raise ValueError("v0 must be a finite, non-zero start vector")
    max_steps = min(max_steps, dim)
    dtype, device = v0.dtype, v0.device
    generator = generator or torch.Generator().manual_seed(0)
    eps = torch.finfo(dtype).eps
    Q = torch.empty(max_steps, dim, dtype=dtype, device=device)
    alpha = torch.zeros(max_steps, dtype=torch.float64)
    beta = torch.zeros(max_steps, dtype=torch.float64)
    Q[0] = v0 / torch.linalg.vector_norm(v0)
    scale = 0.0
    steps = 0
    for j in range(max_steps):
        w = matvec(Q[j])
        steps = j + 1
        a = torch.dot(w, Q[j])
        w = w - a * Q[j]
        if j > 0:
            w = w - beta[j - 1].item() * Q[j - 1]
        if reorth == "full":
            # Classical Gram-Schmidt against the whole basis, repeated only when the pass
            # cancelled most of w (DGKS criterion): one pass usually suffices after the
            # three-term recurrence, and each pass reads all of Q twice.
            for _ in range(2):
                n_before = torch.linalg.vector_norm(w)
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
                if float(torch.linalg.vector_norm(w)) >= 0.7071 * float(n_before):
                    break
        alpha[j] = a.item()
        b = torch.linalg.vector_norm(w).item()
        scale = max(scale, abs(alpha[j].item()) + b + (beta[j - 1].item() if j else 0.0))
        if j + 1 == max_steps:
            beta[j] = b
            break
        if b <= 10 * eps * max(scale, 1e-300) * (1 + dim ** 0.5):
            # Invariant subspace: continue with a fresh direction orthogonal to the basis.
            r = random_unit(dim, generator, dtype, device)
            for _ in range(2):
                r = r - Q[: j + 1].T @ (Q[: j + 1] @ r)
            nr = torch.linalg.vector_norm(r).item()
            if nr < 1e-8:
                beta[j] = 0.0
                break
            beta[j] = 0.0
            Q[j + 1] = r / nr
        else:
            beta[j] = b
            Q[j + 1] = w / b
        if stop is not None and (j < 40 or (j + 1) % check_every == 0):
            if stop(alpha[: j + 1], beta[:j], beta[j].item()):
                break
    return LanczosRun(alpha=alpha[:steps].clone(), beta=beta[: steps - 1].clone(), Q=Q[:steps],
                      last_beta=float(beta[steps - 1]), n_matvec=steps)


def _wanted(m: int, k_small: int, k_large: int) -> list[int]:
    idx = list(range(min(k_small, m))) + list(range(max(m - k_large, 0), m))
    return sorted(set(idx))


def extreme_eigs(
    obj: "Objective",
    theta: torch.Tensor,
    k: int | tuple[int, int] = 1,
    which: str = "both",
    *,
    tol: float | None = None,
    max_iter: int | None = None,
    seed: int = 0,
    operator=None,
) -> EigResult:
    """Extreme Hessian eigenpairs at ``theta`` by Lanczos.

    ``which="largest"``/``"smallest"``: the ``k`` algebraically largest/smallest eigenpairs;
    ``"both"``: ``k`` from each end (or ``k=(k_smallest, k_largest)``) in one Krylov run.
    A pair is converged when ‖Hv − λv‖ ≤ ``tol``·‖H‖ (default tol: 1e-8 in float64, 1e-4 in
    float32). ``max_iter`` bounds the Krylov dimension of each run (default ``min(dim, 400)``);
    memory is ``max_iter × dim`` numbers. Repeated eigenvalues are found with their multiplicity
    by verification runs on the deflated Hessian (``n_iter`` sums the steps of all runs).
    ``operator`` may pass a prepared :class:`HessianOperator`.
    """
    if which not in ("both", "largest", "smallest"):
        raise ValueError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
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
    if k_small + k_large > obj.dim:
        raise ValueError(f"asked for {k_small + k_large} eigenpairs (k={k}, which={which!r}) "
                         f"but the Hessian has dim {obj.dim}")
    if tol is None:
        tol = 1e-8 if obj.dtype == torch.float64 else 1e-4
    if not (0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    max_iter = min(obj.dim, max_iter if max_iter is not None else 400)
    if max_iter < k_small + k_large:
        raise ValueError(f"max_iter={max_iter} is smaller than the {k_small + k_large} eigenpairs asked for")

    op = operator if operator is not None else obj.hvp_operator(theta)
    n0 = op.n_matvec
    gen = torch.Generator().manual_seed(seed)
    dtype, device = obj.dtype, obj.device

    def run_once(matvec, v0: torch.Tensor, ks: int, kl: int, steps: int
                 ) -> tuple[torch.Tensor, torch.Tensor, int, float, bool]:
        """One Lanczos run: wanted Ritz values (ascending), vectors (dim, w), steps, max |Ritz value|,
        and whether the wanted Ritz values met the stopping test."""
        def stop(alpha: torch.Tensor, beta: torch.Tensor, last_beta: float) -> bool:
            m = alpha.numel()
            if m < ks + kl:
                return False
            T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
            vals, S = torch.linalg.eigh(T)
            sc = float(vals.abs().max())
            est = (last_beta * S[-1, :]).abs()
            return bool((est[_wanted(m, ks, kl)] <= 0.1 * tol * sc).all())

        run = lanczos(matvec, v0, steps, reorth="full", generator=gen, stop=stop)
        vals, S = torch.linalg.eigh(run.tridiagonal())
        idx = _wanted(vals.numel(), ks, kl)
        vecs = run.Q.T @ S[:, idx].to(dtype=dtype, device=device)
        vecs = vecs / torch.linalg.vector_norm(vecs, dim=0, keepdim=True)
        sc = float(vals.abs().max())
        ok = bool(((run.last_beta * S[-1, idx]).abs() <= 0.1 * tol * sc).all())
        return vals[idx], vecs, vals.numel(), sc, ok

    v0 = random_unit(obj.dim, gen, dtype, device)
    values, vectors, n_iter, ritz_scale, ok = run_once(op.matvec, v0, k_small, k_large, max_iter)
    first_steps = n_iter

    # One start vector's Krylov space holds one vector per eigenspace: a repeated eigenvalue
    # shows up once (further copies only through round-off). So verify: run Lanczos again on the
    # Hessian deflated by the pairs found, (I − VVᵀ) H (I − VVᵀ), converging only its extreme
    # eigenpair at each wanted end: it is a further copy if it is at least as extreme as the
    # wanted values (then merge and repeat), else nothing was missed. A copy would converge about
    # as fast as its twin did in the first run, so a verification run is capped at that length.
    verify_steps = min(max_iter, first_steps + 10)
    for _ in range(k_small + k_large):
        if not ok or first_steps >= obj.dim or vectors.shape[1] + k_small + k_large > obj.dim:
            break
        V = vectors

        def deflated(x: torch.Tensor, V: torch.Tensor = V) -> torch.Tensor:
            x = x - V @ (V.T @ x)
            y = op.matvec(x)
            return y - V @ (V.T @ y)

        v0 = random_unit(obj.dim, gen, dtype, device)
        v0 = v0 - V @ (V.T @ v0)
        v0 = v0 / torch.linalg.vector_norm(v0)
        new_vals, new_vecs, steps, sc_new, ok = run_once(deflated, v0, min(k_small, 1), min(k_large, 1),
                                                         verify_steps)
        n_iter += steps
        ritz_scale = max(ritz_scale, sc_new)
        # Ritz vectors inside span(V) are artefacts of the deflation (eigenvalue 0 there): drop them.
        keep = torch.linalg.vector_norm(V.T @ new_vecs, dim=0) < 0.5
        new_vals, new_vecs = new_vals[keep.cpu()], new_vecs[:, keep]
        new_vecs = new_vecs - V @ (V.T @ new_vecs)
        new_vecs = new_vecs / torch.linalg.vector_norm(new_vecs, dim=0, keepdim=True)
        all_vals = torch.cat([values, new_vals])
        order = torch.argsort(all_vals)
        pick = _wanted(all_vals.numel(), k_small, k_large)
        chosen = order[pick]
        sc = max(ritz_scale, torch.finfo(dtype).tiny)
        changed = (chosen.numel() != values.numel()
                   or float((all_vals[chosen] - values).abs().max()) > tol * sc)
        values = all_vals[chosen]
        vectors = torch.cat([vectors, new_vecs], dim=1)[:, chosen.to(device)]
        if not changed:
            break
        ok = True  # a copy entered: look for another one

    m = n_iter
    # Rayleigh quotients are at least as accurate as the Ritz values; residuals are explicit.
    HV = torch.stack([op.matvec(vectors[:, i]) for i in range(vectors.shape[1])], dim=1)
    ritz = values
    values = (vectors * HV).sum(0)
    residuals = torch.linalg.vector_norm(HV - vectors * values, dim=0)
    scale = max(ritz_scale, float(values.abs().max()))
    converged = residuals <= tol * max(scale, torch.finfo(obj.dtype).tiny)
    order = torch.argsort(values)
    return EigResult(
        values=values[order].cpu(), vectors=vectors[:, order], residuals=residuals[order].cpu(),
        converged=converged[order].cpu(), n_hvp=op.n_matvec - n0, n_iter=m, tol=tol, scale=scale,
        which=which, ritz_values=ritz,
    )
