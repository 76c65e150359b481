"""The SynaPrune rules (SYNAPRUNE.md, "The rules").

Per-example aggregation (n examples, unscaled per-example gradients g_i, rows of G (n, dim)):

- ``gd``:      A_j = μ_j = mean_i g_ij
- ``rms``:     A_j = sign(μ_j) · (mean_i |g_ij|^p)^{1/p}, p ∈ {1, 2, inf} (p = inf: max_i |g_ij|);
  p = 2 is the repository's root-mean-square rule.
- ``devarg``:  A_j = g_{i*j} with i* = argmax_i |g_ij| (signed, per coordinate).

Decisions the note leaves open (documented here and in the docstrings):

- **Tie-break where μ_j = 0 exactly** (floating-point zero; no tolerance): default ``"argmax"`` —
  the sign of the largest-magnitude g_ij, the same pick devarg makes, so an exactly cancelling
  coordinate still moves (the point of the rule). ``"zero"`` (A_j = 0) and ``"random"`` (a
  seeded ±1) are available. If every g_ij = 0 the magnitude is 0 and so is A_j.
- **Ties in |g_ij|** between examples (devarg and the argmax tie-break): the lowest example index
  wins, also across streaming chunks.
- **Scale**: A is computed on the per-example scale, then multiplied by the objective's scale
  (1 for a mean objective, n for a sum), so the ``gd`` aggregation equals the objective's
  gradient and the step sizes of every rule are comparable.
- Everything streams over chunks of examples (Σg, Σ|g|^p, running signed max-magnitude), so the
  n × dim matrix need not be held.

Control: ``gd-matched`` (:class:`GDMatched`) runs the escape-phase protocol with GD steps, the
first of them rescaled to the length the matched rule's first phase step would have.

Other rules: ``noise`` (a GD step plus θ ← θ + σ·|θ| ⊙ ξ), ``penalty`` (gradient of
L + a·mean_l m_l + b·std_l m_l, double backprop through the pre-activations) and ``hebbian``
(see :mod:`synaprune.hebbian`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from landscape.fast_stats import fast_aggregate

from .access import DataAccess
from .base import StepContext, UpdateRule, positive
from .hebbian import check_hebbian_model, hebbian_delta

AGGREGATIONS = ("gd", "rms", "devarg")
TIE_BREAKS = ("argmax", "zero", "random")


def _check_p(p: Any) -> float:
    if isinstance(p, str) and p.lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p >= 1):
        raise ValueError(f"p must be a number >= 1 or 'inf' (the rule uses p = 1, 2 or inf), got {p!r}")
    return float(p)


class Aggregator:
    """Streaming per-coordinate aggregation of per-example gradients.

    Feed chunks ``G`` of shape ``(c, dim)`` with :meth:`update`; :meth:`result` returns the
    aggregated direction ``A`` (dim,) on the per-example scale (not multiplied by the objective
    scale). Sums are accumulated in float64.

    Args:
        rule: ``"gd"``, ``"rms"`` or ``"devarg"`` (:data:`AGGREGATIONS`).
        p: the rms exponent (a number ≥ 1 or ``"inf"``).
        tie_break: where μ_j = 0 exactly: ``"argmax"``, ``"zero"`` or ``"random"``.
        generator: for ``tie_break="random"`` (None: a generator seeded 0).

    Raises:
        ValueError: an unknown rule or tie-break, a bad ``p``.

    Example:
        >>> import torch
        >>> G = torch.tensor([[1.0, -2.0], [3.0, 2.0]], dtype=torch.float64)
        >>> agg = Aggregator("rms", p="inf")
        >>> agg.update(G[:1]); agg.update(G[1:])   # two chunks: the same as one
        >>> agg.result(), agg.n
        (tensor([ 3., -2.], dtype=torch.float64), 2)
    """

    def __init__(self, rule: str, *, p: float | str = 2, tie_break: str = "argmax",
                 generator: torch.Generator | None = None) -> None:
        if rule not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {AGGREGATIONS}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {TIE_BREAKS}")
        self.rule = rule
        self.p = _check_p(p)
        self.tie_break = tie_break
        self.generator = generator
        self.n = 0
        self._sum: torch.Tensor | None = None
        self._sum_p: torch.Tensor | None = None
        self._absmax: torch.Tensor | None = None
        self._signed: torch.Tensor | None = None

    def update(self, G: torch.Tensor) -> None:
        """Add a chunk of per-example gradients.

        Args:
            G: shape (c, dim), any float dtype (accumulated in float64); c = 0 is a no-op.

        Raises:
            ValueError: ``G`` is not 2-D.
        """
        if G.ndim != 2:
            raise ValueError(f"per-example gradients must have shape (n, dim), got {tuple(G.shape)}")
        if G.shape[0] == 0:
            return
        G = G.detach().to(torch.float64)
        absG = G.abs()
        cmax, arg = absG.max(dim=0)  # first maximal index on ties
        csigned = G.gather(0, arg.unsqueeze(0)).squeeze(0)
        if self._sum is None:
            self._sum = G.sum(0)
            self._absmax, self._signed = cmax, csigned
            self._sum_p = absG.pow(self.p).sum(0) if math.isfinite(self.p) else None
        else:
            self._sum += G.sum(0)
            if self._sum_p is not None:
                self._sum_p += absG.pow(self.p).sum(0)
            better = cmax > self._absmax  # strict: earlier examples win ties
            self._absmax = torch.where(better, cmax, self._absmax)
            self._signed = torch.where(better, csigned, self._signed)
        self.n += int(G.shape[0])

    @property
    def mean(self) -> torch.Tensor:
        """μ (dim,), float64."""
        if self._sum is None:
            raise ValueError("no per-example gradients were given")
        return self._sum / self.n

    def result(self) -> torch.Tensor:
        """The aggregated direction A, shape (dim,), float64, per-example scale.

        Returns:
            μ (gd); sign(μ_j)·(mean_i |g_ij|^p)^{1/p} with the tie-break where μ_j = 0 (rms);
            the signed max-magnitude entry per coordinate, lowest example index on ties (devarg).

        Raises:
            ValueError: nothing was given to :meth:`update`.
        """
        mu = self.mean
        if self.rule == "gd":
            return mu
        if self.rule == "devarg":
            return self._signed.clone()  # type: ignore[union-attr]
        mag = self._absmax if self._sum_p is None else (self._sum_p / self.n).pow(1.0 / self.p)
        sign = torch.sign(mu)
        tie = mu == 0
        if bool(tie.any()):
            if self.tie_break == "argmax":
                fill = torch.sign(self._signed)  # type: ignore[arg-type]
            elif self.tie_break == "random":
                gen = self.generator or torch.Generator().manual_seed(0)
                fill = torch.randint(0, 2, mu.shape, generator=gen).to(mu) * 2 - 1
            else:
                fill = torch.zeros_like(mu)
            sign = torch.where(tie, fill, sign)
        return sign * mag  # type: ignore[operator]


def aggregate(G: torch.Tensor, rule: str, *, p: float | str = 2, tie_break: str = "argmax",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Aggregate per-example gradients into one direction (the one-chunk :class:`Aggregator`).

    Args:
        G: per-example gradients, shape (n, dim).
        rule: ``"gd"`` (mean), ``"rms"`` (sign(μ_j)·(mean_i |g_ij|^p)^{1/p}) or ``"devarg"``
            (signed max-magnitude entry per coordinate); tie-breaks in the module docstring.
        p: the rms exponent (≥ 1 or ``"inf"``).
        tie_break: ``"argmax"``, ``"zero"`` or ``"random"``.
        generator: for ``tie_break="random"``.

    Returns:
        A, shape (dim,), float64, on the per-example scale.

    Example:
        >>> import torch
        >>> G = torch.tensor([[1.0, -2.0], [3.0, 2.0]], dtype=torch.float64)
        >>> aggregate(G, "gd"), aggregate(G, "devarg")
        (tensor([2., 0.], dtype=torch.float64), tensor([ 3., -2.], dtype=torch.float64))
        >>> aggregate(G, "rms")      # μ_2 = 0: the sign of the largest |g_i2| (the first, −2)
        tensor([ 2.2361, -2.0000], dtype=torch.float64)
    """
    agg = Aggregator(rule, p=p, tie_break=tie_break, generator=generator)
    agg.update(G)
    return agg.result()


def aggregate_direction(access: DataAccess, theta: torch.Tensor, rule: str, *, idx: torch.Tensor | None = None,
                        p: float | str = 2, tie_break: str = "argmax", generator: torch.Generator | None = None,
                        chunk_size: int | None = None, fast: bool | None = None) -> torch.Tensor:
    """The aggregated direction at ``theta`` times the objective scale.

    ``fast=None`` (default) takes the matrix-product path of :func:`landscape.fast_stats.fast_aggregate`
    (per-layer products of layer inputs and output gradients, float64, no per-example gradient
    formed) when the model is eligible, else streams per-example gradients (vmap) in chunks of
    ``chunk_size`` through :class:`Aggregator`; ``fast=False`` forces the per-example path,
    ``fast=True`` raises ``ValueError`` when the model is not eligible. Both paths agree to
    round-off (≤ 1e-12 relative in float64) with the same tie-breaks, and both count one
    per-example gradient per example in ``access.cost.n_per_example_grads``.

    Args:
        access: the trainer's data access (model, data, loss, cost counters).
        theta: flat parameters, shape (dim,).
        rule: ``"gd"``, ``"rms"`` or ``"devarg"``.
        idx: example indices (a minibatch), or None for every example.
        p: the rms exponent.
        tie_break: ``"argmax"``, ``"zero"`` or ``"random"``.
        generator: for the random tie-break.
        chunk_size: examples per chunk on the per-example path (None: all at once).
        fast: None (choose), True (matrix-product path or raise), False (per-example path).

    Returns:
        ``scale``·A, shape (dim,), in ``theta``'s dtype and device (``scale`` = 1 for a mean
        objective, n for a sum), so the ``gd`` aggregation equals the objective gradient.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import Objective
        >>> from synaprune.access import DataAccess
        >>> X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> net = nn.Linear(1, 1, bias=False).double()
        >>> obj = Objective.from_module(net, nn.MSELoss(), (X, X))
        >>> acc = DataAccess(obj, nn.MSELoss(), torch.Generator())
        >>> A = aggregate_direction(acc, torch.zeros(1, dtype=torch.float64), "gd")
        >>> bool(torch.allclose(A, obj.grad(torch.zeros(1, dtype=torch.float64))))
        True
    """
    if rule not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {AGGREGATIONS}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {TIE_BREAKS}")
    if fast is not False:
        X, Y = (access.X, access.Y) if idx is None else (access.X[idx], access.Y[idx])
        A = fast_aggregate(access.module, access.spec.names, access.spec.shapes, access.loss_fn, X, Y, theta, rule,
                           p=_check_p(p), tie_break=tie_break, generator=generator, chunk_size=chunk_size)
        if A is not None:
            access.cost.n_per_example_grads += int(X.shape[0])
            return (access.scale * A).to(dtype=theta.dtype, device=theta.device)
        if fast:
            raise ValueError("fast=True: the model is not eligible for the matrix-product path "
                             "(see landscape.fast_stats)")
    agg = Aggregator(rule, p=p, tie_break=tie_break, generator=generator)
    for G in access.iter_per_example_grads(theta, idx, chunk_size):
        agg.update(G)
    return (access.scale * agg.result()).to(dtype=theta.dtype, device=theta.device)


# ---------------------------------------------------------------------- penalty (double backprop)
_PREACT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)


def preactivation_penalty(access: DataAccess, theta: torch.Tensor, *, a: float, b: float,
                          idx: torch.Tensor | None = None) -> tuple[float, float, torch.Tensor, list[float]]:
    """Loss + penalty and its gradient (SYNAPRUNE.md, "penalty").

    The penalised objective is L(θ) + a·mean_l m_l + b·std_l m_l, with m_l = mean over examples
    and units of (∂ℓ_i/∂y_l)², y_l the output of layer l's affine map (its pre-activation; the
    bias is included) for every ``nn.Linear``/``nn.Conv*``/``nn.Bilinear`` module, ℓ_i the
    unscaled per-example loss (so the weights do not depend on batch size), std the population
    standard deviation over layers (0 for one layer). The per-example derivatives come from one
    backward pass of Σ_i ℓ_i w.r.t. zero "probe" tensors added to each y_l (valid because ℓ_i
    depends only on example i's activations); the penalty is differentiated again (double
    backprop).

    Args:
        access: the trainer's data access (counts n double-backprop examples).
        theta: flat parameters, shape (dim,).
        a: weight of mean_l m_l (≥ 0).
        b: weight of std_l m_l (≥ 0).
        idx: example indices (a minibatch), or None for every example.

    Returns:
        ``(L, L + penalty, gradient of L + penalty (dim,), [m_l per layer])``; L and the value in
        loss units (the objective's scale), m_l in (loss per pre-activation unit)².

    Raises:
        TypeError: the model has no ``nn.Linear`` / ``nn.Conv*`` / ``nn.Bilinear`` layer.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import Objective
        >>> from synaprune.access import DataAccess
        >>> X = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
        >>> net = nn.Sequential(nn.Linear(1, 1)).double()
        >>> acc = DataAccess(Objective.from_module(net, nn.MSELoss(), (X, X)), nn.MSELoss(), torch.Generator())
        >>> theta = torch.tensor([0.5, 0.0], dtype=torch.float64)
        >>> loss, value, g, m = preactivation_penalty(acc, theta, a=1.0, b=0.0)
        >>> loss, value - loss == m[0]      # ℓ_i = (y_i − x_i)², ∂ℓ_i/∂y = 2(y_i − x_i): m = mean of 4(y_i − x_i)²
        (0.625, True)
    """
    layers = [(name, m) for name, m in access.module.named_modules() if isinstance(m, _PREACT_TYPES)]
    if not layers:
        raise TypeError("the penalty rule needs nn.Linear / nn.Conv* layers whose pre-activations it can "
                        f"penalise; {type(access.module).__name__} has none")
    X, Y = (access.X, access.Y) if idx is None else (access.X[idx], access.Y[idx])
    n = int(X.shape[0])
    probes: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        d = torch.zeros_like(out, requires_grad=True)
        probes.append(d)
        return out + d

    handles = [m.register_forward_hook(hook) for _, m in layers]
    try:
        with torch.enable_grad():
            p = theta.detach().clone().requires_grad_(True)
            out = functional_call(access.module, access.spec.unflatten(p), (X,))
            batch_mean = access.loss_fn(out, Y)
            total_examples = n * batch_mean  # Σ_i ℓ_i (loss_fn mean-reduces over the batch)
            dys = torch.autograd.grad(total_examples, probes, create_graph=True)
            m = torch.stack([(dy ** 2).mean() for dy in dys])
            pen = a * m.mean() + (b * m.std(unbiased=False) if m.numel() > 1 else m.new_zeros(()))
            loss = access.scale * batch_mean
            value = loss + pen
            g = torch.autograd.grad(value, p)[0]
    finally:
        for h in handles:
            h.remove()
    access.cost.n_double_backprop_examples += n  # a gradient plus ~one HVP per example
    return float(loss.detach()), float(value.detach()), g.detach(), [float(v) for v in m.detach()]


# ---------------------------------------------------------------------- the rules
class AggregationRule(UpdateRule):
    """θ ← θ − lr · scale · A(g_1..g_n) with A an aggregation of per-example gradients
    (:func:`aggregate_direction`; a minibatch's examples when the trainer has ``batch_size``).

    Args:
        chunk_size: examples per chunk on the per-example path (None: all at once).

    Example:
        >>> RMSRule.aggregation, DevargRule.aggregation, DevargRule(chunk_size=64).options
        ('rms', 'devarg', {'chunk_size': 64})
    """

    synaprune = True
    per_example = True
    aggregation = "rms"
    DEFAULTS = {"chunk_size": None}

    def step(self, ctx: StepContext) -> torch.Tensor:
        A = aggregate_direction(ctx.access, ctx.theta, self.aggregation, idx=ctx.example_indices(),
                                p=getattr(self, "p", 2), tie_break=getattr(self, "tie_break", "argmax"),
                                generator=ctx.generator, chunk_size=self.chunk_size)
        return ctx.theta - ctx.lr * A


class RMSRule(AggregationRule):
    """``synaprune-rms``: A_j = sign(μ_j)·(mean_i |g_ij|^p)^{1/p}.

    Args:
        p: 1, 2 (default, the repository's root-mean-square rule) or ``"inf"``.
        tie_break: ``"argmax"`` (default), ``"zero"`` or ``"random"`` (where μ_j = 0 exactly).
        chunk_size: examples per chunk (None: all at once).

    Example:
        >>> rule = RMSRule(p="inf")
        >>> rule.name, rule.options["p"], rule.p      # options as given; the attribute validated
        ('synaprune-rms', 'inf', inf)
    """

    name = "synaprune-rms"
    aggregation = "rms"
    DEFAULTS = {"p": 2, "tie_break": "argmax", "chunk_size": None}

    def validate(self) -> None:
        self.p = _check_p(self.p)
        if self.p not in (1.0, 2.0, math.inf):
            raise ValueError(f"synaprune-rms takes p = 1, 2 or 'inf', got {self.p}")
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {self.tie_break!r}; choose one of {TIE_BREAKS}")


class DevargRule(AggregationRule):
    """``synaprune-devarg``: A_j = g_{i*j}, i* = argmax_i |g_ij| (signed). Not a descent direction
    in general.

    Args:
        chunk_size: examples per chunk (None: all at once).

    Example:
        >>> DevargRule().name       # Trainer(..., method="synaprune-devarg")
        'synaprune-devarg'
    """

    name = "synaprune-devarg"
    aggregation = "devarg"


class NoiseRule(UpdateRule):
    """``synaprune-noise``: a (minibatch) GD step, then θ ← θ + σ·|θ| ⊙ ξ, ξ ~ N(0, I) from the
    trainer's generator. θ_j = 0 is a fixed point of the noise.

    Args:
        sigma: σ ≥ 0, relative to |θ_j| (default 0.01).

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.tensor([0.0, 1.0]), loss=0.0, grad=torch.zeros(2), lr=0.1,
        ...                   access=None, generator=torch.Generator().manual_seed(0))
        >>> new = NoiseRule(sigma=0.1).step(ctx)
        >>> float(new[0]), bool(new[1] != 1.0)       # θ_j = 0 stays put
        (0.0, True)
    """

    name = "synaprune-noise"
    synaprune = True
    DEFAULTS = {"sigma": 0.01}

    def validate(self) -> None:
        positive("sigma", self.sigma, allow_zero=True)

    def step(self, ctx: StepContext) -> torch.Tensor:
        theta = ctx.theta - ctx.lr * ctx.step_grad()
        xi = torch.randn(theta.numel(), generator=ctx.generator, dtype=torch.float64).to(theta)
        return theta + self.sigma * theta.abs() * xi


class PenaltyRule(UpdateRule):
    """``synaprune-penalty``: gradient descent on L + a·mean_l m_l + b·std_l m_l (see
    :func:`preactivation_penalty`).

    Args:
        a: weight of the mean over layers (≥ 0, default 1.0).
        b: weight of the standard deviation over layers (≥ 0, default 1.0).

    Example:
        >>> PenaltyRule(a=0.5).options     # Trainer(..., method="synaprune-penalty", a=0.5)
        {'a': 0.5, 'b': 1.0}
    """

    name = "synaprune-penalty"
    synaprune = True
    DEFAULTS = {"a": 1.0, "b": 1.0}

    def validate(self) -> None:
        positive("a", self.a, allow_zero=True)
        positive("b", self.b, allow_zero=True)

    def prepare(self, access: DataAccess) -> None:
        if not any(isinstance(m, _PREACT_TYPES) for m in access.module.modules()):
            raise TypeError("synaprune-penalty needs nn.Linear / nn.Conv* layers (their pre-activations are "
                            f"penalised); {type(access.module).__name__} has none")

    def step(self, ctx: StepContext) -> torch.Tensor:
        _, _, g, m = preactivation_penalty(ctx.access, ctx.theta, a=self.a, b=self.b, idx=ctx.example_indices())
        ctx.info["penalty_m"] = m
        return ctx.theta - ctx.lr * g


class HebbianRule(UpdateRule):
    """``synaprune-hebbian``: the gradient-free "work done / significance" update of
    :func:`synaprune.hebbian.hebbian_delta`, θ ← θ + Δ(lr). Needs an ``nn.Sequential`` of
    ``nn.Linear`` + elementwise activations and regression targets (checked in :meth:`prepare`).

    Args:
        center: the 2022 variant (batch-centred x and y; default False).
        norm_eps: ε in Norm (default 1e-12).

    Example:
        >>> HebbianRule(center=True).options   # Trainer(..., method="synaprune-hebbian", center=True)
        {'center': True, 'norm_eps': 1e-12}
    """

    name = "synaprune-hebbian"
    synaprune = True
    DEFAULTS = {"center": False, "norm_eps": 1e-12}

    def validate(self) -> None:
        positive("norm_eps", self.norm_eps, allow_zero=True)

    def prepare(self, access: DataAccess) -> None:
        check_hebbian_model(access.module, access.spec)
        out = access.module(access.X[:1])
        if not access.Y.is_floating_point() or tuple(access.Y.shape[1:]) != tuple(out.shape[1:]):
            raise TypeError("synaprune-hebbian needs regression targets with the model output's shape "
                            f"(error e = target − prediction); targets have shape {tuple(access.Y.shape)} "
                            f"and dtype {access.Y.dtype}, outputs {tuple(out.shape)}")

    def step(self, ctx: StepContext) -> torch.Tensor:
        idx = ctx.example_indices()
        X, Y = (ctx.access.X, ctx.access.Y) if idx is None else (ctx.access.X[idx], ctx.access.Y[idx])
        ctx.access.cost.n_forward_examples += int(X.shape[0])
        delta = hebbian_delta(ctx.access.module, ctx.access.spec, ctx.theta, X, Y, lr=ctx.lr,
                              center=self.center, eps=self.norm_eps)
        return ctx.theta + delta


# ---------------------------------------------------------------------- the step-matched control
def step_of_length(ctx: StepContext, length: float) -> torch.Tensor:
    """A step of the given length along GD's direction −g/‖g‖ (a seeded random unit direction where
    g = 0): what the step-length-matched controls take.

    Args:
        ctx: the step's context (its gradient and generator).
        length: the step's length (parameter units).

    Returns:
        θ + length·direction, shape (dim,).

    Example:
        ``theta_next = step_of_length(ctx, 0.1)``
    """
    g = ctx.step_grad()
    gn = float(torch.linalg.vector_norm(g))
    if gn == 0.0:
        d = torch.randn(g.numel(), generator=ctx.generator, dtype=torch.float64).to(g)
        direction = d / torch.linalg.vector_norm(d)
    else:
        direction = -g / gn
    return ctx.theta + length * direction


class GDMatched(UpdateRule):
    """``gd-matched``: the step-length-matched GD control for the escape phases.

    It runs the same escape-phase protocol as a SynaPrune rule (mode ``"at_stalls"`` only), but
    each phase is GD: at the phase's first step (k = 0, at θ̃) it computes the step the matched
    rule (option ``match``: ``"synaprune-rms"`` default, or ``"synaprune-devarg"``, with ``p`` and
    ``tie_break`` as for rms) would take, lr·‖A(θ̃)‖, shortens it to the trainer's step cap
    ``escape_step_cap``·max(1, ‖θ̃‖) exactly as the rule's phase would be (decay^0 = 1), and takes
    a step of that length along −∇L(θ̃)/‖∇L(θ̃)‖ (a seeded random unit direction when ∇L = 0
    exactly). Phase steps k ≥ 1 are plain GD steps θ ← θ − lr·∇L (no decay, no cap). So the first
    step has the rule's length and GD's direction: a faster escape of the rule that this control
    matches is a step-length effect, one it does not match is a direction effect. Outside phases
    it is GD. The n per-example gradients of the first step are counted in its cost.

    Args:
        match: ``"synaprune-rms"`` (default) or ``"synaprune-devarg"``.
        p: the matched rms rule's exponent (default 2).
        tie_break: the matched rule's tie-break (default ``"argmax"``).
        chunk_size: examples per chunk for the matched direction (None: all at once).

    Example:
        >>> rule = GDMatched(match="synaprune-devarg")  # Trainer(..., method="gd-matched", match=...)
        >>> rule.own_phase_scaling, rule.MATCHABLE[rule.match]
        (True, 'devarg')
    """

    name = "gd-matched"
    synaprune = True
    DEFAULTS = {"match": "synaprune-rms", "p": 2, "tie_break": "argmax", "chunk_size": None}
    MATCHABLE = {"synaprune-rms": "rms", "synaprune-devarg": "devarg"}
    #: the trainer applies neither decay nor cap to this method's phase steps (it matches itself)
    own_phase_scaling = True

    def validate(self) -> None:
        if self.match not in self.MATCHABLE:
            raise ValueError(f"option match must be one of {sorted(self.MATCHABLE)}, got {self.match!r}")
        self.p = _check_p(self.p)
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {self.tie_break!r}; choose one of {TIE_BREAKS}")

    def step(self, ctx: StepContext) -> torch.Tensor:
        return ctx.theta - ctx.lr * ctx.step_grad()

    def matched_length(self, ctx: StepContext, limit: float | None) -> tuple[float, float]:
        """The matched rule's first phase step length at ``ctx.theta``.

        Args:
            ctx: the step's context (θ̃ = ``ctx.theta``).
            limit: the trainer's step cap (None: no cap).

        Returns:
            ``(length after the cap, length before it)``, parameter units.
        """
        A = aggregate_direction(ctx.access, ctx.theta, self.MATCHABLE[self.match], idx=ctx.example_indices(),
                                p=self.p, tie_break=self.tie_break, generator=ctx.generator,
                                chunk_size=self.chunk_size)
        raw = ctx.lr * float(torch.linalg.vector_norm(A))
        return (raw if limit is None else min(raw, limit)), raw

    def phase_step(self, ctx: StepContext, k: int, limit: float | None) -> torch.Tensor:
        """Step k of an escape phase.

        Args:
            ctx: the step's context.
            k: the phase step (0: the matched-length step; later: plain GD).
            limit: the trainer's cap on the rule's step length (None: no cap).

        Returns:
            θ_{k+1}, shape (dim,).
        """
        if k > 0:
            return ctx.theta - ctx.lr * ctx.step_grad()
        length, raw = self.matched_length(ctx, limit)
        ctx.info["matched_length"], ctx.info["matched_length_raw"] = length, raw
        return step_of_length(ctx, length)
