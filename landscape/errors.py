"""The exceptions :mod:`landscape` raises beyond the built-in ones.

Example:
    >>> from landscape.errors import NonFiniteError
    >>> issubclass(NonFiniteError, FloatingPointError)
    True
"""
from __future__ import annotations


class NonFiniteError(FloatingPointError):
    """The loss, gradient or a curvature product is NaN or infinite.

    The message names the batch (and, for vectors, the first parameter) where the value went
    non-finite. A distributed objective raises it on every rank, so no rank waits in a collective.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: torch.log(x).sum(), torch.ones(2, dtype=torch.float64))
        >>> obj.loss(torch.tensor([1.0, -1.0], dtype=torch.float64))
        Traceback (most recent call last):
        ...
        landscape.errors.NonFiniteError: loss is nan on the function
    """


class NonFiniteInputError(NonFiniteError, ValueError):
    """A vector handed in (θ, a direction, a product's vector) holds NaN or inf: a non-finite value
    (:class:`NonFiniteError`) and a bad argument (``ValueError``) at once, named with the parameter
    and flat index, never blamed on a batch.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> try:
        ...     obj.grad(torch.tensor([float("inf"), 0.0], dtype=torch.float64))
        ... except ValueError as e:
        ...     print(type(e).__name__, isinstance(e, ls.NonFiniteError))
        NonFiniteInputError True
    """


class ConvergenceWarning(RuntimeWarning):
    """An iterative result did not reach its tolerance: an eigenpair whose residual exceeds ``tol``,
    a Hutchinson trace without a significant digit, a density whose smoothing is finer than its
    quadrature resolves. One warning per call, naming what and its residual; the result itself is
    returned unchanged. Silence it with the function's ``warn=False`` or the standard filters
    (``warnings.filterwarnings("ignore", category=ls.ConvergenceWarning)``).

    Example:
        >>> from landscape.errors import ConvergenceWarning
        >>> issubclass(ConvergenceWarning, RuntimeWarning)
        True
    """
