"""Per-example gradient statistics at matmul cost for layers whose per-example gradient is an outer product.

For an ``nn.Linear`` applied to an input of shape (n, in), example i's gradient of the weight is
the outer product g_i = b_i a_iᵀ, with a_i (in,) the layer input and b_i (out,) = ∂ℓ_i/∂y_i the
gradient of example i's loss at the layer output; the bias gradient is b_i. So every streaming sum
over examples that the cancellation statistics and the SynaPrune aggregations need is a matrix
product of functions of B (n, out) and A (n, in), and no g_i is formed:

- Σ g = Bᵀ A, Σ g² = (B²)ᵀ A², Σ |g| = |B|ᵀ |A|, Σ sign g = sign(B)ᵀ sign(A), Σ |g|^p = |B|^pᵀ |A|^p
- ‖g_i‖² = ‖a_i‖² ‖b_i‖² (weight) and ‖b_i‖² (bias), so Σ_i ‖g_i‖ and Σ_i ‖g_i‖² per tensor and in all.

A and B come from one forward pass with hooks and one backward pass of Σ_i ℓ_i (= n · the batch's
mean loss) with respect to zero "probe" tensors added to each layer output (valid because ℓ_i
depends only on example i; the same assumption as the per-example vmap path).

For ``nn.Conv1d``/``nn.Conv2d`` (groups = 1, zero padding, any stride/padding/dilation) example i's
weight gradient is Σ over output positions l of b_il ⊗ u_il, with u_il the unfolded input patch:
B_i (out, L) @ U_iᵀ (L, in·∏kernel). That is not an outer product, so the per-example weight
gradients of that layer are formed, chunk by chunk of examples, by one batched contraction (the
unfolded input as a strided view of the padded input — ``Tensor.unfold``, cheaper than copying
with ``F.unfold`` — then a batched matmul; memory of one chunk, about 2^22 numbers) and every sum
above is reduced from them; the bias gradient is Σ_l b_il. This replaces vmap over the whole
model by one batched matmul per conv layer.

devarg's signed per-coordinate max-magnitude max_i |g_ij| is NOT a matrix product (it is a
max-times product): for a Linear it is computed exactly by :func:`.outer_max.outer_signed_max`
(the O(n · dim) products |b_io|·|a_ik| in a compiled running-max loop, or examples-last blocks of
torch products; no autograd), bit-identical to the direct elementwise max over a leading example
axis; ties go to the lowest example index, as in
:class:`synaprune.rules.Aggregator` (also across chunks and batches). Only computed when
``devarg=True``. The SynaPrune aggregations (:func:`fast_aggregate`) skip the sums they do not read
(Σ g², Σ sign g: ``moments=False``); what they read is the same floats either way.

Eligibility: the objective has a module (``obj.module``), every trainable parameter is the weight or
bias of an ``nn.Linear`` called on a 2-D input (n, features), or of an ``nn.Conv1d`` / ``nn.Conv2d``
(groups = 1, ``padding_mode="zeros"``) called on a batched (n, C, L) / (n, C, H, W) input; each
such layer is called exactly once per forward pass and no parameter is shared. As a guard against
losses that use the parameters outside those layers (a weight penalty, a tied output layer), the
batch gradient Σ_i g_i from the layer products is compared entrywise with autograd's gradient of
the same pass; a mismatch beyond the round-off bound of that reduction makes the model
ineligible. Ineligible models return None and callers use the per-example (vmap) path.
Everything is accumulated in float64.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.func import functional_call

from .errors import NonFiniteError
from .outer_max import outer_signed_max

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective

_BLOCK_ELEMS = 1 << 22


@dataclass(frozen=True)
class ExampleGradSums:
    """Streaming sums over n examples of the unscaled per-example gradients g_i (all float64, on the
    objective's device; flat vectors follow the objective's parameter order, shape (dim,)).

    ``sum`` Σ g_i, ``sum_sq`` Σ g_i², ``sum_abs`` Σ |g_i|, ``sum_sign`` Σ sign g_i,
    ``sum_pow[p]`` Σ |g_i|^p, ``sum_norm``/``sum_norm_sq`` Σ ‖g_i‖ / Σ ‖g_i‖² (whole vector),
    ``layer_sum_norm``/``layer_sum_norm_sq`` the same per parameter tensor, ``absmax`` max_i |g_ij|
    and ``signed_max`` the signed g_{i*j} at the first maximiser i* (only with ``devarg=True``).
    ``sum_sq`` and ``sum_sign`` are None when the sums were computed with ``moments=False``.

    Example: see :func:`example_grad_sums`.
    """

    n: int
    sum: torch.Tensor
    sum_sq: torch.Tensor | None
    sum_abs: torch.Tensor
    sum_sign: torch.Tensor | None
    sum_norm: float
    sum_norm_sq: float
    layer_sum_norm: dict[str, float]
    layer_sum_norm_sq: dict[str, float]
    sum_pow: dict[float, torch.Tensor] = field(default_factory=dict)
    absmax: torch.Tensor | None = None
    signed_max: torch.Tensor | None = None


# ---------------------------------------------------------------------------- eligibility
_CONV_TYPES = (nn.Conv1d, nn.Conv2d)


def _conv_ok(m: nn.Module) -> bool:
    return isinstance(m, _CONV_TYPES) and m.groups == 1 and m.padding_mode == "zeros"


def layer_layout(module: nn.Module | None, param_names: tuple[str, ...]) -> dict[str, tuple[str, str]] | None:
    """Map each parameter name to (layer module path, "weight"|"bias"), or None when some trainable
    parameter is not the weight/bias of an ``nn.Linear`` or of an ``nn.Conv1d``/``nn.Conv2d`` with
    ``groups=1`` and zero padding, or a parameter is shared.

    Args:
        module: the model (None: not eligible). param_names: the objective's parameters.

    Returns:
        ``{name: (module path, "weight"|"bias")}``, or None.

    Example:
        >>> from torch import nn
        >>> layer_layout(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), ("0.weight", "0.bias"))
        {'0.weight': ('0', 'weight'), '0.bias': ('0', 'bias')}
        >>> layer_layout(nn.Sequential(nn.LayerNorm(2)), ("0.weight",)) is None
        True
    """
    if module is None:
        return None
    owner: dict[str, tuple[str, str]] = {}
    seen: dict[int, int] = {}
    for mname, m in module.named_modules(remove_duplicate=False):
        for pname, p in m.named_parameters(recurse=False):
            seen[id(p)] = seen.get(id(p), 0) + 1
            full = f"{mname}.{pname}" if mname else pname
            if (isinstance(m, nn.Linear) or _conv_ok(m)) and pname in ("weight", "bias"):
                owner[full] = (mname, pname)
    params = dict(module.named_parameters())
    layout: dict[str, tuple[str, str]] = {}
    for name in param_names:
        if name not in owner or name not in params or seen.get(id(params[name]), 0) != 1:
            return None
        layout[name] = owner[name]
    return layout


# ---------------------------------------------------------------------------- one batch
class _Ineligible(Exception):
    pass


def _dense_stats(chunks: Iterator[torch.Tensor], numel: int, p_values: tuple[float, ...], devarg: bool,
                 dev: torch.device, moments: bool = True) -> dict[str, Any]:
    """Streaming sums of explicitly formed per-example gradients of one tensor, fed as float64
    chunks (c, numel); the signed max-magnitude keeps the lowest example index on ties."""
    f64 = torch.float64
    z = lambda: torch.zeros(numel, dtype=f64, device=dev)  # noqa: E731
    r: dict[str, Any] = {"sum": z(), "sum_sq": z(), "sum_abs": z(), "sum_sign": z(), "pow": {q: z() for q in p_values},
                         "sq": [], "absmax": torch.full((numel,), -1.0, dtype=f64, device=dev), "signed": z()}
    for G in chunks:
        aG, G2 = G.abs(), G * G
        r["sum"] += G.sum(0)
        r["sum_abs"] += aG.sum(0)
        if moments:
            r["sum_sq"] += G2.sum(0)
            r["sum_sign"] += torch.sign(G).sum(0)
        for q in p_values:
            r["pow"][q] += (G2 if q == 2.0 else aG.pow(q)).sum(0)
        r["sq"].append(G2.sum(1))
        if devarg:
            cm, arg = aG.max(0)           # first maximal index on ties
            better = cm > r["absmax"]     # strict: earlier chunks win ties
            r["absmax"] = torch.where(better, cm, r["absmax"])
            r["signed"] = torch.where(better, G.gather(0, arg[None]).squeeze(0), r["signed"])
    r["sq"] = torch.cat(r["sq"])
    return r


def _conv_patches(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input patches of Conv1d/Conv2d ``m`` as a strided view (c, in, Ho, Wo, kh, kw) of the
    zero-padded input (a Conv1d is a Conv2d with H = kh = 1): the layer's output at (h, w)
    is Σ weight[o, :, :, :] · patches[:, :, h, w, :, :] (+ bias). Cheaper than ``F.unfold``."""
    k, st, dil = tuple(m.kernel_size), tuple(m.stride), tuple(m.dilation)
    pads: list[int] = []
    for j in reversed(range(len(k))):  # F.pad takes (last-dim left, right, ...)
        if m.padding == "same":
            tot = dil[j] * (k[j] - 1)
            pads += [tot // 2, tot - tot // 2]
        elif m.padding == "valid":
            pads += [0, 0]
        else:
            pads += [m.padding[j], m.padding[j]]
    if any(pads):
        x = torch.nn.functional.pad(x, pads)
    if isinstance(m, nn.Conv1d):
        x, k, st, dil = x.unsqueeze(2), (1, k[0]), (1, st[0]), (1, dil[0])
    v = x.unfold(2, dil[0] * (k[0] - 1) + 1, st[0]).unfold(3, dil[1] * (k[1] - 1) + 1, st[1])
    return v[..., ::dil[0], ::dil[1]]


def _conv_weight_grads(m: nn.Module, x: torch.Tensor, B: torch.Tensor) -> Iterator[torch.Tensor]:
    """Per-example weight gradients of conv ``m`` in chunks (c, out·in·∏kernel), float64: for
    example i, Σ over output positions of (output-grad) ⊗ (input patch), one batched contraction
    per chunk in the working dtype (as accurate as the per-example path's own gradients), then
    widened to float64 for the sums."""
    n, n_out = B.shape[0], B.shape[1]
    Bf = B.reshape(n, n_out, -1)
    L = Bf.shape[2]
    per = n_out * L + (m.weight.numel() // n_out) * (L + n_out)
    c = max(1, _BLOCK_ELEMS // max(per, 1))
    for a in range(0, n, c):
        V = _conv_patches(m, x[a:a + c])
        Bc = Bf[a:a + c].reshape(V.shape[0], n_out, V.shape[2], V.shape[3])
        yield torch.einsum("nohw,nchwij->nocij", Bc, V.to(Bc.dtype)).reshape(V.shape[0], -1).to(torch.float64)


def _batch_sums(module: nn.Module, layout: dict[str, tuple[str, str]], names: tuple[str, ...],
                shapes: tuple[torch.Size, ...], loss_sum: Callable[[torch.Tensor], torch.Tensor],
                flat: torch.Tensor, n: int, p_values: tuple[float, ...], devarg: bool,
                moments: bool = True) -> dict[str, Any]:
    """Sums for one batch of ``n`` examples. ``loss_sum(theta)`` evaluates Σ_i ℓ_i with ``module``
    called functionally at the flat ``theta`` (so the hooks see the layer inputs/outputs).
    ``moments=False`` skips Σ g² and Σ sign g (Σ g and Σ |g| are always formed: the guard reads them)."""
    layers = sorted({m for m, _ in layout.values()})
    mods = dict(module.named_modules())
    inputs: dict[str, torch.Tensor] = {}
    probes: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {m: 0 for m in layers}

    def make_hook(mname: str):
        def hook(_m: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            calls[mname] += 1
            x = args[0] if args else None
            want = 2 if isinstance(_m, nn.Linear) else (3 if isinstance(_m, nn.Conv1d) else 4)
            if calls[mname] > 1 or not isinstance(x, torch.Tensor) or x.ndim != want or x.shape[0] != n:
                raise _Ineligible(mname)
            inputs[mname] = x.detach()
            d = torch.zeros_like(out, requires_grad=True)
            probes[mname] = d
            return out + d
        return hook

    handles = [mods[m].register_forward_hook(make_hook(m)) for m in layers]
    try:
        with torch.enable_grad():
            p = flat.detach().clone().requires_grad_(True)
            total = loss_sum(p)
            used = [m for m in layers if m in probes]
            grads = torch.autograd.grad(total, [probes[m] for m in used] + [p], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    outgrad = {m: (g.detach() if g is not None else torch.zeros_like(probes[m])) for m, g in zip(used, grads[:-1])}
    g_batch = grads[-1]
    dev = flat.device
    f64 = torch.float64
    terms = n  # the longest reduction autograd makes for one gradient entry (n·positions for a conv)
    out: dict[str, Any] = {"sum": [], "sum_sq": [], "sum_abs": [], "sum_sign": [],
                           "pow": {q: [] for q in p_values}, "absmax": [], "signed": [], "sq": []}
    sums = ("sum", "sum_abs") + (("sum_sq", "sum_sign") if moments else ())   # the flat sums this pass forms
    for name, shape in zip(names, shapes):
        mname, kind = layout[name]
        numel = math.prod(shape)
        if mname not in outgrad:  # layer never called: its per-example gradients are zero
            z = torch.zeros(numel, dtype=f64, device=dev)
            for key in (*sums, "absmax", "signed"):
                out[key].append(z)
            for q in p_values:
                out["pow"][q].append(z)
            out["sq"].append(torch.zeros(n, dtype=f64, device=dev))
            continue
        if isinstance(mods[mname], _CONV_TYPES):
            Bc = outgrad[mname]
            if kind == "bias":
                Bb = Bc.to(f64).reshape(n, Bc.shape[1], -1).sum(2)
                r = _dense_stats(iter([Bb]), numel, p_values, devarg, dev, moments)
            else:
                r = _dense_stats(_conv_weight_grads(mods[mname], inputs[mname], Bc), numel, p_values, devarg, dev,
                                 moments)
                terms = max(terms, n * (Bc[0, 0].numel()))
            for key in (*sums, "sq"):
                out[key].append(r[key])
            for q in p_values:
                out["pow"][q].append(r["pow"][q])
            if devarg:
                out["absmax"].append(r["absmax"])
                out["signed"].append(r["signed"])
            continue
        B = outgrad[mname].to(f64)
        if kind == "bias":
            out["sum"].append(B.sum(0))
            out["sum_abs"].append(B.abs().sum(0))
            if moments:
                out["sum_sq"].append(B.square().sum(0))
                out["sum_sign"].append(torch.sign(B).sum(0))
            for q in p_values:
                out["pow"][q].append(B.abs().pow(q).sum(0))
            if devarg:
                am, arg = B.abs().max(0)
                out["absmax"].append(am)
                out["signed"].append(B.gather(0, arg[None]).squeeze(0))
            out["sq"].append(B.square().sum(1))
            continue
        A = inputs[mname].to(f64)
        aA, aB = A.abs(), B.abs()
        out["sum"].append((B.T @ A).reshape(-1))
        out["sum_abs"].append((aB.T @ aA).reshape(-1))
        if moments:
            out["sum_sq"].append((B.square().T @ A.square()).reshape(-1))
            out["sum_sign"].append((torch.sign(B).T @ torch.sign(A)).reshape(-1))
        for q in p_values:
            out["pow"][q].append((aB.pow(q).T @ aA.pow(q)).reshape(-1))
        out["sq"].append(A.square().sum(1) * B.square().sum(1))
        if devarg:
            best, signed = outer_signed_max(A, B)
            out["absmax"].append(best.reshape(-1))
            out["signed"].append(signed.reshape(-1))
    s1 = torch.cat(out["sum"])
    # Guard: the matrix products must reproduce autograd's batch gradient of the same pass.
    ref = g_batch.detach().to(f64) if g_batch is not None else torch.zeros_like(s1)
    # Entrywise: autograd's reduction of the same b_i, a_i in the working dtype is off by at most
    # (T+1)·u·Σ_i|b_i||a_i| (T terms: n, or n·positions for a conv; u = eps/2, any summation order;
    # for a conv the bound Σ_i Σ_l |b_il||a_il| is replaced by the smaller Σ_i|g_ij|, which can only
    # make a model ineligible, never accept a wrong one), so allow 2(T+2)·eps·Σ|g_ij| (a 4x
    # margin) besides 1e3·eps relative to the largest entry. A stationary point (Σg ≈ 0 ≪ Σ|g|)
    # thus stays eligible, while a use of the parameters outside the layers beyond round-off does not.
    if s1.numel():
        eps = torch.finfo(flat.dtype).eps
        s_abs = torch.cat(out["sum_abs"])
        size = float(ref.abs().max()) + float(s1.abs().max())
        tol = torch.clamp(2.0 * (terms + 2) * eps * s_abs, min=1e3 * eps * max(size, torch.finfo(f64).tiny))
        if bool(((s1 - ref).abs() > tol).any()):
            raise _Ineligible("the loss uses the parameters outside the layers")
    return {"sum": s1, "sum_sq": torch.cat(out["sum_sq"]) if moments else None,
            "sum_abs": torch.cat(out["sum_abs"]), "sum_sign": torch.cat(out["sum_sign"]) if moments else None,
            "pow": {q: torch.cat(v) for q, v in out["pow"].items()},
            "absmax": torch.cat(out["absmax"]) if devarg else None,
            "signed": torch.cat(out["signed"]) if devarg else None,
            "sq": torch.stack(out["sq"], dim=1)}  # (n, number of parameter tensors)


def _accumulate(batches: Iterator[tuple[Callable[[torch.Tensor], torch.Tensor], int]], module: nn.Module,
                layout: dict[str, tuple[str, str]], names: tuple[str, ...], shapes: tuple[torch.Size, ...],
                flat: torch.Tensor, p_values: tuple[float, ...], devarg: bool, moments: bool = True
                ) -> ExampleGradSums | None:
    acc: dict[str, Any] | None = None
    n_total = 0
    sum_norm = sum_norm_sq = 0.0
    lay_norm = torch.zeros(len(names), dtype=torch.float64)
    lay_norm_sq = torch.zeros(len(names), dtype=torch.float64)

    start = 0
    for i, (loss_sum, n) in enumerate(batches):
        if n == 0:
            continue
        try:
            b = _batch_sums(module, layout, names, shapes, loss_sum, flat, n, p_values, devarg, moments)
        except _Ineligible:
            return None
        sq = b.pop("sq")
        bad = ~torch.isfinite(sq)
        if bool(bad.any()) or not bool(torch.isfinite(b["sum"]).all()):
            row, col = (int(t) for t in bad.nonzero()[0]) if bool(bad.any()) else (0, 0)
            raise NonFiniteError(f"per-example gradient is non-finite for example {start + row} on batch {i} "
                                 f"(examples {start}..{start + n - 1}), first in parameter {names[col]!r}")
        start += n
        tot = sq.sum(1)
        sum_norm += float(tot.sqrt().sum())
        sum_norm_sq += float(tot.sum())
        lay_norm += sq.sqrt().sum(0).cpu()
        lay_norm_sq += sq.sum(0).cpu()
        if acc is None:
            acc = b
        else:
            for key in ("sum", "sum_sq", "sum_abs", "sum_sign"):
                if b[key] is not None:
                    acc[key] += b[key]
            for q in p_values:
                acc["pow"][q] += b["pow"][q]
            if devarg:
                better = b["absmax"] > acc["absmax"]
                acc["absmax"] = torch.where(better, b["absmax"], acc["absmax"])
                acc["signed"] = torch.where(better, b["signed"], acc["signed"])
        n_total += n
    if acc is None:
        return None
    return ExampleGradSums(
        n=n_total, sum=acc["sum"], sum_sq=acc["sum_sq"], sum_abs=acc["sum_abs"], sum_sign=acc["sum_sign"],
        sum_norm=sum_norm, sum_norm_sq=sum_norm_sq,
        layer_sum_norm={nm: float(v) for nm, v in zip(names, lay_norm)},
        layer_sum_norm_sq={nm: float(v) for nm, v in zip(names, lay_norm_sq)},
        sum_pow=dict(acc["pow"]), absmax=acc["absmax"], signed_max=acc["signed"])


def _check_p_values(p_values: Any) -> tuple[float, ...]:
    out = []
    for q in p_values:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not (0 < q < math.inf):
            raise ValueError(f"p_values must be finite positive numbers (use devarg=True for the max), got {q!r}")
        out.append(float(q))
    return tuple(out)


# ---------------------------------------------------------------------------- objective access
def _objective_batches(obj: "Objective", flat: torch.Tensor
                       ) -> Iterator[tuple[Callable[[torch.Tensor], torch.Tensor], int]]:
    """(Σ_i ℓ_i as a function of the flat θ, n_b) per batch, through the objective's batch API
    (``obj.iter_batches()``, ``obj.batch_loss_at(params, batch)``)."""
    for batch, n, _w in obj.iter_batches():
        yield (lambda t, batch=batch, n=n: n * obj.batch_loss_at(obj.spec.unflatten(t), batch)), int(n)


def example_grad_sums(obj: "Objective", theta: torch.Tensor, *, p_values: tuple[float, ...] = (),
                      devarg: bool = False) -> ExampleGradSums | None:
    """Streaming sums of the unscaled per-example gradients at ``theta`` over the whole data by the
    outer-product path, or None when the model is not eligible (see the module docstring).

    ``p_values``: exponents p for Σ|g|^p (finite, > 0); ``devarg``: also the signed per-coordinate
    max-magnitude (exact, not at matmul cost). Agrees with the per-example path to round-off
    (≤ 1e-12 relative in float64).

    Args:
        obj: the objective. theta: the point (dim,). p_values: exponents p. devarg: the signed max.

    Returns:
        :class:`ExampleGradSums`, or None (not eligible).

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> s = example_grad_sums(obj, torch.zeros(2, dtype=torch.float64))   # g_1 = (−2, 0), g_2 = (0, 2)
        >>> s.n, s.sum.tolist(), s.sum_norm
        (2, [-2.0, 2.0], 4.0)
    """
    p_values = _check_p_values(p_values)
    module = getattr(obj, "module", None)
    layout = layer_layout(module, obj.param_names)
    if layout is None or getattr(obj, "n_examples", 0) == 0:
        return None
    flat = obj.check_theta(theta).detach()
    return _accumulate(_objective_batches(obj, flat), module, layout, obj.param_names, obj.param_shapes,
                       flat, p_values, devarg)


def example_grad_sums_for(module: nn.Module, names: tuple[str, ...], shapes: tuple[torch.Size, ...],
                          loss_fn: Callable[[torch.Tensor, Any], torch.Tensor], X: torch.Tensor, Y: Any,
                          theta: torch.Tensor, *, p_values: tuple[float, ...] = (), devarg: bool = False,
                          chunk_size: int | None = None, moments: bool = True) -> ExampleGradSums | None:
    """The same sums for a module + mean-reduced ``loss_fn`` on inputs ``X`` (n, ...) and targets
    ``Y`` (the trainer's data access: ``access.module, access.spec.names, access.spec.shapes,
    access.loss_fn, X, Y``), in chunks of ``chunk_size`` examples; None when ineligible.

    Args:
        module: the model. names, shapes: the parameters θ is made of (flat order).
        loss_fn: mean-reduced ``(outputs, targets) -> scalar``. X: (n, ...) inputs. Y: targets.
        theta: (dim,). p_values, devarg: see :func:`example_grad_sums`. chunk_size: examples per chunk.
        moments: also Σ g² and Σ sign g (False: those two fields are None, and the rules, which do
            not read them, skip two matrix products per layer).

    Returns:
        :class:`ExampleGradSums`, or None.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> s = example_grad_sums_for(model, ("weight",), (torch.Size([1, 2]),), torch.nn.MSELoss(), X, Y,
        ...                           torch.zeros(2, dtype=torch.float64))
        >>> s.sum.tolist()
        [-2.0, 2.0]
    """
    p_values = _check_p_values(p_values)
    layout = layer_layout(module, tuple(names))
    if layout is None:
        return None
    n = int(X.shape[0])
    step = n if chunk_size is None else max(1, int(chunk_size))

    def unflatten(t: torch.Tensor) -> dict[str, torch.Tensor]:
        out, a = {}, 0
        for nm, sh in zip(names, shapes):
            k = math.prod(sh)
            out[nm] = t[a:a + k].view(sh)
            a += k
        return out

    def batches():
        for a in range(0, n, step):
            x, y = X[a:a + step], Y[a:a + step]
            c = int(x.shape[0])
            yield (lambda t, x=x, y=y, c=c: c * loss_fn(functional_call(module, unflatten(t), (x,)), y)), c

    return _accumulate(batches(), module, layout, tuple(names), tuple(shapes), theta.detach(), p_values, devarg,
                       moments)


# ---------------------------------------------------------------------------- SynaPrune aggregations
def aggregate_from_sums(sums: ExampleGradSums, rule: str, *, p: float = 2.0, tie_break: str = "argmax",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The aggregated direction (dim,), float64, per-example scale, of :mod:`synaprune.rules`
    (``gd``: μ; ``rms``: sign(μ_j)·(mean_i |g_ij|^p)^{1/p}, p = inf the max; ``devarg``: the signed
    max-magnitude entry), with the same tie-breaks where μ_j = 0. ``sums`` must hold Σ|g|^p for
    finite p (``p_values=(p,)``) and the devarg max for devarg, p = inf or tie_break="argmax".

    Args:
        sums: the streaming sums. rule: ``"gd"``, ``"rms"`` or ``"devarg"``. p: the rms exponent.
        tie_break: ``"argmax"``, ``"random"`` or anything else for 0, where μ_j = 0.
        generator: for ``"random"`` ties.

    Returns:
        (dim,) float64.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> s = example_grad_sums_for(model, ("weight",), (torch.Size([1, 2]),), torch.nn.MSELoss(), X, Y,
        ...                           torch.zeros(2, dtype=torch.float64), p_values=(2.0,))
        >>> aggregate_from_sums(s, "gd").tolist(), aggregate_from_sums(s, "rms", tie_break="zero").tolist()
        ([-1.0, 1.0], [-1.4142135623730951, 1.4142135623730951])
    """
    mu = sums.sum / sums.n
    if rule == "gd":
        return mu
    if rule == "devarg":
        if sums.signed_max is None:
            raise ValueError("devarg needs sums computed with devarg=True")
        return sums.signed_max.clone()
    if rule != "rms":
        raise ValueError(f"unknown aggregation rule {rule!r}")
    if math.isinf(p):
        if sums.absmax is None:
            raise ValueError("p = inf needs sums computed with devarg=True")
        mag = sums.absmax
    else:
        if float(p) not in sums.sum_pow:
            raise ValueError(f"sums lack Σ|g|^{p}: compute them with p_values=({p},)")
        mag = (sums.sum_pow[float(p)] / sums.n).pow(1.0 / p)
    sign = torch.sign(mu)
    tie = (mu == 0) & (mag != 0)   # a tie where every g_ij = 0 aggregates to 0 whatever its sign
    if bool(tie.any()):
        if tie_break == "argmax":
            if sums.signed_max is None:
                raise ValueError("tie_break='argmax' needs sums computed with devarg=True")
            fill = torch.sign(sums.signed_max)
        elif tie_break == "random":
            gen = generator or torch.Generator().manual_seed(0)
            fill = torch.randint(0, 2, mu.shape, generator=gen).to(mu) * 2 - 1
        else:
            fill = torch.zeros_like(mu)
        sign = torch.where(tie, fill, sign)
    return sign * mag


def _live_ties(sums: ExampleGradSums, p: float) -> torch.Tensor:
    """Coordinates with μ_j = 0 exactly but some g_ij ≠ 0 (only these need the devarg tie-break;
    a coordinate whose per-example gradients are all zero, e.g. a dead ReLU unit's, aggregates to 0)."""
    tie = sums.sum == 0
    mag = sums.sum_pow.get(float(p)) if not math.isinf(p) else sums.absmax
    return tie if mag is None else tie & (mag != 0)


def fast_aggregate(module: nn.Module, names: tuple[str, ...], shapes: tuple[torch.Size, ...],
                   loss_fn: Callable[[torch.Tensor, Any], torch.Tensor], X: torch.Tensor, Y: Any,
                   theta: torch.Tensor, rule: str, *, p: float = 2.0, tie_break: str = "argmax",
                   generator: torch.Generator | None = None, chunk_size: int | None = None
                   ) -> torch.Tensor | None:
    """:func:`aggregate_from_sums` straight from a module and data (None when ineligible). The
    elementwise devarg max is only computed where the rule needs it: devarg, p = inf, or an exact
    tie μ_j = 0 under ``tie_break="argmax"`` (then a second pass adds it).

    Args:
        module, names, shapes, loss_fn, X, Y, theta, chunk_size: see :func:`example_grad_sums_for`.
        rule, p, tie_break, generator: see :func:`aggregate_from_sums`.

    Returns:
        (dim,) float64, or None (not eligible).

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> fast_aggregate(model, ("weight",), (torch.Size([1, 2]),), torch.nn.MSELoss(), X, Y,
        ...                torch.zeros(2, dtype=torch.float64), "devarg").tolist()
        [-2.0, 2.0]
    """
    p = float(p)
    need_max = rule == "devarg" or math.isinf(p)
    pv = () if (rule != "rms" or math.isinf(p)) else (p,)
    sums = example_grad_sums_for(module, names, shapes, loss_fn, X, Y, theta, p_values=pv, devarg=need_max,
                                 chunk_size=chunk_size, moments=False)
    if sums is None:
        return None
    if rule == "rms" and tie_break == "argmax" and sums.signed_max is None and bool(_live_ties(sums, p).any()):
        sums = example_grad_sums_for(module, names, shapes, loss_fn, X, Y, theta, p_values=pv, devarg=True,
                                     chunk_size=chunk_size, moments=False)
        if sums is None:
            return None
    return aggregate_from_sums(sums, rule, p=p, tie_break=tie_break, generator=generator)
