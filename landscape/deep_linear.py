"""Deep linear networks (Kawaguchi 2016): data, objective, global value and analytic critical points.

Notation (THEORY.md §2): data ``X`` (m, d_x) and ``Y`` (m, d_y), rows are examples; weights
``W_k`` of shape (d_k, d_{k−1}) for k = 1..H+1 with d_0 = d_x and d_{H+1} = d_y (the layout of
``nn.Linear(d_{k−1}, d_k, bias=False).weight``); product P = W_{H+1}⋯W_1; loss

    L(W) = ½ Σ_i ‖P x_i − y_i‖²        (a sum over examples, not a mean).

``widths`` always means the **hidden** widths [d_1, …, d_H] (H = len(widths) ≥ 1); the input
and output widths come from the data. p = min(widths), r = min(p, d_y).

Kawaguchi's assumptions — XᵀX and XᵀY full rank, d_y ≤ d_x, and Σ = YᵀX(XᵀX)⁻¹XᵀY with distinct
eigenvalues λ_1 > … > λ_{d_y} — are checked on construction (``check=False`` skips the check).

Index sets ``S`` are 0-based positions into the eigenvalues sorted in *descending* order, so
S = (0, …, r−1) is the leading set (the global minimum).

Analytic critical points (:meth:`DeepLinearProblem.critical_point`): for an index set S with
s = |S| ≤ r, put

    W_1 = [U_Sᵀ M̂; 0],   W_k = [[I_s, 0], [0, 0]] (1 < k ≤ H),   W_{H+1} = [U_S, 0],

with M̂ = YᵀX(XᵀX)⁻¹ and the zero blocks padding to the layer shapes. Then P = U_S U_Sᵀ M̂ and the
residual gradient G = P XᵀX − YᵀX = −(I − U_S U_Sᵀ)YᵀX satisfies U_Sᵀ G = 0 and G M̂ᵀ U_S = 0,
so every layer's gradient vanishes. For H = 1 and s = p this is Baldi–Hornik with C = I. An
optional random gauge W_k → C_k W_k C_{k−1}⁻¹ (C_k ∈ GL(d_k), C_0 = I_{d_x}, C_{H+1} = I_{d_y})
keeps the loss, criticality and Hessian inertia (the gauge is a linear, loss-preserving change
of variables, so the Hessians are congruent).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .defaults import MAX_ENUMERATED
from .objective import Objective
from .results import JsonResult


def half_sq_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ½‖output − target‖² (with ``reduction="sum"`` the Objective
    multiplies by the batch size, giving the paper's ½ Σ_i ‖P x_i − y_i‖²).

    Args:
        outputs: (n, d_y). targets: (n, d_y).

    Returns:
        A scalar tensor.

    Example:
        >>> import torch
        >>> half_sq_error(torch.ones(2, 3), torch.zeros(2, 3)).item()
        1.5
    """
    return 0.5 * (outputs - targets).pow(2).sum() / outputs.shape[0]


@dataclass(frozen=True)
class AnalyticCriticalPoint(JsonResult):
    """An analytic critical point of a deep linear network.

    ``S``: 0-based indices into the descending eigenvalues of Σ; ``theta`` (dim,) float64 flat
    weights; ``weights``: [W_1, …, W_{H+1}]. ``loss`` = ½(tr YᵀY − Σ_{i∈S} λ_i) (exact).
    ``kind``: the predicted kind (``"global_minimum"``, ``"strict_saddle"``,
    ``"non_strict_saddle"``); ``index`` / ``nullity``: predicted number of negative / zero Hessian
    eigenvalues, ``None`` where no formula is known. ``leading``: S = {0..s−1};
    ``padded``: s < p (some hidden units are identically zero). ``swaps`` =
    #{(i, j): i ∈ S, j ∉ S, λ_j > λ_i}: the index for H = 1 (with the padding term) and, for
    H ≥ 2, the index observed in every case checked against the dense Hessian (not a proved
    formula, so ``index`` stays None there).

    Example: see :meth:`DeepLinearProblem.critical_point`.
    """

    S: tuple[int, ...]
    loss: float
    kind: str
    index: int | None
    nullity: int | None
    leading: bool
    padded: bool
    swaps: int = 0
    theta: torch.Tensor = field(default=None, repr=False)
    weights: list[torch.Tensor] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict:
        """The point as JSON types, without ``theta`` and ``weights``."""
        d = super().to_dict()
        d.pop("theta")
        d.pop("weights")
        return d


class DeepLinearProblem:
    """A deep linear network regression problem (see the module docstring for the notation).

    ``X`` (m, d_x), ``Y`` (m, d_y) tensors or arrays (stored as float64 on the CPU);
    ``widths`` = hidden widths [d_1, …, d_H]. Raises ``ValueError`` naming the violated
    assumption when ``check`` is true and the data break Kawaguchi's assumptions.

    Args:
        X: (m, d_x) inputs. Y: (m, d_y) targets. widths: hidden widths [d_1, …, d_H].
        check: verify Kawaguchi's assumptions.

    Example:
        >>> prob = DeepLinearProblem.random(3, 2, [2], 20, seed=0)
        >>> cp = prob.critical_point((0, 1))                     # the leading set: the global minimum
        >>> cp.kind, abs(cp.loss - prob.global_min()) < 1e-12, abs(prob.loss_of(cp.theta) - cp.loss) < 1e-9
        ('global_minimum', True, True)
    """

    def __init__(self, X, Y, widths: Sequence[int], *, check: bool = True) -> None:
        X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).detach()
        Y = torch.as_tensor(np.asarray(Y) if not isinstance(Y, torch.Tensor) else Y).detach()
        if X.ndim != 2 or Y.ndim != 2:
            raise ValueError(f"X and Y must be 2-D (examples × features); got shapes {tuple(X.shape)}, {tuple(Y.shape)}")
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} examples but Y has {Y.shape[0]}")
        if X.shape[0] == 0 or X.shape[1] == 0 or Y.shape[1] == 0:
            raise ValueError(f"empty data: X {tuple(X.shape)}, Y {tuple(Y.shape)}")
        if X.dtype.is_complex or Y.dtype.is_complex:
            raise TypeError("X and Y must be real")
        self.X = X.to(device="cpu", dtype=torch.float64)
        self.Y = Y.to(device="cpu", dtype=torch.float64)
        if not (torch.isfinite(self.X).all() and torch.isfinite(self.Y).all()):
            raise ValueError("X and Y must be finite")
        if isinstance(widths, (int, np.integer)):
            widths = [int(widths)]
        widths = list(widths)
        if len(widths) == 0:
            raise ValueError("widths lists the hidden widths [d_1, ..., d_H]; it needs at least one entry (H >= 1)")
        for i, w in enumerate(widths):
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or int(w) < 1:
                raise ValueError(f"hidden width d_{i + 1} must be a positive integer, got {w!r}")
        self.widths = [int(w) for w in widths]
        self.m, self.d_x = (int(s) for s in self.X.shape)
        self.d_y = int(self.Y.shape[1])
        self.dims = [self.d_x, *self.widths, self.d_y]
        self.H = len(self.widths)
        self.p = min(self.widths)
        self.r = min(self.p, self.d_y)
        self.shapes = [(self.dims[k + 1], self.dims[k]) for k in range(self.H + 1)]
        self.dim = sum(a * b for a, b in self.shapes)

        XtX = self.X.T @ self.X
        self.XtY = self.X.T @ self.Y  # (d_x, d_y)
        self.assumption_errors = self._assumption_errors(XtX)
        if check and self.assumption_errors:
            raise ValueError("data violate Kawaguchi's assumptions: " + "; ".join(self.assumption_errors)
                             + " (pass check=False to build the problem anyway)")
        # M̂ = YᵀX(XᵀX)⁻¹ (d_y, d_x); Σ = M̂ XᵀY (d_y, d_y), symmetric. The SVD driver gelsd
        # (also defined for a singular XᵀX under check=False), not lstsq's default CPU driver gelsy:
        # gelsy reads an uninitialised pivot array (pytorch/pytorch#187411), so the last bits of M̂,
        # and of every number derived from Σ (L*, the critical points), changed from call to call.
        self.M_hat = torch.linalg.lstsq(XtX, self.XtY, driver="gelsd").solution.T.contiguous()
        Sigma = self.M_hat @ self.XtY
        self.Sigma = 0.5 * (Sigma + Sigma.T)
        lam, U = torch.linalg.eigh(self.Sigma)
        self._lam = lam.flip(0).contiguous()
        self._U = U.flip(1).contiguous()
        self.trYY = float((self.Y * self.Y).sum())

    # ------------------------------------------------------------------ construction helpers
    def _assumption_errors(self, XtX: torch.Tensor) -> list[str]:
        errs = []
        eps = torch.finfo(torch.float64).eps
        if self.d_y > self.d_x:
            errs.append(f"d_y = {self.d_y} exceeds d_x = {self.d_x} (need d_y <= d_x)")
        sx = torch.linalg.svdvals(XtX)
        tol_x = 100 * max(self.m, self.d_x) * eps * float(sx[0]) if sx.numel() else 0.0
        rank_x = int((sx > tol_x).sum())
        if rank_x < self.d_x:
            errs.append(f"XᵀX has rank {rank_x} < d_x = {self.d_x} (need m >= d_x and linearly independent input features)")
        sxy = torch.linalg.svdvals(self.XtY)
        tol_xy = 100 * max(self.d_x, self.d_y) * eps * float(sxy[0]) if float(sxy[0]) > 0 else 1.0
        rank_xy = int((sxy > tol_xy).sum())
        if rank_xy < min(self.d_x, self.d_y):
            errs.append(f"XᵀY has rank {rank_xy} < min(d_x, d_y) = {min(self.d_x, self.d_y)}")
        if not errs:
            Mh = torch.linalg.solve(XtX, self.XtY)
            Sig = self.XtY.T @ Mh
            lam = torch.linalg.eigvalsh(0.5 * (Sig + Sig.T)).flip(0)
            if lam.numel() > 1:
                gaps = lam[:-1] - lam[1:]
                j = int(torch.argmin(gaps))
                if float(gaps[j]) <= 1e-9 * float(lam[0]):
                    errs.append(f"Σ = YᵀX(XᵀX)⁻¹XᵀY has (nearly) repeated eigenvalues λ_{j + 1} = {float(lam[j]):.6g} "
                                f"and λ_{j + 2} = {float(lam[j + 1]):.6g} (need distinct eigenvalues)")
        return errs

    @classmethod
    def random(cls, d_x: int, d_y: int, widths: Sequence[int], m: int, seed: int = 0, *,
               noise: float = 0.1, whiten: bool = False) -> "DeepLinearProblem":
        """Random data satisfying Kawaguchi's assumptions, reproducible from ``seed``.

        X has i.i.d. N(0, 1/m) entries (so XᵀX ≈ I; exactly I with ``whiten=True``),
        Y = X A + noise·N(0, 1/m) with A (d_x, d_y) i.i.d. N(0, 1). The assumptions hold with
        probability one; they are checked anyway (``ValueError`` if a draw violates them).

        Args:
            d_x, d_y: input and output widths (d_y ≤ d_x). widths: hidden widths. m: examples (≥ d_x).
            seed: seeds the draw. noise: the noise scale. whiten: make XᵀX = I exactly.

        Returns:
            The problem.
        """
        for name, v in (("d_x", d_x), ("d_y", d_y), ("m", m)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if d_y > d_x:
            raise ValueError(f"d_y = {d_y} exceeds d_x = {d_x}: Kawaguchi's assumptions need d_y <= d_x")
        if m < d_x:
            raise ValueError(f"m = {m} < d_x = {d_x}: XᵀX would be singular; need m >= d_x examples")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        g = torch.Generator().manual_seed(int(seed))
        X = torch.randn(m, d_x, generator=g, dtype=torch.float64) / math.sqrt(m)
        if whiten:
            X = torch.linalg.qr(X).Q  # orthonormal columns: XᵀX = I
        A = torch.randn(d_x, d_y, generator=g, dtype=torch.float64)
        Y = X @ A + noise * torch.randn(m, d_y, generator=g, dtype=torch.float64) / math.sqrt(m)
        return cls(X, Y, widths)

    def __repr__(self) -> str:
        return f"DeepLinearProblem(m={self.m}, dims={self.dims}, H={self.H}, p={self.p}, dim={self.dim})"

    # ------------------------------------------------------------------ model and objective
    def module(self, *, seed: int | None = 0, init_scale: float | None = None,
               dtype: torch.dtype = torch.float64) -> nn.Sequential:
        """``nn.Sequential`` of H+1 bias-free ``nn.Linear`` layers (parameter names ``"0.weight"``,
        ``"1.weight"``, …). Weights: seeded N(0, init_scale²) (default 1/√fan_in);
        ``seed=None`` gives all-zero weights (the critical point W = 0).

        Args:
            seed: seeds the weights (None: zeros). init_scale: their standard deviation. dtype: of the module.

        Returns:
            The module.
        """
        layers = [nn.Linear(a, b, bias=False) for b, a in self.shapes]
        model = nn.Sequential(*layers).to(dtype)
        with torch.no_grad():
            if seed is None:
                for lin in layers:
                    lin.weight.zero_()
            else:
                g = torch.Generator().manual_seed(int(seed))
                for lin, (b, a) in zip(layers, self.shapes):
                    s = init_scale if init_scale is not None else 1.0 / math.sqrt(a)
                    lin.weight.copy_(s * torch.randn(b, a, generator=g, dtype=torch.float64))
        return model

    def objective(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
                  *, seed: int | None = 0) -> Objective:
        """The loss ½ Σ_i ‖P x_i − y_i‖² as an :class:`Objective` (``reduction="sum"``, one batch).

        Flat order = W_1 first, each row-major (as :meth:`flatten`); per-example losses are
        ½‖P x_i − y_i‖². ``initial_point()`` is :meth:`module` ``(seed=seed)``'s weights.

        Args:
            dtype, device: of the objective. seed: of the initial weights.

        Returns:
            The objective.
        """
        return Objective.from_module(self.module(seed=seed), half_sq_error, (self.X, self.Y),
                                     dtype=dtype, device=device, reduction="sum")

    # ------------------------------------------------------------------ flat <-> weights
    def flatten(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """[W_1, …, W_{H+1}] -> flat float64 vector, W_1 first, each row-major.

        Args:
            weights: the H+1 matrices (checked to chain with the problem's shapes).

        Returns:
            (dim,) float64.
        """
        weights = list(weights)
        if len(weights) != self.H + 1:
            raise ValueError(f"expected H+1 = {self.H + 1} weight matrices [W_1, ..., W_{self.H + 1}], got {len(weights)}")
        ws = [torch.as_tensor(w).detach().to(device="cpu", dtype=torch.float64) for w in weights]
        for k, w in enumerate(ws):
            if w.ndim != 2:
                raise ValueError(f"W_{k + 1} must be a matrix, got shape {tuple(w.shape)}")
        for k in range(1, len(ws)):
            if ws[k].shape[1] != ws[k - 1].shape[0]:
                raise ValueError(f"weights do not chain: W_{k + 1} has shape {tuple(ws[k].shape)} (input width "
                                 f"{ws[k].shape[1]}) but W_{k} has {ws[k - 1].shape[0]} output rows")
        for k, (w, shape) in enumerate(zip(ws, self.shapes)):
            if tuple(w.shape) != shape:
                raise ValueError(f"W_{k + 1} has shape {tuple(w.shape)}, expected {shape} (dims {self.dims})")
        return torch.cat([w.reshape(-1) for w in ws])

    def unflatten(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """Flat vector -> [W_1, …, W_{H+1}] (views when possible).

        Args:
            theta: (dim,).

        Returns:
            The H+1 weight matrices.
        """
        theta = torch.as_tensor(theta)
        if theta.ndim != 1 or theta.numel() != self.dim:
            raise ValueError(f"theta must be a flat vector of length {self.dim} (dims {self.dims}), "
                             f"got shape {tuple(theta.shape)}")
        parts = torch.split(theta, [a * b for a, b in self.shapes])
        return [part.reshape(shape) for part, shape in zip(parts, self.shapes)]

    def product(self, weights_or_theta) -> torch.Tensor:
        """P = W_{H+1}⋯W_1.

        Args:
            weights_or_theta: the matrices or the flat vector.

        Returns:
            (d_y, d_x) float64.
        """
        ws = self.unflatten(weights_or_theta) if isinstance(weights_or_theta, torch.Tensor) else list(weights_or_theta)
        P = ws[0]
        for w in ws[1:]:
            P = w @ P
        return P

    def loss_of(self, weights_or_theta) -> float:
        """L = ½‖X Pᵀ − Y‖_F² evaluated directly in float64 (independent of the Objective).

        Args:
            weights_or_theta: the matrices or the flat vector.

        Returns:
            The loss.
        """
        P = self.product(weights_or_theta).to(torch.float64)
        return 0.5 * float(((self.X @ P.T - self.Y) ** 2).sum())

    def zero_point(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The critical point W = 0.

        Args:
            dtype: of the vector.

        Returns:
            (dim,) zeros.
        """
        return torch.zeros(self.dim, dtype=dtype)

    # ------------------------------------------------------------------ closed forms
    def sigma_eigs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ's eigenpairs.

        Returns:
            ``(λ (d_y,) descending, U (d_y, d_y) with columns u_i)``.
        """
        return self._lam.clone(), self._U.clone()

    def critical_value(self, S: Sequence[int]) -> float:
        """The critical value ½(tr YᵀY − Σ_{i∈S} λ_i).

        Args:
            S: an index set (0-based, eigenvalues descending).

        Returns:
            The loss at every critical point of that set.
        """
        S = self._check_S(S)
        return 0.5 * (self.trYY - float(self._lam[list(S)].sum())) if S else 0.5 * self.trYY

    def global_min(self) -> float:
        """The global minimum value.

        Returns:
            L* = ½(tr YᵀY − Σ_{i≤r} λ_i), r = min(p, d_y).
        """
        return self.critical_value(range(self.r))

    def _check_S(self, S: Sequence[int]) -> tuple[int, ...]:
        S = tuple(sorted(int(i) for i in S))
        if len(set(S)) != len(S):
            raise ValueError(f"index set {S} has repeated entries")
        if any(i < 0 or i >= self.d_y for i in S):
            raise ValueError(f"index set {S}: indices must lie in 0..{self.d_y - 1} (0-based, eigenvalues descending)")
        if len(S) > self.r:
            raise ValueError(f"index set {S} has {len(S)} > r = min(p, d_y) = {self.r} elements")
        return S

    def predicted(self, S: Sequence[int]) -> tuple[str, int | None, int | None]:
        """(kind, index, nullity) predicted for the construction at S; None where unknown.

        Derivation (see ``critical_point``): G = −(I − U_S U_Sᵀ)YᵀX; the Hessian's second-order
        form is the Gauss–Newton term plus ⟨G, δW_{H+1} M δW_1⟩ with M = W_H⋯W_2 (for H = 1:
        ⟨G, δW_2 δW_1⟩); padded hidden units enter only through that term.
        - S leading and s = r: global minimum. H ≥ 2 and s < r: the Hessian is PSD (the active
          block is the width-s network at its global minimum, padded units have zero curvature),
          but descent exists along a path through the padded units at order H+1: non-strict
          saddle, index 0. S = ∅ with H ≥ 2: three or more zero layers, so the Hessian is 0 and
          the nullity is dim.
        - H = 1: index = #{(i, j): i ∈ S, j ∉ S, λ_j > λ_i} + (p − s)(d_y − s) (Baldi–Hornik
          block, plus ±σ(K) per padded unit with K = (I − P_S)YᵀX of rank d_y − s). The first
          term is the whitened-data formula; it is Sylvester-invariant and also holds for
          non-whitened data (checked against the dense Hessian).
          Nullity = s² + (p − s)(d_x − d_y + 2s) (GL(s) gauge; each padded unit's ±σ(K) block
          has d_x + d_y − 2(d_y − s) zeros). Both checked against the dense Hessian, whitened or not.
        - H ≥ 2, S not leading: strict saddle (Kawaguchi's statement 4 for s = p; the active
          block is a deep width-s net at a non-leading point for s < p); index unknown (None).

        Args:
            S: the index set.

        Returns:
            ``(kind, index or None, nullity or None)``.
        """
        S = self._check_S(S)
        s = len(S)
        leading = S == tuple(range(s))
        if self.H == 1:
            idx = self.swaps(S) + (self.p - s) * (self.d_y - s)
            null = s * s + (self.p - s) * (self.d_x - self.d_y + 2 * s)
            if leading and s == self.r:
                return "global_minimum", 0, null
            return "strict_saddle", idx, null
        if leading and s == self.r:
            return "global_minimum", 0, (self.dim if s == 0 else None)
        if leading:
            return "non_strict_saddle", 0, (self.dim if s == 0 else None)
        return "strict_saddle", None, None

    def critical_point(self, S: Sequence[int], *, gauge_seed: int | None = None,
                       gauge_cond: float = 4.0) -> AnalyticCriticalPoint:
        """The analytic critical point for index set ``S`` (0-based, |S| ≤ r; zero-padded when
        |S| < p), with its exact loss and predicted kind / index / nullity (:meth:`predicted`).

        ``gauge_seed``: apply a random loss-preserving gauge W_k → C_k W_k C_{k−1}⁻¹ with C_k
        random of condition number ``gauge_cond`` (inertia unchanged); ``None``: no gauge.

        Args:
            S: the index set. gauge_seed: seeds the gauge (None: none). gauge_cond: its condition number.

        Returns:
            :class:`AnalyticCriticalPoint`.
        """
        S = self._check_S(S)
        s = len(S)
        U_S = self._U[:, list(S)]  # (d_y, s)
        ws = []
        for k, (rows, cols) in enumerate(self.shapes):
            W = torch.zeros(rows, cols, dtype=torch.float64)
            if s:
                if k == 0:
                    W[:s, :] = U_S.T @ self.M_hat
                elif k == self.H:
                    W[:, :s] = U_S
                else:
                    W[:s, :s] = torch.eye(s, dtype=torch.float64)
            ws.append(W)
        if gauge_seed is not None:
            if not gauge_cond >= 1:
                raise ValueError(f"gauge_cond must be >= 1, got {gauge_cond}")
            g = torch.Generator().manual_seed(int(gauge_seed))
            for k in range(self.H):  # hidden layer k+1 sits between W_{k+1} and W_{k+2}
                d = self.widths[k]
                Q1 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
                Q2 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
                sv = torch.logspace(0, math.log10(gauge_cond), d, dtype=torch.float64) / math.sqrt(gauge_cond)
                C = Q1 @ torch.diag(sv) @ Q2.T
                Cinv = Q2 @ torch.diag(1.0 / sv) @ Q1.T
                ws[k] = C @ ws[k]
                ws[k + 1] = ws[k + 1] @ Cinv
        kind, index, nullity = self.predicted(S)
        return AnalyticCriticalPoint(
            S=S, loss=self.critical_value(S), kind=kind, index=index, nullity=nullity,
            leading=S == tuple(range(s)), padded=s < self.p, swaps=self.swaps(S),
            theta=self.flatten(ws), weights=ws)

    def swaps(self, S: Sequence[int]) -> int:
        """#{(i, j): i ∈ S, j ∉ S, λ_j > λ_i} (0-based indices, eigenvalues descending).

        Args:
            S: the index set.

        Returns:
            The count.
        """
        S = self._check_S(S)
        return sum(1 for i in S for j in range(self.d_y) if j not in S and self._lam[j] > self._lam[i])

    def index_sets(self, max_size: int | None = None) -> list[tuple[int, ...]]:
        """All index sets S ⊆ {0..d_y−1} with |S| ≤ min(r, max_size), by size then lexicographic.

        Args:
            max_size: the largest |S| (None: r).

        Returns:
            The sets, as tuples.
        """
        top = self.r if max_size is None else min(self.r, int(max_size))
        return [S for s in range(top + 1) for S in itertools.combinations(range(self.d_y), s)]

    def enumerate_critical_points(self, *, max_size: int | None = None, gauge_seed: int | None = None,
                                  limit: int = MAX_ENUMERATED) -> list[AnalyticCriticalPoint]:
        """:meth:`critical_point` for every index set (:meth:`index_sets`); refuses more than
        ``limit`` sets. With ``gauge_seed`` each point gets its own gauge (seed + position).

        Args:
            max_size: see :meth:`index_sets`. gauge_seed: see :meth:`critical_point`. limit: the most sets.

        Returns:
            The points, in :meth:`index_sets` order.
        """
        sets = self.index_sets(max_size)
        if len(sets) > limit:
            raise ValueError(f"{len(sets)} index sets exceed limit={limit}; lower max_size or raise limit")
        return [self.critical_point(S, gauge_seed=None if gauge_seed is None else gauge_seed + i)
                for i, S in enumerate(sets)]
