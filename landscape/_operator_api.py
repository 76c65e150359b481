"""The objective's operator API: what curvature operators and algorithms build on.

:class:`OperatorAPI` is a base of :class:`landscape.Objective` (its methods are the objective's):
the batches with their weights and positions, the loss of one batch at given parameters, this
rank's loss and Hessian-vector product, the all-reduce with error propagation and the error
messages that name a batch and a parameter. Operators (:mod:`landscape.operators`) and the
per-example machinery use only these methods (no private attribute of the objective), so a new
operator needs nothing else. Stable: documented and tested (tests/test_operators.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import grad, vjp

from ._functional import FunctionalModel, second_order_safe
from .data import Batch, to_device
from .errors import NonFiniteError


class OperatorAPI:
    """The stable internal API of an objective (a base of :class:`landscape.Objective`).

    It reads the attributes :class:`landscape.Objective` sets: ``spec``, ``module``, ``distributed``,
    ``rank``, ``dtype``, ``device`` and the private ``_source`` (the data), ``_weights``,
    ``_starts``, ``_counts`` (per batch), ``_fn``, ``_loss_call`` and ``_group``.

    Example: see :meth:`iter_indexed_batches`; tests/test_operators.py checks every method.
    """

    _source: Any
    _fn: Callable | None
    _loss_call: Callable | None
    _weights: list[float]
    _starts: list[int]
    _counts: list[int]
    _group: Any
    spec: Any
    module: Any
    distributed: bool
    rank: int
    dtype: torch.dtype
    device: torch.device

    @property
    def data_in_memory(self) -> bool:
        """True for a function or data the user already holds as tensors (a pair, a list of batches);
        False when batches stream from a loader. The cached Hessian operator keeps the graph only then."""
        return self._source is None or self._source.in_memory

    def iter_batches(self) -> Iterator[tuple[Batch, int, float]]:
        """Yield ``(batch, n_examples, weight)`` one batch at a time, the batch on the objective's
        device/dtype; the objective is ``Σ weight · batch_loss_at(params, batch)`` (over all ranks
        when distributed). For :meth:`from_function` objectives: one ``(None, 0, 1.0)``.

        Yields:
            ``(batch, n_examples, weight)``.
        """
        for _, batch, n, w in self.iter_indexed_batches():
            yield batch, n, w

    def iter_indexed_batches(self) -> Iterator[tuple[int, Batch, int, float]]:
        """Yield ``(j, batch, n_examples, weight)``: :meth:`iter_batches` with each batch's index ``j``
        (for :meth:`batch_location` and :meth:`example_range`).

        Yields:
            ``(j, batch, n_examples, weight)``.

        Example:
            >>> import torch, landscape as ls
            >>> X, Y = torch.ones(4, 2, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
            >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(),
            ...                                [(X[:3], Y[:3]), (X[3:], Y[3:])])
            >>> [(j, n, w) for j, _, n, w in obj.iter_indexed_batches()]
            [(0, 3, 0.75), (1, 1, 0.25)]
        """
        if self._source is None:
            yield 0, None, 0, 1.0
            return
        for j, raw, n in self._source:
            yield j, to_device(raw, self.dtype, self.device), n, self._weights[j]

    def example_range(self, j: int) -> range:
        """The examples of batch ``j`` as indices into this rank's examples.

        Args:
            j: the batch index.

        Returns:
            A ``range`` (``range(0, 0)`` for a function).
        """
        return range(self._starts[j], self._starts[j] + self._counts[j])

    def batch_location(self, j: int) -> str:
        """Where batch ``j`` is, for error messages.

        Args:
            j: the batch index.

        Returns:
            ``"[rank r ]batch j (examples a..b)"``, or ``"the function"``.
        """
        if self._source is None:
            return "the function"
        rng = self.example_range(j)
        rank = f"rank {self.rank} " if self.distributed else ""
        return f"{rank}batch {j} (examples {rng.start}..{rng.stop - 1})"

    def batch_loss_at(self, params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """The batch's MEAN loss (scalar tensor), the model evaluated functionally at ``params``
        (``{name: tensor}`` for :attr:`param_names`); module hooks fire; attention in the math
        backend (see :func:`second_order_safe`).

        Args:
            params: ``{name: tensor}``. batch: a batch as :meth:`iter_batches` yields it.

        Returns:
            A scalar tensor (differentiable in ``params``).
        """
        if self._fn is not None:
            return self._fn(params["x"]).reshape(())
        with second_order_safe():
            return self.call_batch_loss(FunctionalModel(self.module, params), batch).reshape(())

    def call_batch_loss(self, model: Callable[..., Any], batch: Batch) -> torch.Tensor:
        """The user's ``batch_loss(model, batch)`` with a given model callable (e.g. a
        :class:`landscape._functional.FunctionalModel` that records or replays the outputs, as the
        GGN does). No attention context is entered: callers wrap it in :func:`second_order_safe`.

        Args:
            model: a callable standing in for the module. batch: the batch.

        Returns:
            What ``batch_loss`` returns (a scalar tensor).
        """
        if self._loss_call is None:
            raise ValueError("this objective was built from a plain function: it has no batch_loss")
        return self._loss_call(model, batch)

    def _batch_value(self, theta: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.batch_loss_at(self.spec.unflatten(theta), batch)

    def all_reduce(self, t: torch.Tensor, error: str | None = None) -> torch.Tensor:
        """Sum ``t`` over ranks (identity when not distributed) and raise :class:`NonFiniteError`
        on every rank when any rank passed an ``error`` (so no rank waits in a collective forever).

        Args:
            t: any tensor (summed in place of a copy).
            error: this rank's error message, or None.

        Returns:
            The sum over ranks, shape of ``t``.
        """
        if not self.distributed:
            if error is not None:
                raise NonFiniteError(error)
            return t
        flag = torch.zeros(1, dtype=t.dtype, device=t.device)
        if error is not None:
            flag += 1
        buf = torch.cat([torch.nan_to_num(t.reshape(-1)), flag])
        torch.distributed.all_reduce(buf, group=self._group)
        if float(buf[-1]) > 0:
            raise NonFiniteError(error or f"non-finite values on {int(buf[-1])} other rank(s)")
        return buf[:-1].view_as(t)

    def nonfinite_error(self, vec: torch.Tensor, what: str, where: str) -> str | None:
        """The error message for a non-finite vector, or None.

        Args:
            vec: shape ``(dim,)``. what: what it is ("gradient"). where: :meth:`batch_location`.

        Returns:
            None when ``vec`` is finite, else a message naming ``what``, ``where`` and the first
            non-finite parameter (pass it to :meth:`all_reduce` as ``error``).
        """
        if bool(torch.isfinite(vec).all()):
            return None
        idx = int((~torch.isfinite(vec)).nonzero()[0, 0])
        return (f"{what} is non-finite on {where}, first in parameter {self.spec.locate(idx)!r} "
                f"(flat index {idx})")

    def require_examples(self) -> None:
        """Raise ``ValueError`` unless the objective has per-example structure (a model + data objective)."""
        if self._source is None:
            raise ValueError("per-example gradients need a model + data objective (from_module / from_batches); "
                             "this objective was built from a plain function")

    def local_loss_tensor(self, theta: torch.Tensor) -> torch.Tensor:
        """Differentiable scalar loss of this rank's data (the whole loss when not distributed).

        Args:
            theta: shape ``(dim,)`` (may require grad).

        Returns:
            A scalar tensor, Σ_b w_b ℓ_b(θ) over this rank's batches.
        """
        total = None
        for _, batch, _, w in self.iter_indexed_batches():
            term = w * self._batch_value(theta, batch)
            total = term if total is None else total + term
        return total  # type: ignore[return-value]

    def local_hvp(self, theta: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, str | None]:
        """This rank's Hessian-vector product by reverse-over-reverse, one batch at a time.

        Args:
            theta: the point (dim,), already checked. v: the vector (dim,).

        Returns:
            ``(H_local @ v, error)``: error names the first batch with a non-finite product (then
            the product is the partial sum so far), else None. :meth:`hvp` all-reduces it.
        """
        # Reverse-over-reverse (H is symmetric, so vᵀH = Hv): double backward is supported by every
        # built-in loss, while forward-over-reverse fails for some (mse_loss, huber_loss in torch 2.x).
        out = torch.zeros_like(theta)
        for j, batch, _, w in self.iter_indexed_batches():
            hv = vjp(grad(lambda t: w * self._batch_value(t, batch)), theta)[1](v)[0]
            err = self.nonfinite_error(hv, "Hessian-vector product", self.batch_location(j))
            if err is not None:
                return out, err
            out = out + hv
        return out, None
