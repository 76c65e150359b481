"""Loss surfaces: the loss on a line or a plane through a point of parameter space.

A surface is the loss at ``theta + a_i·u`` (1-D) or ``theta + a_i·u + b_j·w`` (2-D) with
``a = b = linspace(−span, span, steps)``. Directions come from

- :func:`random_directions`: Gaussian directions with filter normalisation (Li et al. 2018: every
  row ("filter") of each weight tensor rescaled to the norm of the same row of ``theta``), layer
  normalisation (every tensor rescaled to the norm of ``theta``'s tensor) or none (unit vector);
  the second direction is made orthogonal to the first;
- :func:`eigen_directions`: unit Hessian eigenvectors (extreme ends, by Lanczos);
- :func:`pca_directions`: the PCA plane of a trajectory, with the trajectory projected on it;
- :func:`interpolate`: the line between two points (Goodfellow et al. 2015).

Grid points are evaluated many at a time with ``torch.func.vmap`` over flat parameter vectors
(through the objective's own batches), in chunks, under a progress bar. Everything works on the
:class:`~landscape.objective.Objective` (which owns a private copy of the model), so the user's
model is never touched. Results save to / load from ``.npz`` (:meth:`SurfaceResult.save_npz`).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .directions import (BIAS_MODES, NORMALIZATIONS, EigenDirections, PCAPlane, eigen_directions, normalize_direction,
                         pca_directions, project, random_directions)
from .evaluate import STRATEGIES, evaluate_points, evaluate_thetas
from .objective import Objective
from .render import surface_figure, surface_png, write_surface_html
from .results import JsonResult, to_jsonable

__all__ = ["SurfaceResult", "surface_1d", "surface_2d", "surface_eigen", "surface_pca", "interpolate",
           "evaluate_points", "evaluate_thetas", "STRATEGIES",
           # directions (defined in landscape.directions)
           "NORMALIZATIONS", "BIAS_MODES", "EigenDirections", "PCAPlane", "eigen_directions", "normalize_direction",
           "pca_directions", "project", "random_directions"]


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SurfaceResult(JsonResult):
    """A loss surface.

    ``loss``: (steps,) or (steps, steps) float64 array, entry [i, j] = L(theta + a_i·u + b_j·w)
    (non-finite values are kept as NaN/inf and counted in ``n_nonfinite``). ``coords``: tuple of
    1-D coordinate arrays (a,) or (a, b). ``directions``: (k, dim) array, rows u (and w) exactly
    as used. ``theta``: (dim,) centre (for :func:`interpolate`, the start point, coords t ∈ [0, 1]
    meaning theta + t·(θ_b − θ_a)). ``trajectory``: optional (T, k) coordinates of a path in the
    plane with ``trajectory_loss`` (T,). ``marks``: points to highlight, each
    ``{"label", "kind", "coords": [a, b], "loss", "off_plane"}`` (off_plane = distance of the
    true point from the plane). ``meta``: kind of directions, normalisation, eigenvalues, …
    ``span``/``steps``: the grid; ``kind``: how the directions were made; ``center_loss`` L(theta);
    ``seconds``: evaluation time.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> res = surface_1d(obj, obj.initial_point(), torch.tensor([1.0, 0.0], dtype=torch.float64), span=1.0,
        ...                  steps=3, progress=False)
        >>> res.loss.tolist(), res.ndim, res.n_points
        ([1.0, 0.0, 1.0], 1, 3)
    """

    loss: np.ndarray
    coords: tuple[np.ndarray, ...]
    directions: np.ndarray
    theta: np.ndarray
    span: float
    steps: int
    kind: str = "custom"
    center_loss: float = float("nan")
    n_nonfinite: int = 0
    seconds: float = 0.0
    trajectory: np.ndarray | None = None
    trajectory_loss: np.ndarray | None = None
    marks: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        """1 for a line, 2 for a plane."""
        return int(np.asarray(self.loss).ndim)

    @property
    def n_points(self) -> int:
        """Grid points evaluated."""
        return int(np.asarray(self.loss).size)

    @property
    def ms_per_point(self) -> float:
        """Evaluation time per grid point (milliseconds)."""
        return 1e3 * self.seconds / max(self.n_points, 1)

    def to_dict(self) -> dict:
        """The result as JSON types, without ``directions`` and ``theta`` (they belong in the .npz)."""
        d = super().to_dict()
        for key in ("directions", "theta"):  # (k, dim) and (dim,) belong in the .npz
            d.pop(key)
        return d

    # -------------------------------------------------------------- npz round trip
    def save_npz(self, path: str | Path) -> Path:
        """Write every array and the metadata to ``path`` (``.npz``, no pickles).

        Args:
            path: the file (parents created).

        Returns:
            The path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "loss": np.asarray(self.loss, dtype=np.float64),
            "directions": np.asarray(self.directions),
            "theta": np.asarray(self.theta),
        }
        for i, c in enumerate(self.coords):
            arrays[f"coords_{i}"] = np.asarray(c, dtype=np.float64)
        if self.trajectory is not None:
            arrays["trajectory"] = np.asarray(self.trajectory, dtype=np.float64)
            if self.trajectory_loss is not None:
                arrays["trajectory_loss"] = np.asarray(self.trajectory_loss, dtype=np.float64)
        header = {
            "format": "landscape.surface/1", "span": self.span, "steps": self.steps, "kind": self.kind,
            "center_loss": _json_float(self.center_loss), "n_nonfinite": self.n_nonfinite,
            "seconds": self.seconds, "n_coords": len(self.coords),
            "marks": _jsonable(self.marks), "meta": _jsonable(self.meta),
        }
        arrays["header"] = np.array(json.dumps(header))
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> "SurfaceResult":
        """Read a file written by :meth:`save_npz`.

        Args:
            path: the file.

        Returns:
            The result.

        Raises:
            FileNotFoundError: no file. ValueError: not a surface file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no surface file at {path}")
        with np.load(path, allow_pickle=False) as z:
            if "header" not in z.files or "loss" not in z.files:
                raise ValueError(f"{path} is not a surface file written by SurfaceResult.save_npz "
                                 f"(arrays found: {sorted(z.files)})")
            header = json.loads(str(z["header"]))
            coords = tuple(z[f"coords_{i}"] for i in range(int(header["n_coords"])))
            cl = header["center_loss"]
            return cls(
                loss=z["loss"], coords=coords, directions=z["directions"], theta=z["theta"],
                span=float(header["span"]), steps=int(header["steps"]), kind=header["kind"],
                center_loss=float("nan") if cl is None else float(cl),
                n_nonfinite=int(header["n_nonfinite"]), seconds=float(header["seconds"]),
                trajectory=z["trajectory"] if "trajectory" in z.files else None,
                trajectory_loss=z["trajectory_loss"] if "trajectory_loss" in z.files else None,
                marks=list(header["marks"]), meta=dict(header["meta"]),
            )

    def plot(self, path: str | Path, *, title: str | None = None, log: bool = False, **kwargs: Any) -> Path:
        """Write a PNG of this surface (labelled contour + 3-D surface, or a line for 1-D results;
        trajectory and marked points drawn) to ``path``: :func:`landscape.render.surface_png`.

        Args:
            path: the PNG. title: its title. log: log-scaled loss. kwargs: of ``surface_png``.

        Returns:
            The path.
        """
        return surface_png(self, path, title=title, log=log, **kwargs)

    def to_html(self, path: str | Path, *, title: str | None = None, log: bool = False, notes: str = "") -> Path:
        """Write an interactive offline page (plotly) of this surface to ``path``:
        :func:`landscape.render.write_surface_html`.

        Args:
            path: the page. title: its title. log: log-scaled loss. notes: text under the figure.

        Returns:
            The path.
        """
        return write_surface_html(self, path, title=title, log=log, notes=notes)

    def figure(self, *, title: str | None = None, log: bool = False) -> Any:
        """The interactive plotly figure (:func:`landscape.render.surface_figure`).

        Args:
            title: its title. log: log-scaled loss.

        Returns:
            A ``plotly.graph_objects.Figure``.
        """
        return surface_figure(self, title=title, log=log)


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def _jsonable(value: Any) -> Any:
    return to_jsonable(value)


# ---------------------------------------------------------------------------- surfaces
def _marks(obj: Objective, origin: torch.Tensor, D: torch.Tensor, marks: Sequence[dict] | None) -> list[dict]:
    """Project marked points ``{"theta": (dim,), "kind": str, "label": str}`` onto the plane."""
    out = []
    for i, m in enumerate(marks or []):
        if "theta" not in m:
            raise ValueError(f"mark {i} has no 'theta' (the point to mark)")
        t = obj.check_theta(m["theta"], f"marks[{i}]['theta']")
        c, off = project(D, origin, t.unsqueeze(0))
        try:
            value = obj.loss(t)
        except Exception:  # noqa: BLE001 - a non-finite point is still marked
            value = float("nan")
        out.append({"label": str(m.get("label", m.get("kind", f"point {i}"))), "kind": str(m.get("kind", "")),
                    "coords": [float(x) for x in c[0]], "loss": value, "off_plane": float(off[0])})
    return out


def _check_grid(span: float, steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive finite number, got {span!r}")


def _as_direction(obj: Objective, d: torch.Tensor, name: str) -> torch.Tensor:
    d = obj.check_theta(d, name)
    if not bool(torch.isfinite(d).all()):
        raise ValueError(f"{name} contains non-finite values")
    if float(torch.linalg.vector_norm(d)) == 0:
        raise ValueError(f"{name} is the zero vector")
    return d.detach().clone()


def surface_1d(obj: Objective, theta: torch.Tensor, direction: torch.Tensor | None = None, span: float = 1.0,
               steps: int = 51, *, normalization: str = "filter", bias: str = "zero", seed: int | None = 0,
               generator: torch.Generator | None = None, chunk_size: int | None = None,
               progress: bool | None = None, marks: Sequence[dict] | None = None,
               kind: str | None = None, meta: dict | None = None, strategy: str = "auto") -> SurfaceResult:
    """Loss along ``theta + a·u``, a = linspace(−span, span, steps); ``.loss`` has shape (steps,).

    ``direction`` (dim,) is used as given; ``None`` draws a seeded random direction normalised by
    ``normalization``/``bias`` (see :func:`normalize_direction`).

    Args:
        obj: the objective. theta: the centre (dim,). direction: (dim,) or None.
        span: the half-width of the grid (parameter units along ``direction``). steps: grid points (≥ 2).
        normalization, bias, seed, generator: of the random direction.
        chunk_size, progress, strategy: of :func:`evaluate_points`.
        marks: points to project and mark. kind: the directions' label. meta: extra metadata.

    Returns:
        :class:`SurfaceResult` with ``.loss`` of shape (steps,).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> surface_1d(obj, obj.initial_point(), torch.tensor([0.0, 2.0], dtype=torch.float64), span=1.0,
        ...            steps=3, progress=False).loss.tolist()
        [4.0, 0.0, 4.0]
    """
    _check_grid(span, steps)
    theta = obj.check_theta(theta).detach().clone()
    obj.loss(theta)  # NonFiniteError naming the batch when the data or theta hold NaN/inf
    if direction is None:
        u = random_directions(obj, theta, 1, normalization=normalization, bias=bias, seed=seed,
                              generator=generator)[0]
        kind = kind or "random"
        meta = {"normalization": normalization, "bias": bias, "seed": seed, **(meta or {})}
    else:
        u = _as_direction(obj, direction, "direction")
    a = torch.linspace(-span, span, steps, dtype=torch.float64)
    t0 = time.perf_counter()
    info: dict = {}
    loss = evaluate_points(obj, theta, u.unsqueeze(0), a.unsqueeze(1), chunk_size=chunk_size, progress=progress,
                           desc="surface 1-D", strategy=strategy, info=info)
    seconds = time.perf_counter() - t0
    return _finish(obj, theta, u.unsqueeze(0), (a,), loss, span, steps, seconds, kind or "custom", marks,
                   {**(meta or {}), **info})


def surface_2d(obj: Objective, theta: torch.Tensor, d1: torch.Tensor | None = None, d2: torch.Tensor | None = None,
               span: float = 1.0, steps: int = 21, *, normalization: str = "filter", bias: str = "zero",
               seed: int | None = 0, generator: torch.Generator | None = None, chunk_size: int | None = None,
               progress: bool | None = None, trajectory: torch.Tensor | Sequence[torch.Tensor] | None = None,
               marks: Sequence[dict] | None = None, kind: str | None = None, meta: dict | None = None,
               strategy: str = "auto") -> SurfaceResult:
    """Loss on the plane ``theta + a_i·u + b_j·w``; ``.loss[i, j]``, shape (steps, steps),
    a = b = linspace(−span, span, steps).

    ``d1``/``d2`` (dim,) are used as given; if both are ``None`` two seeded random directions are
    drawn (:func:`random_directions`, the second orthogonal to the first). ``trajectory``:
    optional points (T, dim) projected onto the plane (least squares) and evaluated.
    ``marks``: optional ``[{"theta", "kind", "label"}]`` points (e.g. stalls) projected likewise.

    Args:
        obj: the objective. theta: the centre (dim,). d1, d2: (dim,) each, or both None.
        span: the grid's half-width (parameter units along each direction). steps: points per axis.
        normalization, bias, seed, generator: of the random directions.
        chunk_size, progress, strategy: of :func:`evaluate_points`.
        trajectory: (T, dim) points to draw, or None. marks: points to mark.
        kind: the directions' label. meta: extra metadata.

    Returns:
        :class:`SurfaceResult` with ``.loss`` of shape (steps, steps).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> e = torch.eye(2, dtype=torch.float64)
        >>> surface_2d(obj, obj.initial_point(), e[0], e[1], span=1.0, steps=3, progress=False).loss.tolist()
        [[2.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 2.0]]
    """
    _check_grid(span, steps)
    theta = obj.check_theta(theta).detach().clone()
    obj.loss(theta)  # NonFiniteError naming the batch when the data or theta hold NaN/inf
    if (d1 is None) != (d2 is None):
        raise ValueError("pass both directions d1 and d2, or neither (random directions)")
    if d1 is None:
        D = random_directions(obj, theta, 2, normalization=normalization, bias=bias, seed=seed, generator=generator)
        kind = kind or "random"
        meta = {"normalization": normalization, "bias": bias, "seed": seed, **(meta or {})}
    else:
        D = torch.stack([_as_direction(obj, d1, "d1"), _as_direction(obj, d2, "d2")])
        cos = float((D[0] @ D[1]) / (torch.linalg.vector_norm(D[0]) * torch.linalg.vector_norm(D[1])))
        if abs(cos) > 1 - 1e-10:
            raise ValueError("d1 and d2 are parallel; they span no plane")
    a = torch.linspace(-span, span, steps, dtype=torch.float64)
    A, B = torch.meshgrid(a, a, indexing="ij")
    C = torch.stack([A.reshape(-1), B.reshape(-1)], dim=1)
    t0 = time.perf_counter()
    info: dict = {}
    loss = evaluate_points(obj, theta, D, C, chunk_size=chunk_size, progress=progress, desc="surface 2-D",
                           strategy=strategy, info=info).reshape(steps, steps)
    seconds = time.perf_counter() - t0
    path = None
    if trajectory is not None:
        traj = torch.stack(list(trajectory)) if not isinstance(trajectory, torch.Tensor) else trajectory
        traj = traj.to(device=obj.device, dtype=obj.dtype)
        if traj.ndim != 2 or traj.shape[1] != obj.dim:
            raise ValueError(f"trajectory must have shape (T, {obj.dim}), got {tuple(traj.shape)}")
        tc, off = project(D, theta, traj)
        path = (tc.cpu().numpy(), evaluate_thetas(obj, traj, chunk_size=chunk_size).numpy(), float(off.max()))
    return _finish(obj, theta, D, (a, a.clone()), loss, span, steps, seconds, kind or "custom", marks,
                   {**(meta or {}), **info}, path)


def _safe_loss(obj: Objective, t: torch.Tensor) -> float:
    with torch.no_grad():
        return float(obj.loss_tensor(t))


def _finish(obj: Objective, theta: torch.Tensor, D: torch.Tensor, coords: tuple[torch.Tensor, ...],
            loss: torch.Tensor, span: float, steps: int, seconds: float, kind: str,
            marks: Sequence[dict] | None, meta: dict | None,
            path: tuple[np.ndarray, np.ndarray, float] | None = None) -> SurfaceResult:
    """The result in one go; ``path``: (trajectory coords (T, k), its losses (T,), max distance off the plane)."""
    loss_np = loss.numpy()
    meta = {"dim": obj.dim, "dtype": str(obj.dtype), **(meta or {})}
    if path is not None:
        meta["trajectory_max_off_plane"] = path[2]
    return SurfaceResult(
        loss=loss_np, coords=tuple(c.numpy() for c in coords), directions=D.detach().cpu().numpy(),
        theta=theta.detach().cpu().numpy(), span=float(span), steps=int(steps), kind=kind,
        center_loss=_safe_loss(obj, theta), n_nonfinite=int((~np.isfinite(loss_np)).sum()), seconds=seconds,
        trajectory=path[0] if path is not None else None, trajectory_loss=path[1] if path is not None else None,
        marks=_marks(obj, theta, D, marks), meta=meta,
    )


def surface_eigen(obj: Objective, theta: torch.Tensor, span: float = 1.0, steps: int = 21, *,
                  which: str = "both", seed: int = 0, tol: float | None = None, **kwargs: Any) -> SurfaceResult:
    """:func:`surface_2d` along two unit Hessian eigenvectors (:func:`eigen_directions`).

    Args:
        obj, theta, span, steps: as in :func:`surface_2d`. which, seed, tol: of :func:`eigen_directions`.
        kwargs: further :func:`surface_2d` keywords.

    Returns:
        :class:`SurfaceResult` (kind ``"eigen"``; the eigenvalues and residuals in ``meta``).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 - x[1] ** 2, torch.zeros(2, dtype=torch.float64))
        >>> surface_eigen(obj, obj.initial_point(), steps=3, progress=False).meta["eigenvalues"]
        [2.0, -2.0]
    """
    eig = eigen_directions(obj, theta, which, seed=seed, tol=tol)
    meta = {"eigenvalues": eig.values.tolist(), "eig_residuals": eig.residuals.tolist(), "which": which,
            **kwargs.pop("meta", {})}
    return surface_2d(obj, theta, eig.vectors[0], eig.vectors[1], span, steps, kind="eigen", meta=meta, **kwargs)


def surface_pca(obj: Objective, trajectory: Sequence[torch.Tensor] | torch.Tensor, steps: int = 21, *,
                margin: float = 1.25, span: float | None = None, **kwargs: Any) -> SurfaceResult:
    """:func:`surface_2d` on the PCA plane of ``trajectory`` (:func:`pca_directions`), centred at
    its last point, with the trajectory drawn on it. ``span`` defaults to ``margin`` × the largest
    projected coordinate.

    Args:
        obj: the objective. trajectory: T ≥ 3 points (dim,). steps: points per axis.
        margin: span = margin × the largest projected coordinate (unless ``span`` is given).
        kwargs: further :func:`surface_2d` keywords.

    Returns:
        :class:`SurfaceResult` (kind ``"pca"``, the explained variance in ``meta``).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(3, dtype=torch.float64))
        >>> path = [torch.tensor(p, dtype=torch.float64) for p in ([2.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0])]
        >>> res = surface_pca(obj, path, steps=3, progress=False)
        >>> res.kind, res.trajectory.shape
        ('pca', (4, 2))
    """
    plane = pca_directions(trajectory)
    traj = torch.stack(list(trajectory)) if not isinstance(trajectory, torch.Tensor) else trajectory
    if span is None:
        span = margin * float(plane.coords.abs().max())
        if span <= 0:
            raise ValueError("the trajectory does not move; no PCA span")
    meta = {"explained_variance": plane.explained.tolist(), **kwargs.pop("meta", {})}
    return surface_2d(obj, plane.center.to(obj.dtype), plane.directions[0].to(obj.dtype),
                      plane.directions[1].to(obj.dtype), span, steps, trajectory=traj, kind="pca", meta=meta,
                      **kwargs)


def interpolate(obj: Objective, theta_a: torch.Tensor, theta_b: torch.Tensor, steps: int = 51, *,
                margin: float = 0.0, chunk_size: int | None = None, progress: bool | None = None,
                strategy: str = "auto") -> SurfaceResult:
    """Loss along the line θ_a + t·(θ_b − θ_a), t = linspace(−margin, 1 + margin, steps)
    (Goodfellow et al. 2015). ``.coords[0]`` is t, ``.theta`` is θ_a, ``.directions`` is θ_b − θ_a,
    ``.span`` = 0.5 + margin (the half-length of the t range).

    Args:
        obj: the objective. theta_a, theta_b: the end points (dim,), distinct.
        steps: points on the line. margin: extension beyond each end (units of ‖θ_b − θ_a‖).
        chunk_size, progress, strategy: of :func:`evaluate_points`.

    Returns:
        :class:`SurfaceResult` with ``.loss`` of shape (steps,) and ``meta`` holding both end losses.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> a, b = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
        >>> interpolate(obj, a, b, steps=3, progress=False).loss.tolist()
        [1.0, 0.0, 1.0]
    """
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    _check_grid(1.0, steps)
    ta = obj.check_theta(theta_a, "theta_a").detach().clone()
    tb = obj.check_theta(theta_b, "theta_b").detach().clone()
    u = tb - ta
    if float(torch.linalg.vector_norm(u)) == 0:
        raise ValueError("theta_a and theta_b are the same point")
    t = torch.linspace(-margin, 1.0 + margin, steps, dtype=torch.float64)
    t0 = time.perf_counter()
    info: dict = {}
    loss = evaluate_points(obj, ta, u.unsqueeze(0), t.unsqueeze(1), chunk_size=chunk_size, progress=progress,
                           desc="interpolation", strategy=strategy, info=info)
    seconds = time.perf_counter() - t0
    meta = {**info, "loss_a": _safe_loss(obj, ta), "loss_b": _safe_loss(obj, tb), "distance": float(torch.linalg.vector_norm(u))}
    return _finish(obj, ta, u.unsqueeze(0), (t,), loss, 0.5 + margin, steps, seconds, "interpolation", None, meta)
