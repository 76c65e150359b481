"""Per-example gradients of a model objective: vmap over the examples, or a loop where vmap fails.

Private to :mod:`landscape`; the public methods are :meth:`landscape.Objective.per_example_grads`
and :meth:`landscape.Objective.iter_per_example_grads`.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.func import grad, vmap
from torch.utils._pytree import tree_map

from .data import Batch, slice_batch, tensor_leaves
from .errors import NonFiniteError


class PerExampleGradients:
    """The per-example gradient machinery of one objective (and whether vmap works for its model).

    Args:
        obj: the objective (its public API: ``batch_loss_at``, ``spec``, ``iter_indexed_batches``,
            ``example_range``, ``batch_location``, ``require_examples``, ``check_theta``).

    Attributes:
        mode: ``"vmap"`` or ``"loop"``, decided on first use (None before).

    Example: see :meth:`landscape.Objective.per_example_grads`.
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.mode: str | None = None

    def _vmapped_grads(self, params: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        in_dims = (None, tree_map(lambda t: 0 if isinstance(t, torch.Tensor) else None, batch))

        def one(p: dict[str, torch.Tensor], ex: Batch) -> torch.Tensor:
            return self.obj.batch_loss_at(p, tree_map(lambda t: t.unsqueeze(0) if isinstance(t, torch.Tensor) else t, ex))

        return vmap(grad(one), in_dims=in_dims)(params, batch)

    def _looped_grads(self, params: dict[str, torch.Tensor], batch: Batch, c: int) -> dict[str, torch.Tensor]:
        rows = [grad(self.obj.batch_loss_at)(params, slice_batch(batch, i, i + 1)) for i in range(c)]
        return {name: torch.stack([r[name] for r in rows]) for name in self.obj.spec.names}

    def chunk_grads(self, params: dict[str, torch.Tensor], batch: Batch, c: int) -> dict[str, torch.Tensor]:
        """Per-example gradients of a chunk of ``c`` examples: vmap over the leading dimension of every
        tensor; where vmap fails on the first chunk (RNN kernels, data-dependent control flow), one
        warning and from then on an example-by-example loop.

        Args:
            params: ``{name: tensor}`` at θ. batch: the chunk. c: its number of examples.

        Returns:
            ``{name: (c, *shape)}`` gradients.
        """
        if self.mode == "loop":
            return self._looped_grads(params, batch, c)
        if self.mode == "vmap":
            return self._vmapped_grads(params, batch)
        reason = None
        try:
            gd = self._vmapped_grads(params, batch)
            for name, shape in zip(self.obj.spec.names, self.obj.spec.shapes):
                if tuple(gd[name].shape) != (c, *shape):
                    reason = f"vmapped gradient of {name!r} has shape {tuple(gd[name].shape)}, expected {(c, *shape)}"
                    break
        except Exception as exc:  # noqa: BLE001 - any op without a batching rule
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if reason is None:
            self.mode = "vmap"
            return gd
        warnings.warn(f"per-example gradients: vmap is not usable for this model ({reason}); computing them "
                      "one example at a time (slower, same values)", RuntimeWarning, stacklevel=4)
        self.mode = "loop"
        return self._looped_grads(params, batch, c)

    def chunks(self, theta: torch.Tensor, chunk_size: int | None, out: torch.Tensor | None = None
               ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, G)``, G (c, dim) the unscaled gradients of examples start..start + c − 1.

        Args:
            theta: the point, shape ``(dim,)``.
            chunk_size: examples per chunk (None: one chunk per batch).
            out: an ``(n_local_examples, dim)`` tensor to write the rows into (else fresh tensors).

        Yields:
            ``(start, G)``.

        Raises:
            ValueError: for a bad ``chunk_size`` or a batch whose tensors do not all lead with its examples.
            landscape.NonFiniteError: naming the example, batch and parameter of a non-finite gradient.
        """
        obj = self.obj
        obj.require_examples()
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        theta = obj.check_theta(theta).detach()
        params = obj.spec.unflatten(theta)
        slices = list(obj.spec.slices.items())
        for j, batch, n, _ in obj.iter_indexed_batches():
            bad = [tuple(t.shape) for t in tensor_leaves(batch) if t.ndim == 0 or t.shape[0] != n]
            if bad:
                raise ValueError(f"per-example gradients slice every tensor of a batch along its leading dimension, "
                                 f"but {obj.batch_location(j)} has {n} examples and tensors of shapes {bad}")
            start = obj.example_range(j).start
            step = n if chunk_size is None else chunk_size
            for a in range(0, n, step):
                c = min(step, n - a)
                gd = self.chunk_grads(params, slice_batch(batch, a, a + c), c)
                G = (out[start + a:start + a + c] if out is not None
                     else torch.empty(c, obj.dim, dtype=obj.dtype, device=obj.device))
                for name, sl in slices:
                    G[:, sl] = gd[name].reshape(c, -1)
                del gd
                if not bool(torch.isfinite(G.sum())):  # one cheap reduction; locate only on failure
                    badm = ~torch.isfinite(G)
                    if bool(badm.any()):
                        row, col = (int(t) for t in badm.nonzero()[0])
                        raise NonFiniteError(f"per-example gradient is non-finite for example {start + a + row} "
                                             f"on {obj.batch_location(j)}, first in parameter "
                                             f"{obj.spec.locate(col)!r} (flat index {col})")
                yield start + a, G
