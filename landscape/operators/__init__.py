"""Curvature matrices as operators, and the one place an operator is chosen.

- :class:`HessianOperator`: the Hessian H (reverse-over-reverse products, cached graph);
- :class:`GGNOperator`: the generalised Gauss-Newton matrix G = Σ_b w_b J_bᵀ ∇²_f ℓ_b J_b;
- :class:`EmpiricalFisherOperator`: the empirical Fisher F = c Σ_i g_i g_iᵀ;
- :class:`CurvatureOperator`: their common base (counting, ``matmat``, ``@``, ``+``, ``-``, scalar
  ``*``, ``to_scipy``); :class:`DiagonalOperator` for known spectra.

:func:`make_operator` is the only function that maps a curvature name to an operator class;
:meth:`landscape.Objective.curvature_operator` / :meth:`~landscape.Objective.hvp_operator` and
every algorithm that accepts ``(obj, theta, curvature=...)`` go through it (:func:`as_operator`).
A new curvature matrix: a subclass of :class:`CurvatureOperator` in its own module here, one
line in :func:`make_operator` and its name in :data:`CURVATURES`.

Example:
    >>> import torch, landscape as ls
    >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(3, dtype=torch.float64))
    >>> H = make_operator(obj, obj.initial_point(), "hessian")
    >>> (H @ torch.ones(3, dtype=torch.float64)).tolist()
    [2.0, 2.0, 2.0]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .base import CurvatureOperator, DiagonalOperator, ScaledOperator, SumOperator
from .fisher import EmpiricalFisherOperator
from .ggn import GGNOperator
from .hessian import HessianOperator

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective

#: the curvature names :func:`make_operator` knows
CURVATURES = ("hessian", "ggn", "ef")

__all__ = ["CURVATURES", "CurvatureOperator", "DiagonalOperator", "EmpiricalFisherOperator", "GGNOperator",
           "HessianOperator", "ScaledOperator", "SumOperator", "as_operator", "check_curvature", "is_operator",
           "make_operator"]


def check_curvature(curvature: str) -> None:
    """Refuse an unknown curvature name.

    Args:
        curvature: the name to check.

    Raises:
        ValueError: unless ``curvature`` is one of :data:`CURVATURES`.

    Example:
        >>> check_curvature("ggn")
        >>> check_curvature("fisher")
        Traceback (most recent call last):
        ...
        ValueError: curvature must be 'hessian', 'ggn' or 'ef', got 'fisher'
    """
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be 'hessian', 'ggn' or 'ef', got {curvature!r}")


def make_operator(obj: "Objective", theta: torch.Tensor, curvature: str = "hessian", *,
                  cache: bool | None = None) -> CurvatureOperator:
    """The curvature matrix ``curvature`` of ``obj`` at ``theta`` as an operator.

    Args:
        obj: the objective.
        theta: the point, shape ``(dim,)``.
        curvature: ``"hessian"`` (:class:`HessianOperator`), ``"ggn"`` (:class:`GGNOperator`) or
            ``"ef"`` (:class:`EmpiricalFisherOperator`).
        cache: Hessian only: keep the first-order graph (None: when the data are in memory).

    Returns:
        The operator (``.matvec``, ``.matmat``, ``@``, ``.n_matvec``, ``.dim``, ``.dtype``, ``.device``).

    Raises:
        ValueError: for an unknown ``curvature``.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] * x[1], torch.zeros(2, dtype=torch.float64))
        >>> make_operator(obj, obj.initial_point()).curvature
        'hessian'
    """
    check_curvature(curvature)
    if curvature == "hessian":
        return HessianOperator(obj, theta, cache=cache)
    if curvature == "ggn":
        return GGNOperator(obj, theta)
    return EmpiricalFisherOperator(obj, theta)


def is_operator(x: Any) -> bool:
    """Whether ``x`` is an operator (anything with a ``matvec``) rather than an objective.

    Args:
        x: an operator or an :class:`landscape.Objective`.

    Returns:
        True for operators (including duck-typed ones with ``matvec`` and ``n_matvec``).

    Example:
        >>> import torch
        >>> is_operator(DiagonalOperator(torch.ones(2))), is_operator("an objective")
        (True, False)
    """
    return callable(getattr(x, "matvec", None))


def as_operator(source: Any, theta: torch.Tensor | None = None, *, curvature: str = "hessian",
                operator: Any = None) -> Any:
    """The operator an algorithm works on, from what it was given.

    Args:
        source: an operator (used as it is) or an objective.
        theta: with an objective: the point, shape ``(dim,)``.
        curvature: with an objective: the curvature matrix (see :func:`make_operator`).
        operator: a prepared operator that overrides ``source``/``curvature`` (the older
            ``extreme_eigs(obj, theta, operator=op)`` form).

    Returns:
        ``operator`` if given, ``source`` if it is an operator, else
        ``make_operator(source, theta, curvature)``.

    Example:
        >>> import torch
        >>> op = DiagonalOperator(torch.ones(2))
        >>> as_operator(op) is op
        True
    """
    if operator is not None:
        return operator
    if is_operator(source):
        return source
    return make_operator(source, theta, curvature)
