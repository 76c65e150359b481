"""Classify a point of an objective: not critical, minimum (global), strict / non-strict saddle, maximum.

- :mod:`~landscape.classify.recipe`: :func:`classify_point`, the recipe (its module docstring
  states every step and tolerance);
- :mod:`~landscape.classify.report`: :class:`CriticalPointReport`, :data:`KINDS`;
- :mod:`~landscape.classify.options`: :class:`ClassifyOptions`, the validated settings;
- :mod:`~landscape.classify.newton`: the Newton continuation and the in-band eigenvalues;
- :mod:`~landscape.classify.degenerate`: the higher-order probe at degenerate points;
- :mod:`~landscape.classify.layers`: the layer-product probe (order-L descent through a chain of Linear layers);
- :mod:`~landscape.classify.verdict`: the probe's verdict (an unresolved direction: ``inconclusive``).

The state at the point (loss, gradient, Hessian, spectrum, scales) is a
:class:`landscape.point.PointState`, computed once and handed down through all of them.

Example:
    >>> import torch, landscape as ls
    >>> obj = ls.Objective.from_function(lambda v: v[0] ** 3 - 3 * v[0] * v[1] ** 2, torch.zeros(2, dtype=torch.float64))
    >>> classify_point(obj, obj.initial_point()).kind        # the monkey saddle
    'non_strict_saddle'
"""
from ..point import dense_hessian
from ..tolerances import default_eig_tol, default_global_tol, default_grad_tol
from .options import ClassifyOptions
from .recipe import classify_point, classify_with_options
from .report import KINDS, CriticalPointReport

__all__ = ["classify_point", "classify_with_options", "ClassifyOptions", "CriticalPointReport", "KINDS",
           "dense_hessian", "default_grad_tol", "default_eig_tol", "default_global_tol"]
