"""An objective: loss, gradient, Hessian-vector products and per-example gradients of a flat vector.

Everything is functional: the parameters are one flat 1-D tensor ``theta`` of length ``dim``;
a model is evaluated with ``torch.func.functional_call`` on a private copy, so the user's module
is never touched.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from .data import Batch, as_batches
from .params import ParamSpec

DEFAULT_HESSIAN_MAX_DIM = 4096

_STOCHASTIC_OR_BATCH_DEPENDENT = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.modules.batchnorm._BatchNorm,
)


class NonFiniteError(FloatingPointError):
    """The loss, gradient or a curvature product is NaN or infinite."""


def _check_mean_reduced(module: nn.Module, loss_fn: Callable, batch: Batch) -> None:
    """Refuse a criterion that does not average over examples (e.g. ``MSELoss(reduction="sum")``):
    the objective, its gradient and per-example gradients all assume a mean over the batch."""
    x, y = batch
    if x.shape[0] < 2:
        return
    with torch.no_grad():
        out = module(x[:2])
        pair = float(loss_fn(out, y[:2]))
        single = 0.5 * (float(loss_fn(out[:1], y[:1])) + float(loss_fn(out[1:2], y[1:2])))
    if math.isfinite(pair) and math.isfinite(single) and abs(pair - single) > 1e-4 * max(abs(pair), abs(single), 1e-30):
        raise ValueError(
            f"loss_fn is not a mean over examples: on two examples it gives {pair:.6g}, the mean of the two "
            f"single-example losses is {single:.6g}. Pass a mean-reduced criterion (e.g. nn.MSELoss()) and "
            "choose the objective's reduction with reduction='mean' or 'sum'")


class Objective:
    """A twice-differentiable objective of a flat parameter vector.

    Build one with :meth:`from_module` (model + loss + data) or :meth:`from_function`
    (a function of a 1-D tensor). All vectors are 1-D tensors of length :attr:`dim` with the
    objective's ``dtype`` on its ``device``.
    """

    def __init__(
        self,
        *,
        spec: ParamSpec,
        theta0: torch.Tensor,
        batch_loss: Callable[[torch.Tensor, Batch | None], torch.Tensor],
        batches: list[Batch] | list[None],
        weights: list[float],
        example_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None,
        reduction: str,
        hessian_max_dim: int = DEFAULT_HESSIAN_MAX_DIM,
    ) -> None:
        self.spec = spec
        self._theta0 = theta0.detach().clone()
        self._batch_loss = batch_loss
        self.batches = batches
        self._weights = weights
        self._example_loss = example_loss
        self.reduction = reduction
        self.hessian_max_dim = hessian_max_dim

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        reduction: str = "mean",
    ) -> "Objective":
        """Objective of ``model``'s trainable parameters.

        ``loss_fn(outputs, targets)`` is a mean-reduced criterion (``nn.MSELoss()``,
        ``nn.CrossEntropyLoss()``, ...). The objective is the dataset mean of the per-example
        losses for ``reduction="mean"`` (batches weighted by size), or their sum for ``"sum"``.
        ``dtype``/``device`` default to those of the model's first parameter; the model is copied,
        never modified.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("model has no trainable parameters (none with requires_grad=True)")
        if model.training:
            offenders = [n or type(model).__name__ for n, m in model.named_modules()
                         if isinstance(m, _STOCHASTIC_OR_BATCH_DEPENDENT)]
            if offenders:
                raise ValueError(
                    f"model is in train mode and contains Dropout/BatchNorm ({', '.join(offenders)}): "
                    "its loss is random or batch-dependent, so curvature is ill-defined. "
                    "Call model.eval() before building the objective."
                )
        dtype = dtype or trainable[0][1].dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        device = torch.device(device) if device is not None else trainable[0][1].device

        module = copy.deepcopy(model).to(device=device, dtype=dtype)
        names = tuple(n for n, p in module.named_parameters() if p.requires_grad)
        params = dict(module.named_parameters())
        spec = ParamSpec(names=names, shapes=tuple(params[n].shape for n in names))
        theta0 = torch.cat([params[n].detach().reshape(-1) for n in names])

        batches = as_batches(data, dtype=dtype, device=device)
        n_total = sum(int(x.shape[0]) for x, _ in batches)
        scale = 1.0 / n_total if reduction == "mean" else 1.0
        weights = [scale * int(x.shape[0]) for x, _ in batches]

        def batch_loss(theta: torch.Tensor, batch: Batch | None) -> torch.Tensor:
            x, y = batch  # type: ignore[misc]
            out = functional_call(module, spec.unflatten(theta), (x,))
            return loss_fn(out, y)

        def example_loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            out = functional_call(module, spec.unflatten(theta), (x.unsqueeze(0),))
            return loss_fn(out, y.unsqueeze(0))

        def example_loss_params(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return loss_fn(functional_call(module, params, (x.unsqueeze(0),)), y.unsqueeze(0))

        _check_mean_reduced(module, loss_fn, batches[0])
        obj = cls(spec=spec, theta0=theta0, batch_loss=batch_loss, batches=batches, weights=weights,
                  example_loss=example_loss, reduction=reduction)
        obj._example_loss_params = example_loss_params
        obj.module = module
        obj.n_examples = n_total
        return obj

    @classmethod
    def from_function(
        cls,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x0: torch.Tensor,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> "Objective":
        """Objective of a plain function ``fn``: 1-D tensor of shape ``(dim,)`` -> scalar tensor.

        ``fn`` must be written in torch operations (it is differentiated with ``torch.func``).
        It has no per-example structure, so per-example gradients are unavailable.
        """
        if not isinstance(x0, torch.Tensor):
            x0 = torch.as_tensor(x0, dtype=dtype or torch.get_default_dtype())
        if x0.ndim != 1 or x0.numel() == 0:
            raise ValueError(f"x0 must be a non-empty 1-D tensor, got shape {tuple(x0.shape)}")
        dtype = dtype or x0.dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        device = torch.device(device) if device is not None else x0.device
        x0 = x0.detach().to(device=device, dtype=dtype)
        probe = fn(x0)
        if not isinstance(probe, torch.Tensor) or probe.numel() != 1:
            raise ValueError("fn must return a scalar tensor")
        spec = ParamSpec(names=("x",), shapes=(torch.Size([x0.numel()]),))

        def batch_loss(theta: torch.Tensor, batch: Batch | None) -> torch.Tensor:
            return fn(theta).reshape(())

        obj = cls(spec=spec, theta0=x0, batch_loss=batch_loss, batches=[None], weights=[1.0],
                  example_loss=None, reduction="sum")
        obj.module = None
        obj.n_examples = 0
        return obj

    # ------------------------------------------------------------------ basic properties
    module: nn.Module | None
    n_examples: int

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return self.spec.dim

    @property
    def dtype(self) -> torch.dtype:
        return self._theta0.dtype

    @property
    def device(self) -> torch.device:
        return self._theta0.device

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.spec.names

    @property
    def param_shapes(self) -> tuple[torch.Size, ...]:
        return self.spec.shapes

    def initial_point(self) -> torch.Tensor:
        """The module's parameters at construction (or ``x0``), flat, shape ``(dim,)``."""
        return self._theta0.clone()

    def to_module_params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a flat vector to ``{parameter name: tensor of that parameter's shape}`` (views)."""
        return self.spec.unflatten(self.check_theta(theta))

    def flatten_params(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_module_params`."""
        return self.spec.flatten(tensors).to(device=self.device, dtype=self.dtype)

    def write_to_module(self, model: nn.Module, theta: torch.Tensor) -> None:
        """Copy ``theta`` into ``model``'s trainable parameters (the one method that mutates a model)."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.to_module_params(theta).items():
                params[name].copy_(value.to(device=params[name].device, dtype=params[name].dtype))

    def check_theta(self, theta: torch.Tensor, name: str = "theta") -> torch.Tensor:
        """Validate a parameter vector and move it to the objective's device."""
        if not isinstance(theta, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(theta).__name__}")
        if theta.ndim != 1 or theta.numel() != self.dim:
            raise ValueError(f"{name} must be a flat vector of length {self.dim}, got shape {tuple(theta.shape)}")
        if theta.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {theta.dtype} but the objective uses {self.dtype}; "
                            f"convert with {name}.to({self.dtype})")
        return theta.to(self.device)

    # ------------------------------------------------------------------ pure functions
    def _weighted(self, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        batch, w = self.batches[i], self._weights[i]
        return lambda t: w * self._batch_loss(t, batch)

    def loss_tensor(self, theta: torch.Tensor) -> torch.Tensor:
        """Differentiable scalar loss (no finiteness check); usable inside ``torch.func`` transforms."""
        total = self._weighted(0)(theta)
        for i in range(1, len(self.batches)):
            total = total + self._weighted(i)(theta)
        return total

    def _hvp_pure(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Reverse-over-reverse (H is symmetric, so vᵀH = Hv): double backward is supported by every
        # built-in loss, while forward-over-reverse fails for some (mse_loss, huber_loss in torch 2.x).
        out = None
        for i in range(len(self.batches)):
            hv = vjp(grad(self._weighted(i)), theta)[1](v)[0]
            out = hv if out is None else out + hv
        return out

    # ------------------------------------------------------------------ public evaluation
    def _where(self, i: int) -> str:
        if self.batches[i] is None:
            return "the function"
        start = sum(int(b[0].shape[0]) for b in self.batches[:i])  # type: ignore[index]
        stop = start + int(self.batches[i][0].shape[0])  # type: ignore[index]
        return f"batch {i} (examples {start}..{stop - 1})"

    def loss(self, theta: torch.Tensor) -> float:
        """Loss at ``theta`` as a Python float. Raises :class:`NonFiniteError` naming the batch."""
        theta = self.check_theta(theta)
        total = 0.0
        with torch.no_grad():
            for i in range(len(self.batches)):
                value = float(self._weighted(i)(theta))
                if not math.isfinite(value):
                    raise NonFiniteError(f"loss is {value} on {self._where(i)}")
                total += value
        return total

    def _check_vector(self, vec: torch.Tensor, what: str, where: str) -> None:
        bad = ~torch.isfinite(vec)
        if bool(bad.any()):
            idx = int(bad.nonzero()[0, 0])
            raise NonFiniteError(f"{what} is non-finite on {where}, first in parameter "
                                 f"{self.spec.locate(idx)!r} (flat index {idx})")

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Loss (float) and gradient (shape ``(dim,)``) in one pass."""
        theta = self.check_theta(theta).detach()
        total, g = 0.0, torch.zeros_like(theta)
        # Plain reverse mode, one batch at a time (memory of one batch's graph): for a single
        # gradient it has about half the per-call overhead of torch.func.grad_and_value.
        p = theta.requires_grad_(True)  # theta is a fresh detached tensor: the caller's is untouched
        for i in range(len(self.batches)):
            with torch.enable_grad():
                li = self._weighted(i)(p)
                # A batch whose loss does not depend on theta contributes a zero gradient.
                gi = (torch.autograd.grad(li, p, allow_unused=True, materialize_grads=True)[0]
                      if li.requires_grad else torch.zeros_like(p))
            value = float(li.detach())
            if not math.isfinite(value):
                raise NonFiniteError(f"loss is {value} on {self._where(i)}")
            self._check_vector(gi, "gradient", self._where(i))
            total += value
            g += gi
        return total, g

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Gradient at ``theta``, shape ``(dim,)``."""
        return self.loss_and_grad(theta)[1]

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product ``H(theta) @ v`` (reverse-over-reverse), shape ``(dim,)``.

        For many products at one point, :meth:`hvp_operator` reuses the graph and is faster.
        """
        theta = self.check_theta(theta).detach()
        v = self.check_theta(v, "v").detach()
        hv = self._hvp_pure(theta, v)
        self._check_vector(hv, "Hessian-vector product", "the data")
        return hv

    def hvp_operator(self, theta: torch.Tensor, *, cache: bool = True) -> "HessianOperator":
        """The Hessian at ``theta`` as a linear operator (see :class:`HessianOperator`)."""
        return HessianOperator(self, theta, cache=cache)

    def hessian(self, theta: torch.Tensor, *, max_dim: int | None = None, chunk_size: int = 128) -> torch.Tensor:
        """Dense symmetric Hessian, shape ``(dim, dim)``.

        Refuses when ``dim`` exceeds ``max_dim`` (default :attr:`hessian_max_dim` = 4096: the result
        is 128 MiB in float64, the computation needs about twice that); raise ``max_dim`` to allow more.
        """
        limit = self.hessian_max_dim if max_dim is None else max_dim
        if self.dim > limit:
            raise ValueError(f"dense Hessian of dim {self.dim} exceeds max_dim={limit} "
                             f"({self.dim ** 2 * self._theta0.element_size() / 2**20:.0f} MiB); "
                             "use hvp/extreme_eigs, or pass a larger max_dim")
        theta = self.check_theta(theta).detach()
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        cols = torch.zeros(self.dim, self.dim, dtype=self.dtype, device=self.device)
        for i in range(len(self.batches)):
            # Reverse-over-reverse: one linearisation of the gradient per batch, pulled back
            # through the identity in vmapped chunks.
            _, pullback = vjp(grad(self._weighted(i)), theta)
            cols += vmap(lambda e: pullback(e)[0], chunk_size=chunk_size)(eye)
        bad = ~torch.isfinite(cols)
        if bool(bad.any()):
            i, j = (int(a) for a in bad.nonzero()[0])
            raise NonFiniteError(f"Hessian entry ({i}, {j}) is non-finite (rows {self.spec.locate(i)!r}, "
                                 f"columns {self.spec.locate(j)!r})")
        return 0.5 * (cols + cols.T)

    # ------------------------------------------------------------------ per-example gradients
    def _require_examples(self) -> None:
        if self._example_loss is None:
            raise ValueError("per-example gradients need a model + data objective (from_module); "
                             "this objective was built from a plain function")

    def _example_grad_fn(self):
        # Gradients with respect to the named parameter tensors (not the flat vector): this avoids a
        # split-backward and an (n, dim) concatenation per chunk; each chunk is written once into
        # its output rows.
        spec = self.spec

        def loss_of_params(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self._example_loss(torch.cat([params[n].reshape(-1) for n in spec.names]), x, y)

        return vmap(grad(getattr(self, "_example_loss_params", loss_of_params)), in_dims=(None, 0, 0))

    def _example_chunks(self, theta: torch.Tensor, chunk_size: int | None, out: torch.Tensor | None = None
                        ) -> Iterator[tuple[int, torch.Tensor]]:
        self._require_examples()
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        theta = self.check_theta(theta).detach()
        params = self.spec.unflatten(theta)
        per_ex = self._example_grad_fn()
        slices = list(self.spec.slices.items())
        start = 0
        for i, (x, y) in enumerate(self.batches):  # type: ignore[misc]
            n = int(x.shape[0])
            step = n if chunk_size is None else chunk_size
            for a in range(0, n, step):
                gd = per_ex(params, x[a:a + step], y[a:a + step])
                c = min(step, n - a)
                G = (out[start + a:start + a + c] if out is not None
                     else torch.empty(c, self.dim, dtype=self.dtype, device=self.device))
                for name, sl in slices:
                    G[:, sl] = gd[name].reshape(c, -1)
                del gd
                if not bool(torch.isfinite(G.sum())):  # one cheap reduction; locate only on failure
                    bad = ~torch.isfinite(G)
                    if bool(bad.any()):
                        row, col = (int(t) for t in bad.nonzero()[0])
                        raise NonFiniteError(f"per-example gradient is non-finite for example {start + a + row} "
                                             f"on {self._where(i)}, first in parameter "
                                             f"{self.spec.locate(col)!r} (flat index {col})")
                yield start + a, G
            start += n

    def iter_per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None
                               ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, G)`` with ``G`` of shape ``(c, dim)``: unscaled gradients of examples
        ``start .. start + c - 1`` (``c <= chunk_size``; ``None`` = one chunk per batch)."""
        return self._example_chunks(theta, chunk_size)

    def per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Unscaled per-example gradients ``g_i = grad l_i(theta)``, shape ``(n, dim)``.

        Their mean is the gradient for ``reduction="mean"``, their sum for ``"sum"``.
        """
        self._require_examples()
        out = torch.empty(self.n_examples, self.dim, dtype=self.dtype, device=self.device)
        for _ in self._example_chunks(theta, chunk_size, out=out):
            pass
        return out

    def __repr__(self) -> str:
        src = type(self.module).__name__ if self.module is not None else "function"
        return (f"Objective({src}, dim={self.dim}, n_examples={self.n_examples}, "
                f"dtype={self.dtype}, device={self.device}, reduction={self.reduction!r})")


class HessianOperator:
    """The Hessian at a fixed point as a symmetric linear operator on flat vectors.

    With ``cache=True`` the first-order graph is built once and every product is one
    double-backward pass (memory: the autograd graph of the whole dataset); with ``cache=False``
    each product is a fresh reverse-over-reverse pass. :attr:`n_matvec` counts products.
    """

    def __init__(self, obj: Objective, theta: torch.Tensor, *, cache: bool = True) -> None:
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()
        self.shape = (obj.dim, obj.dim)
        self.dtype = obj.dtype
        self.device = obj.device
        self.n_matvec = 0
        self._g: torch.Tensor | None = None
        if cache:
            self._p = self.theta.clone().requires_grad_(True)
            with torch.enable_grad():
                self._g = torch.autograd.grad(obj.loss_tensor(self._p), self._p, create_graph=True)[0]
            if not self._g.requires_grad:  # objective is linear in theta: the Hessian is zero
                self._g = None
                cache = False
        self.cache = cache

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H @ v`` for ``v`` of shape ``(dim,)``."""
        if v.shape != (self.shape[0],):
            raise ValueError(f"v must have shape ({self.shape[0]},), got {tuple(v.shape)}")
        self.n_matvec += 1
        v = v.to(device=self.device, dtype=self.dtype)
        if self._g is not None:
            return torch.autograd.grad(self._g, self._p, v, retain_graph=True)[0].detach()
        return self.obj._hvp_pure(self.theta, v).detach()

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H @ V`` for ``V`` of shape ``(dim, k)``."""
        return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    def to_scipy(self):  # -> scipy.sparse.linalg.LinearOperator
        """A SciPy ``LinearOperator`` (float64 NumPy in and out) for SciPy solvers."""
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def mv(x: "np.ndarray") -> "np.ndarray":
            t = torch.as_tensor(np.asarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np.float64)
