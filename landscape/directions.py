"""Directions for loss surfaces: normalised random directions, Hessian eigenvectors, the PCA plane of a path.

- :func:`random_directions` / :func:`normalize_direction`: Gaussian directions with filter
  normalisation (Li et al. 2018: every row ("filter") of each weight tensor rescaled to the norm of
  the same row of ``theta``), layer normalisation (every tensor rescaled to the norm of
  ``theta``'s tensor) or none (unit vector);
- :func:`eigen_directions`: unit Hessian eigenvectors (extreme ends, by Lanczos);
- :func:`pca_directions`: the PCA plane of a trajectory; :func:`project`: coordinates in a plane.

:mod:`landscape.surface` evaluates the loss on the lines and planes they span.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .eigs import extreme_eigs
from .objective import Objective
from .results import JsonResult

NORMALIZATIONS = ("filter", "layer", "none")
BIAS_MODES = ("zero", "keep")


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def normalize_direction(obj: Objective, theta: torch.Tensor, d: torch.Tensor, *,
                        normalization: str = "filter", bias: str = "zero") -> torch.Tensor:
    """Rescale a direction ``d`` (dim,) relative to ``theta`` (dim,); returns a new vector.

    ``"filter"``: for every parameter tensor with ≥ 2 dimensions, each row (filter / output
    unit, the first index) of ``d`` gets the Euclidean norm of the same row of ``theta``.
    ``"layer"``: each parameter tensor of ``d`` gets the norm of ``theta``'s tensor.
    ``"none"``: ``d`` scaled to unit Euclidean norm.
    1-D tensors (biases, norm-layer scales) are zeroed (``bias="zero"``, Li et al.) or, with
    ``bias="keep"``, rescaled as one block to the norm of ``theta``'s block.

    Args:
        obj: the objective (its parameter layout). theta: the reference point (dim,).
        d: the raw direction (dim,). normalization: ``"filter"``, ``"layer"`` or ``"none"``.
        bias: ``"zero"`` or ``"keep"`` for 1-D tensors.

    Returns:
        The rescaled direction (dim,), a new tensor.

    Raises:
        ValueError: an unknown mode, or a zero result (named why).

    Example:
        >>> import torch, landscape as ls
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
        >>> X, Y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> th = obj.initial_point()
        >>> u = normalize_direction(obj, th, torch.ones(obj.dim, dtype=torch.float64))
        >>> bool(torch.allclose(u[:2].norm(), th[:2].norm())), float(u[6:9].abs().sum())   # row 0 of W1; b1 zeroed
        (True, 0.0)
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
    theta = obj.check_theta(theta)
    d = obj.check_theta(d, "direction").clone()
    tiny = torch.finfo(d.dtype).tiny
    if normalization == "none":
        n = torch.linalg.vector_norm(d)
        if float(n) == 0:
            raise ValueError("direction is the zero vector")
        return d / n
    for name, sl in obj.spec.slices.items():
        shape = obj.spec.shapes[obj.spec.names.index(name)]
        block, ref = d[sl], theta[sl]
        if len(shape) <= 1:
            if bias == "zero":
                block.zero_()
            else:
                block.mul_(torch.linalg.vector_norm(ref) / torch.linalg.vector_norm(block).clamp_min(tiny))
            continue
        if normalization == "filter":
            rows, rrows = block.view(shape[0], -1), ref.view(shape[0], -1)
            scale = torch.linalg.vector_norm(rrows, dim=1) / torch.linalg.vector_norm(rows, dim=1).clamp_min(tiny)
            rows.mul_(scale.unsqueeze(1))
        else:
            block.mul_(torch.linalg.vector_norm(ref) / torch.linalg.vector_norm(block).clamp_min(tiny))
    if float(torch.linalg.vector_norm(d)) == 0:
        why = ("every parameter is 1-D and bias='zero' removes them" if all(len(s) <= 1 for s in obj.spec.shapes)
               else "theta is zero on every normalised filter/layer")
        raise ValueError(f"{normalization} normalisation gave the zero direction: {why}. "
                         "Use normalization='none' (unit directions), or bias='keep'.")
    return d


def random_directions(obj: Objective, theta: torch.Tensor, n: int = 2, *, normalization: str = "filter",
                      bias: str = "zero", orthogonal: bool = True, seed: int | None = 0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` (1 or 2) normalised random Gaussian directions, shape (n, dim).

    Each is drawn N(0, I) (on the CPU, so a seed gives the same directions on every device) and
    normalised by :func:`normalize_direction`. With ``orthogonal`` the second is made orthogonal
    to the first (Gram–Schmidt) and rescaled to its pre-projection norm, so its overall scale
    matches the first's normalisation while ⟨u, w⟩ = 0 exactly (its per-filter norms then match
    ``theta``'s only approximately).

    Args:
        obj: the objective. theta: the reference point (dim,). n: 1 or 2.
        normalization, bias: see :func:`normalize_direction`. orthogonal: make the second ⟂ the first.
        seed: seeds the draw (None: 0). generator: a CPU generator to draw from instead.

    Returns:
        Shape ``(n, dim)``.

    Example:
        >>> import torch, landscape as ls
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
        >>> X, Y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> D = random_directions(obj, obj.initial_point(), 2, seed=1)
        >>> tuple(D.shape), abs(float(D[0] @ D[1])) < 1e-12
        ((2, 13), True)
    """
    if n not in (1, 2):
        raise ValueError(f"n must be 1 or 2 directions, got {n}")
    theta = obj.check_theta(theta)
    gen = _generator(seed, generator)
    out = []
    for _ in range(n):
        raw = torch.randn(obj.dim, generator=gen, dtype=torch.float64).to(device=obj.device, dtype=obj.dtype)
        out.append(normalize_direction(obj, theta, raw, normalization=normalization, bias=bias))
    if n == 2 and orthogonal:
        u, w = out
        norm_w = torch.linalg.vector_norm(w)
        w = w - (w @ u) / (u @ u) * u
        w = w - (w @ u) / (u @ u) * u  # twice is enough (Kahan–Parlett)
        nw = torch.linalg.vector_norm(w)
        if float(nw) <= 1e-12 * float(norm_w):
            raise ValueError("the two random directions are parallel; the model has too few free parameters")
        out[1] = w * (norm_w / nw)
    return torch.stack(out)


@dataclass(frozen=True)
class EigenDirections(JsonResult):
    """Unit Hessian eigenvectors used as surface directions.

    Attributes:
        vectors: (2, dim) unit rows. values: (2,) their eigenvalues. residuals: (2,) ‖Hv − λv‖.
        which: the ends taken (``"both"``, ``"largest"``, ``"smallest"``).

    Example: see :func:`eigen_directions`.
    """

    vectors: torch.Tensor
    values: torch.Tensor
    residuals: torch.Tensor
    which: str

    def to_dict(self) -> dict:
        """The result as JSON types, without the (2, dim) vectors."""
        d = super().to_dict()
        d.pop("vectors")
        return d


def eigen_directions(obj: Objective, theta: torch.Tensor, which: str = "both", *, seed: int = 0,
                     tol: float | None = None, max_iter: int | None = None) -> EigenDirections:
    """Two unit Hessian eigenvectors at ``theta`` by Lanczos (:func:`landscape.extreme_eigs`).

    ``which="both"``: the eigenvectors of λ_max (first) and λ_min (second); ``"largest"``: the
    two largest; ``"smallest"``: the two smallest. Returned in that order.

    Args:
        obj: the objective (dim ≥ 2). theta: the point (dim,). which: the ends.
        seed, tol, max_iter: of :func:`landscape.extreme_eigs`.

    Returns:
        :class:`EigenDirections`.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 - 3 * x[1] ** 2 + 0.5 * x[2] ** 2,
        ...                                  torch.zeros(3, dtype=torch.float64))
        >>> eigen_directions(obj, obj.initial_point()).values.tolist()
        [2.0, -6.0]
    """
    if which not in ("both", "largest", "smallest"):
        raise ValueError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
    if obj.dim < 2:
        raise ValueError(f"eigen-directions need dim >= 2, the objective has dim {obj.dim}")
    k: int | tuple[int, int] = (1, 1) if which == "both" else 2
    res = extreme_eigs(obj, theta, k=k, which=which, seed=seed, tol=tol, max_iter=max_iter)
    order = list(range(res.values.numel()))
    if which in ("both", "largest"):
        order = order[::-1]  # largest first
    idx = torch.tensor(order)
    return EigenDirections(vectors=res.vectors[:, idx].T.contiguous(), values=res.values[idx],
                           residuals=res.residuals[idx], which=which)


def project(directions: torch.Tensor, origin: torch.Tensor, points: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares coordinates of points in the affine span of directions through an origin.

    Args:
        directions: (k, dim). origin: (dim,). points: (T, dim).

    Returns:
        ``(coords (T, k), distance off the span (T,))``, float64.

    Example:
        >>> import torch
        >>> C, off = project(torch.eye(3)[:2], torch.zeros(3), torch.tensor([[1.0, 2.0, 3.0]]))
        >>> C.tolist(), off.tolist()
        ([[1.0, 2.0]], [3.0])
    """
    D = directions.to(torch.float64)
    R = points.to(torch.float64) - origin.to(torch.float64)
    G = D @ D.T
    C = torch.linalg.solve(G, D @ R.T).T
    off = torch.linalg.vector_norm(R - C @ D, dim=1)
    return C, off


@dataclass(frozen=True)
class PCAPlane(JsonResult):
    """PCA plane of a trajectory.

    Attributes:
        directions: (2, dim) orthonormal. center: (dim,) the plane's origin (the last point by default).
        coords: (T, 2) the projected trajectory. explained: (2,) fraction of the variance of the
            centred trajectory along each direction.

    Example: see :func:`pca_directions`.
    """

    directions: torch.Tensor
    center: torch.Tensor
    coords: torch.Tensor
    explained: torch.Tensor

    def to_dict(self) -> dict:
        """The result as JSON types, without the (2, dim) directions and the (dim,) centre."""
        d = super().to_dict()
        d.pop("directions")
        d.pop("center")
        return d


def pca_directions(trajectory: Sequence[torch.Tensor] | torch.Tensor, center: torch.Tensor | None = None
                   ) -> PCAPlane:
    """The plane of the two leading principal components of ``trajectory`` (T ≥ 3 points of shape
    (dim,), or a (T, dim) tensor), through ``center`` (default the last point, as in Li et al.).
    Signs are fixed so that the first point has non-negative coordinates.

    Args:
        trajectory: T ≥ 3 points (dim,) or a (T, dim) tensor, spanning ≥ 2 dimensions.
        center: the plane's origin (dim,) (default the last point).

    Returns:
        :class:`PCAPlane`.

    Example:
        >>> import torch
        >>> path = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
        >>> plane = pca_directions(path)
        >>> tuple(plane.coords.shape), round(float(plane.explained.sum()), 12)
        ((4, 2), 1.0)
    """
    traj = torch.stack(list(trajectory)) if not isinstance(trajectory, torch.Tensor) else trajectory
    if traj.ndim != 2 or traj.shape[0] < 3:
        raise ValueError(f"trajectory must hold at least 3 points of shape (dim,), got shape {tuple(traj.shape)}")
    if not bool(torch.isfinite(traj).all()):
        raise ValueError("trajectory contains non-finite values")
    center = traj[-1] if center is None else center
    M = (traj - center).to(torch.float64)
    Mc = M - M.mean(0, keepdim=True)
    _, S, Vh = torch.linalg.svd(Mc, full_matrices=False)
    if Vh.shape[0] < 2 or float(S[1]) <= 1e-12 * max(float(S[0]), 1e-300):
        raise ValueError("the trajectory spans fewer than 2 dimensions; PCA gives no plane")
    D = Vh[:2].clone()
    coords = M @ D.T
    for i in range(2):
        if float(coords[0, i]) < 0:
            D[i] = -D[i]
            coords[:, i] = -coords[:, i]
    var = S ** 2
    return PCAPlane(directions=D.to(traj.dtype), center=center.clone(), coords=coords,
                    explained=(var[:2] / var.sum()))
