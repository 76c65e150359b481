"""Independent, certified instances of the escape study (issue 23), one family per cell.

A *cell* is a stall's cause × kind. The four main cells are deep linear nets (whitened inputs, mean
convention: :mod:`analyses.problems.escape_theory`) whose stall is a critical point reached by a
small-initialisation gradient-descent trajectory:

==========================  =====  =======================================================
cell                        depth  stall (critical point; the next mode j escapes from it)
==========================  =====  =======================================================
``vanishing_strict``        H = 1  W = 0: Hessian ±ŝ_i, every g_i = 0 (j = 1, order 2)
``vanishing_nonstrict``     H ∈ {2, 3}  W = 0: Hessian 0, descent of order H + 1, every g_i = 0
``cancelling_strict``       H = 1  the balanced rank-1 point S = {1} the trajectory reaches:
                                   Hessian eigenvalue −ŝ_2 on the free hidden units (j = 2);
                                   residuals ≠ 0, Σ g_i = 0
``cancelling_nonstrict``    H ∈ {2, 3}  the same rank-1 point: Hessian PSD, descent of order
                                   H + 1 through the free hidden units (j = 2); cancelling
==========================  =====  =======================================================

Every instance draws afresh (from its own seed): the inputs X (a random orthonormal frame), the
teacher M = U diag(s) Vᵀ (random U, V; ŝ_1 ∈ [2, 3], ratios ŝ_{i+1}/ŝ_i ∈ [0.3, 0.45]), the label
noise (σ ∈ [0.05, 0.3]), d ∈ {4, 5, 6}, m ∈ {48, 64, 96}, the hidden widths ∈ [2, d] and, in
the non-strict cells, the depth H ∈ {2, 3}, the initialisation scale and the initial weights.
The **start** (the same for every method) is the trajectory's point where it enters the stall's
plateau: the initialisation itself at W = 0 (its loss is L_0 − O(init²)); for the rank-1 stall the
first step of gradient descent whose loss is within 1 % of the gap L_0 − L_1 above L_1. The
**target** is halfway (in loss) from the stall's critical value to the next critical value of the
saddle-to-saddle sequence, L_k − ½(L_k − L_{k+1}); the **theory** is the escape time of the
next mode from the start (strict: ln(δ/ε)/ln(1 + lr·ŝ_j) with ε the start's component on the
Hessian's most negative eigenspace at the exact stall point; order N: the balanced mode model
from w_0 = ‖free-path part of the start‖/√N), and the **horizon** a multiple of it. Each instance
is certified at the exact stall point (:func:`certify`): gradient 0, the Hessian's least eigenvalue
against its closed form (or positive semi-definite and the order-N descent along the free path
against ½q² − qŝ_j), and every per-example gradient 0 (vanishing) or their mean 0 with mean‖g_i‖ > 0
(cancelling).

Controls (fewer instances, reported apart): ``cancelling_global`` / ``vanishing_global`` (the
global minimum a width-2 deep linear net reaches, with / without label noise; targets of rank 2 in
the vanishing case, so the minimum fits exactly) and ``cancelling_spurious`` / ``vanishing_spurious``
(the zoo's two-unit ReLU spurious minima, one or both units dead, on fresh inputs).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from landscape import Objective
from landscape.deep_linear import half_sq_error

from .escape_theory import (balanced_point, closed_loss, dense_hessian, first_flat_window, flatten, free_path,
                            gd_to_level, order_escape_steps, product, random_orthogonal, strict_delta,
                            strict_escape_steps, unflatten, whitened_inputs)
from .base import seeded_module
from .registry import get_problem


@dataclass(frozen=True)
class Cell:
    """One cause × kind cell of the study.

    Args:
        name: the cell's name.
        kind: the certified kind of its stall.
        cause: ``"vanishing"`` or ``"cancelling"``.
        family: ``"deep_linear"`` or ``"relu"``.
        stall_rank: 0 (W = 0), 1 (the rank-1 point) or None (the global minimum: all the net can learn).
        depths: the hidden-layer counts H its instances draw from.
        control: a control cell (a minimum: nothing to escape to by descent).
        code: a distinct integer (instance seeds).

    Example:
        >>> CELLS["cancelling_strict"].kind, CELLS["cancelling_strict"].stall_rank
        ('strict_saddle', 1)
    """

    name: str
    kind: str
    cause: str
    family: str
    stall_rank: int | None
    depths: tuple[int, ...]
    control: bool
    code: int


CELLS: dict[str, Cell] = {c.name: c for c in (
    Cell("cancelling_strict", "strict_saddle", "cancelling", "deep_linear", 1, (1,), False, 1),
    Cell("cancelling_nonstrict", "non_strict_saddle", "cancelling", "deep_linear", 1, (2, 3), False, 2),
    Cell("vanishing_strict", "strict_saddle", "vanishing", "deep_linear", 0, (1,), False, 3),
    Cell("vanishing_nonstrict", "non_strict_saddle", "vanishing", "deep_linear", 0, (2, 3), False, 4),
    Cell("cancelling_global", "global_minimum", "cancelling", "deep_linear", None, (1, 2), True, 5),
    Cell("vanishing_global", "global_minimum", "vanishing", "deep_linear", None, (1, 2), True, 6),
    Cell("cancelling_spurious", "minimum", "cancelling", "relu", None, (1,), True, 7),
    Cell("vanishing_spurious", "minimum", "vanishing", "relu", None, (1,), True, 8),
)}
MAIN_CELLS = ("cancelling_strict", "cancelling_nonstrict", "vanishing_strict", "vanishing_nonstrict")
CONTROL_CELLS = ("cancelling_global", "vanishing_global", "cancelling_spurious", "vanishing_spurious")
#: instance indices from here on are tuning instances (step sizes of Adam, RMSprop, sign-GD,
#: normalised GD are chosen on them, never on the test instances 0, 1, …)
TUNING_OFFSET = 100_000
#: the default GD step size: lr = LR_FACTOR / λ_top with λ_top = N·ŝ_1^{2(N−1)/N} the largest
#: Hessian eigenvalue of the balanced global minimum's top mode (N = H + 1 layers), so lr·λ_max = ½
LR_FACTOR = 0.5
#: the start of a rank-1 / global stall: the first step within this share of the last gap above the value
ENTRY_FRACTION = 0.01
#: a drawn instance whose next mode would escape in fewer steps than this from the start is not on a
#: plateau (three stall-detector windows); one whose theory exceeds MAX_THEORY_STEPS would make the
#: study's runtime unpredictable; both are redrawn (the record keeps the number of draws)
MIN_THEORY_STEPS, MAX_THEORY_STEPS = 60.0, 1500.0
#: a stall is what the stall detector calls one: a window of PLATEAU_WINDOW steps of GD from the start
#: whose loss falls by at most PLATEAU_REL·(L − L_global) before the target is reached (a draw without
#: one is redrawn); the study's detector uses the same numbers
PLATEAU_WINDOW, PLATEAU_REL = 20, 1e-3
#: the ReLU controls: step size, horizon (steps), start = the minimum + this·N(0, I)
RELU_LR, RELU_HORIZON, RELU_NUDGE = 0.15, 600, 1e-3
#: the global-minimum controls' horizon
GLOBAL_HORIZON = 600


def instance_seed(cell: str, index: int, attempt: int = 0) -> int:
    """The seed of one instance draw.

    Args:
        cell: a :data:`CELLS` name.
        index: the instance's index (≥ :data:`TUNING_OFFSET`: a tuning instance).
        attempt: the redraw (:data:`MIN_THEORY_STEPS`).

    Returns:
        A non-negative integer, distinct across cells, indices and attempts.

    >>> instance_seed("cancelling_strict", 0) != instance_seed("vanishing_strict", 0)
    True
    """
    return CELLS[cell].code * 10_000_000 + int(index) * 16 + int(attempt)


def _init_scale(order: int, rnd: random.Random) -> float:
    """Initialisation scales drawn per path order so that GD's escape takes tens to a few
    thousand steps (pilot runs): strict 10^U(−12, −8); order 3 U(0.01, 0.03); order 4 U(0.05, 0.15)."""
    if order == 2:
        return 10.0 ** rnd.uniform(-12.0, -8.0)
    return rnd.uniform(0.01, 0.03) if order == 3 else rnd.uniform(0.05, 0.15)


@dataclass
class Instance:
    """One deep linear instance (tensors for the run, ``describe()`` for the record).

    ``X`` (m, d), ``Y`` (m, d); ``dims`` [d, d_1, …, d_H, d]; ``Mh`` = YᵀX/m, ``U``, ``s``, ``V``
    its SVD; ``const`` = ½(‖Y‖²/m − ‖M̂‖²); ``values`` the critical values L_0, L_1, …;
    ``theta_start`` / ``theta_stall`` flat (dim,); ``lr``; everything else as in the module
    docstring (``info`` holds the JSON-able description).
    """

    cell: str
    index: int
    X: torch.Tensor
    Y: torch.Tensor
    dims: list[int]
    Mh: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    V: torch.Tensor
    const: float
    lr: float
    theta_start: torch.Tensor
    theta_stall: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)

    def make_model(self) -> nn.Module:
        """Returns:
            A fresh ``nn.Sequential`` of bias-free ``nn.Linear`` layers (float64) with PyTorch's
            default initialisation drawn from the instance's seed: the generic point whose
            per-example gradient scale is the trainer's reference for the stall cause (the runs
            themselves start from :attr:`theta_start`).
        """
        dims = self.dims
        return seeded_module(lambda: nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])]),
                             int(self.info.get("seed", 0)), torch.float64)

    def objective(self) -> Objective:
        """Returns:
            The study's objective ½·mean_i‖P x_i − y_i‖² on the instance's data.
        """
        return Objective.from_module(self.make_model(), half_sq_error, (self.X, self.Y), dtype=torch.float64,
                                     reduction="mean")

    def describe(self) -> dict[str, Any]:
        """Returns:
            The instance's JSON-able description (what defines it, its certificate, target, theory
            and horizon).
        """
        return dict(self.info)


def _critical_values(Y: torch.Tensor, s: torch.Tensor, m: int, r: int) -> list[float]:
    """L_k = ½(‖Y‖²/m − Σ_{i≤k} ŝ_i²), k = 0..r."""
    yy = float((Y * Y).sum()) / m
    out, acc = [], 0.0
    for k in range(r + 1):
        out.append(0.5 * (yy - acc))
        if k < len(s):
            acc += float(s[k]) ** 2
    return out


def draw_design(cell: Cell, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The instance's random design (everything that defines it) from its seed.

    Args:
        cell: the cell.
        seed: the draw's seed (:func:`instance_seed`).
        overrides: fields to replace (``init``, ``init_seed``, ``lr_factor``, ``orth_noise``).

    Returns:
        ``{H, d, m, widths, teacher_s, noise, init, init_seed, lr_factor, orth_noise}``.

    >>> draw_design(CELLS["cancelling_strict"], 7, {})["H"]
    1
    """
    rnd = random.Random(seed)
    H = rnd.choice(cell.depths)
    d = rnd.choice((4, 5, 6))
    m = rnd.choice((48, 64, 96))
    widths = [rnd.randint(2, d) for _ in range(H)]
    if cell.name == "vanishing_global" or cell.name == "cancelling_global":
        widths = [2] * H
    s1 = rnd.uniform(2.0, 3.0)
    s = [s1]
    for _ in range(d - 1):
        s.append(s[-1] * rnd.uniform(0.3, 0.45))
    noise = 0.0 if cell.name == "vanishing_global" else rnd.uniform(0.05, 0.3)
    if cell.name == "vanishing_global":
        s = [v if i < 2 else 0.0 for i, v in enumerate(s)]  # rank 2 = the width: the minimum fits exactly
    init = _init_scale(H + 1, rnd)
    design = {"H": H, "d": d, "m": m, "widths": widths, "teacher_s": s, "noise": noise, "init": init,
              "init_seed": seed, "lr_factor": LR_FACTOR, "orth_noise": 0.0}
    design.update(overrides)
    return design


def _build_data(design: dict[str, Any], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d, m = design["d"], design["m"]
    X = whitened_inputs(m, d, g)
    M = random_orthogonal(d, g) @ torch.diag(torch.tensor(design["teacher_s"], dtype=torch.float64)) \
        @ random_orthogonal(d, g).T
    Z = torch.randn(m, d, generator=g, dtype=torch.float64)
    Y = X @ M.T + design["noise"] * Z
    if design["orth_noise"]:
        # noise orthogonal to the inputs' columns: M̂ = YᵀX/m, the critical points and the whole GD
        # trajectory are unchanged; only the per-example residuals (and κ) change
        Zo = torch.randn(m, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        Zo = Zo - X @ (X.T @ Zo) / m
        Zo = Zo / torch.linalg.vector_norm(Zo) * math.sqrt(m)   # rms 1 per example
        Y = Y + design["orth_noise"] * Zo
    return X, Y


def _escape(design: dict[str, Any], dims: list[int], W_start: list[torch.Tensor], W_stall: list[torch.Tensor],
            hidden: list[torch.Tensor], U: torch.Tensor, s: torch.Tensor, V: torch.Tensor, Mh: torch.Tensor,
            lr: float, rank: int) -> dict[str, Any]:
    """ε, μ, the order and the theory of the next mode's escape from the start."""
    j = rank  # 0-based index of the escaping mode
    N = len(dims) - 1
    out: dict[str, Any] = {"mode": j + 1, "order": N, "s_escape": float(s[j])}
    if N == 2:
        theta_stall = flatten(W_stall)
        H = dense_hessian(theta_stall, dims, Mh)
        lam, Q = torch.linalg.eigh(H)
        lam_min = float(lam[0])
        tol = 1e-8 * max(1.0, float(lam.abs().max()))
        sel = Q[:, lam <= lam_min + tol]
        eps = float(torch.linalg.vector_norm(sel.T @ (flatten(W_start) - theta_stall)))
        out.update(eps=eps, mu=-lam_min, delta=strict_delta(float(s[j])), multiplicity=int(sel.shape[1]),
                   theory_steps=strict_escape_steps(eps, -lam_min, lr, strict_delta(float(s[j]))),
                   theory_continuous=math.log(strict_delta(float(s[j])) / eps) / (lr * -lam_min))
    else:
        disp = [a - b for a, b in zip(W_start, W_stall)]
        parts = free_path(disp, hidden, U[:, j], V[:, j])
        r0 = math.sqrt(sum(float((p * p).sum()) for p in parts))
        w0 = r0 / math.sqrt(N)
        out.update(eps=r0, w0=w0, mu=float(s[j]),
                   theory_steps=order_escape_steps(w0, float(s[j]), lr, N),
                   theory_blowup=1.0 / ((N - 2) * lr * float(s[j]) * w0 ** (N - 2)))
    return out


def certify(dims: list[int], theta_stall: torch.Tensor, hidden: list[torch.Tensor], U: torch.Tensor,
            s: torch.Tensor, V: torch.Tensor, Mh: torch.Tensor, const: float, rank: int,
            obj: Objective) -> dict[str, Any]:
    """The stall point's certificate, in closed form (module docstring).

    Args:
        dims: the layer widths.
        theta_stall: the exact critical point (flat).
        hidden: its unit hidden directions (empty at W = 0).
        U, s, V: M̂'s SVD.
        Mh: M̂.
        const: c.
        rank: 0 or 1.
        obj: the data objective (per-example gradients).

    Returns:
        ``kind``, ``cause``, ``value`` (closed form) and ``value_at_point`` (the data objective),
        ``grad_norm``, ``lambda_min`` with ``lambda_min_closed`` (−ŝ_{rank+1}) for H = 1 or
        ``hessian_min_rel`` (λ_min / max|λ|) and the order-N descent check for H ≥ 2,
        ``kappa`` and ``mean_example_grad`` at the point.
    """
    N = len(dims) - 1
    j = rank
    Hs = dense_hessian(theta_stall, dims, Mh)
    lam = torch.linalg.eigvalsh(Hs)
    scale = max(float(lam.abs().max()), float(s[0]))
    g = obj.grad(theta_stall)
    G = obj.per_example_grads(theta_stall)
    mean_norm = float(torch.linalg.vector_norm(G, dim=1).mean())
    cert: dict[str, Any] = {
        "value": 0.5 * (float((Mh * Mh).sum()) - sum(float(x) ** 2 for x in s[:rank])) + const,
        "value_at_point": obj.loss(theta_stall), "grad_norm": float(torch.linalg.vector_norm(g)),
        "lambda_min": float(lam[0]), "lambda_max": float(lam[-1]), "mean_example_grad": mean_norm,
        "kappa": (float(torch.linalg.vector_norm(G.mean(0))) / mean_norm) if mean_norm > 0 else None}
    if N == 2:
        cert.update(kind="strict_saddle", lambda_min_closed=-float(s[j]),
                    closed_form_ok=abs(float(lam[0]) + float(s[j])) <= 1e-9 * scale)
    else:
        # the balanced free path of mode j: P moves by q·û_j v̂_jᵀ exactly, q = (t/√N)^N
        W = unflatten(theta_stall, dims)
        cs = []
        for k in range(N - 1):
            n = dims[k + 1]
            c = torch.zeros(n, dtype=torch.float64)
            c[0] = 1.0
            if hidden:
                c = c - hidden[k] * hidden[k][0]
                if float(torch.linalg.vector_norm(c)) < 1e-8:
                    c = torch.zeros(n, dtype=torch.float64)
                    c[1] = 1.0
                    c = c - hidden[k] * hidden[k][1]
                c = c / torch.linalg.vector_norm(c)
            cs.append(c)
        dirs = [torch.outer(cs[0], V[:, j])] + [torch.outer(cs[k], cs[k - 1]) for k in range(1, N - 1)] \
            + [torch.outer(U[:, j], cs[-1])]
        t = 0.05
        Wt = [w + (t / math.sqrt(N)) * dd for w, dd in zip(W, dirs)]
        q = (t / math.sqrt(N)) ** N
        drop = float(closed_loss(flatten(Wt), dims, Mh, const) - closed_loss(theta_stall, dims, Mh, const))
        expected = 0.5 * q * q - q * float(s[j])
        psd = float(lam[0]) >= -1e-9 * scale
        cert.update(kind="non_strict_saddle" if psd and drop < 0 else "strict_saddle" if not psd else "unknown",
                    hessian_min_rel=float(lam[0]) / scale, descent_order=N, descent_t=t, descent_drop=drop,
                    descent_expected=expected,
                    closed_form_ok=psd and abs(drop - expected) <= 1e-6 * abs(expected))
    zero = mean_norm == 0.0
    cert["cause"] = "vanishing" if zero else ("cancelling" if cert["kappa"] is not None and cert["kappa"] < 1e-8
                                              else "neither")
    cert["product_check"] = float(torch.linalg.vector_norm(product(unflatten(theta_stall, dims))
                                                           - float(s[0]) * torch.outer(U[:, 0], V[:, 0]) * rank))
    return cert


@lru_cache(maxsize=64)
def _deep_linear(cell_name: str, index: int, overrides_key: tuple) -> Instance:
    cell = CELLS[cell_name]
    overrides = dict(overrides_key)
    last: Exception | None = None
    for attempt in range(8):
        seed = instance_seed(cell_name, index, attempt)
        design = draw_design(cell, seed, overrides)
        try:
            inst = _build(cell, index, seed, attempt, design, require_plateau=not overrides)
        except ValueError as exc:
            if overrides:
                raise
            last = exc
            continue
        th = inst.info.get("theory_steps")
        if th is None or MIN_THEORY_STEPS <= th <= MAX_THEORY_STEPS or overrides:
            return inst
        last = ValueError(f"theory {th:.0f} steps outside [{MIN_THEORY_STEPS:g}, {MAX_THEORY_STEPS:g}]")
    raise ValueError(f"{cell_name}/{index}: no draw of 8 put the start on a plateau (the last: {last})")


def _build(cell: Cell, index: int, seed: int, attempt: int, design: dict[str, Any], require_plateau: bool = True
           ) -> Instance:
    X, Y = _build_data(design, seed)
    m, d = X.shape
    Mh = Y.T @ X / m
    U, s, Vh = torch.linalg.svd(Mh)
    V = Vh.T
    const = 0.5 * (float((Y * Y).sum()) / m - float((Mh * Mh).sum()))
    dims = [d, *design["widths"], d]
    N = len(dims) - 1
    p = min(design["widths"])
    r = min(p, d)
    values = _critical_values(Y, s, m, r)
    lr = design["lr_factor"] / (N * float(s[0]) ** (2.0 * (N - 1) / N))
    g = torch.Generator().manual_seed(int(design["init_seed"]) + 17)
    W0 = [design["init"] * torch.randn(b, a, generator=g, dtype=torch.float64) for a, b in zip(dims[:-1], dims[1:])]
    rank = cell.stall_rank
    info: dict[str, Any] = {"cell": cell.name, "kind": cell.kind, "cause": cell.cause, "index": index,
                            "seed": seed, "draws": attempt + 1, "design": design, "dims": dims, "lr": lr,
                            "s_hat": [float(x) for x in s], "values": values, "global_value": values[-1]}
    if rank is None:  # a control: the global minimum of the net (rank r)
        level = values[r] + ENTRY_FRACTION * (values[r - 1] - values[r])
        W_start, t_start = gd_to_level(W0, Mh, lr, const, level, 20_000)
        theta_start = flatten(W_start)
        info.update(stall_value=values[r], next_value=None, target=None, start_step=t_start,
                    start_loss=float(closed_loss(theta_start, dims, Mh, const)), theory_steps=None,
                    horizon=GLOBAL_HORIZON, certificate={"kind": "global_minimum", "value": values[r],
                                                         "rule": "Kawaguchi: every local minimum is global; "
                                                                 "value ½(‖Y‖²/m − Σ_{i≤r} ŝ_i²)"})
        return Instance(cell.name, index, X, Y, dims, Mh, U, s, V, const, lr, theta_start, None, info)
    if rank == 0:
        W_start, t_start = W0, 0
    else:
        level = values[1] + ENTRY_FRACTION * (values[0] - values[1])
        W_start, t_start = gd_to_level(W0, Mh, lr, const, level, 20_000)
    W_stall, hidden = balanced_point(W_start, U, V, s, rank)
    esc = _escape(design, dims, W_start, W_stall, hidden, U, s, V, Mh, lr, rank)
    theta_start, theta_stall = flatten(W_start), flatten(W_stall)
    target = values[rank] - 0.5 * (values[rank] - values[rank + 1])
    flat, gd_steps = first_flat_window(W_start, Mh, lr, const, target, values[-1],
                                       int(20 * esc["theory_steps"]) + 100, PLATEAU_WINDOW, PLATEAU_REL)
    if flat is None and require_plateau:
        raise ValueError("GD from the start reaches the target without a stall")
    inst = Instance(cell.name, index, X, Y, dims, Mh, U, s, V, const, lr, theta_start, theta_stall, info)
    cert = certify(dims, theta_stall, hidden, U, s, V, Mh, const, rank, inst.objective())
    info.update(stall_value=values[rank], next_value=values[rank + 1], target=target, start_step=t_start,
                start_loss=float(closed_loss(theta_start, dims, Mh, const)),
                distance_to_stall=float(torch.linalg.vector_norm(theta_start - theta_stall)), **esc,
                plateau_step=flat, gd_steps_closed_form=gd_steps, certificate=cert)
    return inst


def build_instance(cell: str, index: int, **overrides: Any) -> Instance:
    """One instance of a deep linear cell (cached per process: a pure function of its arguments).

    Args:
        cell: a deep linear :data:`CELLS` name.
        index: the instance (≥ :data:`TUNING_OFFSET` for tuning instances).
        **overrides: design fields to replace (the sub-experiments): ``init`` (scale),
            ``init_seed`` (the initial weights' draw), ``lr_factor``, ``orth_noise`` (rms per
            example of label noise orthogonal to the inputs).

    Returns:
        The :class:`Instance` (do not modify its tensors).

    Raises:
        ValueError: an unknown cell, or no draw put the start on a plateau.

    >>> inst = build_instance("vanishing_strict", 0)
    >>> inst.info["certificate"]["kind"], inst.info["certificate"]["cause"], inst.info["theory_steps"] > 20
    ('strict_saddle', 'vanishing', True)
    """
    if cell not in CELLS or CELLS[cell].family != "deep_linear":
        raise ValueError(f"{cell!r} is not a deep linear cell; choose one of "
                         f"{', '.join(c for c in CELLS if CELLS[c].family == 'deep_linear')}")
    return _deep_linear(cell, int(index), tuple(sorted(overrides.items())))


@lru_cache(maxsize=16)
def relu_instance(cell: str, index: int) -> dict[str, Any]:
    """A ReLU control instance: the zoo's ``relu_spurious`` / ``relu_dead`` point on fresh inputs
    (the zoo factory's ``seed``), started at the point + :data:`RELU_NUDGE`·N(0, I).

    Args:
        cell: ``"cancelling_spurious"`` or ``"vanishing_spurious"``.
        index: the instance.

    Returns:
        ``{"problem", "theta_start", "info"}`` (the zoo :class:`~analyses.problems.base.Problem`,
        the start (dim,) and the JSON-able description: certificate, target ½·L_s, horizon).
    """
    name = {"cancelling_spurious": "relu_spurious", "vanishing_spurious": "relu_dead"}[cell]
    seed = instance_seed(cell, index)
    prob = get_problem(name, seed=seed)
    ref = prob.reference(0)
    g = torch.Generator().manual_seed(seed + 3)
    start = ref + RELU_NUDGE * torch.randn(ref.shape, generator=g, dtype=torch.float64)
    obj = prob.objective(0)
    value = float(prob.reference_loss)
    info = {"cell": cell, "kind": CELLS[cell].kind, "cause": CELLS[cell].cause, "index": index, "seed": seed,
            "design": {"problem": name, "data_seed": seed, "nudge": RELU_NUDGE}, "lr": RELU_LR,
            "stall_value": value, "global_value": 0.0, "next_value": 0.0, "target": 0.5 * value,
            "start_loss": obj.loss(start), "theory_steps": None, "horizon": RELU_HORIZON,
            "certificate": {"kind": CELLS[cell].kind, "cause": CELLS[cell].cause, "value": value,
                            "rule": prob.hints["study"]["certificate"]}}
    return {"problem": prob, "theta_start": start, "info": info}
