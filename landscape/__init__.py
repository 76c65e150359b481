"""landscape: curvature and critical-point analysis of neural-network losses.

Any ``nn.Module`` + loss + data, or a plain function of a vector, becomes an
:class:`Objective` with loss, gradient, Hessian-vector products, dense Hessian, per-example
gradients; on top of it: Lanczos extreme eigenpairs, Hutchinson trace, SLQ spectral density
and gradient-cancellation statistics.
"""
from .cancellation import CancellationStats, cancellation_stats
from .lanczos import EigResult, extreme_eigs, lanczos
from .objective import HessianOperator, NonFiniteError, Objective
from .params import ParamSpec
from .results import JsonResult, to_jsonable
from .spectrum import SpectralDensity, TraceEstimate, hessian_trace, spectral_density

__all__ = [
    "Objective", "HessianOperator", "NonFiniteError", "ParamSpec",
    "extreme_eigs", "EigResult", "lanczos",
    "hessian_trace", "TraceEstimate", "spectral_density", "SpectralDensity",
    "cancellation_stats", "CancellationStats",
    "JsonResult", "to_jsonable",
]
__version__ = "0.1.0"

# --- issue 3: deep linear networks and the critical-point classifier
from . import deep_linear  # noqa: E402
from .deep_linear import DeepLinearProblem  # noqa: E402

__all__ += ["deep_linear", "DeepLinearProblem"]
from .classify import CriticalPointReport, classify_point  # noqa: E402
from .probe import ProbeResult, higher_order_probe  # noqa: E402

__all__ += ["classify_point", "CriticalPointReport", "higher_order_probe", "ProbeResult"]

# --- issue 5: loss surfaces
from . import surface  # noqa: E402
from .surface import (SurfaceResult, eigen_directions, interpolate, pca_directions,  # noqa: E402
                      random_directions, surface_1d, surface_2d)

__all__ += ["surface", "SurfaceResult", "surface_1d", "surface_2d", "random_directions", "eigen_directions",
            "pca_directions", "interpolate"]

# --- issue 11: any model (from_batches), parameter blocks, GGN / empirical Fisher, data parallel
from . import curvature, distributed  # noqa: E402
from .curvature import (EmpiricalFisherOperator, GGNOperator, NonGGNCurvature,  # noqa: E402
                        nongg_negative_curvature)
from .objective import second_order_safe, stochastic_modules  # noqa: E402
from .spectrum import BlockExtremes, per_block_extremes  # noqa: E402

__all__ += ["curvature", "distributed", "GGNOperator", "EmpiricalFisherOperator", "nongg_negative_curvature", "NonGGNCurvature",
            "second_order_safe", "stochastic_modules", "per_block_extremes", "BlockExtremes"]

# --- issue 13: renderers (also SurfaceResult.plot / .to_html)
from . import render  # noqa: E402
from .render import surface_figure, surface_png, write_html, write_surface_html  # noqa: E402

__all__ += ["render", "surface_figure", "surface_png", "write_surface_html", "write_html"]

# --- issue 9: refinement to the nearby critical point
from . import critical  # noqa: E402
from .critical import CriticalPointSearch, NearestCritical, find_critical_point, nearest_critical  # noqa: E402

__all__ += ["critical", "find_critical_point", "CriticalPointSearch", "nearest_critical", "NearestCritical"]
