"""Deep linear nets (Kawaguchi's setting): W = 0 and the analytic Baldi–Hornik critical points.

Five of them are in the escape study's set (``hints["study"]``; README table): their step sizes
keep lr·λ_max ≤ 1 along a GD run (the curvature grows to ~30 near the global minima, so 0.05 gave
lr·λ_max ≈ 1.5 and GD's loss rose on ``deep_linear_h2_saddle``), their starts are close enough to
the saddle that the stall detector sees it, their runs long enough that the first stall's horizon
ends inside the run, and the non-strict saddles get a longer horizon (escape times grow
polynomially, THEORY.md §2).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from landscape.deep_linear import DeepLinearProblem, half_sq_error

from .base import Problem, stall_detector
from .registry import register

#: stall-detector settings for sum-reduced deep linear nets (loss scale ≈ 10, m = 64 examples): the
#: detector's default grad_tol = 1e-3 is absolute, too strict for these losses, whose plateaus sit
#: at ‖g‖ ≈ 1e-3 … 1e-2
DEEP_LINEAR_STALL: dict[str, Any] = {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-2}


def deep_linear_problem(name: str, dl: DeepLinearProblem, *, reference_theta: torch.Tensor, reference_kind: str,
                        reference_loss: float, description: str, hints: dict[str, Any] | None = None) -> Problem:
    """Wrap a deep linear net with a fixed reference point as a zoo problem.

    Args:
        name: the problem's name.
        dl: the net and its data (:class:`~landscape.deep_linear.DeepLinearProblem`).
        reference_theta: the reference point, flat (dim,).
        reference_kind: its kind (``"strict_saddle"``, ``"non_strict_saddle"``, …).
        reference_loss: its loss (½Σ‖·‖², sum over examples).
        description: one line for reports.
        hints: the problem's hints (:class:`~analyses.problems.base.Problem`).

    Returns:
        :class:`Problem` with loss ½‖ŷ − y‖² summed over examples, float64, the net's global value
        and ``extra["deep_linear"] = dl``.
    """
    ref = reference_theta.to(torch.float64).clone()

    def make_model(seed: int = 0) -> nn.Module:
        return dl.module(seed=seed)

    return Problem(
        name=name, description=description, make_model=make_model, loss_fn=half_sq_error, data=(dl.X, dl.Y),
        reference=lambda seed=0: ref.clone(), global_min=dl.global_min(), dtype=torch.float64,
        reduction="sum", reference_kind=reference_kind, reference_loss=reference_loss,
        hints=dict(hints or {}), extra={"deep_linear": dl},
    )


def _study(kind: str, cause: str, certificate: str, critical_value: float) -> dict[str, Any]:
    """``hints["study"]``: the (kind, cause) cell the reference point certifies and its critical value."""
    return {"kind": kind, "cause": cause, "certificate": certificate, "critical_value": critical_value}


@register("deep_linear_h2_zero")
def _deep_linear_h2_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 2 deep linear net near W = 0: a non-strict saddle (zero Hessian, cubic descent)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    loss = dl.loss_of(dl.zero_point())
    return deep_linear_problem(
        "deep_linear_h2_zero", dl, reference_theta=dl.zero_point(), reference_kind="non_strict_saddle",
        reference_loss=loss,
        description=(f"deep linear net {d_x}-{width}-{width}-{d_y} (H = 2), {m} examples, started near W = 0: "
                     "a non-strict saddle (Hessian exactly 0, loss decreases at third order)"),
        hints={"lr": 0.03, "span": 1.0, "normalization": "none", "eps": 1e-2,
               "stall": stall_detector(**DEEP_LINEAR_STALL), "max_steps": 1100, "quick_steps": 1100,
               "trainer": {"escape_horizon": 1000},
               "study": _study("non_strict_saddle", "vanishing",
                               "W = 0 with H = 2: Hessian exactly 0, cubic descent; g_i = 0", loss)},
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
        hints={"lr": 0.03, "span": 1.0, "normalization": "none", "eps": 1e-6, "index": cp.index,
               "stall": stall_detector(**DEEP_LINEAR_STALL), "max_steps": 1200, "quick_steps": 900,
               "trainer": {"escape_horizon": 500},
               "study": _study("strict_saddle", "cancelling",
                               "Baldi–Hornik point S = (0, 2), loss ½(tr YᵀY − λ₁ − λ₃), index 1; "
                               "targets not fitted, so the residuals and g_i are non-zero", cp.loss)},
    )


def _dl_zero(name: str, widths: list[int], *, d_x: int = 4, d_y: int = 3, m: int = 64, seed: int = 0,
             eps: float = 1e-2, lr: float = 0.05, max_steps: int = 1500, quick_steps: int | None = None,
             extra_text: str = "", study: tuple[str, str, str] | None = None) -> Problem:
    """A deep linear net of hidden ``widths`` near W = 0; ``study`` = (kind, cause, certificate)
    puts it in the escape study's set."""
    dl = DeepLinearProblem.random(d_x, d_y, widths, m, seed)
    H = len(widths)
    kind = "strict_saddle" if H == 1 else "non_strict_saddle"
    arch = "-".join(str(d) for d in dl.dims)
    why = ("a strict saddle (Hessian [[0, -M], [-M, 0]]-type block with negative eigenvalues)" if H == 1 else
           "a non-strict saddle (Hessian exactly 0, loss decreases at order H + 1)")
    loss = dl.loss_of(dl.zero_point())
    hints: dict[str, Any] = {"lr": lr, "span": 1.0, "normalization": "none", "eps": eps,
                             "stall": stall_detector(**DEEP_LINEAR_STALL), "max_steps": max_steps,
                             "quick_steps": max_steps // 2 if quick_steps is None else quick_steps}
    if study is not None:
        hints.update(trainer={"escape_horizon": 500}, study=_study(*study, loss))
    return deep_linear_problem(
        name, dl, reference_theta=dl.zero_point(), reference_kind=kind, reference_loss=loss,
        description=f"deep linear net {arch} (H = {H}{extra_text}), {m} examples, started near W = 0: {why}",
        hints=hints)


@register("deep_linear_h1_zero")
def _deep_linear_h1_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 1 deep linear net near W = 0: a strict saddle (loss ½‖Y‖², negative curvature ±σ(XᵀY))."""
    return _dl_zero("deep_linear_h1_zero", [width], d_x=d_x, d_y=d_y, m=m, seed=seed, eps=1e-6, lr=0.03,
                    max_steps=1200, quick_steps=900,
                    study=("strict_saddle", "vanishing",
                           "W = 0 with H = 1: Hessian ±σ_i(XᵀY); every per-example gradient is a "
                           "product containing the other zero layer, so g_i = 0"))


@register("deep_linear_h3_zero")
def _deep_linear_h3_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 3 deep linear net near W = 0: a non-strict saddle of order 4 (every derivative up to the third vanishes)."""
    return _dl_zero("deep_linear_h3_zero", [width] * 3, d_x=d_x, d_y=d_y, m=m, seed=seed, eps=0.2, max_steps=1500)


@register("deep_linear_h2_bottleneck_zero")
def _deep_linear_h2_bottleneck_zero(d_x: int = 4, d_y: int = 3, width: int = 1, m: int = 64, seed: int = 0
                                    ) -> Problem:
    """H = 2 deep linear net with a width-1 bottleneck (p < d_y: rank-1 global minimum) near W = 0."""
    return _dl_zero("deep_linear_h2_bottleneck_zero", [width, width], d_x=d_x, d_y=d_y, m=m, seed=seed,
                    eps=1e-2, max_steps=1500, extra_text=f", bottleneck width {width} < d_y = {d_y}")


@register("deep_linear_h2_wide_zero")
def _deep_linear_h2_wide_zero(d_x: int = 4, d_y: int = 3, width: int = 8, m: int = 64, seed: int = 0) -> Problem:
    """H = 2 deep linear net with wide hidden layers (width 8 > d_x) near W = 0."""
    return _dl_zero("deep_linear_h2_wide_zero", [width, width], d_x=d_x, d_y=d_y, m=m, seed=seed,
                    eps=1e-2, max_steps=1500, extra_text=f", wide: hidden width {width}")


@register("deep_linear_h2_saddle")
def _deep_linear_h2_saddle(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 2)) -> Problem:
    """H = 2 deep linear net near the analytic critical point for a non-leading S: a strict saddle."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h2_saddle", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {'-'.join(map(str, dl.dims))} (H = 2), {m} examples, started near the "
                     f"analytic critical point S = {cp.S} (loss ½(tr YᵀY − Σ_S λ_i)): a "
                     f"{cp.kind.replace('_', ' ')}"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-5,
               "stall": stall_detector(**DEEP_LINEAR_STALL), "max_steps": 800, "quick_steps": 300})


@register("deep_linear_h2_padded")
def _deep_linear_h2_padded(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 1)) -> Problem:
    """H = 2 deep linear net near the leading, zero-padded critical point S = (0, 1) (s < r): a
    non-strict saddle (PSD Hessian, descent at third order through the padded unit)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h2_padded", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {'-'.join(map(str, dl.dims))} (H = 2), {m} examples, started near the "
                     f"zero-padded leading critical point S = {cp.S}: a {cp.kind.replace('_', ' ')} of index 0"),
        hints={"lr": 0.03, "span": 1.0, "normalization": "none", "eps": 1e-2,
               "stall": stall_detector(**DEEP_LINEAR_STALL), "max_steps": 1100, "quick_steps": 1100,
               "trainer": {"escape_horizon": 1000},
               "study": _study("non_strict_saddle", "cancelling",
                               "zero-padded leading point S = (0, 1): PSD Hessian, third-order descent "
                               "through the padded unit; residuals non-zero", cp.loss)})
