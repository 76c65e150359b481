"""The gradient-free Hebbian "work done / significance" rule (SynaPrune 2021–2022).

For a layer with input x (d_in,) and output y = f(W x + b) (d_out,) — PyTorch layout, W (d_out, d_in) —
Norm(v) = v / (Σ_k |v_k| + eps) (L1), e = target − prediction (d_y,), e* = e_{k*} with
k* = argmax_k |e_k| (signed; the lowest k on ties):

- hidden layers:  ΔW = η·e*·Norm(y) Norm(x)ᵀ,   Δb = η·e*·Norm(y)
- last layer:     ΔW = η·e Norm(x)ᵀ,             Δb = η·e

(the note writes the row-vector layout, ΔW = η·e*·Norm(x)ᵀNorm(y); this is its transpose). The
updates are *added*; every layer uses one stored forward pass, so all layers update in parallel.
Across examples each coordinate of ΔW, Δb takes the per-example value of largest magnitude, with
its sign (the 2021 batch aggregation; the lowest example index on ties). ``center=True`` (the 2022
variant) subtracts the batch mean from every layer's x and y before Norm.

Decisions: eps = 1e-12 by default (an all-zero input/output, e.g. a dead ReLU layer, gives Norm = 0
rather than NaN); "output y" is the layer's output *after* its activations (everything up to the
next ``nn.Linear``); a layer without bias updates only W; frozen parameters are skipped.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from landscape import ParamSpec

ELEMENTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink,
)

Layer = tuple[str, nn.Linear, list[nn.Module]]


def check_hebbian_model(model: nn.Module, spec: ParamSpec | None = None) -> list[Layer]:
    """Split an ``nn.Sequential`` of ``nn.Linear`` + elementwise activations into layers.

    Args:
        model: the network.
        spec: its trainable parameters (to refuse a trainable PReLU slope), or None.

    Returns:
        ``[(name, linear, [activations after it]), ...]`` in forward order.

    Raises:
        TypeError: naming the module that is not supported (not a Sequential, a non-elementwise
            module, an activation before the first Linear, a trainable PReLU, no Linear at all).

    Example:
        >>> from torch import nn
        >>> [(n, len(a)) for n, _, a in check_hebbian_model(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))]
        [('0', 1), ('2', 0)]
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError("the Hebbian rule works on an nn.Sequential of nn.Linear layers and elementwise "
                        f"activations; got {type(model).__name__}")
    layers: list[Layer] = []
    for name, child in model.named_children():
        if isinstance(child, nn.Linear):
            layers.append((name, child, []))
        elif isinstance(child, ELEMENTWISE):
            if not layers:
                raise TypeError(f"the Hebbian rule needs the nn.Sequential to start with nn.Linear; "
                                f"module {name!r} ({type(child).__name__}) comes first")
            if isinstance(child, nn.PReLU) and spec is not None and f"{name}.weight" in spec.names:
                raise TypeError(f"the Hebbian rule cannot train the PReLU slope {name}.weight; freeze it "
                                "(requires_grad_(False)) or use a fixed activation")
            layers[-1][2].append(child)
        else:
            raise TypeError("the Hebbian rule works on an nn.Sequential of nn.Linear layers and elementwise "
                            f"activations; module {name!r} is {type(child).__name__}")
    if not layers:
        raise TypeError("the Hebbian rule found no nn.Linear layer in the nn.Sequential")
    return layers


def _signed_max_magnitude(D: torch.Tensor) -> torch.Tensor:
    """Per coordinate of D (n, ...), the entry of largest magnitude over dim 0, with its sign."""
    arg = D.abs().argmax(dim=0, keepdim=True)
    return D.gather(0, arg).squeeze(0)


def _norm(v: torch.Tensor, eps: float) -> torch.Tensor:
    return v / (v.abs().sum(dim=1, keepdim=True) + eps)


def hebbian_delta(model: nn.Sequential, spec: ParamSpec, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor,
                  *, lr: float, center: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """The Hebbian update Δθ at ``theta`` (added to θ; the rule is in the module docstring).

    Args:
        model: an ``nn.Sequential`` accepted by :func:`check_hebbian_model` (its parameters are
            read from ``theta``, not from the module).
        spec: the trainable parameters' layout (``theta`` ↔ named tensors).
        theta: flat parameters, shape (dim,).
        X: inputs, shape (n, d_x).
        Y: regression targets, shape (n, d_y).
        lr: η.
        center: subtract the batch mean from every layer's x and y before Norm (the 2022 variant).
        eps: Norm's ε (L1 norm + ε in the denominator).

    Returns:
        Δθ, shape (dim,), dtype of ``theta`` (zero for frozen parameters).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import ParamSpec
        >>> net = nn.Sequential(nn.Linear(1, 1, bias=False)).double()
        >>> spec = ParamSpec(names=("0.weight",), shapes=(net[0].weight.shape,))
        >>> X, Y = torch.ones(1, 1, dtype=torch.float64), 3 * torch.ones(1, 1, dtype=torch.float64)
        >>> hebbian_delta(net, spec, torch.zeros(1, dtype=torch.float64), X, Y, lr=0.1)   # η·e·Norm(x)
        tensor([0.3000], dtype=torch.float64)
    """
    layers = check_hebbian_model(model, spec)
    params = spec.unflatten(theta.detach())
    records = []
    with torch.no_grad():
        h = X
        for name, lin, acts in layers:
            W = params.get(f"{name}.weight", lin.weight)
            b = params.get(f"{name}.bias", lin.bias)
            y = F.linear(h, W, b)
            for act in acts:
                y = act(y)
            records.append((name, h.reshape(h.shape[0], -1), y.reshape(y.shape[0], -1)))
            h = y
        e = (Y.reshape(Y.shape[0], -1) - h.reshape(h.shape[0], -1)).to(theta.dtype)
        estar = e.gather(1, e.abs().argmax(dim=1, keepdim=True)).squeeze(1)  # (n,)
        out = torch.zeros_like(theta)
        slices = spec.slices
        last = len(records) - 1
        for k, (name, x, y) in enumerate(records):
            if center:
                x = x - x.mean(0, keepdim=True)
                y = y - y.mean(0, keepdim=True)
            nx = _norm(x, eps)
            if k == last:
                dW = lr * e[:, :, None] * nx[:, None, :]
                db = lr * e
            else:
                ny = _norm(y, eps)
                dW = lr * estar[:, None, None] * ny[:, :, None] * nx[:, None, :]
                db = lr * estar[:, None] * ny
            wname, bname = f"{name}.weight", f"{name}.bias"
            if wname in slices:
                out[slices[wname]] = _signed_max_magnitude(dW).reshape(-1)
            if bname in slices:
                out[slices[bname]] = _signed_max_magnitude(db).reshape(-1)
    return out
