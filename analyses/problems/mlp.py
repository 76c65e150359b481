"""Small smooth MLPs: a tanh regression net and a two-layer teacher–student."""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Problem, init_reference, seeded_module, stall_detector
from .registry import register

#: the stall detector of both problems (mean-reduced losses of order 0.1–1)
MLP_STALL = {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}


@register("tanh_mlp")
def _tanh_mlp(d_in: int = 2, width: int = 8, m: int = 128, seed: int = 0, dtype: torch.dtype = torch.float64
              ) -> Problem:
    """A small tanh MLP d_in-width-width-1 regressing a smooth target y = sin(2x₁)·cos(x₂)+…"""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.rand(m, d_in, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.sin(2 * X[:, :1]) * torch.cos(X[:, 1:2] if d_in > 1 else X[:, :1]) + 0.1 * X.sum(1, keepdim=True)

    def make_model(seed: int = 0) -> nn.Module:
        return seeded_module(lambda: nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width),
                                                   nn.Tanh(), nn.Linear(width, 1)), seed, dtype)

    return Problem(
        name="tanh_mlp", description=f"tanh MLP {d_in}-{width}-{width}-1 regressing a smooth function, {m} examples, "
                                     "MSE; global minimum unknown",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=init_reference(make_model), global_min=None, dtype=dtype, reduction="mean",
        reference_kind="init", hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0,
                                      "stall": stall_detector(**MLP_STALL), "max_steps": 1500, "quick_steps": 500},
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
        return seeded_module(lambda: nn.Sequential(nn.Linear(d_in, k_student, bias=False), acts[activation](),
                                                   nn.Linear(k_student, 1, bias=False)), seed, dtype)

    realizable = k_student >= k_teacher
    return Problem(
        name="teacher_student",
        description=(f"two-layer {activation} teacher-student, d = {d_in}, teacher {k_teacher} units, student "
                     f"{k_student} units, {m} Gaussian inputs, MSE; global minimum "
                     + ("0 (realizable)" if realizable else "unknown (under-parameterised)")),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=init_reference(make_model), global_min=0.0 if realizable else None, dtype=dtype,
        reduction="mean", reference_kind="init",
        hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0,
               "stall": stall_detector(**MLP_STALL), "max_steps": 1500, "quick_steps": 500},
        extra={"teacher": {"V": V, "a": a}},
    )


def teacher_point(problem: Problem) -> torch.Tensor:
    """The teacher's weights as a point of the student (realizable case): a global minimum.

    Args:
        problem: a ``teacher_student`` problem (``extra["teacher"]`` holds V (k, d) and a (1, k)).

    Returns:
        θ (dim,) in the problem's dtype: the teacher's units first, the student's extra units zero;
        its loss is 0.

    Raises:
        ValueError: the problem has no teacher, or the student has fewer units than the teacher.
    """
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
