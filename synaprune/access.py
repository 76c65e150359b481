"""Data access for the trainer: full-batch and minibatch losses/gradients, per-example gradients,
with cost counters.

The objective is ``scale · mean_i ℓ_i`` where ``ℓ_i = loss_fn(f(x_i), y_i)`` is the per-example
loss and ``scale`` is 1 for ``reduction="mean"`` and n for ``"sum"``; ``loss_fn`` must reduce over
the batch by a mean (as :class:`landscape.Objective` assumes). A minibatch B estimates the
objective without bias as ``scale · loss_fn(f(X_B), Y_B)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.func import functional_call, grad, grad_and_value, vmap

from landscape import Objective


@dataclass
class CostCounters:
    """Evaluation counts of one run.

    Args:
        n_grad_evals: full-batch gradient evaluations.
        n_minibatch_grads: minibatch gradient evaluations.
        n_loss_evals: extra loss evaluations (line searches, escape checks).
        n_per_example_grads: per-example gradients computed (one per example per evaluation).
        n_hvp: Hessian-vector products spent by the method itself (NCD, SFN).
        n_classify_hvp: products spent by the stall classifier (dense Hessians count as dim).
        n_minibatch_examples: examples in those minibatch gradients.
        n_forward_examples: examples pushed through forward-only evaluations (Hebbian).
        n_double_backprop_examples: examples in double-backprop gradients (penalty: a gradient
            plus about one HVP each).

    Example:
        >>> c = CostCounters(n_grad_evals=2, n_per_example_grads=10, n_hvp=1)
        >>> c.example_grads(10, hvp_over_grad=2.5, loss_over_grad=0.4)   # 10 + 2·10 + 2.5·10
        55.0
    """

    n_grad_evals: int = 0
    n_minibatch_grads: int = 0
    n_loss_evals: int = 0
    n_per_example_grads: int = 0
    n_hvp: int = 0
    n_classify_hvp: int = 0
    n_minibatch_examples: int = 0
    n_forward_examples: int = 0
    n_double_backprop_examples: int = 0

    def example_grads(self, n: int, hvp_over_grad: float, loss_over_grad: float, *,
                      include_classify: bool = False) -> float:
        """These counts in example-gradient equivalents.

        A per-example gradient = 1, a full-batch gradient = ``n``, a minibatch gradient = its
        size, an HVP = ``hvp_over_grad``·n, a full-batch loss = ``loss_over_grad``·n (a
        forward-only example = ``loss_over_grad``), a double-backprop example = 1 + ``hvp_over_grad``.

        Args:
            n: examples in the full batch.
            hvp_over_grad: cost of an HVP over a gradient (FLOPs).
            loss_over_grad: cost of a loss over a gradient (FLOPs).
            include_classify: count the classifier's HVPs too.

        Returns:
            The cost, example-gradient units (float).
        """
        hvps = self.n_hvp + (self.n_classify_hvp if include_classify else 0)
        return float(self.n_per_example_grads + n * self.n_grad_evals + self.n_minibatch_examples
                     + hvp_over_grad * n * hvps + loss_over_grad * (n * self.n_loss_evals + self.n_forward_examples)
                     + (1.0 + hvp_over_grad) * self.n_double_backprop_examples)


class DataAccess:
    """Loss, gradients and per-example gradients of an :class:`Objective` built from a module.

    ``obj`` must come from :meth:`Objective.from_module` (it provides the private module copy
    and the data); ``loss_fn`` is the same criterion. All vectors are flat ``(dim,)`` tensors.

    Args:
        obj: the full-batch objective.
        loss_fn: ``loss_fn(outputs, targets)``, mean over the batch.
        generator: the run's generator (minibatch draws).

    Attributes:
        n: examples; ``X`` (n, ...) and ``Y`` (n, ...): the data concatenated on the objective's
        device; ``scale``: 1 (mean) or n (sum); ``cost``: the :class:`CostCounters` of the run.

    Raises:
        ValueError: ``obj`` has no module (not from :meth:`Objective.from_module`).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import Objective
        >>> X = torch.ones(4, 1, dtype=torch.float64)
        >>> acc = DataAccess(Objective.from_module(nn.Linear(1, 1).double(), nn.MSELoss(), (X, X)),
        ...                  nn.MSELoss(), torch.Generator().manual_seed(0))
        >>> acc.n, acc.sample(2).shape, acc.cost.n_grad_evals
        (4, torch.Size([2]), 0)
    """

    def __init__(self, obj: Objective, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 generator: torch.Generator) -> None:
        if obj.module is None:
            raise ValueError("the trainer needs a model + data objective (Objective.from_module)")
        self.obj = obj
        self.module = obj.module
        self.spec = obj.spec
        self.loss_fn = loss_fn
        self.X = torch.cat([x for x, _ in obj.batches])  # type: ignore[misc]
        self.Y = torch.cat([y for _, y in obj.batches])  # type: ignore[misc]
        self.n = int(self.X.shape[0])
        self.scale = float(self.n) if obj.reduction == "sum" else 1.0
        self.generator = generator
        self.cost = CostCounters()

    # ------------------------------------------------------------------ full batch
    def loss(self, theta: torch.Tensor) -> float:
        """Full-batch loss at ``theta`` (dim,), counted as one loss evaluation."""
        self.cost.n_loss_evals += 1
        return self.obj.loss(theta)

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Full-batch loss and gradient, counted as one gradient evaluation.

        Args:
            theta: shape (dim,).

        Returns:
            ``(loss, gradient (dim,))``.

        Raises:
            NonFiniteError: naming the batch (and the parameter, for a gradient).
        """
        self.cost.n_grad_evals += 1
        return self.obj.loss_and_grad(theta)

    # ------------------------------------------------------------------ minibatches
    def sample(self, batch_size: int) -> torch.Tensor:
        """A minibatch drawn without replacement from the trainer's generator.

        Args:
            batch_size: examples to draw (≤ n).

        Returns:
            Indices, shape (batch_size,), on the data's device.
        """
        return torch.randperm(self.n, generator=self.generator)[:batch_size].to(self.X.device)

    def _batch_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.module, self.spec.unflatten(theta), (x,))
        return self.scale * self.loss_fn(out, y)

    def minibatch_loss_and_grad(self, theta: torch.Tensor, idx: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The minibatch's unbiased estimate of the objective and its gradient.

        Args:
            theta: shape (dim,).
            idx: example indices, shape (b,).

        Returns:
            ``(scale · loss_fn(f(X_B), Y_B), its gradient (dim,))``.
        """
        self.cost.n_minibatch_grads += 1
        self.cost.n_minibatch_examples += int(idx.numel())
        g, value = grad_and_value(self._batch_loss)(theta.detach(), self.X[idx], self.Y[idx])
        return float(value), g

    # ------------------------------------------------------------------ per-example
    def _example_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.module, self.spec.unflatten(theta), (x.unsqueeze(0),))
        return self.loss_fn(out, y.unsqueeze(0))

    def iter_per_example_grads(self, theta: torch.Tensor, idx: torch.Tensor | None = None,
                               chunk_size: int | None = None) -> Iterator[torch.Tensor]:
        """Unscaled per-example gradients ∇ℓ_i, in chunks (each example counted once).

        Args:
            theta: shape (dim,).
            idx: example indices, or None for all examples (the objective's finiteness-checked path).
            chunk_size: examples per chunk (None: all at once).

        Yields:
            Chunks of shape (c, dim).
        """
        if idx is None:  # the whole dataset: the objective's own (faster, finiteness-checked) path
            for _, G in self.obj.iter_per_example_grads(theta, chunk_size):
                self.cost.n_per_example_grads += int(G.shape[0])
                yield G
            return
        X, Y = self.X[idx], self.Y[idx]
        n = int(X.shape[0])
        step = n if chunk_size is None else max(1, int(chunk_size))
        per_ex = vmap(grad(self._example_loss), in_dims=(None, 0, 0))
        theta = theta.detach()
        for a in range(0, n, step):
            G = per_ex(theta, X[a:a + step], Y[a:a + step])
            self.cost.n_per_example_grads += int(G.shape[0])
            yield G
