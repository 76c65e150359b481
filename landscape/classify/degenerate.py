"""Degenerate critical points: the higher-order probe around θ.

When the Hessian has a near-null eigenspace and no eigenvalue of the opposite sign decides, the
kind is read from the loss itself (:mod:`landscape.probe`): lines along the near-null eigenvectors
and seeded random combinations of them, a sphere search of the near-null subspace, and the
reduced-function (Lyapunov–Schmidt) probe, which minimises the loss over the complementary
definite eigenspace (dense path) or a small Krylov subspace (Lanczos path,
:func:`krylov_complement`) along each near-null direction. :func:`landscape.classify.verdict.decide_degenerate`
turns the probe's result into a verdict.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..defaults import KRYLOV_DIRS, REDUCED_NEWTON_STEPS, SEARCH_ITERS, SEARCH_STARTS
from ..errors import NonFiniteError
from ..point import PointState, loss_grad_dense_hessian
from ..probe import ProbeResult, higher_order_probe, probe_directions, sphere_search
from .options import ClassifyOptions
from .report import Verdict

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


# ---------------------------------------------------------------------------- the loss at many points
def loss_or_nan(obj: "Objective"):
    """``obj.loss`` with an overflow on the probe ladder returned as nan (the probe ignores it).

    Args:
        obj: the objective.

    Returns:
        ``(dim,) -> float``.

    Example:
        >>> import torch, landscape as ls
        >>> f = loss_or_nan(ls.Objective.from_function(lambda x: torch.log(x).sum(), torch.ones(1, dtype=torch.float64)))
        >>> f(torch.tensor([-1.0], dtype=torch.float64))
        nan
    """
    def f(p: torch.Tensor) -> float:
        try:
            return obj.loss(p)
        except NonFiniteError:
            return math.nan
    return f


def batch_loss_fn(obj: "Objective", theta: torch.Tensor):
    """vmap of the differentiable loss over a batch of points, or None when the loss is not vmappable.

    Args:
        obj: the objective. theta: a point (dim,) to check the batched value against.

    Returns:
        ``(b, dim) -> (b,)``, or None.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 + x[1] ** 4, torch.zeros(2, dtype=torch.float64))
        >>> batch_loss_fn(obj, obj.initial_point())(torch.ones(2, 2, dtype=torch.float64)).tolist()
        [2.0, 2.0]
    """
    f = torch.func.vmap(obj.loss_tensor)
    try:
        with torch.no_grad():
            out = f(torch.stack([theta, theta]))
        if out.shape != (2,) or not torch.allclose(out[0], obj.loss_tensor(theta).detach()):
            return None
    except Exception:  # noqa: BLE001 - any vmap failure means: evaluate point by point
        return None
    return f


def value_and_grad_batch(obj: "Objective"):
    """Losses and gradients at many points: vmapped loss + one backward pass; a point-by-point
    loop when the loss cannot be vmapped.

    Args:
        obj: the objective.

    Returns:
        ``(k, dim) points -> (losses (k,), gradients (k, dim))``.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 + x[1] ** 4, torch.zeros(2, dtype=torch.float64))
        >>> L, G = value_and_grad_batch(obj)(torch.ones(1, 2, dtype=torch.float64))
        >>> L.tolist(), G.tolist()
        ([2.0], [[2.0, 4.0]])
    """
    vf = torch.func.vmap(obj.loss_tensor)

    def batched(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        P = P.detach().requires_grad_(True)
        with torch.enable_grad():
            L = vf(P)
            G = torch.autograd.grad(L.sum(), P)[0]
        return L.detach(), G.detach()

    def looped(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = [loss_grad_dense_hessian(obj, p, False) for p in P]
        return (torch.tensor([o[0] for o in out], dtype=P.dtype, device=P.device),
                torch.stack([o[1] for o in out]))

    def choose(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return batched(P)
        except Exception:  # noqa: BLE001 - no batching rule for some op: evaluate point by point
            return looped(P)

    return choose


def signed_escape(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Unit ``v`` with the sign making gᵀv ≤ 0 (ties: largest-magnitude entry positive).

    Args:
        v: a direction (dim,). g: the gradient (dim,).

    Returns:
        The unit escape direction (dim,).

    Example:
        >>> import torch
        >>> signed_escape(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])).tolist()
        [-0.0, -1.0]
    """
    v = v / torch.linalg.vector_norm(v)
    s = float(torch.dot(v, g))
    if s > 0 or (s == 0 and float(v[int(v.abs().argmax())]) < 0):
        v = -v
    return v


# ---------------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class ProbeSettings:
    """The probe ladder at one point: the keywords of :func:`landscape.probe.higher_order_probe` it fixes.

    Attributes:
        t_max: the largest radius, ``probe_radius`` · s (parameter units); the smallest is 1e-4 of it.
        n_radii: geometric radii of the ladder.
        rel_threshold: a change counts beyond this multiple of ε·|f|.
        abs_threshold: and beyond this change (loss units): the larger of ``probe_abs_threshold``
            and the loss gap to the nearby critical point.
        quad_threshold: and beyond this times t² (the larger of the curvature band and the round-off
            band: unresolved curvature).
        level_scale: the loss scale Λ·s² of the probe's level test (a direction whose raw change
            stays within rel·ε·max(|f|, level_scale) is level, :func:`landscape.higher_order_probe`).

    Example:
        >>> ProbeSettings(t_max=0.1, n_radii=13, rel_threshold=1e3, abs_threshold=0.0).ladder()["t_min"]
        1e-05
    """

    t_max: float
    n_radii: int
    rel_threshold: float
    abs_threshold: float
    quad_threshold: float = 0.0
    level_scale: float = 0.0

    @classmethod
    def at(cls, state: PointState, opts: ClassifyOptions, abs_threshold: float, band: float) -> "ProbeSettings":
        """The settings at a point.

        Args:
            state: the point (its parameter scale s). opts: the options (probe_radius, probe_n_radii,
                probe_rel_threshold). abs_threshold: the absolute threshold (loss units). band: the
                curvature band (curvature units).

        Returns:
            The settings.
        """
        return cls(t_max=opts.probe_radius * state.param_scale, n_radii=opts.probe_n_radii,
                   rel_threshold=opts.probe_rel_threshold, abs_threshold=abs_threshold, quad_threshold=band,
                   level_scale=state.spectral_scale * state.param_scale ** 2)

    def ladder(self) -> dict[str, Any]:
        """``t_min``, ``t_max``, ``n_radii``, ``rel_threshold``, ``abs_threshold``, ``quad_threshold``, ``level_scale``."""
        return dict(t_min=self.t_max * 1e-4, t_max=self.t_max, n_radii=self.n_radii,
                    rel_threshold=self.rel_threshold, abs_threshold=self.abs_threshold,
                    quad_threshold=self.quad_threshold, level_scale=self.level_scale)


def merge_probes(pr: ProbeResult, other: ProbeResult, what: str, notes: list[str], only: str | None = None
                 ) -> ProbeResult:
    """``pr`` with ``other``'s descent/ascent where ``pr`` has none or sees it only at a larger radius.

    Args:
        pr: the probe so far. other: a further probe. what: its name, for the note.
        notes: receives a note for every finding taken over. only: ``"descent"``/``"ascent"``: take only that.

    Returns:
        A new :class:`landscape.ProbeResult` (directions and evaluations counted together).

    Example: :func:`run_probe` merges the sphere search and the reduced-function probe this way.
    """
    changes: dict[str, Any] = {}
    for which in ("descent", "ascent"):
        if only is not None and which != only:
            continue
        if getattr(other, which) and (not getattr(pr, which) or
                                      getattr(other, which + "_radius") < getattr(pr, which + "_radius")):
            notes.append(f"{which} found by the {what} (line probes: "
                         + (f"first at radius {getattr(pr, which + '_radius'):.3g})" if getattr(pr, which)
                            else "none)"))
            for attr in ("", "_radius", "_order", "_delta", "_direction"):
                changes[which + attr] = getattr(other, which + attr)
    vals = [v for v in (pr.max_abs_change, other.max_abs_change) if not math.isnan(v)]
    thr = [v for v in (pr.threshold_at_max, other.threshold_at_max) if not math.isnan(v)]
    return dataclasses.replace(pr, **changes, n_directions=pr.n_directions + other.n_directions,
                               n_evals=pr.n_evals + other.n_evals, max_abs_change=max(vals) if vals else math.nan,
                               threshold_at_max=max(thr) if thr else math.nan, parts={**pr.parts, **other.parts},
                               n_unresolved=pr.n_unresolved + other.n_unresolved,
                               n_roundoff_flat=pr.n_roundoff_flat + other.n_roundoff_flat,
                               n_exact_flat=pr.n_exact_flat + other.n_exact_flat,
                               exact_flat_directions=_cat_rows(pr.exact_flat_directions, other.exact_flat_directions))


def _cat_rows(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None or b is None:
        return a if b is None else b
    return torch.cat([a, b.to(a)])


def tag_part(pr: ProbeResult, name: str, **extra: Any) -> ProbeResult:
    """``pr`` with its per-direction outcome counts recorded under ``parts[name]``.

    Args:
        pr: one probe's result. name: the probe's name (``"lines"``, ``"sphere_search"``, ``"reduced"``,
            ``"layer_products"``). extra: more to record (e.g. what the directions were).

    Returns:
        A new :class:`landscape.ProbeResult`.

    Example:
        >>> import torch
        >>> from landscape.probe import higher_order_probe
        >>> pr = higher_order_probe(lambda p: float(p[0] ** 4), torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
        >>> tag_part(pr, "lines").parts["lines"]["n_unresolved"]      # y: the loss does not change (exactly)
        2
    """
    part = {"n_directions": pr.n_directions, "n_signed": 2 * pr.n_directions, "n_unresolved": pr.n_unresolved,
            "n_roundoff_flat": pr.n_roundoff_flat, "n_exact_flat": pr.n_exact_flat,
            "threshold_at_max": pr.threshold_at_max, **extra}
    return dataclasses.replace(pr, parts={**pr.parts, name: part})


def run_probe(state: PointState, opts: ClassifyOptions, settings: ProbeSettings, method: str, evals: torch.Tensor,
              evecs: torch.Tensor, zero: torch.Tensor, want: str, notes: list[str], *, zero_tol: float = 0.0
              ) -> ProbeResult:
    """The higher-order probe around a degenerate critical point.

    Lines along the near-null eigenvectors (``evecs[:, zero]``) and ``opts.probe_random`` seeded
    combinations of them (Lanczos path: also random full-space directions), with dᵀHd removed along
    the near-null ones; unless the lines decide early, a sphere search of the near-null subspace
    (``opts.probe_search``) and the reduced-function probe (``opts.probe_reduced``).

    Args:
        state: the point (loss, gradient, Hessian: dense or operator, scales).
        opts: the classification's options (seed, probe settings).
        settings: the probe ladder (:class:`ProbeSettings`).
        method: ``"dense"`` or ``"lanczos"``.
        evals, evecs: the eigenpairs at θ ((m,), (dim, m)). zero: the near-null mask (m,).
        want: the question: ``"descent"`` (minimum or saddle?) or ``"ascent"`` (maximum or saddle?).
        notes: receives what each further probe found.
        zero_tol: the zero-eigenvalue tolerance (eig_tol): on the Lanczos path a Ritz value of the
            Krylov complement within it is near-null and never joins the definite subspace.

    Returns:
        :class:`landscape.ProbeResult`, the probes merged.

    Example: :func:`landscape.classify_point` runs it at degenerate points (e.g. x² + y⁴ at 0).
    """
    obj, theta, g = state.obj, state.theta, state.grad
    seed, n_random = opts.seed, opts.probe_random
    null_basis = evecs[:, zero]
    t_max = settings.t_max
    parts, quads = [], []
    q = null_basis.shape[1]
    HB = None
    if q:
        span = probe_directions(null_basis, obj.dim, n_random_in_span=n_random, seed=seed,
                                dtype=obj.dtype, device=obj.device)
        HB = state.hessian @ null_basis if state.hessian is not None else state.hessian_operator.matmat(null_basis)
        # dᵀHd along the near-null directions (declared zero): removed in the probe.
        parts.append(span)
        quads.append(((span @ null_basis) @ (null_basis.T @ HB) * (span @ null_basis)).sum(1))
    if method == "lanczos" or not parts:
        full = probe_directions(None, obj.dim, n_random_full=max(n_random, 1), seed=seed + 1,
                                dtype=obj.dtype, device=obj.device)
        parts.append(full)
        quads.append(torch.zeros(full.shape[0], dtype=obj.dtype, device=obj.device))
    kw = dict(grad=g, loss0=state.loss, batch_loss=batch_loss_fn(obj, theta), **settings.ladder())
    f = loss_or_nan(obj)
    prs = [tag_part(higher_order_probe(f, theta, P, quad=Q, **kw), name)
           for P, Q, name in zip(parts, quads, ["lines", "full_space"] if q else ["full_space"])]
    pr = prs[0]
    if len(prs) == 2:
        # Random full-space directions (Lanczos path: the near-null space is known only in part) are
        # there to find descent; the near-null lines alone state how the null space rises.
        pr = merge_probes(pr, prs[1], "random full-space directions", notes, only="descent")
    # Search unless the lines already found descent early on the ladder (first third of the radii,
    # with an order estimate): a descent first seen at large radius may be a direction where the
    # leading term nearly cancels, which mis-reads the order.
    early = pr.radii[len(pr.radii) // 3]

    def decided(p: ProbeResult) -> bool:
        return (getattr(p, want) and getattr(p, want + "_order") is not None
                and getattr(p, want + "_radius") <= early)

    if decided(pr) or not q:
        return pr
    dirs = [torch.cat(parts)]
    if opts.probe_search:
        Qf = null_basis.T @ HB
        found = sphere_search(value_and_grad_batch(obj), theta, null_basis, [t_max, 0.1 * t_max, 0.01 * t_max],
                              loss0=state.loss, grad=g, quad_form=Qf, seed=seed, n_starts=SEARCH_STARTS,
                              n_iter=SEARCH_ITERS)
        coef = found @ null_basis
        pr2 = higher_order_probe(loss_or_nan(obj), theta, found, quad=((coef @ Qf) * coef).sum(1), **kw)
        pr = merge_probes(pr, tag_part(pr2, "sphere_search"), "sphere search in the near-null subspace", notes)
        dirs.append(found)
    if want == "descent" and not pr.descent and g.abs().max() > 0:
        pr = _weak_span_probe(state, opts, settings, evals, evecs, zero, zero_tol, null_basis, HB, kw, pr, notes)
    if decided(pr) or evecs is None or not opts.probe_reduced:
        return pr
    # Reduced-function (Lyapunov–Schmidt) probe: the complementary eigenspace with definite curvature.
    D = torch.cat(dirs)
    if method == "dense":
        comp = (evals > 0) & ~zero if want == "descent" else (evals < 0) & ~zero
        if int(comp.sum()) == 0:
            return pr
        V, lam = evecs[:, comp], evals[comp]
    else:
        # Issue 21 (e): the classifier's zero tolerance as well as the curvature band (0 where the
        # continuation never moved the null direction): a Ritz pair on the round-off remainder of a
        # null direction must not enter the "definite" subspace.
        V, lam = krylov_complement(state, null_basis, D, t_max, want, max(settings.quad_threshold, zero_tol))
        if V is None:
            return pr
    pr3 = tag_part(_reduced_probe(state, V, lam, D, null_basis, HB, kw), "reduced", complement_dim=int(V.shape[1]))
    return merge_probes(pr, pr3, "reduced-function (Lyapunov–Schmidt) probe: the loss minimised over the "
                        f"{V.shape[1]}-dimensional definite " + ("eigenspace" if method == "dense" else "Krylov subspace")
                        + " along near-null directions", notes, only=want)


def _weak_span_probe(state: PointState, opts: ClassifyOptions, settings: ProbeSettings, evals: torch.Tensor,
                     evecs: torch.Tensor, zero: torch.Tensor, zero_tol: float, null_basis: torch.Tensor,
                     HB: torch.Tensor, kw: dict, pr: ProbeResult, notes: list[str]) -> ProbeResult:
    """At an approximately critical point, the near-null space widened by the *weak* positive directions.

    A positive eigenvalue just beyond the band can be curvature that the distance to the critical
    point induces along it while that distance lies along a direction below the band, so that the
    continuation never travelled it (w(z0⁴ + z1⁴ − 2.105z0²z1²) in 7-D, 1e-6 away: λ = −2.4e-16 and
    4.3e-15 against a band of 2.8e-15, and the descent cone of ±4.6° about the diagonal needs both).
    A direction whose curvature the probe cannot see over its radius, ½λt_max² ≤ its threshold there
    (round-off of the loss, the loss gap), is for the probe as good as null. Lines along those
    eigenvectors and random combinations with the near-null ones, and a sphere search of the widened
    span, are probed with only the near-null part of dᵀHd removed (a weak direction's ½λt² counts
    against descent): a descent found is real. These directions only look for descent: they are not
    counted as unresolved (a positive eigenvalue beyond the band already resolves them)."""
    obj, theta = state.obj, state.theta
    eps = torch.finfo(obj.dtype).eps
    thr = max(settings.rel_threshold * eps * abs(state.loss), settings.abs_threshold)
    weak = (evals > zero_tol) & ~zero & (0.5 * evals * settings.t_max ** 2 <= thr)
    if not bool(weak.any()):
        return pr
    W = evecs[:, weak][:, :64]
    B = torch.cat([null_basis, W], 1)
    nq = null_basis.shape[1]
    Qn = torch.zeros(B.shape[1], B.shape[1], dtype=obj.dtype, device=obj.device)
    if nq:
        Qn[:nq, :nq] = null_basis.T @ HB  # only the near-null block's curvature is removed
    D = probe_directions(B, obj.dim, n_random_in_span=opts.probe_random, seed=opts.seed + 3, dtype=obj.dtype,
                         device=obj.device)[nq:]  # the weak eigenvectors and the combinations
    if opts.probe_search:
        Qs = Qn.clone()
        Qs[nq:, nq:] = 0.0
        found = sphere_search(value_and_grad_batch(obj), theta, B,
                              [settings.t_max, 0.1 * settings.t_max, 0.01 * settings.t_max], loss0=state.loss,
                              grad=state.grad, quad_form=Qs, seed=opts.seed + 3, n_starts=SEARCH_STARTS,
                              n_iter=SEARCH_ITERS)
        D = torch.cat([D, found])
    coef = D @ B
    pw = higher_order_probe(loss_or_nan(obj), theta, D, quad=((coef @ Qn) * coef).sum(1), **kw)
    return merge_probes(pr, tag_part(pw, "weak_span", weak_directions=int(W.shape[1])),
                        f"probe of the near-null space widened by {W.shape[1]} weakly curved direction(s) the "
                        "probe cannot see over its radius", notes, only="descent")


def _reduced_probe(state: PointState, V: torch.Tensor, lam: torch.Tensor, D: torch.Tensor, null_basis: torch.Tensor,
                   HB: torch.Tensor, kw: dict[str, Any]) -> ProbeResult:
    """The ladder test on the reduced function φ(u) = extremum over span(V) of L(u + w), along the
    near-null parts of ``D``; a finding is reported at the point θ + t·d + w actually found (its
    direction and distance), so that the escape direction descends as a straight step."""
    obj, theta = state.obj, state.theta
    D = D - (D @ V) @ V.T  # remove the definite part (dense path: what remains is near-null)
    D = D / torch.linalg.vector_norm(D, dim=1, keepdim=True).clamp_min(1e-300)
    coef = D @ null_basis
    Qf = null_basis.T @ HB
    reduced = reduced_loss_fn(obj, theta, V, lam)
    with torch.no_grad():
        base = float(reduced(theta.unsqueeze(0))[0])
    kw3 = {**kw, "loss0": base, "batch_loss": reduced}
    pr3 = higher_order_probe(lambda p: float(reduced(p.unsqueeze(0))[0]), theta, D,
                             quad=((coef @ Qf) * coef).sum(1), **kw3)
    changes: dict[str, Any] = {}
    for which in ("descent", "ascent"):
        d = getattr(pr3, which + "_direction")
        if getattr(pr3, which) and d is not None:
            pt = reduced(theta.unsqueeze(0) + getattr(pr3, which + "_radius") * d.unsqueeze(0), points=True)[1][0]
            disp = pt - theta
            changes[which + "_radius"] = float(torch.linalg.vector_norm(disp))
            changes[which + "_direction"] = disp / torch.linalg.vector_norm(disp)
    return dataclasses.replace(pr3, **changes)


# ---------------------------------------------------------------------------- the reduced function
def krylov_complement(state: PointState, null_basis: torch.Tensor, D: torch.Tensor, t: float, want: str, band: float,
                      max_dirs: int = KRYLOV_DIRS) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Lanczos path: a small definite subspace for the reduced-function probe.

    The curve of a reduced function is u ↦ u + w(u) with w ≈ −H⁺ r(u), r(u) the gradient's
    departure from its quadratic model at θ + u (u = t·d, d near-null), so w lies in the Krylov
    space of (H, r). Builds r_d = P(∇L(θ + t_d d) − g − t_d H d) for up to ``max_dirs`` rows of
    ``D`` (P removes the near-null basis), the span of [r_d, H r_d, H² r_d], and its Rayleigh–Ritz
    pairs with curvature of the sign the question needs (positive for descent) beyond ``band`` —
    the classifier passes the larger of the curvature band and its zero tolerance eig_tol (issue 21:
    with the band alone, 0 at a point whose continuation never moved the null direction, a Ritz pair
    on the round-off remainder of the null direction, λ ≈ 4e-14·Λ, entered the "definite" subspace,
    and minimising over it moved along the null direction with 1/λ steps: first-order "descent" at a
    quartic minimum). Minimising over a subspace bounds the reduced function from above, so descent
    found there is real. Costs ≈ 3·max_dirs HVPs (on the state's one Hessian operator) and a batch of gradients.

    Args:
        state: the point θ (its gradient and Hessian operator).
        null_basis: (dim, q) orthonormal near-null eigenvectors. D: (k, dim) unit probe directions.
        t: the probe's largest radius. want: ``"descent"`` or ``"ascent"``. band: the curvature band.
        max_dirs: the most rows of ``D`` used.

    Returns:
        ``(V (dim, r) orthonormal, Ritz values (r,))``, or ``(None, None)``.

    Example: Peano's surface on the Lanczos path (tests/test_classify.py) finds its curved descent here.
    """
    obj, theta, g = state.obj, state.theta, state.grad
    D = D[:max_dirs]
    ts = [t * 1e-2, t * 1e-1]
    op = state.hessian_operator
    HD = op.matmat(D.T).T
    rows = []
    vg = value_and_grad_batch(obj)
    for tt in ts:
        try:
            _, G = vg(theta.unsqueeze(0) + tt * D)
        except NonFiniteError:
            continue
        rows.append(G - g.unsqueeze(0) - tt * HD)
    if not rows:
        return None, None
    R = torch.cat(rows)
    if null_basis.numel():
        R = R - (R @ null_basis) @ null_basis.T
    keep = torch.linalg.vector_norm(R, dim=1) > 0
    if not bool(keep.any()):
        return None, None
    K = [R[keep].T]
    for _ in range(2):
        Z = op.matmat(K[-1])
        if null_basis.numel():
            Z = Z - null_basis @ (null_basis.T @ Z)
        K.append(Z)
    U, S, _ = torch.linalg.svd(torch.cat(K, 1), full_matrices=False)
    U = U[:, S > S.max() * 1e3 * torch.finfo(U.dtype).eps * U.shape[0]]
    T = U.T @ op.matmat(U)
    mu, Y = torch.linalg.eigh(0.5 * (T + T.T))
    sel = mu > band if want == "descent" else mu < -band
    sel = sel & (mu.abs() > 10 * torch.finfo(mu.dtype).eps * obj.dim * float(mu.abs().max()))
    if not bool(sel.any()):
        return None, None
    return U @ Y[:, sel], mu[sel]


def reduced_loss_fn(obj: "Objective", theta: torch.Tensor, V: torch.Tensor, lam: torch.Tensor):
    """Batch map (k, dim) points u ↦ φ(u) = extremum over w ∈ span(V) of L(u + w).

    V (dim, r) orthonormal eigenvectors of H(θ) with eigenvalues ``lam`` (r,) of one sign
    (positive: minimise; negative: maximise). Newton steps w ← w − V diag(1/λ) Vᵀ ∇L with the
    fixed Hessian of θ (:data:`REDUCED_NEWTON_STEPS`); each row keeps its best value over the
    iterations, a valid bound on φ in the direction that matters (an upper bound on a minimum
    proves descent, a lower bound on a maximum proves ascent). ``points=True`` also returns the
    points u + w attaining those values.

    Args:
        obj: the objective. theta: the point (dim,). V: (dim, r). lam: (r,).

    Returns:
        ``reduced(P, points=False)``: (k,) values, or with ``points`` (values, (k, dim) points).

    Example:
        >>> import torch, landscape as ls        # min over y of (y − x²)² + x⁴ is x⁴
        >>> obj = ls.Objective.from_function(lambda v: (v[1] - v[0] ** 2) ** 2 + v[0] ** 4, torch.zeros(2, dtype=torch.float64))
        >>> phi = reduced_loss_fn(obj, obj.initial_point(), torch.tensor([[0.0], [1.0]], dtype=torch.float64),
        ...                       torch.tensor([2.0], dtype=torch.float64))
        >>> round(float(phi(torch.tensor([[0.5, 0.0]], dtype=torch.float64))[0]), 12)
        0.0625
    """
    vg = value_and_grad_batch(obj)
    sign = 1.0 if float(lam[0]) > 0 else -1.0

    def reduced(P: torch.Tensor, points: bool = False):
        P = P.to(dtype=obj.dtype, device=obj.device)
        C = torch.zeros(P.shape[0], V.shape[1], dtype=obj.dtype, device=obj.device)
        L, G = vg(P)
        L = torch.where(torch.isfinite(L), L, torch.full_like(L, math.inf * sign))
        best = L.clone()
        best_C = C.clone()
        for _ in range(REDUCED_NEWTON_STEPS):
            step = (G @ V) / lam
            if not bool(torch.isfinite(step).all()):
                break
            C = C - step
            L, G = vg(P + C @ V.T)
            L = torch.where(torch.isfinite(L), L, torch.full_like(L, math.inf * sign))
            better = (L < best) if sign > 0 else (L > best)
            best = torch.where(better, L, best)
            best_C = torch.where(better.unsqueeze(1), C, best_C)
            if float((step.abs().max())) <= 1e-3 * torch.finfo(obj.dtype).eps ** 0.5 * float(P.abs().max() + 1):
                break
        if points:
            return best.detach(), (P + best_C @ V.T).detach()
        return best.detach()

    return reduced


def gradient_vanishes_nearby(obj: "Objective", theta: torch.Tensor, basis: torch.Tensor, radii: list[float],
                              seed: int) -> bool:
    """True when the gradient is exactly zero at θ ± t·d for the near-null eigenvectors, seeded random
    combinations of them and random full-space directions d, at every fourth probe radius t. A loss
    that is bit-for-bit constant on the probe but has a non-zero gradient (a tiny c·f + b whose
    changes are below the offset's resolution) is *not* flat: gradients do not see the offset.

    Args:
        obj: the objective. theta: the point (dim,). basis: (dim, q) near-null eigenvectors.
        radii: the probe ladder. seed: seeds the random directions.

    Returns:
        Whether every sampled gradient is exactly zero.

    Example:
        >>> import torch, landscape as ls
        >>> flat = ls.Objective.from_function(lambda x: torch.relu(x.sum() - 1.0) ** 2, torch.zeros(2, dtype=torch.float64))
        >>> gradient_vanishes_nearby(flat, flat.initial_point(), torch.eye(2, dtype=torch.float64), [1e-3, 1e-2], 0)
        True
    """
    D = probe_directions(basis if basis.numel() else None, obj.dim, n_random_in_span=8, n_random_full=8,
                         seed=seed + 7, dtype=obj.dtype, device=obj.device)
    ts = torch.tensor(radii[::4] + [radii[-1]], dtype=obj.dtype, device=obj.device)
    P = theta.unsqueeze(0).unsqueeze(0) + ts.view(1, -1, 1) * torch.cat([D, -D]).unsqueeze(1)
    vg = value_and_grad_batch(obj)
    for chunk in P.reshape(-1, obj.dim).split(256):
        try:
            _, G = vg(chunk)
        except NonFiniteError:
            return False
        if bool((G != 0).any()):
            return False
    return True
