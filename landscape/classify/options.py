"""The settings of one classification (:class:`ClassifyOptions`), validated once."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..budget import check_max_hvp
from ..defaults import (AUTO_DENSE_MAX_DIM, CLASSIFY_MAX_HVP, DEFAULT_REL_THRESHOLD, LANCZOS_K, PROBE_N_RADII,
                        PROBE_RADIUS, PROBE_RANDOM)

METHODS = ("auto", "dense", "lanczos")


def _check_tol(name: str, value: float | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite {'non-negative' if allow_zero else 'positive'} number, got {value}")


@dataclass(frozen=True)
class ClassifyOptions:
    """Every setting of :func:`landscape.classify_point`, checked on construction.

    The fields are the keywords of :func:`landscape.classify_point` (see there), with the same
    names and defaults; the ``probe_*`` fields are the higher-order probe's settings.

    Attributes:
        global_min: the known global minimum value (loss units), or None.
        grad_tol: ‖g‖ cut-off (loss units per parameter unit); None: relative default.
        eig_tol: zero-eigenvalue band (curvature units); None: round-off plus curvature band.
        method: ``"auto"``, ``"dense"`` or ``"lanczos"``.
        probe: run the higher-order probe on degenerate points.
        seed: seeds the eigensolver and the random probe directions.
        global_tol: tolerance on |L − global_min| (loss units); None: the default rule.
        probe_radius: the largest probe radius relative to s = max(1, rms(θ)).
        probe_n_radii: geometric radii of the ladder (from 1e-4 of the largest).
        probe_random: seeded random combinations of the near-null eigenvectors.
        probe_rel_threshold: a change counts beyond this multiple of ε·|f|.
        probe_abs_threshold: and beyond this absolute change (loss units).
        probe_search: search the sphere of the near-null subspace when lines find nothing.
        lanczos_k: (smallest, largest) eigenpairs on the Lanczos path.
        probe_reduced: run the reduced-function (Lyapunov–Schmidt) probe.
        max_hvp: the most Hessian-vector products (a dense Hessian counts ``dim``); None: no limit;
            ``"auto"``: :data:`landscape.defaults.CLASSIFY_MAX_HVP` above
            :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters, else no limit (:meth:`resolved_max_hvp`).

    Raises:
        ValueError: for an invalid setting (named).

    Example:
        >>> ClassifyOptions(probe_radius=0.05).resolved_method(10)
        'dense'
        >>> ClassifyOptions(probe_radius=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: probe_radius must be a positive finite number, got -1.0
    """

    global_min: float | None = None
    grad_tol: float | None = None
    eig_tol: float | None = None
    method: str = "auto"
    probe: bool = True
    seed: int = 0
    global_tol: float | None = None
    probe_radius: float = PROBE_RADIUS
    probe_n_radii: int = PROBE_N_RADII
    probe_random: int = PROBE_RANDOM
    probe_rel_threshold: float = DEFAULT_REL_THRESHOLD
    probe_abs_threshold: float = 0.0
    probe_search: bool = True
    lanczos_k: tuple[int, int] = LANCZOS_K
    probe_reduced: bool = True
    max_hvp: int | None | str = "auto"

    def __post_init__(self) -> None:
        if self.max_hvp != "auto":
            check_max_hvp(self.max_hvp)  # type: ignore[arg-type]
        if self.method not in METHODS:
            raise ValueError(f"method must be 'auto', 'dense' or 'lanczos', got {self.method!r}")
        _check_tol("grad_tol", self.grad_tol, allow_zero=False)
        _check_tol("eig_tol", self.eig_tol, allow_zero=True)
        _check_tol("global_tol", self.global_tol, allow_zero=True)
        if self.global_min is not None and not math.isfinite(float(self.global_min)):
            raise ValueError(f"global_min must be finite, got {self.global_min}")
        if not (math.isfinite(self.probe_radius) and self.probe_radius > 0):
            raise ValueError(f"probe_radius must be a positive finite number, got {self.probe_radius}")
        if not (math.isfinite(self.probe_abs_threshold) and self.probe_abs_threshold >= 0):
            raise ValueError(f"probe_abs_threshold must be finite and >= 0, got {self.probe_abs_threshold}")

    def resolved_method(self, dim: int) -> str:
        """``"dense"`` or ``"lanczos"``: ``method``, with ``"auto"`` dense up to
        :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters.

        Args:
            dim: the number of parameters.

        Returns:
            The path taken.
        """
        if self.method == "auto":
            return "dense" if dim <= AUTO_DENSE_MAX_DIM else "lanczos"
        return self.method

    def resolved_max_hvp(self, dim: int) -> int | None:
        """The HVP budget: ``max_hvp``, with ``"auto"`` :data:`landscape.defaults.CLASSIFY_MAX_HVP` above
        :data:`landscape.defaults.AUTO_DENSE_MAX_DIM` parameters (where products are the cost) and no limit below.

        Args:
            dim: the number of parameters.

        Returns:
            The limit, or None.

        Example:
            >>> ClassifyOptions().resolved_max_hvp(10), ClassifyOptions().resolved_max_hvp(5000)
            (None, 120)
        """
        if self.max_hvp == "auto":
            return CLASSIFY_MAX_HVP if dim > AUTO_DENSE_MAX_DIM else None
        return self.max_hvp  # type: ignore[return-value]

    def lanczos_pairs(self, dim: int) -> tuple[int, int]:
        """``lanczos_k`` fitted to ``dim``: each end at least 1 and at most dim − 1, together at most dim.

        Args:
            dim: the number of parameters (≥ 2).

        Returns:
            ``(k_smallest, k_largest)``.

        Example:
            >>> ClassifyOptions().lanczos_pairs(5)
            (4, 1)
        """
        ks, kl = self.lanczos_k
        ks, kl = max(1, min(ks, dim - 1)), max(1, min(kl, dim - 1))
        if ks + kl > dim:
            ks, kl = dim - 1, 1
        return ks, kl
