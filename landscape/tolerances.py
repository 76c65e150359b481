"""Tolerance rules shared by the eigensolver, the classifier and the critical-point search.

Every rule is a formula of the dtype's machine epsilon ε and, where relative, of a scale the
caller measured (the spectral scale Λ = max|λ| of the Hessian, the loss scale Λ·s²). Constants
that are plain numbers live in :mod:`landscape.defaults`.

Example:
    >>> import torch
    >>> from landscape.tolerances import default_grad_tol, default_solver_tol
    >>> default_grad_tol(torch.float64)
    1e-05
    >>> default_solver_tol(torch.float32)
    0.0001
"""
from __future__ import annotations

import math

import torch

_EPS64 = torch.finfo(torch.float64).eps


def default_solver_tol(dtype: torch.dtype) -> float:
    """The eigensolver's default relative residual tolerance for operators of ``dtype``.

    Args:
        dtype: the operator's floating dtype.

    Returns:
        1e-8 for float64, 1e-4 otherwise (a pair is converged when ‖Hv − λv‖ ≤ tol·‖H‖).

    Example:
        >>> import torch
        >>> default_solver_tol(torch.float64)
        1e-08
    """
    return 1e-8 if dtype == torch.float64 else 1e-4


def default_grad_tol(dtype: torch.dtype) -> float:
    """Frye et al.'s cut-off on ‖g‖, scaled to the dtype's precision.

    ‖g‖ < 1e-5 (‖g‖² < 1e-10) in float64, scaled by (ε/ε_64)^{1/4} for lower precision.
    :func:`landscape.classify_point` multiplies it by the scale Λ·s (a relative criterion);
    :func:`landscape.find_critical_point` uses it as is (the literature's absolute cut-off, in loss
    units per parameter unit).

    Args:
        dtype: the objective's floating dtype.

    Returns:
        The cut-off (a float; 1e-5 in float64, about 1.5e-3 in float32).

    Example:
        >>> import torch
        >>> round(default_grad_tol(torch.float32), 6)
        0.001522
    """
    return 1e-5 * (torch.finfo(dtype).eps / _EPS64) ** 0.25


def default_eig_tol(dtype: torch.dtype, dim: int, scale: float) -> float:
    """The round-off band of eigenvalues: ``10·ε·dim·scale``.

    Args:
        dtype: the Hessian's dtype (ε its machine epsilon).
        dim: the number of parameters.
        scale: the spectral scale max|λ| (0 for an exactly zero Hessian, giving a zero band).

    Returns:
        The band: eigenvalues with |λ| at most this are zero to round-off (curvature units).

    Example:
        >>> import torch
        >>> default_eig_tol(torch.float64, 10, 1.0) == 100 * torch.finfo(torch.float64).eps
        True
    """
    return 10.0 * torch.finfo(dtype).eps * dim * scale


def default_global_tol(dtype: torch.dtype, global_min: float, loss_scale: float = 0.0) -> float:
    """Round-off of a loss value near the global minimum: ``10·√ε·max(|global_min|, loss_scale)``.

    1.5e-7 relative in float64, 3.5e-3 in float32; :func:`landscape.classify_point` passes
    ``loss_scale`` = Λ·s², so that L* = 0 is not an absolute cut-off.

    Args:
        dtype: the objective's dtype.
        global_min: the known global minimum value (loss units).
        loss_scale: a loss scale for the relative rule (loss units, default 0).

    Returns:
        The tolerance on |L − global_min| (loss units).

    Example:
        >>> import torch
        >>> round(default_global_tol(torch.float64, 2.0), 12)
        2.98023e-07
    """
    return 10.0 * math.sqrt(torch.finfo(dtype).eps) * max(abs(global_min), loss_scale)


def roundoff_allowance(m: int, eps: float, scale: float) -> float:
    """The round-off in a Lanczos residual that the recurrence does not see: ``10·√m·ε·‖H‖``.

    With full reorthogonalisation the recurrence's residual estimate matches the explicit one to
    O(ε·‖H‖); this allowance covers the difference.

    Args:
        m: the number of basis vectors.
        eps: the operator dtype's machine epsilon.
        scale: the spectral-norm estimate ‖H‖.

    Returns:
        The allowance (curvature units).

    Example:
        >>> roundoff_allowance(4, 1e-16, 2.0)
        4e-15
    """
    return 10.0 * math.sqrt(m) * eps * scale
