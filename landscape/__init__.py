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
