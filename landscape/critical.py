"""Find the critical point near a given point, and classify it (THEORY.md §1, §4).

:func:`find_critical_point` refines a point (a training stall, a perturbed analytic critical
point) towards a nearby critical point.

- ``method="newton-mr"`` (Roosta, Liu, Xu & Mahoney 2018; used by Frye et al. 2021): the step
  p = −H⁺g is the minimum-norm least-squares solution of H p = −g, computed by MINRES through
  Hessian-vector products (Lanczos with full re-orthogonalisation on the Krylov space of (H, g),
  then the small (k+1)×k least-squares problem solved by a truncated SVD, the MINRES-QLP
  minimum-length choice for singular H), followed by a backtracking (Armijo) line search on
  ½‖g‖². Because the solution is minimum-norm, the part of g in ker H produces no step: at a
  *gradient-flat* point (g ∈ ker H, g ≠ 0) the search stalls and says so.
- ``method="gradient-norm"``: gradient descent on ½‖g‖² (its gradient is H g, one HVP), step
  length from the local quadratic model ‖Hg‖²/‖H(Hg)‖², then backtracking.

Both cap a step at :data:`MAX_STEP`·max(1, ‖θ_start‖) before the line search (a trust cap, so that the
search finds a *nearby* critical point).

Convergence (default): Frye et al.'s (2021) ‖g‖² ≤ 1e-10 in float64 (``grad_tol`` = 1e-5 scaled by
(ε_dtype/ε_64)^{1/4} for lower precisions, :func:`landscape.tolerances.default_grad_tol`) **and** the
classifier's relative cut-off at the point reached: ‖g‖ ≤ default_grad_tol·Λ(θ)·s(θ), Λ(θ) the largest
|Ritz value| of :data:`GRADIENT_TEST_STEPS` seeded Lanczos steps at θ, s = max(1, rms θ) — a Newton
distance ‖g‖/Λ of 1e-5·s. The relative part is what refuses a "critical point at infinity": on separable
logistic regression ‖g‖ and Λ both decay like e^{−margin·‖w‖}, so ‖g‖ falls below any absolute cut-off
while ‖g‖/Λ stays of order one; the search then runs on, its steps do not shrink and the loss keeps
falling, and it reports ``diverging`` (not converged; :func:`nearest_critical`: ``inconclusive``, "no
critical point found"). A ``grad_tol`` passed in is absolute (loss units per parameter unit), as given.

Gradient-flatness: the *flatness* φ = ‖g + H p‖/‖g‖ ∈ [0, 1] is the share of g outside range(H)
(p the MINRES solution with singular values below √ε·‖H‖ truncated: g lies *nearly* in ker H). A search that stops without converging, with φ ≥
:data:`GRADIENT_FLAT_SHARE`, stalled at a gradient-flat point (``gradient_flat=True``).

:func:`nearest_critical` = :func:`find_critical_point` (``polish=True``: it goes on
past the cut-off until ‖g‖ has dropped 1e-6-fold below its start or the cut-off, whichever
is smaller, so that the classified point is clearly closer to the critical point than the probe
radii) and then :func:`landscape.classify.classify_point` at its strict (default) tolerances
(except that a converged search's point counts as critical: ``grad_tol`` = the search's cut-off).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .classify import CriticalPointReport, classify_point
from .defaults import (ARMIJO_C, AUTO_DENSE_MAX_DIM, DEFAULT_MAX_ITER, DIVERGING_RATIO, GRADIENT_FLAT_SHARE,
                       GRADIENT_TEST_STEPS, MAX_BACKTRACK, MAX_STEP, MINRES_MAX_K, NEAREST_MAX_HVP, POLISH_FACTOR,
                       SCALE_STEPS, STAGNATION, STAGNATION_ITERS)
from .budget import BudgetExhausted, HvpBudget, check_max_hvp, hvp_budget
from .errors import NonFiniteError
from .linalg import lanczos, minres_solve, random_unit
from .objective import Objective
from .operators import CurvatureOperator
from .results import JsonResult
from .tolerances import default_grad_tol

METHODS = ("newton-mr", "gradient-norm")


@dataclass(frozen=True)
class CriticalPointSearch(JsonResult):
    """Outcome of :func:`find_critical_point`.

    ``theta`` (dim,) the point found (kept out of the JSON); ``loss``, ``grad_norm`` there;
    ``converged``: ‖g‖ ≤ ``grad_tol``; ``n_iter`` outer iterations, ``n_hvp`` Hessian-vector
    products, ``n_grad`` gradient evaluations; ``distance`` = ‖θ_found − θ_start‖;
    ``gradient_flat``: the search stalled (no ‖g‖² decrease possible) with ``flatness`` ≥
    :data:`GRADIENT_FLAT_SHARE` of ‖g‖ in the near-null space of H; ``flatness`` = ‖g + Hp‖/‖g‖
    at the final point (None when g = 0); ``start_loss`` / ``start_grad_norm`` at θ_start;
    ``last_step`` the length of the last accepted step; ``rate`` the ratio of the last two step
    lengths (≈ 0 for quadratic convergence, ≈ (k−2)/(k−1) near a degenerate order-k point);
    ``est_distance`` ≈ remaining distance to the exact critical point, last_step·rate/(1 − rate)
    (a geometric extrapolation; 0 when converged quadratically). ``diverging``: not converged, the last
    three steps did not shrink (ratios ≥ :data:`landscape.defaults.DIVERGING_RATIO`) and the loss fell at
    each — no critical point within the distance searched (separable logistic regression: the infimum is at
    infinity). ``message`` says why it stopped.
    ``method``, ``grad_tol``: the search's settings.

    Example: see :func:`find_critical_point`.
    """

    theta: torch.Tensor = field(repr=False)
    loss: float
    grad_norm: float
    converged: bool
    n_iter: int
    n_hvp: int
    distance: float
    gradient_flat: bool
    method: str
    grad_tol: float
    message: str
    n_grad: int = 0
    flatness: float | None = None
    start_loss: float | None = None
    start_grad_norm: float | None = None
    last_step: float | None = None
    rate: float | None = None
    est_distance: float | None = None
    diverging: bool = False

    def to_dict(self) -> dict:
        """The result as JSON types, without ``theta``."""
        d = super().to_dict()
        d.pop("theta")
        return d


def _check_inputs(obj: Objective, theta: torch.Tensor, method: str, grad_tol: float | None,
                  max_iter: int | None) -> tuple[torch.Tensor, float, int]:
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be a landscape.Objective, got {type(obj).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    theta = obj.check_theta(theta).detach().clone()
    if not bool(torch.isfinite(theta).all()):
        raise ValueError("theta has non-finite entries")
    if grad_tol is not None and not (isinstance(grad_tol, (int, float)) and math.isfinite(grad_tol) and grad_tol > 0):
        raise ValueError(f"grad_tol must be a positive finite number, got {grad_tol!r}")
    if max_iter is None:
        max_iter = DEFAULT_MAX_ITER[method]
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    gtol = default_grad_tol(obj.dtype) if grad_tol is None else float(grad_tol)
    return theta, gtol, max_iter


class _Counter:
    """The search's evaluations: counts gradients and Hessian products, and holds the Hessian
    operator of the current point (built once per point)."""

    def __init__(self, obj: Objective, seed: int, budget: HvpBudget | None = None) -> None:
        self.obj = obj
        self.budget = budget
        self.n_hvp = 0
        self.n_grad = 0
        self.seed = seed
        self.scale = 0.0
        self._op: CurvatureOperator | None = None

    def update_scale(self, theta: torch.Tensor) -> None:
        """max|λ(H)| estimate: largest |Ritz value| of a short seeded Lanczos run (never shrinks)."""
        gen = torch.Generator().manual_seed(int(self.seed))
        v0 = random_unit(self.obj.dim, gen, self.obj.dtype, self.obj.device)
        run = lanczos(self.operator(theta), v0, min(self.obj.dim, SCALE_STEPS), reorth="full", generator=gen)
        self.scale = max(self.scale, float(torch.linalg.eigvalsh(run.tridiagonal()).abs().max()))

    def relative_tol(self, theta: torch.Tensor) -> float:
        """The classifier's relative cut-off at ``theta``: default_grad_tol·Λ(θ)·s(θ), Λ(θ) the largest |Ritz
        value| of GRADIENT_TEST_STEPS seeded Lanczos steps *at θ* (not the start's scale), s = max(1, rms θ)."""
        gen = torch.Generator().manual_seed(int(self.seed))
        v0 = random_unit(self.obj.dim, gen, self.obj.dtype, self.obj.device)
        run = lanczos(self.operator(theta), v0, min(self.obj.dim, GRADIENT_TEST_STEPS), reorth="full", generator=gen)
        lam = float(torch.linalg.eigvalsh(run.tridiagonal()).abs().max())
        s = max(1.0, float(torch.linalg.vector_norm(theta)) / math.sqrt(self.obj.dim))
        return default_grad_tol(self.obj.dtype) * lam * s

    def minres_steps(self) -> int:
        """MINRES's Krylov cap: MINRES_MAX_K, or what the budget leaves after the step's own product check."""
        left = math.inf if self.budget is None else self.budget.left
        k = int(min(MINRES_MAX_K, left - 1))
        if k < 1:
            raise BudgetExhausted(int(self.budget.limit), self.budget.used, 2, "a Newton-MR step")  # type: ignore[union-attr, arg-type]
        return k

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        self.n_grad += 1
        return self.obj.loss_and_grad(theta)

    def operator(self, theta: torch.Tensor):
        """``matvec`` of the Hessian at ``theta`` (counted); the operator is reused while θ stays."""
        if self._op is None or not torch.equal(self._op.theta, theta):
            self._op = self.obj.hvp_operator(theta)
        op = self._op

        def mv(v: torch.Tensor) -> torch.Tensor:
            out = op.matvec(v)  # may be refused by an HVP budget: count only what was computed
            self.n_hvp += 1
            return out
        return mv


def _newton_direction(cnt: _Counter, theta: torch.Tensor, g: torch.Tensor, cutoff: float | None = None
                      ) -> tuple[torch.Tensor, float, float]:
    """p = −H⁺g by MINRES; returns (p, flatness ‖g + Hp‖/‖g‖, slope ⟨Hp, g⟩ of ½‖g‖² along p)."""
    mv = cnt.operator(theta)
    p, resid, _ = minres_solve(mv, -g, max_k=cnt.minres_steps(), scale=cnt.scale, cutoff=cutoff)
    Hp = mv(p)
    gn = float(torch.linalg.vector_norm(g))
    flat = float(torch.linalg.vector_norm(g + Hp)) / gn if gn > 0 else 0.0
    return p, min(1.0, flat), float(torch.dot(Hp, g))


def _search_direction(cnt: _Counter, method: str, theta: torch.Tensor, g: torch.Tensor
                      ) -> tuple[torch.Tensor, float]:
    """The step p and the slope of ½‖g‖² along it: −H⁺g (Newton-MR), or −(‖Hg‖²/‖H(Hg)‖²)·Hg."""
    if method == "newton-mr":
        p, _, slope = _newton_direction(cnt, theta, g)
        return p, slope
    mv = cnt.operator(theta)
    Hg = mv(g)
    HHg = mv(Hg)
    nHg2, nHHg2 = float(torch.dot(Hg, Hg)), float(torch.dot(HHg, HHg))
    if nHHg2 == 0.0 or nHg2 == 0.0:
        return torch.zeros_like(g), 0.0
    return -(nHg2 / nHHg2) * Hg, -(nHg2 / nHHg2) * nHg2


def _armijo(cnt: _Counter, theta: torch.Tensor, p: torch.Tensor, slope: float, gn: float, step_cap: float
            ) -> tuple[torch.Tensor, float, torch.Tensor, float] | None:
    """Armijo backtracking on ½‖g‖²: ½‖g(θ + αp)‖² ≤ ½‖g‖² + c·α·⟨Hp, g⟩ (slope < 0 for a descent
    step), from α = min(1, step_cap/‖p‖), halving up to MAX_BACKTRACK times (a non-finite loss only
    halves). Returns (θ + αp, its loss, gradient, ‖gradient‖), or None when no α is accepted."""
    pn = float(torch.linalg.vector_norm(p))
    if not (slope < 0 and pn > 0):
        return None
    a = min(1.0, step_cap / pn)
    for _ in range(MAX_BACKTRACK):
        cand = theta + a * p
        try:
            lc, gc = cnt.loss_and_grad(cand)
        except NonFiniteError:
            a *= 0.5
            continue
        gcn = float(torch.linalg.vector_norm(gc))
        if 0.5 * gcn ** 2 <= 0.5 * gn ** 2 + ARMIJO_C * a * slope:
            return cand, lc, gc, gcn
        a *= 0.5
    return None


def find_critical_point(obj: Objective, theta: torch.Tensor, *, method: str = "newton-mr",
                        grad_tol: float | None = None, max_iter: int | None = None, seed: int = 0,
                        polish: bool = False, max_hvp: int | None | str = "auto") -> CriticalPointSearch:
    """Refine ``theta`` (dim,) towards a nearby critical point of ``obj`` (see the module docstring).

    ``grad_tol`` (loss units per parameter unit): convergence ‖g‖ ≤ grad_tol (default Frye's
    1e-5 in float64). ``max_iter`` outer iterations (default 100 for Newton-MR, 2000 for
    gradient-norm). ``seed`` seeds the start vector of the short Lanczos run that estimates
    ‖H‖ (:data:`SCALE_STEPS` products at the start point; the MINRES truncation is relative to it). ``polish``: keep iterating after convergence until ‖g‖ ≤ 1e-6·‖g_start‖ as
    well (used by :func:`nearest_critical`). A non-finite loss on a trial step only shortens
    the step; a non-finite loss at ``theta`` raises :class:`landscape.NonFiniteError`.

    Args:
        obj: the objective. theta: the start point (dim,), finite.
        method: ``"newton-mr"`` or ``"gradient-norm"``.
        grad_tol: the convergence cut-off on ‖g‖ (default :func:`landscape.tolerances.default_grad_tol`).
        max_iter: outer iterations. seed: seeds the ‖H‖ estimate. polish: see above.
        max_hvp: the most Hessian-vector products (:mod:`landscape.budget`); when the next step would
            pass it the search stops at its last point, not converged, and ``message`` says so (a MINRES
            solve is cut to what is left). ``"auto"`` (default): :data:`landscape.defaults.NEAREST_MAX_HVP`
            above :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters, no limit below; None: no limit.

    Returns:
        :class:`CriticalPointSearch` (``theta`` the point found).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda v: (v[0] - 1) ** 2 + v[0] * v[1] ** 2, torch.zeros(2, dtype=torch.float64))
        >>> res = find_critical_point(obj, torch.tensor([0.9, 0.1], dtype=torch.float64))
        >>> res.converged, [round(float(x), 8) + 0.0 for x in res.theta]
        (True, [1.0, 0.0])
    """
    theta, gtol, max_iter = _check_inputs(obj, theta, method, grad_tol, max_iter)
    limit = resolve_max_hvp(max_hvp, obj.dim)
    with hvp_budget(limit) as budget:
        return _search(obj, theta, method, gtol, max_iter, seed, polish, relative=grad_tol is None, budget=budget)


def resolve_max_hvp(max_hvp: int | None | str, dim: int) -> int | None:
    """The search's HVP budget: ``"auto"`` is :data:`landscape.defaults.NEAREST_MAX_HVP` above
    :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters and no limit below.

    Args:
        max_hvp: an integer, None (no limit) or ``"auto"``. dim: the number of parameters.

    Returns:
        The limit or None.

    Example:
        >>> resolve_max_hvp("auto", 10), resolve_max_hvp("auto", 4000), resolve_max_hvp(7, 4000)
        (None, 350, 7)
    """
    if max_hvp == "auto":
        return NEAREST_MAX_HVP if dim > AUTO_DENSE_MAX_DIM else None
    check_max_hvp(max_hvp)  # type: ignore[arg-type]
    return max_hvp  # type: ignore[return-value]


def _diverging(losses: list[float], steps: list[float]) -> float | None:
    """The smallest ratio of consecutive steps over the last three when none of them contracts below
    DIVERGING_RATIO and the loss fell at each (the signature of an infimum at infinity), else None."""
    if len(steps) < 4 or len(losses) < 4:
        return None
    ratios = [steps[i] / steps[i - 1] for i in range(len(steps) - 3, len(steps)) if steps[i - 1] > 0]
    falling = all(losses[i] < losses[i - 1] for i in range(len(losses) - 3, len(losses)))
    if len(ratios) == 3 and min(ratios) >= DIVERGING_RATIO and falling:
        return min(ratios)
    return None


def _search(obj: Objective, theta: torch.Tensor, method: str, gtol: float, max_iter: int, seed: int,
            polish: bool, relative: bool = False, budget: HvpBudget | None = None) -> CriticalPointSearch:
    """:func:`find_critical_point`'s loop (inputs checked; inside its HVP budget). ``relative``: the
    default cut-off, also required relative to the Hessian's scale at the point reached."""
    cnt = _Counter(obj, seed, budget)
    start = theta.clone()
    loss, g = cnt.loss_and_grad(theta)
    start_loss, gn0 = loss, float(torch.linalg.vector_norm(g))
    spent = None
    if gn0 > 0 and not gn0 <= (min(gtol, POLISH_FACTOR * gn0) if polish else gtol):
        try:
            cnt.update_scale(theta)
        except BudgetExhausted as exc:
            spent = exc
    target = min(gtol, POLISH_FACTOR * gn0) if polish else gtol
    step_cap = MAX_STEP * max(1.0, float(torch.linalg.vector_norm(start)))
    gn = gn0
    steps: list[float] = []
    losses: list[float] = [loss]
    gtol_rel: float | None = None  # the relative cut-off at the current point, when measured
    stalled = False
    message = ""
    slow = 0
    it = 0
    while spent is None:
        if (gn <= target or gn == 0.0) and relative and gn > 0.0 and gtol_rel is None:
            # Frye's absolute cut-off met: the classifier's relative one at this point too? (Separable
            # logistic regression: ‖g‖ and Λ both vanish as ‖w‖ → ∞, ‖g‖/Λ does not.)
            try:
                gtol_rel = cnt.relative_tol(theta)
            except BudgetExhausted as exc:
                spent = exc
                break
            target = min(target, gtol_rel)
        if gn <= target or gn == 0.0:
            message = f"‖g‖ = {gn:.3g} ≤ {target:.3g}"
            break
        if it >= max_iter:
            message = f"max_iter = {max_iter} reached with ‖g‖ = {gn:.3g}"
            break
        try:
            p, slope = _search_direction(cnt, method, theta, g)
            accepted = _armijo(cnt, theta, p, slope, gn, step_cap)
        except BudgetExhausted as exc:
            spent = exc
            break
        if accepted is None:
            stalled = True
            message = (f"no decrease of ½‖g‖² along the {method} step at ‖g‖ = {gn:.3g} "
                       "(line search failed)")
            break
        cand, lc, gc, gcn = accepted
        step = float(torch.linalg.vector_norm(cand - theta))
        slow = slow + 1 if gcn > (1.0 - STAGNATION) * gn else 0
        theta, loss, g, gn = cand, lc, gc, gcn
        gtol_rel = None  # measured again at the new point when needed
        steps.append(step)
        losses.append(loss)
        it += 1
        if slow >= STAGNATION_ITERS:
            stalled = True
            message = (f"‖g‖ = {gn:.3g} decreased by less than {STAGNATION:.0e} relative in each of the last "
                       f"{STAGNATION_ITERS} {method} steps (stagnation)")
            break
    # Flatness with the looser cut-off √ε·‖H‖: "g lies nearly in ker H" (Frye et al.)
    flat = None
    if spent is not None:
        message = f"{spent} (stopped at ‖g‖ = {gn:.3g} after {it} step(s))"
    elif gn != 0:
        try:
            flat = _newton_direction(cnt, theta, g, cutoff=math.sqrt(torch.finfo(g.dtype).eps) * cnt.scale)[1]
        except BudgetExhausted:
            flat = None
    if relative and gn <= gtol and gn > 0 and gtol_rel is None:
        try:
            gtol_rel = cnt.relative_tol(theta)
        except BudgetExhausted:
            gtol_rel = 0.0  # not measured within the budget: not converged
    if relative and gtol_rel is not None:
        gtol = min(gtol, gtol_rel)
    converged = gn <= gtol
    ratio = None if converged else _diverging(losses, steps)
    if ratio is not None:
        message += (f"; diverging: the last steps do not shrink (ratio ≥ {ratio:.2f}) while the loss keeps falling "
                    f"({start_loss:.4g} → {loss:.4g}): no critical point within distance "
                    f"{float(torch.linalg.vector_norm(theta - start)):.3g} of the start (the infimum may lie at infinity)")
    gradient_flat = (not converged) and stalled and flat is not None and flat >= GRADIENT_FLAT_SHARE
    if gradient_flat:
        message += f"; gradient-flat point: {flat:.3f} of ‖g‖ lies outside range(H)"
    rate = None
    est = 0.0 if gn == 0 else None
    if len(steps) >= 2 and steps[-2] > 0:
        rate = min(steps[-1] / steps[-2], 0.99)
        est = steps[-1] * rate / (1 - rate)
    return CriticalPointSearch(
        theta=theta, loss=loss, grad_norm=gn, converged=converged, n_iter=it, n_hvp=cnt.n_hvp,
        distance=float(torch.linalg.vector_norm(theta - start)), gradient_flat=gradient_flat, method=method,
        grad_tol=gtol, message=message, n_grad=cnt.n_grad, flatness=flat, start_loss=start_loss,
        start_grad_norm=gn0, last_step=steps[-1] if steps else None, rate=rate, est_distance=est,
        diverging=ratio is not None)


@dataclass(frozen=True)
class NearestCritical(JsonResult):
    """The critical point nearest a point θ_s (e.g. a stall), found and classified.

    ``kind``/``index``: :func:`landscape.classify.classify_point` at the refined point θ_c with
    its strict default tolerances (``"inconclusive"`` with ``reason`` when the search did not
    converge or the classifier could not decide); ``loss`` = L(θ_c); ``loss_gap`` = L(θ_s) −
    L(θ_c); ``distance`` = ‖θ_c − θ_s‖; ``grad_norm`` at θ_c; ``converged`` / ``gradient_flat``
    from the search; ``probe_radius``, ``probe_order``, ``degenerate``, ``n_zero``,
    ``lambda_min``, ``lambda_max`` from the classification; ``tolerances``: every tolerance used
    (search cut-off, classifier's grad/eig/global/probe tolerances); ``n_hvp`` spent by the
    search, ``n_hvp_total`` by the search and the classification together (a dense Hessian counts
    ``dim``); ``null_space``: the report's account of a verdict at a degenerate point (how many
    eigenvalues in the zero band, which directions were probed, the radius and the resolution;
    :class:`landscape.classify.CriticalPointReport`); ``search`` / ``report``: the full records
    (JSON: dicts, without vectors); ``theta``: θ_c (dim,).

    Example: see :func:`nearest_critical`.
    """

    kind: str
    index: int | None
    loss: float
    distance: float
    grad_norm: float
    converged: bool
    gradient_flat: bool
    probe_radius: float | None
    degenerate: bool | None
    tolerances: dict
    loss_gap: float = 0.0
    probe_order: float | None = None
    n_zero: int | None = None
    lambda_min: float | None = None
    lambda_max: float | None = None
    reason: str | None = None
    n_hvp: int = 0
    n_hvp_total: int = 0
    null_space: dict | None = None
    search: CriticalPointSearch | None = field(default=None, repr=False)
    report: CriticalPointReport | None = field(default=None, repr=False)
    theta: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The result as JSON types: ``search`` and ``report`` as their dicts, no vectors."""
        d = {k: v for k, v in super().to_dict().items() if k not in ("theta", "search", "report")}
        d["search"] = self.search.to_dict() if self.search is not None else None
        d["report"] = self.report.to_dict() if self.report is not None else None
        return d


def nearest_critical(obj: Objective, theta: torch.Tensor, *, global_min: float | None = None, seed: int = 0,
                     max_iter: int | None = None, method: str = "newton-mr",
                     grad_tol: float | None = None, max_hvp: int | None | str = "auto") -> NearestCritical:
    """Refine ``theta`` with :func:`find_critical_point` (``polish=True``) and classify the point
    found with :func:`landscape.classify.classify_point` (strict defaults; ``global_min`` for
    ``global_minimum``; ``seed`` for the classifier's random probe directions).

    When the search did not converge the kind is ``"inconclusive"`` (``reason`` says why, e.g. a
    gradient-flat point) and the classification of the end point is still attached in ``report``.

    Args:
        obj: the objective. theta: θ_s (dim,). global_min: the known global minimum value, or None.
        seed: seeds the search's ‖H‖ estimate and the classifier. max_iter, method, grad_tol: of
            :func:`find_critical_point`.
        max_hvp: the most Hessian-vector products for the search and the classification together
            (:mod:`landscape.budget`; a dense Hessian counts ``dim``). When it runs out the kind is
            ``inconclusive`` and ``reason`` names the budget; ``n_hvp_total`` ≤ ``max_hvp``. ``"auto"``
            (default): :data:`landscape.defaults.NEAREST_MAX_HVP` above
            :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters (about 30 s on a 4 000-parameter CNN
            over 1 500 examples), no limit below; None: no limit.

    Returns:
        :class:`NearestCritical`.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda v: v[0] ** 2 - v[1] ** 2 + v[1] ** 4, torch.zeros(2, dtype=torch.float64))
        >>> nc = nearest_critical(obj, torch.tensor([0.01, 0.02], dtype=torch.float64))
        >>> nc.kind, nc.index, nc.distance < 0.03
        ('strict_saddle', 1, True)
    """
    limit = resolve_max_hvp(max_hvp, obj.dim)
    with hvp_budget(limit) as budget:
        cs = find_critical_point(obj, theta, method=method, grad_tol=grad_tol, max_iter=max_iter, seed=seed,
                                 polish=True, max_hvp=limit)
        # Criticality is the search's verdict (its cut-off); the classifier's own defaults decide the kind.
        left = None if limit is None else max(0, limit - budget.used)
        rep = classify_point(obj, cs.theta, global_min=global_min, seed=seed,
                             grad_tol=max(cs.grad_tol, cs.grad_norm) if cs.converged else None, max_hvp=left)
    tol = {"search_grad_tol": cs.grad_tol, "polish_factor": POLISH_FACTOR,
           "gradient_flat_share": GRADIENT_FLAT_SHARE, **rep.tolerances}
    kind, reason = rep.kind, rep.reason
    if not cs.converged:
        kind = "inconclusive"
        reason = (("no critical point found, diverging: " if cs.diverging else "")
                  + "the search did not converge (" + cs.message + ")"
                  + ("; the end point was not classified (no HVP budget left)" if "HVP budget" in (rep.reason or "")
                     else f"; the end point classifies as {rep.kind}" if rep.kind != "not_critical" else ""))
    theta0 = obj.check_theta(theta).detach()
    return NearestCritical(
        kind=kind, index=rep.index, loss=cs.loss, distance=cs.distance, grad_norm=cs.grad_norm,
        converged=cs.converged, gradient_flat=cs.gradient_flat, probe_radius=rep.probe_radius,
        degenerate=rep.degenerate, tolerances=tol, loss_gap=float(obj.loss(theta0)) - cs.loss,
        probe_order=rep.probe_order, n_zero=rep.n_zero, lambda_min=rep.lambda_min, lambda_max=rep.lambda_max,
        reason=reason, n_hvp=cs.n_hvp, n_hvp_total=budget.used, null_space=rep.null_space, search=cs, report=rep,
        theta=cs.theta)
