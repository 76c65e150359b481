"""landscape: curvature and critical-point analysis of neural-network losses.

Any ``nn.Module`` + loss + data (:meth:`Objective.from_batches`, :meth:`Objective.from_module`), or a
plain function of a vector, becomes an :class:`Objective` with loss, gradient, Hessian-vector
products, dense Hessian, per-example gradients; its curvature matrices are operators
(:mod:`landscape.operators`: Hessian, GGN, empirical Fisher). On top of them: Lanczos extreme
eigenpairs, Hutchinson trace, SLQ spectral density, gradient-cancellation statistics,
critical-point search and classification, and loss surfaces.

``__all__`` lists what a user needs; the submodules (``landscape.deep_linear``, ``landscape.render``,
``landscape.results``, ``landscape.surface``, ``landscape.distributed``, ...) are reachable as
submodules. The layers, bottom up: ``defaults``/``tolerances``/``results``/``errors`` →
``params``/``data``/``_functional`` → ``objective`` + ``operators`` → ``linalg`` → ``eigs``/``spectrum``
→ ``point`` → ``probe`` → ``classify`` → ``critical`` → ``surface``/``render``; no module imports one
above it.

Example:
    >>> import torch, landscape as ls
    >>> obj = ls.Objective.from_function(lambda v: v[0] ** 2 - v[1] ** 2, torch.zeros(2, dtype=torch.float64))
    >>> ls.extreme_eigs(obj.hvp_operator(obj.initial_point()), k=1).values.tolist()
    [-2.0, 2.0]
    >>> ls.classify_point(obj, obj.initial_point()).kind
    'strict_saddle'
"""
# --- objectives and the operators they give
from . import distributed
from ._functional import second_order_safe, stochastic_modules
from .errors import ConvergenceWarning, NonFiniteError
from .gauss_newton import NonGGNCurvature, nongg_negative_curvature
from .objective import Objective
from .operators import CurvatureOperator, EmpiricalFisherOperator, GGNOperator, HessianOperator, make_operator
from .params import ParamSpec

# --- spectra
from .eigs import EigResult, extreme_eigs
from .linalg import lanczos
from .spectrum import (BlockExtremes, SpectralDensity, TraceEstimate, hessian_trace, per_block_extremes,
                       spectral_density)

# --- per-example gradients and their cancellation
from .cancellation import CancellationStats, cancellation_stats

# --- critical points: the state at a point, search, classification
from .classify import ClassifyOptions, CriticalPointReport, classify_point
from .critical import CriticalPointSearch, NearestCritical, find_critical_point, nearest_critical
from .point import PointState, dense_hessian
from .probe import ProbeResult, higher_order_probe

# --- loss surfaces and rendering
from .render import surface_figure, surface_png, write_html, write_surface_html
from .surface import (SurfaceResult, eigen_directions, interpolate, pca_directions, random_directions,
                      surface_1d, surface_2d)

# --- results
from .results import JsonResult, to_jsonable

# --- stall monitoring: detection, cause, the at-stall analysis (landscape/monitor/)
from . import monitor
from .monitor import StallAnalysis, StallDetector, StallMonitor, analyse_stall, stall_cause

# --- research fixture: reachable as landscape.deep_linear.DeepLinearProblem (kept here for old imports)
from .deep_linear import DeepLinearProblem  # noqa: F401  (not in __all__)

__all__ = [
    # objectives and operators
    "Objective", "NonFiniteError", "ConvergenceWarning", "ParamSpec", "second_order_safe", "stochastic_modules",
    "CurvatureOperator", "HessianOperator", "GGNOperator", "EmpiricalFisherOperator", "make_operator",
    "nongg_negative_curvature", "NonGGNCurvature",
    # spectra
    "extreme_eigs", "EigResult", "lanczos", "hessian_trace", "TraceEstimate", "spectral_density",
    "SpectralDensity", "per_block_extremes", "BlockExtremes",
    # cancellation
    "cancellation_stats", "CancellationStats",
    # critical points
    "PointState", "dense_hessian", "classify_point", "ClassifyOptions", "CriticalPointReport",
    "find_critical_point", "CriticalPointSearch", "nearest_critical", "NearestCritical",
    "higher_order_probe", "ProbeResult",
    # surfaces and rendering
    "SurfaceResult", "surface_1d", "surface_2d", "random_directions", "eigen_directions",
    "pca_directions", "interpolate", "surface_figure", "surface_png", "write_surface_html", "write_html",
    # results
    "JsonResult", "to_jsonable",
    # stall monitoring
    "StallDetector", "stall_cause", "analyse_stall", "StallAnalysis", "StallMonitor",
]
__version__ = "0.1.0"
