"""Higher-order probe: does the loss decrease (or increase) along directions leaving a critical point?

Second-order information cannot separate x⁴+y⁴ (minimum) from x³−3xy² (saddle), or x²+y⁴ from
x²−y⁴ (THEORY.md §1). The probe evaluates Δ(t, d) = f(θ + t d) − f(θ) − t gᵀd for unit directions
d (the near-null eigenvectors of the Hessian, seeded random combinations of them, and optionally
random directions of the whole space), both signs, on a geometric ladder of radii t. The linear
term is removed because the point is already accepted as critical: at ‖g‖ ≤ grad_tol it would
otherwise swamp the higher-order terms; for the same reason the caller may remove ½t²dᵀHd along
near-null directions (eigenvalues below the zero tolerance count as zero).

Decision along one signed direction: walking the ladder from the smallest radius up, the first
radius where |Δ| exceeds the round-off threshold decides; Δ < 0 there means descent, Δ > 0
ascent. The threshold is ``rel_threshold`` · ε_dtype · max(|f(θ)|, |f(θ + t d)|) (default
rel_threshold = 1e3), and at least ``abs_threshold`` (loss units, default 0) and
``quad_threshold``·t² (unresolved curvature, default 0), so a loss that is flat to round-off (or
below a caller's resolution) along d decides nothing.
The order of the first non-vanishing term is the slope of log|Δ| against log t over the decisive
radius and up to three further radii with the same sign.

Lines can miss a descent that needs a precise mixture of null directions; :func:`sphere_search`
minimises the higher-order remainder over the sphere of the near-null subspace and hands its
directions back to the same ladder test. Known limit: a descent of order ≥ 5 hidden behind
order-4 ascent (padded deep linear nets with H ≥ 4) is usually not found.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .defaults import DEFAULT_REL_THRESHOLD
from .results import JsonResult


@dataclass(frozen=True)
class ProbeResult(JsonResult):
    """Outcome of :func:`higher_order_probe`.

    ``descent`` / ``ascent``: some signed direction decreases / increases the loss beyond
    round-off. ``descent_direction`` (dim,) unit vector (sign included) with the smallest decisive
    radius ``descent_radius`` (ties: most negative Δ/threshold); ``descent_order`` the fitted order
    (≈ 3 for x³, 4 for −y⁴; None when only one radius was usable); ``descent_delta`` Δ at that
    radius. Same for ascent. ``radii`` (n_radii,) the ladder; ``n_directions`` unsigned
    directions tried; ``n_evals`` loss evaluations; ``max_abs_change`` the largest raw
    |f(θ + t d) − f(θ)| over every finite evaluation (exactly 0.0: the loss is bit-for-bit constant
    on every probed point — locally flat, not merely below resolution). ``rel_threshold``: the
    relative round-off threshold used. ``n_unresolved``: signed directions along which no radius
    shows a change beyond the threshold (neither a rise nor a fall: the probe cannot tell), of
    which ``n_roundoff_flat`` stay within the round-off part rel·ε·|f| at every radius (a valley of
    equal loss, e.g. a symmetry orbit, as far as the dtype can tell) and ``n_exact_flat`` keep the
    loss bit-for-bit constant (``exact_flat_directions``, (n_exact_flat, dim), the signed
    directions). ``threshold_at_max``: the
    largest threshold at the largest radius over the directions (loss units: the probe's
    resolution there). ``parts``: per probe of a classification (lines, sphere search, reduced
    function, layer products) its ``n_directions``, ``n_unresolved``, ``n_roundoff_flat`` (filled
    by :func:`landscape.classify_point`).

    Example:
        >>> import torch
        >>> pr = higher_order_probe(lambda p: float(p[0] ** 3), torch.zeros(1, dtype=torch.float64),
        ...                         torch.ones(1, 1, dtype=torch.float64))
        >>> pr.descent and pr.ascent, round(pr.descent_order, 6), pr.max_radius
        (True, 3.0, 0.1)
    """

    descent: bool
    ascent: bool
    descent_radius: float | None
    descent_order: float | None
    descent_delta: float | None
    ascent_radius: float | None
    ascent_order: float | None
    ascent_delta: float | None
    radii: list[float]
    n_directions: int
    n_evals: int
    rel_threshold: float
    max_abs_change: float = math.nan
    descent_direction: torch.Tensor | None = field(default=None, repr=False)
    ascent_direction: torch.Tensor | None = field(default=None, repr=False)
    n_unresolved: int = 0
    n_roundoff_flat: int = 0
    n_exact_flat: int = 0
    threshold_at_max: float = math.nan
    parts: dict = field(default_factory=dict)
    exact_flat_directions: torch.Tensor | None = field(default=None, repr=False)

    @property
    def max_radius(self) -> float:
        """The largest radius of the ladder (parameter units)."""
        return max(self.radii)

    def to_dict(self) -> dict:
        """The result as JSON types, without the (dim,) directions."""
        d = super().to_dict()
        d.pop("descent_direction")
        d.pop("ascent_direction")
        d.pop("exact_flat_directions")
        return d


def _fit_order(ts: list[float], ds: list[float]) -> float | None:
    if len(ts) < 2:
        return None
    x = torch.tensor([math.log(t) for t in ts], dtype=torch.float64)
    y = torch.tensor([math.log(abs(d)) for d in ds], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def probe_directions(basis: torch.Tensor | None, dim: int, *, n_random_in_span: int = 16,
                     n_random_full: int = 0, max_basis: int = 64, seed: int = 0,
                     dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Unit probe directions: basis columns, seeded combinations of them, random full-space directions.

    Args:
        basis: (dim, q) or None. dim: the space's dimension.
        n_random_in_span: seeded Gaussian combinations of all of the basis's columns.
        n_random_full: seeded random unit vectors of the whole space.
        max_basis: the most basis columns used as they are. seed: seeds the random ones (drawn on the CPU).
        dtype, device: of the result.

    Returns:
        (k, dim) unit rows: the basis columns, then the combinations, then the full-space ones.

    Example:
        >>> import torch
        >>> tuple(probe_directions(torch.eye(3)[:, :2], 3, n_random_in_span=4, n_random_full=1).shape)
        (7, 3)
    """
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    if basis is not None and basis.numel():
        if basis.ndim != 2 or basis.shape[0] != dim:
            raise ValueError(f"basis must have shape (dim={dim}, q), got {tuple(basis.shape)}")
        B = basis.to(device="cpu", dtype=torch.float64)
        rows.append(B[:, :max_basis].T)
        if n_random_in_span > 0:
            c = torch.randn(B.shape[1], n_random_in_span, generator=gen, dtype=torch.float64)
            rows.append((B @ c).T)
    if n_random_full > 0:
        rows.append(torch.randn(n_random_full, dim, generator=gen, dtype=torch.float64))
    if not rows:
        raise ValueError("no probe directions: give a non-empty basis or n_random_full > 0")
    D = torch.cat(rows)
    D = D / torch.linalg.vector_norm(D, dim=1, keepdim=True).clamp_min(1e-300)
    return D.to(device=device, dtype=dtype)


def _batched_loss(loss_fn: Callable[[torch.Tensor], float], batch_loss, points: torch.Tensor,
                  chunk: int) -> torch.Tensor:
    if batch_loss is not None:
        out = []
        with torch.no_grad():
            for a in range(0, points.shape[0], chunk):
                out.append(batch_loss(points[a:a + chunk]).detach().to("cpu", torch.float64))
        return torch.cat(out)
    return torch.tensor([loss_fn(p) for p in points], dtype=torch.float64)


def higher_order_probe(
    loss_fn: Callable[[torch.Tensor], float],
    theta: torch.Tensor,
    directions: torch.Tensor,
    *,
    grad: torch.Tensor | None = None,
    quad: torch.Tensor | None = None,
    loss0: float | None = None,
    t_min: float = 1e-5,
    t_max: float = 1e-1,
    n_radii: int = 13,
    rel_threshold: float = DEFAULT_REL_THRESHOLD,
    abs_threshold: float = 0.0,
    batch_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk: int = 512,
    quad_threshold: float | torch.Tensor = 0.0,
    level_scale: float = 0.0,
) -> ProbeResult:
    """Probe f = ``loss_fn`` around ``theta`` (dim,) along ``directions`` (k, dim), both signs.

    Radii: ``n_radii`` geometric steps from ``t_min`` to ``t_max`` (absolute lengths in
    parameter space; :func:`landscape.classify.classify_point` scales them to the point).
    ``grad`` (dim,), when given, has its first-order term removed; ``quad`` (k,), when given, holds
    dᵀHd per direction and has its second-order term ½t²dᵀHd removed (for near-null directions
    whose eigenvalue was declared zero). ``batch_loss`` (optional)
    evaluates a (b, dim) batch of points at once (e.g. ``vmap(obj.loss_tensor)``).
    ``quad_threshold`` (loss units per length², one number or one per direction (k,)): a change
    also has to exceed ``quad_threshold``·t² — curvature below it is unresolved (the classifier's
    curvature band at an approximately critical point), so second-order changes within it decide nothing.
    ``level_scale`` (loss units): a direction counts as *level* (``n_roundoff_flat``) when its raw
    change |f(θ + t d) − f(θ)| stays within rel·ε·max(|f|, ``level_scale``) at every radius (the
    classifier passes the loss scale Λ·s², so that a loss of exactly 0 still has a round-off).

    Args:
        loss_fn: ``(dim,) -> float`` (NaN for a point where the loss overflows: it decides nothing).
        theta: the point (dim,). directions: (k, dim) unit directions (both signs are probed).
        grad: (dim,) gradient whose first-order term is removed, or None.
        quad: (k,) dᵀHd per direction whose second-order term is removed, or None.
        loss0: f(θ) if known. t_min, t_max, n_radii: the ladder (parameter units).
        rel_threshold, abs_threshold, quad_threshold: the change thresholds (see above).
        level_scale: the loss scale of the level test (see above).
        batch_loss: ``(b, dim) -> (b,)`` losses at once, or None. chunk: points per batch call.

    Returns:
        :class:`ProbeResult`.

    Example:
        >>> import torch
        >>> f = lambda p: float(p[0] ** 2 - p[1] ** 4)       # x² − y⁴: descent along y at order 4
        >>> pr = higher_order_probe(f, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64),
        ...                         quad=torch.tensor([2.0, 0.0], dtype=torch.float64))
        >>> pr.descent, round(pr.descent_order, 6), pr.descent_direction.abs().tolist()
        (True, 4.0, [0.0, 1.0])
    """
    if not (0 < t_min < t_max) or not math.isfinite(t_max):
        raise ValueError(f"need 0 < t_min < t_max < inf, got t_min={t_min}, t_max={t_max}")
    if n_radii < 2:
        raise ValueError(f"n_radii must be >= 2, got {n_radii}")
    if not rel_threshold > 0:
        raise ValueError(f"rel_threshold must be > 0, got {rel_threshold}")
    if not (abs_threshold >= 0 and math.isfinite(abs_threshold)):
        raise ValueError(f"abs_threshold must be finite and >= 0, got {abs_threshold}")
    qthr = torch.as_tensor(quad_threshold, dtype=torch.float64).detach().cpu().reshape(-1)
    if not bool(((qthr >= 0) & torch.isfinite(qthr)).all()):
        raise ValueError(f"quad_threshold must be finite and >= 0, got {quad_threshold}")
    if qthr.numel() not in (1, directions.shape[0] if directions.ndim == 2 else 1):
        raise ValueError(f"quad_threshold must be one number or one per direction ({directions.shape[0]}), "
                         f"got {qthr.numel()}")
    if directions.ndim != 2 or directions.shape[1] != theta.numel():
        raise ValueError(f"directions must have shape (k, {theta.numel()}), got {tuple(directions.shape)}")
    dtype = theta.dtype
    eps = torch.finfo(dtype).eps
    f0 = float(loss_fn(theta)) if loss0 is None else float(loss0)
    radii = torch.logspace(math.log10(t_min), math.log10(t_max), n_radii, dtype=torch.float64)
    k = directions.shape[0]
    signed = torch.cat([directions, -directions]).to(dtype)  # (2k, dim)
    # points[(j, i)] = theta + t_i * signed_j
    steps = radii.to(dtype=dtype, device=theta.device)
    pts = theta.unsqueeze(0).unsqueeze(0) + steps.view(1, -1, 1) * signed.unsqueeze(1)
    vals = _batched_loss(loss_fn, batch_loss, pts.reshape(-1, theta.numel()), chunk).view(2 * k, n_radii)
    delta = vals - f0
    exact_flat = (delta == 0).all(1)
    level_tol = rel_threshold * eps * torch.clamp(torch.maximum(vals.abs(), torch.full_like(vals, abs(f0))),
                                                  min=float(level_scale))
    level = ((delta.abs() <= level_tol) | ~torch.isfinite(vals)).all(1)
    fin = torch.isfinite(vals)
    max_change = float(delta[fin].abs().max()) if bool(fin.any()) else math.nan
    if grad is not None:
        lin = (signed.detach().to(device="cpu", dtype=torch.float64)
               @ grad.detach().to(device="cpu", dtype=torch.float64)).view(-1, 1) * radii.view(1, -1)
        delta = delta - lin
    if quad is not None:
        if quad.numel() != k:
            raise ValueError(f"quad must hold one value per direction ({k}), got {quad.numel()}")
        q = quad.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        delta = delta - 0.5 * torch.cat([q, q]).view(-1, 1) * radii.view(1, -1) ** 2
    thr = torch.clamp(rel_threshold * eps * torch.maximum(vals.abs(), torch.full_like(vals, abs(f0))),
                      min=abs_threshold)
    if bool((qthr > 0).any()):
        q_rows = qthr.expand(k) if qthr.numel() == 1 else qthr
        thr = torch.maximum(thr, torch.cat([q_rows, q_rows]).view(-1, 1) * radii.view(1, -1) ** 2)
    if not torch.isfinite(vals).all():
        # A non-finite loss on the ladder decides nothing for that direction.
        delta = torch.where(torch.isfinite(vals), delta, torch.zeros_like(delta))
        thr = torch.where(torch.isfinite(vals), thr, torch.full_like(thr, math.inf))
    detect = delta.abs() > thr
    fin_rows = torch.isfinite(vals).any(1)
    unresolved = ~detect.any(1) & fin_rows
    roundoff_flat = unresolved & level
    thr_max = thr[:, -1][torch.isfinite(thr[:, -1])]

    best = {"descent": None, "ascent": None}  # (radius index, -|Δ|/thr, row)
    for j in range(2 * k):
        hits = detect[j].nonzero()
        if hits.numel() == 0:
            continue
        i = int(hits[0, 0])
        which = "descent" if float(delta[j, i]) < 0 else "ascent"
        key = (i, -float(delta[j, i].abs() / thr[j, i]))
        if best[which] is None or key < best[which][0]:
            best[which] = (key, j, i)

    def summary(which: str):
        if best[which] is None:
            return None, None, None, None
        _, j, i = best[which]
        sign = -1.0 if which == "descent" else 1.0
        ts, ds = [], []
        for ii in range(i, n_radii):
            d = float(delta[j, ii])
            if not bool(detect[j, ii]) or d * sign <= 0:
                break
            ts.append(float(radii[ii]))
            ds.append(d)
            if len(ts) == 4:
                break
        return float(radii[i]), _fit_order(ts, ds), float(delta[j, i]), signed[j].clone()

    dr, do, dd, dv = summary("descent")
    ar, ao, ad, av = summary("ascent")
    return ProbeResult(
        descent=dr is not None, ascent=ar is not None,
        descent_radius=dr, descent_order=do, descent_delta=dd,
        ascent_radius=ar, ascent_order=ao, ascent_delta=ad,
        radii=[float(t) for t in radii], n_directions=k, n_evals=int(vals.numel()),
        rel_threshold=rel_threshold, max_abs_change=max_change, descent_direction=dv, ascent_direction=av,
        n_unresolved=int(unresolved.sum()), n_roundoff_flat=int(roundoff_flat.sum()),
        n_exact_flat=int(exact_flat.sum()), exact_flat_directions=signed[exact_flat].clone(),
        threshold_at_max=float(thr_max.max()) if thr_max.numel() else math.nan,
    )


def sphere_search(
    value_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    theta: torch.Tensor,
    basis: torch.Tensor,
    radii: list[float],
    *,
    loss0: float,
    grad: torch.Tensor | None = None,
    quad_form: torch.Tensor | None = None,
    n_starts: int = 3,
    n_iter: int = 40,
    seed: int = 0,
) -> torch.Tensor:
    """Search the sphere of radius t in span(``basis``) for the direction of steepest higher-order descent.

    Line probes along eigenvectors and random combinations can miss a descent path that needs a
    specific mixture of null directions (a padded deep linear net descends at order H+1 only
    along the path through its zero hidden units, while gauge directions rise at the same
    order). This minimises φ(c) = f(θ + t·Bc) − f(θ) − t gᵀBc − ½t² cᵀ(BᵀHB)c over unit c by
    Riemannian gradient descent with per-row Armijo steps, for ``n_starts`` seeded starts at
    each radius in ``radii``, all rows in one batch.

    ``value_and_grad(points)`` maps (k, dim) points to (losses (k,), gradients (k, dim)).
    ``basis`` (dim, q) orthonormal; ``quad_form`` (q, q) = BᵀHB (None: 0).

    Args:
        value_and_grad: ``(k, dim) -> (losses (k,), gradients (k, dim))``.
        theta: the point (dim,). basis: (dim, q). radii: the sphere radii (parameter units).
        loss0: f(θ). grad: (dim,) or None. quad_form: (q, q) or None.
        n_starts: seeded starts per radius. n_iter: Riemannian steps. seed: seeds the starts.

    Returns:
        Unit directions (n_starts·len(radii), dim): the final iterates, to be checked by
        :func:`higher_order_probe`.

    Example:
        >>> import torch
        >>> def vg(P):                                   # f = x⁴ − 3x²y² descends off the axes
        ...     P = P.detach().requires_grad_(True)
        ...     L = P[:, 0] ** 4 - 3 * P[:, 0] ** 2 * P[:, 1] ** 2
        ...     return L.detach(), torch.autograd.grad(L.sum(), P)[0]
        >>> D = sphere_search(vg, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), [0.1], loss0=0.0)
        >>> tuple(D.shape), bool((D[:, 0] ** 4 - 3 * D[:, 0] ** 2 * D[:, 1] ** 2 < 0).all())
        ((3, 2), True)
    """
    q = basis.shape[1]
    if q == 0:
        raise ValueError("sphere_search needs a non-empty basis")
    dtype, device = theta.dtype, theta.device
    B = basis.to(dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(int(seed))
    C = torch.randn(n_starts * len(radii), q, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    C = C / torch.linalg.vector_norm(C, dim=1, keepdim=True)
    t = torch.tensor([r for r in radii for _ in range(n_starts)], dtype=dtype, device=device).view(-1, 1)
    gB = (B.T @ grad.to(dtype=dtype, device=device)) if grad is not None else torch.zeros(q, dtype=dtype, device=device)
    Q = quad_form.to(dtype=dtype, device=device) if quad_form is not None else torch.zeros(q, q, dtype=dtype, device=device)

    def phi(Cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, G = value_and_grad(theta.unsqueeze(0) + t * (Cm @ B.T))
        CQ = Cm @ Q
        val = L - loss0 - t.view(-1) * (Cm @ gB) - 0.5 * t.view(-1) ** 2 * (CQ * Cm).sum(1)
        gc = t * (G @ B) - t * gB.unsqueeze(0) - t ** 2 * CQ
        return val.detach(), gc.detach()

    val, gc = phi(C)
    alpha = torch.full((C.shape[0],), 0.5, dtype=dtype, device=device)
    for _ in range(n_iter):
        gt = gc - (gc * C).sum(1, keepdim=True) * C
        gn = torch.linalg.vector_norm(gt, dim=1).clamp_min(1e-300)
        step = (alpha / gn).unsqueeze(1)
        Cn = C - step * gt
        Cn = Cn / torch.linalg.vector_norm(Cn, dim=1, keepdim=True)
        vn, gcn = phi(Cn)
        ok = vn < val - 1e-4 * alpha * gn
        C = torch.where(ok.unsqueeze(1), Cn, C)
        val = torch.where(ok, vn, val)
        gc = torch.where(ok.unsqueeze(1), gcn, gc)
        alpha = torch.where(ok, torch.clamp(alpha * 1.5, max=1.0), alpha / 2)
        if bool((alpha < 1e-6).all()):
            break
    D = C @ B.T
    return D / torch.linalg.vector_norm(D, dim=1, keepdim=True)
