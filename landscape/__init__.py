"""landscape: curvature and critical-point analysis of neural-network losses.

Any ``nn.Module`` + loss + data (:meth:`Objective.from_batches`, :meth:`Objective.from_module`), or a
plain function of a vector, becomes an :class:`Objective` with loss, gradient, Hessian-vector
products, dense Hessian, per-example gradients; on top of it: Lanczos extreme eigenpairs, Hutchinson
trace, SLQ spectral density, gradient-cancellation statistics, critical-point search and
classification, and loss surfaces.
"""
# --- objectives and the operators they give
from . import curvature, distributed
from .curvature import EmpiricalFisherOperator, GGNOperator, NonGGNCurvature, nongg_negative_curvature
from .objective import HessianOperator, NonFiniteError, Objective, second_order_safe, stochastic_modules
from .params import ParamSpec

# --- spectra
from .lanczos import EigResult, extreme_eigs, lanczos
from .spectrum import (BlockExtremes, SpectralDensity, TraceEstimate, hessian_trace, per_block_extremes,
                       spectral_density)

# --- per-example gradients and their cancellation
from .cancellation import CancellationStats, cancellation_stats

# --- critical points: search, classification, deep linear networks
from . import critical, deep_linear
from .classify import CriticalPointReport, classify_point
from .critical import CriticalPointSearch, NearestCritical, find_critical_point, nearest_critical
from .deep_linear import DeepLinearProblem
from .probe import ProbeResult, higher_order_probe

# --- loss surfaces and rendering
from . import render, surface
from .render import surface_figure, surface_png, write_html, write_surface_html
from .surface import (SurfaceResult, eigen_directions, interpolate, pca_directions, random_directions,
                      surface_1d, surface_2d)

# --- results
from .results import JsonResult, to_jsonable

# --- stall monitoring: detection, cause, the at-stall analysis (landscape/monitor/)
from . import monitor
from .monitor import StallAnalysis, StallDetector, analyse_stall, stall_cause

__all__ = [
    # objectives and operators
    "Objective", "HessianOperator", "NonFiniteError", "ParamSpec", "second_order_safe", "stochastic_modules",
    "curvature", "distributed", "GGNOperator", "EmpiricalFisherOperator", "nongg_negative_curvature",
    "NonGGNCurvature",
    # spectra
    "extreme_eigs", "EigResult", "lanczos", "hessian_trace", "TraceEstimate", "spectral_density",
    "SpectralDensity", "per_block_extremes", "BlockExtremes",
    # cancellation
    "cancellation_stats", "CancellationStats",
    # critical points
    "critical", "find_critical_point", "CriticalPointSearch", "nearest_critical", "NearestCritical",
    "classify_point", "CriticalPointReport", "higher_order_probe", "ProbeResult", "deep_linear",
    "DeepLinearProblem",
    # surfaces and rendering
    "surface", "SurfaceResult", "surface_1d", "surface_2d", "random_directions", "eigen_directions",
    "pca_directions", "interpolate", "render", "surface_figure", "surface_png", "write_surface_html", "write_html",
    # results
    "JsonResult", "to_jsonable",
    # stall monitoring
    "monitor", "StallDetector", "stall_cause", "analyse_stall", "StallAnalysis",
]
__version__ = "0.1.0"
