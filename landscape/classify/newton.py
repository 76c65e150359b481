"""The Newton continuation towards the nearby critical point, and the in-band eigenvalues judged at its end.

At a point that is critical only approximately (g ≠ 0) the Hessian differs from the one at the
nearby exact critical point θ*. :func:`newton_continuation` takes full Newton steps towards θ*
(every eigen-direction above round-off inverted) and measures how much the Hessian changes on the
way (the *curvature band*) and how fast the steps contract (the distance still to go);
:func:`confirm_in_band` judges eigenvalues inside the band at the continuation's end θ_K by
Rayleigh–Ritz values (see :mod:`landscape.classify.recipe`, step 3). Every point on the way is a
:class:`landscape.point.PointState`, so each point's Hessian (operator or dense) is built once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..defaults import CURVATURE_BAND_FACTOR, CURVATURE_CHANGE_STEPS, NEWTON_CONTINUATION_STEPS
from ..errors import NonFiniteError
from ..linalg import lanczos, minres_solve, random_unit
from ..operators import make_operator
from ..point import PointState, loss_grad_dense_hessian


@dataclass(frozen=True)
class NewtonPath:
    """The Newton continuation from θ towards the nearby critical point (:func:`newton_continuation`).

    Attributes:
        band: CURVATURE_BAND_FACTOR·(‖H(θ_K) − H(θ)‖₂ + ``remaining``), the curvature uncertainty at
            θ (curvature units).
        gap: the loss gap to the end point, max(|gᵀ(θ_K − θ)|, |L(θ) − L(θ_K)|) (loss units).
        end: the state at θ_K (None when no step brought ‖g‖ down).
        g_ratio: ‖g(θ_K)‖/‖g(θ)‖.
        end_uncertainty: how far the eigenvalues at θ_K can still be from those at the critical
            point (CURVATURE_BAND_FACTOR × the curvature change over the last step × q/(1 − q), q the
            ratio of the last two step lengths — the remaining distance of a linearly converging
            sequence; 0 when g(θ_K) = 0).
        n_steps: accepted Newton steps. q: the ratio of the last two step lengths (None: < 2 steps).
        change: ‖H(θ_K) − H(θ)‖₂.

    Example: see :func:`newton_continuation`.
    """

    band: float = 0.0
    gap: float = 0.0
    end: PointState | None = None
    g_ratio: float = 1.0
    end_uncertainty: float = math.inf
    n_steps: int = 0
    q: float | None = None
    change: float = 0.0

    @property
    def contraction_measured(self) -> bool:
        """True when the distance left is measured: g(θ_K) = 0, or the last two steps contracted (q < 0.9)."""
        return self.end is not None and (self.g_ratio == 0.0 or (self.q is not None and self.q < 0.9))


def newton_step(state: PointState, method: str, cut: float, scale: float) -> torch.Tensor:
    """The min-norm Newton step −H⁺g at ``state``, eigenvalues (dense) or singular values (MINRES) ≤ ``cut`` not inverted.

    Args:
        state: the point (dense path: with its dense Hessian, whose eigh is computed once).
        method: ``"dense"`` or ``"lanczos"`` (MINRES on the Hessian operator).
        cut: the cut-off (curvature units).
        scale: the spectral scale ‖H‖ for MINRES's truncation.

    Returns:
        The step p, shape ``(dim,)``.

    Example:
        >>> import torch, landscape as ls
        >>> from landscape.point import PointState
        >>> obj = ls.Objective.from_function(lambda x: (x[0] - 1) ** 2 + 0 * x[1], torch.zeros(2, dtype=torch.float64))
        >>> p = newton_step(PointState.dense(obj, obj.initial_point()), "dense", 1e-12, 2.0)   # x₂ null: not inverted
        >>> [float(x) + 0.0 for x in p]
        [1.0, 0.0]
    """
    if method == "dense":
        ev, U = state.hessian_eigh()
        inv = torch.where(ev.abs() > cut, 1.0 / ev, torch.zeros_like(ev))
        return -(U @ (inv * (U.T @ state.grad)))
    return minres_solve(state.hessian_operator.matvec, -state.grad, scale=scale, cutoff=cut)[0]


def hessian_change(a, b, method: str) -> float:
    """‖H(b) − H(a)‖₂: dense (``a``, ``b`` dense Hessians) exactly; else (operators) by
    :data:`landscape.defaults.CURVATURE_CHANGE_STEPS` seeded Lanczos steps on the difference.

    Args:
        a, b: dense Hessians (dim, dim), or Hessian operators.
        method: ``"dense"`` or ``"lanczos"``.

    Returns:
        The spectral norm of the difference (curvature units).

    Example:
        >>> import torch
        >>> hessian_change(torch.eye(2), torch.diag(torch.tensor([1.0, -2.0])), "dense")
        3.0
    """
    if method == "dense":
        return float(torch.linalg.eigvalsh(b - a).abs().max())
    gen = torch.Generator().manual_seed(0)
    v = random_unit(a.dim, gen, a.dtype, a.device)
    run = lanczos(lambda x: b.matvec(x) - a.matvec(x), v, min(a.dim, CURVATURE_CHANGE_STEPS), reorth="full",
                  generator=gen)
    return float(torch.linalg.eigvalsh(run.tridiagonal()).abs().max())


def _hessian(state: PointState, method: str):
    return state.hessian if method == "dense" else state.hessian_operator


def _next_point(cur: PointState, p: torch.Tensor, gn: float, method: str) -> tuple[PointState, float, float] | None:
    """The first of θ + t·p, t = 1, ½, ¼, ⅛, where ‖g‖ falls below ``gn``: (state, ‖g‖, t), or None."""
    for t in (1.0, 0.5, 0.25, 0.125):
        cand = cur.theta + t * p
        try:
            nxt = (PointState.with_dense_hessian(cur.obj, cand) if method == "dense"
                   else PointState.first_order(cur.obj, cand))
        except NonFiniteError:
            continue
        gc = nxt.grad_norm
        if gc < gn:
            return nxt, gc, t
    return None


def _unmoved(state: PointState, method: str, roundoff: float) -> NewtonPath:
    """No step brings ‖g‖ down (θ is critical to the precision of g, or Newton overshoots): the
    uncertainty is that of the well-resolved Newton step (eigenvalues above √ε·Λ inverted)."""
    scale = state.spectral_scale
    try:
        p = newton_step(state, method, max(roundoff, math.sqrt(torch.finfo(state.grad.dtype).eps) * scale), scale)
        if float(torch.linalg.vector_norm(p)) == 0.0:
            return NewtonPath()
        moved = state.theta + p
        H_p = (loss_grad_dense_hessian(state.obj, moved, True)[2] if method == "dense"
               else make_operator(state.obj, moved, "hessian"))
        change = hessian_change(_hessian(state, method), H_p, method)
    except NonFiniteError:
        return NewtonPath(band=math.inf)
    return NewtonPath(band=CURVATURE_BAND_FACTOR * change, gap=abs(float(torch.dot(state.grad, p))), change=change)


def newton_continuation(state: PointState, method: str, roundoff: float) -> NewtonPath:
    """Newton steps from θ towards the nearby exact critical point θ*.

    Every eigen-direction above ``roundoff`` is inverted (a weakly curved direction is where a
    degenerate point hides its distance); each step is halved up to three times until ‖g‖ falls
    (and is at most 0.1·s long, s the parameter scale, so a split gauge zero cannot send it far);
    at most :data:`landscape.defaults.NEWTON_CONTINUATION_STEPS` steps or until ‖g‖ falls below
    1e-3 of its start. Near a non-degenerate θ* the steps shrink quadratically; near a degenerate
    one linearly (ratio q = (k−2)/(k−1) at order k): the ratio of the last two step lengths
    estimates the distance still to go, q/(1 − q) times the last step.

    A single step cannot tell curvature that persists at θ* from curvature that vanishes there:
    near a degenerate point along a weak direction (x⁴ + y⁴ − 1.9x²y² at (x, 0): λ_y = −3.8x²)
    the eigenvalue shrinks with every step, by a factor that the continuation measures.

    Args:
        state: the point θ with its spectrum (``spectral_scale``) and, on the dense path, its
            dense Hessian.
        method: ``"dense"`` or ``"lanczos"``.
        roundoff: the round-off band of the eigenvalues (curvature units): directions below it
            are not inverted.

    Returns:
        :class:`NewtonPath`.

    Example (y² + x³ near its degenerate saddle: the steps contract by q = 1/2):
        >>> import torch, landscape as ls
        >>> from landscape.point import PointState
        >>> obj = ls.Objective.from_function(lambda v: v[1] ** 2 + v[0] ** 3, torch.zeros(2, dtype=torch.float64))
        >>> path = newton_continuation(PointState.dense(obj, torch.tensor([-1e-5, 0.0], dtype=torch.float64)), "dense", 1e-12)
        >>> round(path.q, 9), path.contraction_measured
        (0.5, True)
    """
    g0 = state.grad_norm
    if g0 == 0.0:
        return NewtonPath(end_uncertainty=0.0)
    scale = state.spectral_scale
    max_len = 0.1 * state.param_scale
    cur, prev, gn = state, state, g0
    lens: list[float] = []
    for _ in range(NEWTON_CONTINUATION_STEPS):
        try:
            p = newton_step(cur, method, roundoff, scale)
        except NonFiniteError:
            break
        pn = float(torch.linalg.vector_norm(p))
        if pn == 0.0 or not math.isfinite(pn):
            break
        if pn > max_len:
            p, pn = p * (max_len / pn), max_len
        accepted = _next_point(cur, p, gn, method)
        if accepted is None:
            break
        prev = cur
        cur, gn, t = accepted
        lens.append(t * pn)
        if gn == 0.0 or gn <= 1e-3 * g0 and len(lens) >= 2:
            break
    if not lens:
        return _unmoved(state, method, roundoff)
    try:
        end_loss = float(state.obj.loss(cur.theta))
        total = hessian_change(_hessian(state, method), _hessian(cur, method), method)
        last = total if len(lens) == 1 else hessian_change(_hessian(prev, method), _hessian(cur, method), method)
    except NonFiniteError:
        return NewtonPath(band=math.inf)
    q = lens[-1] / lens[-2] if len(lens) >= 2 else None
    if gn == 0.0:
        remaining = 0.0
    elif q is None or q >= 0.9:
        remaining = 10.0 * last  # no measured contraction: the distance left is not bounded by the steps
    else:
        remaining = last * q / (1.0 - q)
    gap = max(abs(float(torch.dot(state.grad, cur.theta - state.theta))), abs(state.loss - end_loss))
    return NewtonPath(band=CURVATURE_BAND_FACTOR * (total + remaining), gap=gap, end=cur, g_ratio=gn / g0,
                      end_uncertainty=CURVATURE_BAND_FACTOR * remaining, n_steps=len(lens), q=q, change=total)


def confirm_in_band(end: PointState, method: str, evals: torch.Tensor, evecs: torch.Tensor, in_band: torch.Tensor,
                    conf_tol: float, zero_tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Judge the in-band eigenvalues at the end θ* of the Newton continuation.

    With V the in-band eigenvectors, μ = eig(VᵀH(θ*)V) (Rayleigh–Ritz) are paired with the sorted
    in-band λ. By Cauchy interlacing the j-th smallest eigenvalue of H(θ*) is at most μ_j, so only
    *negative* curvature can be proved this way (of either sign here). A λ is **confirmed**
    negative when μ < −``conf_tol`` (it persists to the critical point), any λ has **vanished**
    when |μ| ≤ ``zero_tol`` (a zero split by the distance to the critical point: a gauge direction,
    or curvature induced along a weak direction), and a negative λ **disagrees** when μ >
    ``conf_tol`` (no proof of positivity, but evidence that this point's curvature is not the
    critical point's).

    Args:
        end: the state at θ* (its dense Hessian, or its Hessian operator).
        method: ``"dense"`` or ``"lanczos"``.
        evals: eigenvalues at θ (m,). evecs: their eigenvectors (dim, m). in_band: mask (m,).
        conf_tol: θ*'s own uncertainty (its remaining distance to the critical point, as curvature,
            and round-off). zero_tol: ≤ conf_tol, the bound under which an eigenvalue counts as gone.

    Returns:
        ``(confirmed, disagrees, vanished)`` masks (m,).

    Example: see :func:`landscape.classify_point` (``report.tolerances["n_in_band_*"]``).
    """
    idx = torch.nonzero(in_band).flatten()
    conf, dis, zero = (torch.zeros_like(in_band) for _ in range(3))
    try:
        V = evecs[:, idx]
        HV = end.hessian @ V if method == "dense" else end.hessian_operator.matmat(V)
        mu = torch.linalg.eigvalsh(0.5 * (V.T @ HV + HV.T @ V))
    except NonFiniteError:
        return conf, dis, zero
    lam = evals[idx]
    for j, i in enumerate(torch.argsort(lam).tolist()):
        m, lv = float(mu[j]), float(lam[i])
        if m < -conf_tol:  # negative at the critical point (a positive λ here too: curvature changes sign)
            conf[idx[i]] = True
        elif abs(m) <= zero_tol:
            zero[idx[i]] = True
        elif lv < 0 and m > conf_tol:
            dis[idx[i]] = True
    return conf, dis, zero
