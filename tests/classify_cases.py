"""Critical points whose kind is known in closed form, for the classifier's property tests and sweep.

Shared by ``tests/test_classify_properties.py`` (hypothesis) and ``scripts/classify_sweep.py`` (a seeded
sweep); uses only the public API (``landscape.Objective.from_function``).

Every case is f(x) = c·g(Q(x − x₀)) + b: g a *core* in the first m coordinates z (whose kind is known)
plus quadratic *padding* Σ p_j z_j² in the others (p_j of either sign), Q a random orthogonal matrix,
c > 0 log-uniform in [1e-4, 1e4], b an offset relative to the loss scale c, x₀ the critical point. The
only critical point within the probe's reach is x₀ (for the non-degenerate family the cubic terms put
the others ≥ 1 away).

Truth. ``kind`` and ``index`` (the number of negative eigenvalues at x₀). A negative eigenvalue makes
any non-maximum a ``strict_saddle`` (λ_min < 0: an escape direction at second order), a degenerate
Hessian with no negative eigenvalue is a ``minimum`` or a ``non_strict_saddle`` by the sign of the
reduced (Lyapunov–Schmidt) function φ(u) = min_w g(u + w) on the null space, and a negative
semi-definite one is a ``maximum`` unless some direction rises.

Margin. ``margin(t)``: how far the case is from the boundary between the two kinds the higher-order
probe has to separate, as a loss change at radius t (loss units, c included): the reduced function's
largest descent for a saddle (|a|t³ for a cubic, |a_eff|t⁴ for a quartic one), its smallest rise for a
minimum (or a maximum's smallest fall), and ``inf`` where second-order information decides. A case is
*beyond the probe's resolution* when margin(t_max) ≤ RESOLUTION_FACTOR × the probe's own threshold at its
largest radius t_max, read from the report (:func:`probe_threshold_at_max_radius`).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable

import torch

FAMILIES = ("nondegenerate", "cubic", "quartic_pos", "quartic_neg", "peano", "coupling", "quartic_pair")
#: a case whose margin at the largest probe radius is at most this multiple of the probe's threshold
#: there is near-degenerate beyond the probe's resolution (the lines and the reduced probe need not hit
#: the best direction exactly; 10 allows for that, see the module docstring)
RESOLUTION_FACTOR = 10.0
#: the distance of the "near" point from x₀, relative to the problem's length scale max(1, rms x₀)
NEAR = 1e-6


class Draw:
    """The parameter source: :class:`RandomDraw` (the sweep) or a hypothesis ``data`` wrapper (the tests)."""

    def uniform(self, lo: float, hi: float) -> float:
        raise NotImplementedError

    def integer(self, lo: int, hi: int) -> int:  # inclusive
        raise NotImplementedError

    def choice(self, seq):
        return seq[self.integer(0, len(seq) - 1)]

    def boolean(self, p: float = 0.5) -> bool:
        return self.uniform(0.0, 1.0) < p

    def log_uniform(self, lo: float, hi: float) -> float:
        return 10.0 ** self.uniform(math.log10(lo), math.log10(hi))


class RandomDraw(Draw):
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def uniform(self, lo: float, hi: float) -> float:
        return self.r.uniform(lo, hi)

    def integer(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)


@dataclass
class Case:
    family: str
    dim: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    kind: str
    index: int
    margin_coef: float  # margin(t) = c·margin_coef·t^margin_order (inf: second order decides)
    margin_order: int
    c: float
    b: float
    params: dict = field(default_factory=dict)

    def margin(self, t: float) -> float:
        return self.c * self.margin_coef * t ** self.margin_order

    @property
    def length_scale(self) -> float:
        return max(1.0, float(torch.linalg.vector_norm(self.x0)) / math.sqrt(self.dim))

    def point(self, near: bool, seed: int = 0) -> torch.Tensor:
        """x₀, or x₀ + NEAR·(length scale)·u for a seeded random unit u."""
        if not near:
            return self.x0.clone()
        gen = torch.Generator().manual_seed(seed)
        u = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        return self.x0 + NEAR * self.length_scale * u / torch.linalg.vector_norm(u)

    def describe(self) -> str:
        p = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.family}[dim={self.dim}, c={self.c:.3g}, b={self.b:.3g}, {p}] truth={self.kind}/{self.index}"


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R)).unsqueeze(0)


def _padding(draw: Draw, n: int, mode: str | None = None) -> list[float]:
    """n padding coefficients p_j (the term is p_j z_j²): all positive, all negative or mixed signs."""
    if n == 0:
        return []
    mode = mode or draw.choice(["pos", "pos", "pos", "neg", "mixed"])
    mags = [draw.log_uniform(0.1, 10.0) for _ in range(n)]
    if mode == "pos":
        return mags
    if mode == "neg":
        return [-m for m in mags]
    return [m if draw.boolean() else -m for m in mags]


def make_case(family: str, draw: Draw) -> Case:
    """A random case of ``family`` (:data:`FAMILIES`) with its closed-form kind, index and margin."""
    inf = math.inf
    m = {"nondegenerate": 0, "cubic": 1, "quartic_pos": 1, "quartic_neg": 1, "peano": 2, "coupling": 2,
         "quartic_pair": 2}[family]
    dim = draw.integer(max(2, m), 8)
    if family == "quartic_pair" and dim == 2 and draw.boolean(0.5):
        dim = draw.integer(3, 8)
    pad = _padding(draw, dim - m)
    n_neg = sum(p < 0 for p in pad)
    params: dict = {}
    cubic_pad = [0.0] * len(pad)

    if family == "nondegenerate":
        # Quadratic of a random index, plus cubic terms γ_j z_j³ (|γ_j| ≤ |p_j|/3: the other critical
        # point of each coordinate, z_j = −2p_j/(3γ_j), lies ≥ 2 away).
        cubic_pad = [draw.uniform(-1.0, 1.0) * abs(p) / 3 for p in pad]
        if n_neg == 0:
            kind = "minimum"
        elif n_neg == dim:
            kind = "maximum"
        else:
            kind = "strict_saddle"
        core = lambda z: z.new_zeros(())  # noqa: E731
        coef, order = inf, 2
    elif family == "cubic":
        a = draw.choice([1.0, -1.0]) * draw.log_uniform(0.1, 10.0)
        # optional couplings to the first padding coordinate (the x·y², x²·y): they change only
        # terms of order ≥ 4 of the reduced function, whose leading term stays a·z³
        h1 = draw.uniform(-1, 1) * abs(a) if draw.boolean(0.5) else 0.0
        h2 = draw.uniform(-1, 1) * abs(pad[0]) / 2 if draw.boolean(0.5) else 0.0
        params.update(a=a, h_x2y=h1, h_xy2=h2)
        core = lambda z: a * z[0] ** 3 + h1 * z[0] ** 2 * z[1] + h2 * z[0] * z[1] ** 2  # noqa: E731
        kind = "strict_saddle" if n_neg else "non_strict_saddle"
        coef, order = (inf, 2) if n_neg else (abs(a), 3)
    elif family == "quartic_pos":
        a = draw.log_uniform(0.1, 10.0)
        params.update(a=a)
        core = lambda z: a * z[0] ** 4  # noqa: E731
        if n_neg == 0:
            kind, coef, order = "minimum", a, 4
        elif n_neg == len(pad):
            kind, coef, order = "strict_saddle", a, 4  # NSD + a rising direction
        else:
            kind, coef, order = "strict_saddle", inf, 2
    elif family == "quartic_neg":
        a = draw.log_uniform(0.1, 10.0)
        h1 = h2 = 0.0
        if n_neg == 0 and draw.boolean(0.6):
            # the y² − x⁴ + x³y and y² − 0.3x⁴ − 0.7x³y − 0.75xy²: couplings that leave the
            # reduced function's leading term −a·z⁴ (the x³y term adds −h²z⁶/(4p), same sign)
            h1 = draw.uniform(-1, 1) * a
            h2 = draw.uniform(-1, 1) * pad[0] / 2
        params.update(a=a, h_x3y=h1, h_xy2=h2)
        core = lambda z: -a * z[0] ** 4 + h1 * z[0] ** 3 * z[1] + h2 * z[0] * z[1] ** 2  # noqa: E731
        if n_neg == 0:
            kind, coef, order = "non_strict_saddle", a, 4
        elif n_neg == len(pad):
            kind, coef, order = "maximum", a, 4
        else:
            kind, coef, order = "strict_saddle", inf, 2
    elif family == "peano":
        # s·(z1 − α z0²)(z1 − β z0²): reduced φ(z0) = −s(β − α)² z0⁴ / 4 < 0 (a curve descends)
        s = draw.log_uniform(0.1, 10.0)
        al = draw.uniform(-2.0, 2.0)
        be = al + draw.choice([1.0, -1.0]) * draw.uniform(0.3, 3.0)
        params.update(s=s, alpha=al, beta=be)
        core = lambda z: s * (z[1] - al * z[0] ** 2) * (z[1] - be * z[0] ** 2)  # noqa: E731
        kind = "strict_saddle" if n_neg else "non_strict_saddle"
        coef, order = (inf, 2) if n_neg else (s * (be - al) ** 2 / 4, 4)
    elif family == "coupling":
        # a z0⁴ + d z1² + e z0² z1: reduced φ(z0) = (a − e²/(4d)) z0⁴: descent iff e² > 4ad
        a, d = draw.log_uniform(0.1, 10.0), draw.log_uniform(0.1, 10.0)
        # e²/(4ad) = r, at least 1 % from the boundary r = 1 (there a curve of minima, f = (√a z² + √d y)²,
        # whose cancelling terms make float64 see descent; the edge itself is tested apart)
        r = 10.0 ** (draw.choice([1.0, -1.0]) * draw.uniform(0.005, 1.0))
        e = draw.choice([1.0, -1.0]) * math.sqrt(4 * a * d * r)
        params.update(a=a, d=d, e=e, r=r)
        core = lambda z: a * z[0] ** 4 + d * z[1] ** 2 + e * z[0] ** 2 * z[1]  # noqa: E731
        a_eff = a - e * e / (4 * d)
        if n_neg:
            kind, coef, order = "strict_saddle", inf, 2
        else:
            kind = "non_strict_saddle" if a_eff < 0 else "minimum"
            coef, order = abs(a_eff), 4
    elif family == "quartic_pair":
        # w(z0⁴ + z1⁴ + k z0² z1²): a minimum iff k > −2 (its smallest rise w·min(1, (2+k)/4)·t⁴);
        # for k < −2 the diagonal falls by w·|2+k|/4·t⁴
        w = draw.log_uniform(0.1, 10.0)
        k = -2.0 + (draw.uniform(0.02, 6.0) if draw.boolean() else -draw.uniform(0.02, 4.0))  # not at k = −2
        params.update(w=w, k=k)
        core = lambda z: w * (z[0] ** 4 + z[1] ** 4 + k * z[0] ** 2 * z[1] ** 2)  # noqa: E731
        if n_neg and n_neg == len(pad):
            kind, coef, order = "strict_saddle", w, 4  # NSD, rises along the axes
        elif n_neg:
            kind, coef, order = "strict_saddle", inf, 2
        elif k > -2:
            kind, coef, order = "minimum", w * min(1.0, (2 + k) / 4), 4
        else:
            kind, coef, order = "non_strict_saddle", w * abs(2 + k) / 4, 4
    else:
        raise ValueError(family)

    c = draw.log_uniform(1e-4, 1e4)
    b = 0.0 if draw.boolean(0.3) else c * draw.choice([1.0, -1.0]) * draw.log_uniform(1e-3, 1e4)
    x0 = torch.zeros(dim, dtype=torch.float64)
    if draw.boolean(0.5):
        sigma = draw.log_uniform(0.1, 3.0)
        x0 = sigma * torch.randn(dim, generator=torch.Generator().manual_seed(draw.integer(0, 2 ** 31 - 1)),
                                 dtype=torch.float64)
    Q = _orthogonal(dim, draw.integer(0, 2 ** 31 - 1))
    P = torch.tensor(pad, dtype=torch.float64)
    G3 = torch.tensor(cubic_pad, dtype=torch.float64)

    def fn(x: torch.Tensor) -> torch.Tensor:
        z = Q @ (x - x0)
        zp = z[m:]
        return c * (core(z) + (P * zp ** 2).sum() + (G3 * zp ** 3).sum()) + b

    params.update(pad=[round(p, 3) for p in pad])
    return Case(family=family, dim=dim, fn=fn, x0=x0, kind=kind, index=n_neg, margin_coef=coef,
                margin_order=order, c=c, b=b, params=params)


def probe_threshold_at_max_radius(rep, loss_scale: float) -> float:
    """The probe's own threshold at its largest radius t_max, from the report's stated tolerances:
    max(rel·ε·|f|, abs, quad·t_max²) (:func:`landscape.higher_order_probe`; |f| is the loss plus the
    change examined, ``loss_scale``)."""
    tol = rep.tolerances
    t = tol["probe_radius_max"]
    eps = torch.finfo(torch.float64).eps
    return max(tol["probe_rel_threshold"] * eps * (abs(rep.loss) + abs(loss_scale)),
               tol["probe_abs_threshold"], tol["probe_quad_threshold"] * t * t)


#: the kind a probe that resolves nothing used to report across each boundary ("no descent found within
#: the radius above the probe's threshold": minimum; "no ascent found": maximum); counted apart by the sweep
_UNRESOLVED_KIND = {"non_strict_saddle": "minimum", "minimum": "minimum", "strict_saddle": "maximum",
                    "maximum": "maximum"}


def beyond_resolution(case: Case, rep) -> bool:
    """The case is near-degenerate beyond the probe's resolution: its margin at the largest probe
    radius t_max is at most RESOLUTION_FACTOR × the probe's own threshold there."""
    t = rep.tolerances.get("probe_radius_max")
    if t is None or not math.isfinite(case.margin_coef):
        return False
    m = case.margin(t)
    return m <= RESOLUTION_FACTOR * probe_threshold_at_max_radius(rep, m)


def verdict(case: Case, rep) -> str:
    """One of:

    - ``right``;
    - ``inconclusive_resolution``: inconclusive, and the case is beyond the probe's resolution;
    - ``definite_resolution``: beyond the probe's resolution, the kind a probe that resolves
      nothing used to report (a saddle whose descent is below the threshold: ``minimum``, "no descent
      found within radius r"). Under the strict reading of "never confidently wrong" this is a wrong
      definite kind: the tests no longer accept it (the sweep counts it apart);
    - ``inconclusive``: inconclusive, not explained by the resolution;
    - ``wrong_index``: a strict saddle with the wrong index (dense: exact; Lanczos: a lower bound
      above the truth);
    - ``wrong``: a wrong definite kind."""
    if rep.kind == "inconclusive":
        return "inconclusive_resolution" if beyond_resolution(case, rep) else "inconclusive"
    if rep.kind != case.kind:
        if beyond_resolution(case, rep) and rep.kind == _UNRESOLVED_KIND.get(case.kind):
            return "definite_resolution"
        return "wrong"
    if rep.kind == "strict_saddle" and (rep.index != case.index if rep.index_exact else rep.index > case.index):
        return "wrong_index"
    return "right"
