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

from ..defaults import (CURVATURE_BAND_FACTOR, CURVATURE_CHANGE_STEPS, NEWTON_CONTINUATION_STEPS, REGIME_RATIO_SLACK,
                        STIFF_FACTOR, SUFFICIENT_DECREASE)
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
            contraction of the steps — the remaining distance of a linearly converging sequence; 0
            when g(θ_K) = 0).
        n_steps: accepted Newton steps. q: the contraction, measured over steps of one regime only
            (:func:`regime_contraction`), else None.
        change: ‖H(θ_K) − H(θ)‖₂.
        n_relax: the steps that took the stiff part of the Newton step alone, its soft part leaving
            the region where the quadratic model holds (:func:`continuation_step`).

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
    n_relax: int = 0

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


def regime_contraction(lens: list[float], regimes: list[str]) -> float | None:
    """The contraction q of the Newton continuation, measured over steps of one regime only, or None.

    Issue 21, mechanism (a): near a degenerate critical point the first step(s) remove the
    non-degenerate part of the gradient (quadratic convergence) and the steps after them contract
    linearly, by q = (k − 2)/(k − 1) at order k. The ratio of a non-degenerate step to a degenerate
    one compares unlike steps: it is small, looks quadratic and makes the distance left,
    q/(1 − q) × the last step, tiny (y² + x³ at (−1e-6, 1e-6): q = 0.22 instead of 1/2, and the 6x
    eigenvalue, which vanishes at the critical point, was "confirmed" negative). So q is measured
    only when the last two steps are of one kind (:func:`continuation_step`'s regime: ``"plain"`` or
    ``"soft"``; a ``"relax"`` step measures nothing), as r_K = l_K/l_{K−1}; when the step before them
    is of the same kind too, its ratio r_{K−1} must agree, r_K ≤ REGIME_RATIO_SLACK·r_{K−1} (a linear
    regime: equal ratios; a quadratic one: shrinking ratios; a growing ratio is a change of regime
    still under way: nothing measured), and q = max(r_{K−1}, r_K).

    Args:
        lens: the accepted step lengths (parameter units), in order.
        regimes: their regimes (``"plain"``, ``"soft"`` or ``"relax"``), same length.

    Returns:
        q, or None when it is not measured.

    Example:
        >>> regime_contraction([1e-6, 5e-7, 2.5e-7], ["soft"] * 3)
        0.5
        >>> regime_contraction([1e-6, 2e-9, 1e-9], ["plain", "soft", "soft"])     # unlike steps: only the last two
        0.5
        >>> regime_contraction([1e-6, 1e-9], ["plain", "soft"]) is None
        True
    """
    if len(lens) < 2 or regimes[-1] != regimes[-2] or regimes[-1] == "relax":
        return None
    r2 = lens[-1] / lens[-2]
    if len(lens) >= 3 and regimes[-3] == regimes[-1]:
        r1 = lens[-2] / lens[-3]
        if r2 > REGIME_RATIO_SLACK * r1:
            return None
        return max(r1, r2)
    return r2


def _trial_state(cur: PointState, cand: torch.Tensor) -> PointState | None:
    try:
        return PointState.first_order(cur.obj, cand)
    except NonFiniteError:
        return None


def continuation_step(cur: PointState, method: str, roundoff: float, scale: float, max_len: float
                      ) -> tuple[PointState, float, str] | None:
    """One step of the Newton continuation from θ_k = ``cur``: (state at θ_{k+1}, step length, regime), or None.

    The full Newton step p (every eigen-direction above ``roundoff`` inverted) is tried first. Issue
    21, mechanism (b): where the directions it inverts differ widely in curvature, its weakly curved
    ("soft") part must stay in the region where the quadratic model of the loss holds. With
    c_p = ‖H p̂‖ the curvature scale of the step's direction, directions curved more than
    :data:`landscape.defaults.STIFF_FACTOR`·c_p are "stiff" (their Newton step p_s converges
    quadratically) and p − p_s is the soft step, of direction û. The model says the soft step
    removes the gradient's soft component ûᵀg; the step is accepted (``"soft"``) only if that
    component falls, |ûᵀg'| ≤ SUFFICIENT_DECREASE·|ûᵀg|, while the rest of the gradient grows no more
    than 2·its size + |ûᵀg| + its round-off 10·ε·Λ·‖θ‖ — judged at θ + t·p, then after relaxing the
    stiff directions there (one chord-Newton step with H(θ_k)), so that a step along a curved valley
    (Peano's y = (α+β)x²/2, a·z⁴ + d·y² + e·z²·y's y = −e z²/(2d)) is judged on the valley. The soft
    component is resolved far below the round-off of the stiff gradient, so the continuation keeps
    approaching a quartic point from 1e-6 where ‖g‖ itself is at round-off. A near-null eigenvalue
    (~1e-12·Λ) inverted while cross terms put a first-order gradient component along it sends p a
    thousand times past the critical point, where the soft component is a million times larger:
    rejected; the step is then the stiff part alone (``"relax"``: the stiff part of the gradient
    must fall by 10 %), which removes the cross terms' gradient, and the next step inverts the soft
    directions again, driven by the reduced gradient. (Before, such a step was accepted because ‖g‖
    — its stiff part — still fell: y² − 0.3x⁴ − 0.7x³y − 0.75xy² at (1e-6, 1e-6) jumped to
    |x| ≈ 1e-2, the curvature band grew to 2e-3·Λ and hid the x⁴ descent from the probe.) Without
    stiff directions the step is ``"plain"``: ‖g‖ must fall to SUFFICIENT_DECREASE·‖g‖ (issue 21 (c):
    a change at round-off is no step). Each trial is halved up to three times and is at most
    ``max_len`` long; a step below the round-off of θ (10·ε·‖θ‖) is no step. Trial points get a
    first-order state; the accepted one keeps it (dense path: rebuilt with its dense Hessian), so
    each point's Hessian is built once.

    Args:
        cur: the state at θ_k (dense path: with its dense Hessian).
        method: ``"dense"`` or ``"lanczos"``.
        roundoff: eigenvalues (singular values) at most this are not inverted (curvature units).
        scale: the spectral scale Λ (curvature units).
        max_len: the longest step (parameter units).

    Returns:
        ``(state at θ_{k+1}, step length, regime)`` with regime ``"plain"``, ``"soft"`` or ``"relax"``,
        or None when no step brings the gradient down.

    Example (y² + x³ at (−1e-6, 1e-6): one step removes y and halves x; the next, with y's stiff
    curvature 2 against 6|x|, is soft):
        >>> import torch, landscape as ls
        >>> from landscape.point import PointState
        >>> obj = ls.Objective.from_function(lambda v: v[1] ** 2 + v[0] ** 3, torch.zeros(2, dtype=torch.float64))
        >>> st = PointState.with_dense_hessian(obj, torch.tensor([-1e-6, 1e-6], dtype=torch.float64))
        >>> nxt, length, regime = continuation_step(st, "dense", 1e-15, 2.0, 0.1)
        >>> regime, [f"{x:.3g}" for x in nxt.theta.tolist()]
        ('plain', ['-5e-07', '0'])
        >>> nxt, length, regime = continuation_step(PointState.with_dense_hessian(obj, nxt.theta), "dense", 1e-15, 2.0, 0.1)
        >>> regime, f"{length:.3g}"
        ('soft', '2.5e-07')
    """
    th, gk, gn = cur.theta, cur.grad, cur.grad_norm
    eps = torch.finfo(th.dtype).eps
    floor = 10.0 * eps * float(torch.linalg.vector_norm(th))
    p = newton_step(cur, method, roundoff, scale)
    pn = float(torch.linalg.vector_norm(p))
    if pn <= floor or not math.isfinite(pn):
        return None
    Hu = cur.hessian @ (p / pn) if method == "dense" else cur.hessian_operator.matvec(p / pn)
    tau = STIFF_FACTOR * float(torch.linalg.vector_norm(Hu))
    if method == "dense":
        ev, U = cur.hessian_eigh()
        has_stiff = bool((ev.abs() > tau).any())
        stiff_inv = torch.where(ev.abs() > tau, 1.0 / ev, torch.zeros_like(ev))

        def stiff_step(v: torch.Tensor) -> torch.Tensor:
            return -(U @ (stiff_inv * (U.T @ v)))
    else:
        has_stiff = tau < scale

        def stiff_step(v: torch.Tensor) -> torch.Tensor:
            return minres_solve(cur.hessian_operator.matvec, -v, scale=scale, cutoff=tau)[0]

    ps = stiff_step(gk) if has_stiff else torch.zeros_like(p)
    soft_p = p - ps
    sn = float(torch.linalg.vector_norm(soft_p))
    if pn > max_len:
        p, pn = p * (max_len / pn), max_len
    ts = (1.0, 0.5, 0.25, 0.125)
    if not has_stiff or sn <= floor:
        for t in ts:
            if t * pn <= floor:
                break
            nxt = _trial_state(cur, th + t * p)
            if nxt is not None and nxt.grad_norm <= SUFFICIENT_DECREASE * gn:
                return nxt, t * pn, "plain"
        return None
    u = soft_p / sn

    def split(v: torch.Tensor) -> tuple[float, float]:
        c = float(torch.dot(u, v))
        return abs(c), float(torch.linalg.vector_norm(v - c * u))

    so0, st0 = split(gk)
    # the rest of the gradient may grow by its round-off (H times the rounding of θ) and the soft component
    allow = 2.0 * st0 + so0 + 10.0 * eps * scale * float(torch.linalg.vector_norm(th))

    def passes(st: PointState | None) -> bool:
        if st is None:
            return False
        so, rest = split(st.grad)
        return so <= SUFFICIENT_DECREASE * so0 and rest <= allow

    for t in ts:
        if t * pn <= floor:
            break
        nxt = _trial_state(cur, th + t * p)
        if nxt is None:
            continue
        if passes(nxt):
            return nxt, t * pn, "soft"
        try:
            cand2 = nxt.theta + stiff_step(nxt.grad)  # relax the stiff directions: judge the step on the valley
        except NonFiniteError:
            continue
        nxt2 = _trial_state(cur, cand2)
        if passes(nxt2):
            return nxt2, float(torch.linalg.vector_norm(cand2 - th)), "soft"
    # The soft step leaves the region where the model holds: take the stiff part alone.
    psn = float(torch.linalg.vector_norm(ps))
    if psn <= floor or not math.isfinite(psn):
        return None
    if psn > max_len:
        ps, psn = ps * (max_len / psn), max_len
    for t in ts:
        if t * psn <= floor:
            break
        nxt = _trial_state(cur, th + t * ps)
        if nxt is not None and split(nxt.grad)[1] <= SUFFICIENT_DECREASE * st0 and nxt.grad_norm < gn:
            return nxt, t * psn, "relax"
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
    degenerate point hides its distance) as long as the step stays where the quadratic model of the
    loss holds (:func:`continuation_step`: otherwise its stiff part alone); each step is halved up
    to three times until its gradient measure falls by 10 % (and is at most 0.1·s long, s the
    parameter scale, so a split gauge zero cannot send it far); at most
    :data:`landscape.defaults.NEWTON_CONTINUATION_STEPS` steps or until ‖g‖ has fallen below 1e-3
    of its start *and* the contraction is measured over steps of one regime
    (:func:`regime_contraction`). Near a non-degenerate θ* the steps shrink quadratically; near a
    degenerate one linearly (ratio q = (k−2)/(k−1) at order k): the distance still to go is
    q/(1 − q) times the last step; without a measured q it is bounded by 10 × the curvature change
    over the whole path. (Issue 21 items (a)–(d), CLASSIFY_FIX_NOTES.md on branch classify-robust.)

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
    regimes: list[str] = []
    for _ in range(NEWTON_CONTINUATION_STEPS):
        try:
            step = continuation_step(cur, method, roundoff, scale, max_len)
            if step is None:
                break
            nxt, step_len, regime = step
            if method == "dense":
                nxt = PointState.with_dense_hessian(state.obj, nxt.theta)
        except NonFiniteError:
            break
        prev, cur, gn = cur, nxt, nxt.grad_norm
        lens.append(step_len)
        regimes.append(regime)
        if gn == 0.0 or (gn <= 1e-3 * g0 and regime_contraction(lens, regimes) is not None):
            break
    if not lens:
        return _unmoved(state, method, roundoff)
    try:
        end_loss = float(state.obj.loss(cur.theta))
        total = hessian_change(_hessian(state, method), _hessian(cur, method), method)
        last = total if len(lens) == 1 else hessian_change(_hessian(prev, method), _hessian(cur, method), method)
    except NonFiniteError:
        return NewtonPath(band=math.inf)
    q = regime_contraction(lens, regimes)  # issue 21 (a): None unless the last steps are of one regime
    if gn == 0.0:
        remaining = 0.0
    elif q is None or q >= 0.9:
        # No measured contraction: the distance left is not bounded by the steps. Issue 21 (d): 10 × the
        # change over the whole path, not over the last step alone — that step may be a short one of
        # another regime (a stiff relaxation, a step at the gradient's round-off), and a tiny "last"
        # made θ_K's own uncertainty tiny: any curvature there "disagreed" or was "confirmed".
        remaining = 10.0 * max(last, total)
    else:
        remaining = last * q / (1.0 - q)
    gap = max(abs(float(torch.dot(state.grad, cur.theta - state.theta))), abs(state.loss - end_loss))
    return NewtonPath(band=CURVATURE_BAND_FACTOR * (total + remaining), gap=gap, end=cur, g_ratio=gn / g0,
                      end_uncertainty=CURVATURE_BAND_FACTOR * remaining, n_steps=len(lens), q=q, change=total,
                      n_relax=regimes.count("relax"))


def direction_band(state: PointState, path: NewtonPath, method: str, D: torch.Tensor) -> torch.Tensor:
    """The curvature band along each of the unit directions ``D`` (k, dim): how far dᵀH(θ)d can be from dᵀH(θ*)d.

    The band of the spectrum, CURVATURE_BAND_FACTOR·(‖H(θ_K) − H(θ)‖₂ + remaining), bounds every
    eigenvalue's change, and is dominated by the stiff directions' change when the continuation
    moves along them (a deep linear plateau: ‖ΔH‖ = 0.07 while the near-null block changes by 1e-4).
    A straight-line probe along a fixed d needs only the change of its own quadratic coefficient,
    |dᵀ(H(θ_K) − H(θ))d|, extrapolated to the critical point as the band is: times the band's own
    ratio band/‖H(θ_K) − H(θ)‖₂ = CURVATURE_BAND_FACTOR·(1 + remaining/change) (the remaining
    distance from the contraction q, or the 10 × whole-path rule without it). Without a
    continuation (θ critical to the precision of g, or no step possible) it is the band itself.

    Args:
        state: the point θ (its dense Hessian or Hessian operator). path: the continuation from θ.
        method: ``"dense"`` or ``"lanczos"``. D: (k, dim) unit directions.

    Returns:
        (k,) curvature uncertainties (curvature units), float64 on the CPU.

    Example (x² + y⁴ at (0, 1e-3): the continuation moves y only; the band along x is 0, along y the band):
        >>> import torch, landscape as ls
        >>> from landscape.point import PointState
        >>> obj = ls.Objective.from_function(lambda v: v[0] ** 2 + v[1] ** 4, torch.zeros(2, dtype=torch.float64))
        >>> st = PointState.dense(obj, torch.tensor([0.0, 1e-3], dtype=torch.float64))
        >>> path = newton_continuation(st, "dense", 1e-15)
        >>> b = direction_band(st, path, "dense", torch.eye(2, dtype=torch.float64))
        >>> float(b[0]), bool(0 < float(b[1]) <= path.band)
        (0.0, True)
    """
    k = D.shape[0]
    if path.end is None:
        return torch.full((k,), float(path.band), dtype=torch.float64)
    try:
        H0D = _hessian(state, method) @ D.T if method == "dense" else state.hessian_operator.matmat(D.T)
        HKD = _hessian(path.end, method) @ D.T if method == "dense" else path.end.hessian_operator.matmat(D.T)
    except NonFiniteError:
        return torch.full((k,), math.inf, dtype=torch.float64)
    total = (D.T * (HKD - H0D)).sum(0).abs().to(torch.float64).cpu()
    if not path.change > 0:
        return torch.full((k,), float(path.band), dtype=torch.float64)
    return total * (path.band / path.change)


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
