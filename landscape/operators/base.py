"""The one base of every curvature operator: products, counting and arithmetic.

A :class:`CurvatureOperator` is a symmetric linear map on flat parameter vectors of length
``dim``. A subclass implements :meth:`CurvatureOperator._matvec` only; the base checks the
vector's shape, counts the products (:attr:`~CurvatureOperator.n_matvec`), moves the vector to
the operator's dtype and device, and gives ``matmat``, ``@``, ``+``, ``-``, scalar ``*`` and
``to_scipy`` to every operator alike.

Example:
    >>> import torch
    >>> A = DiagonalOperator(torch.tensor([1.0, -2.0], dtype=torch.float64))
    >>> ((A - 0.5 * A) @ torch.ones(2, dtype=torch.float64)).tolist(), A.n_matvec
    ([0.5, -1.0], 2)
"""
from __future__ import annotations

from typing import Any

import torch

from ..budget import charge_hvp


class CurvatureOperator:
    """A symmetric linear operator on flat vectors of length ``dim`` (shape ``(dim, dim)``).

    Subclasses implement ``_matvec(v)`` for a vector already checked, counted and converted.
    ``curvature`` names the matrix ("hessian", "ggn", "ef", or a description of a combination);
    :func:`landscape.extreme_eigs` reports it in ``EigResult.curvature``.

    Args:
        dim: the number of parameters.
        dtype: the dtype of the vectors it takes and returns.
        device: the device of those vectors.

    Attributes:
        dim, shape, dtype, device: the operator's space (``shape == (dim, dim)``).
        n_matvec: operator products so far (a ``matmat`` of k columns counts k).

    Example (a new operator implements ``_matvec`` only):
        >>> import torch
        >>> class Shift(CurvatureOperator):
        ...     curvature = "shift"
        ...     def _matvec(self, v):
        ...         return torch.roll(v, 1) + torch.roll(v, -1)
        >>> (Shift(3, torch.float64, "cpu") @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).tolist()
        [0.0, 1.0, 1.0]
    """

    curvature: str = "custom"

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device | str) -> None:
        self.dim = int(dim)
        self.shape = (self.dim, self.dim)
        self.dtype = dtype
        self.device = torch.device(device) if isinstance(device, str) else device
        self.n_matvec = 0

    # ---------------------------------------------------------------- products
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The product with one vector.

        Args:
            v: shape ``(dim,)``, any floating dtype and device (converted to the operator's).

        Returns:
            ``M @ v``, shape ``(dim,)``, the operator's dtype and device.

        Raises:
            ValueError: when ``v`` does not have shape ``(dim,)``.
            landscape.NonFiniteError: when the product is non-finite (naming the batch).
        """
        if v.shape != (self.dim,):
            raise ValueError(f"v must have shape ({self.dim},), got {tuple(v.shape)}")
        charge_hvp(1)  # an active HVP budget (landscape.budget) refuses the product before it is computed
        self.n_matvec += 1
        return self._matvec(v.to(device=self.device, dtype=self.dtype))

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """The product with the columns of a matrix, one :meth:`matvec` per column.

        Args:
            V: shape ``(dim, k)``.

        Returns:
            ``M @ V``, shape ``(dim, k)``.
        """
        return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, other: "CurvatureOperator") -> "CurvatureOperator":
        return SumOperator(self, other, 1.0)

    def __sub__(self, other: "CurvatureOperator") -> "CurvatureOperator":
        return SumOperator(self, other, -1.0)

    def __mul__(self, c: float) -> "CurvatureOperator":
        if not isinstance(c, (int, float)) or isinstance(c, bool):
            return NotImplemented
        return ScaledOperator(self, float(c))

    __rmul__ = __mul__

    def __neg__(self) -> "CurvatureOperator":
        return ScaledOperator(self, -1.0)

    # ---------------------------------------------------------------- interoperability
    def to_scipy(self) -> Any:
        """The operator as a SciPy ``LinearOperator`` (float64 NumPy in and out), for SciPy solvers.

        Returns:
            A ``scipy.sparse.linalg.LinearOperator`` of shape ``(dim, dim)``; its products go
            through :meth:`matvec` (and are counted).

        Example:
            >>> import numpy as np, torch
            >>> A = DiagonalOperator(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
            >>> A.to_scipy().matvec(np.ones(3)).tolist()
            [1.0, 2.0, 3.0]
        """
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def mv(x: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np.float64)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(curvature={self.curvature!r}, dim={self.dim}, dtype={self.dtype}, "
                f"device={self.device}, n_matvec={self.n_matvec})")


def _check_same_space(a: CurvatureOperator, b: CurvatureOperator) -> None:
    if a.dim != b.dim:
        raise ValueError(f"operators of different dimensions: {a.dim} and {b.dim}")


class SumOperator(CurvatureOperator):
    """``a + sign·b`` for two operators on the same space (``sign`` = 1 or −1; e.g. H − G).

    Each product is one product of each part (both counted in their own ``n_matvec`` too).

    Args:
        a, b: operators of the same ``dim`` (``a`` sets dtype and device).
        sign: +1.0 for the sum, −1.0 for the difference.

    Example:
        >>> import torch
        >>> A, B = DiagonalOperator(torch.tensor([1.0, 2.0])), DiagonalOperator(torch.tensor([3.0, 5.0]))
        >>> ((B - A) @ torch.ones(2)).tolist(), (B - A).curvature
        ([2.0, 3.0], 'diagonal - diagonal')
    """

    def __init__(self, a: CurvatureOperator, b: CurvatureOperator, sign: float = 1.0) -> None:
        _check_same_space(a, b)
        super().__init__(a.dim, a.dtype, a.device)
        self.a, self.b, self.sign = a, b, sign
        self.curvature = f"{a.curvature} {'+' if sign > 0 else '-'} {b.curvature}"

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        if self.sign < 0:
            return self.a.matvec(v) - self.b.matvec(v)
        return self.a.matvec(v) + self.b.matvec(v)


class ScaledOperator(CurvatureOperator):
    """``c · a`` for an operator ``a`` and a real number ``c``.

    Args:
        a: the operator.
        c: the factor.

    Example:
        >>> import torch
        >>> ((0.5 * DiagonalOperator(torch.tensor([2.0, 4.0]))) @ torch.ones(2)).tolist()
        [1.0, 2.0]
    """

    def __init__(self, a: CurvatureOperator, c: float) -> None:
        super().__init__(a.dim, a.dtype, a.device)
        self.a, self.c = a, c
        self.curvature = f"{c:g} * {a.curvature}"

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.c * self.a.matvec(v)


class DiagonalOperator(CurvatureOperator):
    """``diag(d)``: an operator with a known spectrum (the entries of ``d``), for tests and examples.

    Args:
        d: the diagonal, shape ``(dim,)``; sets dtype and device.

    Example:
        >>> import torch, landscape as ls
        >>> op = DiagonalOperator(torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64))
        >>> ls.extreme_eigs(op, k=1).values.tolist()
        [-1.0, 3.0]
    """

    curvature = "diagonal"

    def __init__(self, d: torch.Tensor) -> None:
        super().__init__(d.numel(), d.dtype, d.device)
        self.d = d

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.d * v
