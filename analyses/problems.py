"""The embedded problem zoo: small, seeded, download-free problems with known structure.

A :class:`Problem` bundles a model factory, a loss, the data, a reference point (a known critical
point where theory gives one, else the seeded default initialisation) with an ε-perturbed start
``init(seed, eps)``, and the global minimum value where theory gives it. Problems are built on
demand by name: :func:`get_problem` looks the factory up in :data:`PROBLEMS`; new problems join
the zoo with the :func:`register` decorator (keyword options of :func:`get_problem` go to the
factory).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from landscape import Objective
from landscape.deep_linear import DeepLinearProblem, half_sq_error

Data = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Problem:
    """One problem of the zoo.

    ``make_model(seed)`` → a fresh ``nn.Module`` (seeded default initialisation); ``loss_fn(outputs,
    targets)`` a mean-reduced criterion; ``data`` an ``(X, Y)`` pair; ``reduction`` how the
    :class:`~landscape.Objective` combines examples (``"sum"`` for the deep linear nets, whose
    theory uses ½Σ‖·‖², else ``"mean"``). ``reference(seed)`` → flat point (dim,) the problem is
    about (an analytic critical point, or the model's seeded initialisation); ``init(seed, eps)``
    = reference + eps·N(0, I) (seeded). ``global_min``: the global minimum value of the objective
    when theory gives it (else ``None``). ``reference_kind``: the kind of the reference point
    (``"non_strict_saddle"``, ``"strict_saddle"``, ``"init"``, …). ``hints``: defaults for
    analyses (``lr`` for gradient descent, ``span`` and ``normalization`` for surfaces).
    """

    name: str
    description: str
    make_model: Callable[[int], nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    data: Data
    reference: Callable[[int], torch.Tensor]
    global_min: float | None = None
    dtype: torch.dtype = torch.float64
    reduction: str = "mean"
    reference_kind: str = "init"
    reference_loss: float | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def objective(self, seed: int = 0, device: torch.device | str | None = None) -> Objective:
        """The problem's :class:`~landscape.Objective` (model built by ``make_model(seed)``)."""
        return Objective.from_module(self.make_model(seed), self.loss_fn, self.data, dtype=self.dtype,
                                     device=device, reduction=self.reduction)

    def init(self, seed: int = 0, eps: float = 1e-2) -> torch.Tensor:
        """Start point: ``reference(seed) + eps·N(0, I)``, the noise drawn from ``seed``; shape (dim,)."""
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        ref = self.reference(seed).to(self.dtype)
        g = torch.Generator().manual_seed(int(seed) + 7919)
        return ref + eps * torch.randn(ref.shape, generator=g, dtype=torch.float64).to(self.dtype)

    @property
    def n_examples(self) -> int:
        return int(self.data[0].shape[0])


ProblemFactory = Callable[..., Problem]
PROBLEMS: dict[str, ProblemFactory] = {}


def register(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator adding a factory ``f(**options) -> Problem`` to :data:`PROBLEMS` under ``name``."""
    def deco(factory: ProblemFactory) -> ProblemFactory:
        if name in PROBLEMS:
            raise ValueError(f"problem {name!r} is already registered")
        PROBLEMS[name] = factory
        return factory
    return deco


def get_problem(name: str, **options: Any) -> Problem:
    """Build the problem ``name`` (options go to its factory). Unknown names list the zoo."""
    if name not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; known problems: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name](**options)


def list_problems() -> list[str]:
    return sorted(PROBLEMS)


# ---------------------------------------------------------------------------- deep linear nets
def deep_linear_problem(name: str, dl: DeepLinearProblem, *, reference_theta: torch.Tensor, reference_kind: str,
                        reference_loss: float, description: str, hints: dict[str, Any] | None = None) -> Problem:
    """Wrap a :class:`~landscape.deep_linear.DeepLinearProblem` with a fixed reference point."""
    ref = reference_theta.to(torch.float64).clone()

    def make_model(seed: int = 0) -> nn.Module:
        return dl.module(seed=seed)

    return Problem(
        name=name, description=description, make_model=make_model, loss_fn=half_sq_error, data=(dl.X, dl.Y),
        reference=lambda seed=0: ref.clone(), global_min=dl.global_min(), dtype=torch.float64,
        reduction="sum", reference_kind=reference_kind, reference_loss=reference_loss,
        hints=dict(hints or {}), extra={"deep_linear": dl},
    )


@register("deep_linear_h2_zero")
def _deep_linear_h2_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 2 deep linear net near W = 0: a non-strict saddle (zero Hessian, cubic descent)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    return deep_linear_problem(
        "deep_linear_h2_zero", dl, reference_theta=dl.zero_point(), reference_kind="non_strict_saddle",
        reference_loss=dl.loss_of(dl.zero_point()),
        description=(f"deep linear net {d_x}-{width}-{width}-{d_y} (H = 2), {m} examples, started near W = 0: "
                     "a non-strict saddle (Hessian exactly 0, loss decreases at third order)"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-2},
    )


@register("deep_linear_h1_saddle")
def _deep_linear_h1_saddle(d_x: int = 4, d_y: int = 3, width: int = 2, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 2)) -> Problem:
    """H = 1 deep linear net near a Baldi–Hornik saddle (index set S not the leading one)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h1_saddle", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {d_x}-{width}-{d_y} (H = 1), {m} examples, started near the Baldi–Hornik "
                     f"critical point S = {cp.S}: a {cp.kind.replace('_', ' ')} of index {cp.index}"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-2, "index": cp.index},
    )


# ---------------------------------------------------------------------------- small nonlinear nets
def _seeded_module(builder: Callable[[], nn.Module], seed: int, dtype: torch.dtype) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return builder().to(dtype)


def _init_reference(make_model: Callable[[int], nn.Module]) -> Callable[[int], torch.Tensor]:
    def reference(seed: int = 0) -> torch.Tensor:
        model = make_model(seed)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])
    return reference


@register("tanh_mlp")
def _tanh_mlp(d_in: int = 2, width: int = 8, m: int = 128, seed: int = 0, dtype: torch.dtype = torch.float64
              ) -> Problem:
    """A small tanh MLP d_in-width-width-1 regressing a smooth target y = sin(2x₁)·cos(x₂)+…"""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.rand(m, d_in, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.sin(2 * X[:, :1]) * torch.cos(X[:, 1:2] if d_in > 1 else X[:, :1]) + 0.1 * X.sum(1, keepdim=True)

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width),
                                                    nn.Tanh(), nn.Linear(width, 1)), seed, dtype)

    return Problem(
        name="tanh_mlp", description=f"tanh MLP {d_in}-{width}-{width}-1 regressing a smooth function, {m} examples, "
                                     "MSE; global minimum unknown",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=_init_reference(make_model), global_min=None, dtype=dtype, reduction="mean",
        reference_kind="init", hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0},
    )


@register("teacher_student")
def _teacher_student(d_in: int = 4, k_teacher: int = 3, k_student: int = 3, m: int = 256, seed: int = 0,
                     activation: str = "tanh", dtype: torch.dtype = torch.float64) -> Problem:
    """Two-layer teacher–student regression: y = a·σ(Vx) from a fixed teacher with ``k_teacher``
    units; the student has ``k_student`` units (≥ k_teacher makes it realizable: global min 0)."""
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(m, d_in, generator=g, dtype=torch.float64)
    V = torch.randn(k_teacher, d_in, generator=g, dtype=torch.float64) / math.sqrt(d_in)
    a = torch.ones(1, k_teacher, dtype=torch.float64)
    act = acts[activation]()
    y = act(X @ V.T) @ a.T

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d_in, k_student, bias=False), acts[activation](),
                                                    nn.Linear(k_student, 1, bias=False)), seed, dtype)

    realizable = k_student >= k_teacher
    return Problem(
        name="teacher_student",
        description=(f"two-layer {activation} teacher-student, d = {d_in}, teacher {k_teacher} units, student "
                     f"{k_student} units, {m} Gaussian inputs, MSE; global minimum "
                     + ("0 (realizable)" if realizable else "unknown (under-parameterised)")),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=_init_reference(make_model), global_min=0.0 if realizable else None, dtype=dtype,
        reduction="mean", reference_kind="init",
        hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0},
        extra={"teacher": {"V": V, "a": a}},
    )


def teacher_point(problem: Problem) -> torch.Tensor:
    """The teacher's weights as a student point (realizable case): a global minimum (loss 0)."""
    t = problem.extra.get("teacher")
    if t is None:
        raise ValueError(f"problem {problem.name!r} has no teacher")
    model = problem.make_model(0)
    shapes = [p.shape for p in model.parameters()]
    V, a = t["V"], t["a"]
    if shapes[0][0] < V.shape[0]:
        raise ValueError("the student has fewer units than the teacher; the teacher is not a student point")
    Vs = torch.zeros(shapes[0], dtype=torch.float64)
    As = torch.zeros(shapes[1], dtype=torch.float64)
    Vs[:V.shape[0]] = V
    As[:, :a.shape[1]] = a
    return torch.cat([Vs.reshape(-1), As.reshape(-1)]).to(problem.dtype)
