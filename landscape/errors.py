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
