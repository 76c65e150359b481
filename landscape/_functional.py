"""Evaluating a user's model as a function of given parameters: the pieces every evaluation shares.

- :func:`second_order_safe`: attention in a twice-differentiable form on every device;
- :class:`FunctionalModel`: the user's module evaluated at given parameters (``functional_call``),
  optionally recording or replaying its outputs (the generalised Gauss-Newton splits a loss into
  model and loss-of-output this way);
- :func:`stochastic_modules`: the submodules that make a loss random or batch-dependent;
- :class:`RandomOpRecorder`: which random torch functions a call ran (the construction-time
  determinism check names them);
- :class:`BroadcastGuard`: refuses a loss that broadcasts targets (floating or integer, also after a
  dtype cast such as ``t.to(o.dtype)``) against outputs;
- :class:`ReducedLoss`: the global loss of a distributed objective (forward only).

Private to :mod:`landscape` (the objective and the operators use it); the user-facing names are
re-exported by :mod:`landscape` (``second_order_safe``, ``stochastic_modules``).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)

#: torch functions that draw random numbers: a loss that calls one is not a fixed function of θ
RANDOM_OPS = frozenset({
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "rrelu", "rrelu_",
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "bernoulli", "bernoulli_",
    "normal", "normal_", "uniform_", "multinomial", "poisson", "exponential_", "geometric_", "cauchy_",
    "log_normal_", "random_", "gumbel_softmax"})
#: conversions that keep a tensor's values and shape: a target converted this way is still a target
_CONVERSIONS = frozenset({"to", "type", "type_as", "float", "double", "half", "bfloat16", "long", "int", "short",
                          "byte", "char", "bool", "clone", "detach", "contiguous"})


# ---------------------------------------------------------------------------- evaluation context
@contextlib.contextmanager
def second_order_safe() -> Iterator[None]:
    """Attention in a form that can be differentiated twice, on every device.

    ``F.scaled_dot_product_attention`` (used by ``nn.MultiheadAttention``, ``nn.TransformerEncoder``
    and Hugging Face's default "sdpa" attention) dispatches to fused flash / memory-efficient
    kernels whose backward has no derivative; the math backend is composed of ordinary matmuls and
    a softmax and supports double backward on CPU and CUDA. The fused fast path of
    ``nn.TransformerEncoderLayer`` in inference mode is switched off too, so the loss, the gradient
    and the Hessian are those of one and the same function. Every evaluation of an
    :class:`landscape.Objective` runs under it; the previous settings are restored on exit.

    Returns:
        A context manager (no value).

    Example:
        >>> import torch
        >>> with second_order_safe():
        ...     y = torch.nn.functional.scaled_dot_product_attention(*torch.ones(3, 1, 2, 4))
        >>> tuple(y.shape)
        (1, 2, 4)
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = getattr(torch.backends, "mha", None)
    toggle = mha is not None and hasattr(mha, "get_fastpath_enabled")
    fast = mha.get_fastpath_enabled() if toggle else None
    if toggle:
        mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        if toggle:
            mha.set_fastpath_enabled(fast)


class FunctionalModel:
    """The user's module evaluated at given parameters: called like the module, attributes forwarded.

    Args:
        module: the (private copy of the) user's module.
        params: ``{name: tensor}`` for the parameters the objective differentiates; the module's
            other parameters and buffers are used as they are.
        record: a list that receives ``(args, kwargs, output)`` of every call.
        replay: outputs returned, in order, instead of running the module (the generalised
            Gauss-Newton splits a loss into model and loss-of-output this way).

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 1, bias=False)
        >>> f = FunctionalModel(lin, {"weight": torch.ones(1, 2)})
        >>> f(torch.tensor([[1.0, 2.0]])).item(), f.in_features
        (3.0, 2)
    """

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor], *, record: list | None = None,
                 replay: list | None = None) -> None:
        self._module = module
        self._params = params
        self._record = record
        self._replay = replay

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._replay is not None:
            if not self._replay:
                raise RuntimeError("batch_loss called the model more often than when its outputs were recorded")
            return self._replay.pop(0)
        out = functional_call(self._module, self._params, args, kwargs)
        if self._record is not None:
            self._record.append((args, kwargs, out))
        return out

    def __getattr__(self, name: str) -> Any:
        if name in ("_module", "_params", "_record", "_replay"):  # not yet set (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self._module, name)


def stochastic_modules(model: nn.Module) -> list[str]:
    """Submodules whose output is random or depends on the other examples of the batch.

    In their current mode: Dropout with p > 0 in training, RReLU in training (random slopes),
    MultiheadAttention and stacked RNNs with dropout > 0 in training, BatchNorm in training or
    without running statistics. The objective refuses a model that has any (its loss would not be a
    fixed function of the parameters). Randomness a module list cannot see (``F.dropout`` called in
    ``forward``, ``torch.rand``) is caught at construction by evaluating the first batch twice.

    Args:
        model: any ``nn.Module``.

    Returns:
        ``["path (Type)", ...]`` in ``named_modules`` order (``"<model>"`` for the root).

    Example:
        >>> from torch import nn
        >>> stochastic_modules(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
        ['1 (Dropout)']
        >>> stochastic_modules(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)).eval())
        []
    """
    out = []
    for name, m in model.named_modules():
        bad = False
        if isinstance(m, _DROPOUT):
            bad = m.training and float(m.p) > 0
        elif isinstance(m, nn.RReLU):
            bad = m.training
        elif isinstance(m, nn.MultiheadAttention):
            bad = m.training and float(m.dropout) > 0
        elif isinstance(m, nn.RNNBase):  # dropout between stacked recurrent layers
            bad = m.training and float(m.dropout) > 0 and m.num_layers > 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            bad = m.training or not m.track_running_stats
        if bad:
            out.append(f"{name or '<model>'} ({type(m).__name__})")
    return out


class RandomOpRecorder(TorchFunctionMode):
    """Inside the block, record the names of the random torch functions called (:data:`RANDOM_OPS`).

    Attributes:
        seen: the names, in call order (repeats kept).

    Example:
        >>> import torch
        >>> with RandomOpRecorder() as rec:
        ...     _ = torch.nn.functional.dropout(torch.ones(3), 0.5) + torch.ones(3)
        >>> rec.seen
        ['dropout']
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in RANDOM_OPS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


class BroadcastGuard(TorchFunctionMode):
    """Refuse an operation that broadcasts a target tensor against another tensor to a shape larger
    than both (``(N, 1)`` outputs minus ``(N,)`` targets gives ``(N, N)``): almost always a shape bug
    that silently changes the loss. Integer targets are watched too, and a target stays watched
    through value-preserving conversions (``t.to(o.dtype)``, ``t.float()``) and through operations
    whose only tensor is the target (``t / 255``); a reshape makes a new, unwatched tensor.

    Args:
        targets: the batch's target tensors (matched by identity).

    Example:
        >>> import torch
        >>> y = torch.zeros(4, dtype=torch.int64)
        >>> with BroadcastGuard([y]):
        ...     torch.ones(4, 1) - y.to(torch.float32)
        Traceback (most recent call last):
        ...
        ValueError: the loss would broadcast a tensor of shape (4, 1) (the model's output) against targets ...
    """

    def __init__(self, targets: list[torch.Tensor]) -> None:
        super().__init__()
        self.ids = {id(t): t for t in targets}  # the tensors are held, so their ids are not reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        name = getattr(func, "__name__", str(func))
        if name not in _CONVERSIONS:
            self._check(tensors, name)
        out = func(*args, **kwargs)
        first = tensors[0] if tensors else None
        if (first is not None and id(first) in self.ids and isinstance(out, torch.Tensor) and out is not first
                and out.shape == first.shape and (name in _CONVERSIONS or len(tensors) == 1)):
            self.ids[id(out)] = out
        return out

    def _check(self, tensors: list[torch.Tensor], name: str) -> None:
        for t in tensors:
            if id(t) not in self.ids:
                continue
            for a in tensors:
                if a is t or not a.is_floating_point() or a.shape == t.shape:
                    continue
                try:
                    b = torch.broadcast_shapes(a.shape, t.shape)
                except RuntimeError:
                    continue
                if math.prod(b) > max(a.numel(), t.numel()):
                    raise ValueError(
                        f"the loss would broadcast a tensor of shape {tuple(a.shape)} (the model's output) against "
                        f"targets of shape {tuple(t.shape)} to {tuple(b)} (in {name}); make the shapes equal, e.g. "
                        f"targets.reshape{tuple(a.shape)}")


class ReducedLoss(torch.autograd.Function):
    """Sum of a scalar over ranks in the forward pass; its gradient is refused (the gradient of the
    global loss needs the parameter gradient all-reduced: use loss_and_grad / hvp / operators).

    Used as ``ReducedLoss.apply(local_loss, group)`` by a distributed objective's ``loss_tensor``.

    Example (not run: it needs a process group; tests/test_distributed.py runs one)::

        total = ReducedLoss.apply(obj.local_loss_tensor(theta), group)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        """The scalar ``x`` summed over the ranks of ``group``."""
        y = x.detach().clone()
        torch.distributed.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        """Refused (see the class docstring)."""
        raise RuntimeError("a distributed objective's loss_tensor cannot be differentiated directly; use "
                           "obj.loss_and_grad, obj.hvp or obj.curvature_operator (they all-reduce parameter "
                           "gradients)")
