"""Descent through products of weights across layers: the layer-product probe.

A deep network whose weights are small in some subspace (a deep linear net at W = 0 or at a
plateau after learning its top modes; a tanh net at small initialisation, tanh ≈ identity near 0)
can descend only through the product of all its layers: along θ + t·A the end-to-end map changes by
t^L·A_L⋯A_1, so the loss falls at order L (THEORY.md §2: L(tA) = L(0) − t^{H+1}⟨XᵀY, A_{H+1}⋯A_1⟩ + …)
while every line along a single eigenvector or a random combination of the near-null eigenvectors
— most of a deep net's spectrum is in the zero band — rises at 4th order along its many symmetry
(gauge) directions or stays below the probe's resolution.

:func:`layer_product_directions` builds the straight-line directions that descend this way for a
chain of ``nn.Linear`` layers of an objective built from a module (``Objective.from_module`` /
``from_batches``): with G = ∂L/∂P, the gradient of the loss with respect to the end-to-end linear
map P = W_L⋯W_1 (Σ over examples of δ_i x_iᵀ, δ_i the loss's gradient at the last Linear's output
and x_i the first Linear's input: exact for a linear chain, the linearisation for tanh-like
activations at small weights), and (u, v) its top singular pair, the balanced rank-one direction is

    A_1 = h_1 vᵀ,  A_k = h_k h_{k−1}ᵀ (1 < k < L),  A_L = −u h_{L−1}ᵀ,   A_L⋯A_1 = −u vᵀ·Π|h_k|²,

so ⟨G, A_L⋯A_1⟩ = −σ_1(G) < 0: the loss falls at order L (for odd L on one side of the line). The
hidden unit vectors h_k start as the least-used directions of hidden layer k — the bottom eigenvector
of C_k/tr C_k + W_{k+1}ᵀW_{k+1}/‖W_{k+1}‖²_F (C_k the second moment of the activations entering
Linear k + 1) — so that no lower-order term through the layers already in use (the learnt modes, the
constant activations tanh(b) of a small-weight tanh net) enters first; then a few sweeps of
alternating minimisation of the direction's own curvature dᵀHd over each h_k (d is linear in each
h_k: an exact small eigenproblem per layer) handle points whose hidden directions are not balanced
between layers (a deep linear plateau after two modes: dᵀHd from 0.17 to 8e-6). One direction per
singular pair (up to :data:`landscape.defaults.LAYER_PRODUCT_PAIRS`).

Limits (documented, tested where stated): only ``nn.Linear`` weights are used, in module order, and
only when they form a chain (out_features of one = in_features of the next) whose weights are all
parameters of the objective; convolutions, attention, residual connections and normalisation
layers are not modelled (the direction is still a valid straight line, it only may not descend);
activations are taken as ≈ identity (true near 0 for tanh, not for ReLU: a dead or saturated unit
breaks the chain); biases are not moved; an objective without a module (``from_function``) has no
layers. The directions are *candidates*: a descent counts only as the loss itself shows it on the
probe's ladder (:func:`layer_product_probe`), so a wrong model of the network costs a miss, never a
wrong kind.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..defaults import LAYER_PRODUCT_MAX_HIDDEN, LAYER_PRODUCT_PAIRS, LAYER_PRODUCT_SWEEPS
from ..errors import NonFiniteError
from ..point import PointState
from ..probe import ProbeResult, higher_order_probe
from .degenerate import batch_loss_fn, loss_or_nan, tag_part

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


@dataclass(frozen=True)
class LinearLayer:
    """One ``nn.Linear`` of a chain: its module path, the slice of its weight in θ and the weight's shape.

    Attributes:
        path: the module's name in ``named_modules`` ("" for the root). weight: the weight's slice of
            the flat parameter vector. shape: (out_features, in_features).

    Example:
        >>> LinearLayer("0", slice(0, 6), (2, 3)).shape
        (2, 3)
    """

    path: str
    weight: slice
    shape: tuple[int, int]


def linear_chain(obj: "Objective") -> list[LinearLayer] | None:
    """The objective's ``nn.Linear`` layers in module order when they form a chain of ≥ 2, else None.

    Args:
        obj: the objective (its ``module``; None for ``from_function``).

    Returns:
        The layers, or None: no module, fewer than two Linear layers, a weight that is not a
        parameter of the objective, or consecutive layers whose widths do not match.

    Example:
        >>> import torch, landscape as ls
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).double()
        >>> obj = ls.Objective.from_module(net, torch.nn.MSELoss(), (torch.ones(4, 3, dtype=torch.float64),
        ...                                                          torch.zeros(4, 1, dtype=torch.float64)))
        >>> [(l.path, l.shape) for l in linear_chain(obj)]
        [('0', (2, 3)), ('2', (1, 2))]
    """
    module = getattr(obj, "module", None)
    if module is None:
        return None
    slices = obj.spec.slices
    layers = []
    for path, m in module.named_modules():
        if isinstance(m, nn.Linear):
            name = f"{path}.weight" if path else "weight"
            if name not in slices:
                return None
            layers.append(LinearLayer(path, slices[name], (m.out_features, m.in_features)))
    if len(layers) < 2 or any(a.shape[0] != b.shape[1] for a, b in zip(layers[:-1], layers[1:])):
        return None
    return layers


def _chain_statistics(obj: "Objective", theta: torch.Tensor, layers: list[LinearLayer]
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """G = Σ_i δ_i x_iᵀ (d_L, d_0) and the activations' second moments C_k (d_k, d_k), k = 1..L−1,
    from one pass over the data with forward hooks on the Linear layers (removed afterwards)."""
    module = obj.module
    by_path = dict(module.named_modules())
    L = len(layers)
    record: dict[int, list] = {k: [] for k in range(L)}
    handles = []
    for k, lay in enumerate(layers):
        def hook(_m: Any, inputs: Any, output: torch.Tensor, k: int = k) -> None:
            record[k].append((inputs[0], output))
        handles.append(by_path[lay.path].register_forward_hook(hook))
    dt, dev = obj.dtype, obj.device
    G = torch.zeros(layers[-1].shape[0], layers[0].shape[1], dtype=dt, device=dev)
    C = [torch.zeros(lay.shape[0], lay.shape[0], dtype=dt, device=dev) for lay in layers[:-1]]
    n_rows = 0
    try:
        params = obj.to_module_params(theta.detach())
        for _, batch, _, w in obj.iter_indexed_batches():
            for k in record:
                record[k].clear()
            with torch.enable_grad():
                params_g = {name: p.detach().requires_grad_(True) for name, p in params.items()}
                term = w * obj.batch_loss_at(params_g, batch)
                if len(record[0]) != 1 or len(record[L - 1]) != 1:
                    raise ValueError("a Linear layer of the chain is called more or less than once per batch")
                x0, out = record[0][0][0], record[L - 1][0][1]
                delta = torch.autograd.grad(term, out, allow_unused=True)[0]
            if delta is None:
                raise ValueError("the loss does not depend on the last Linear layer's output")
            G += delta.detach().reshape(-1, G.shape[0]).T @ x0.detach().reshape(-1, G.shape[1])
            for k in range(1, L):
                a = record[k][0][0].detach().reshape(-1, C[k - 1].shape[0])
                C[k - 1] += a.T @ a
            n_rows += x0.reshape(-1, G.shape[1]).shape[0]
    finally:
        for h in handles:
            h.remove()
    return G, [c / max(n_rows, 1) for c in C]


def _least_used(C: torch.Tensor, W_next: torch.Tensor) -> torch.Tensor:
    """The unit vector h of a hidden layer minimising hᵀ(C/tr C + W_nextᵀW_next/‖W_next‖²_F)h."""
    M = C / C.trace().clamp_min(1e-300) + W_next.T @ W_next / (W_next * W_next).sum().clamp_min(1e-300)
    return torch.linalg.eigh(0.5 * (M + M.T))[1][:, 0]


def _direction(theta: torch.Tensor, layers: list[LinearLayer], vecs: list[torch.Tensor]) -> torch.Tensor:
    """θ-space vector with A_k = vecs[k+1] vecs[k]ᵀ in Linear k's weight (zero elsewhere)."""
    d = torch.zeros_like(theta)
    for k, lay in enumerate(layers):
        d[lay.weight] = torch.outer(vecs[k + 1], vecs[k]).reshape(-1)
    return d


def _flatten_curvature(theta: torch.Tensor, layers: list[LinearLayer], vecs: list[torch.Tensor],
                       hess: Callable[[torch.Tensor], torch.Tensor], sweeps: int) -> list[torch.Tensor]:
    """Alternating minimisation of dᵀHd over the hidden unit vectors h_1..h_{L−1} (each an exact
    Rayleigh minimisation: d is linear in h_k, ‖d‖ fixed), so that the straight line's second-order
    rise through the layers already in use — a point whose hidden directions are not balanced between
    consecutive layers (no h is both outside W_k's range and in W_{k+1}'s kernel) — is as small as the
    product structure allows. Costs ``sweeps``·Σ_k d_k Hessian-vector products."""
    vecs = list(vecs)
    for _ in range(sweeps):
        for k in range(1, len(layers)):
            basis = torch.eye(vecs[k].numel(), dtype=theta.dtype, device=theta.device)
            M = torch.stack([_direction(theta, layers, vecs[:k] + [e] + vecs[k + 1:]) for e in basis], 1)
            Q = M.T @ hess(M)
            vecs[k] = torch.linalg.eigh(0.5 * (Q + Q.T))[1][:, 0]
    return vecs


def layer_product_directions(obj: "Objective", theta: torch.Tensor, layers: list[LinearLayer] | None = None,
                             n_pairs: int = LAYER_PRODUCT_PAIRS,
                             hess: Callable[[torch.Tensor], torch.Tensor] | None = None,
                             sweeps: int = LAYER_PRODUCT_SWEEPS) -> torch.Tensor | None:
    """Unit directions (k, dim) along which a chain of Linear layers descends at order L (module docstring).

    Args:
        obj: an objective with a module. theta: the point (dim,).
        layers: the chain (default :func:`linear_chain`). n_pairs: the most singular pairs of G used.
        hess: ``(dim, m) -> H(θ) @ M`` (the point's Hessian): when given and the hidden widths add up
            to at most :data:`landscape.defaults.LAYER_PRODUCT_MAX_HIDDEN`, the hidden vectors are then
            chosen by ``sweeps`` sweeps of alternating minimisation of the direction's curvature dᵀHd.
        sweeps: the sweeps of that minimisation.

    Returns:
        (k, dim) unit rows, one per singular pair of G with σ > 0 (weights of the chain only), or None
        when the objective has no Linear chain or G = 0.

    Example (a deep linear net 2-2-2-2 at W = 0 descends at order 3 along it):
        >>> import torch, landscape as ls
        >>> net = torch.nn.Sequential(*[torch.nn.Linear(2, 2, bias=False) for _ in range(3)]).double()
        >>> X = torch.eye(2, dtype=torch.float64); Y = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> obj = ls.Objective.from_module(net, lambda o, y: 0.5 * ((o - y) ** 2).sum(1).mean(), (X, Y))
        >>> d = layer_product_directions(obj, torch.zeros(obj.dim, dtype=torch.float64))[0]
        >>> bool(obj.loss(0.5 * d) < obj.loss(torch.zeros_like(d)) < obj.loss(-0.5 * d))   # odd order: one side
        True
    """
    layers = linear_chain(obj) if layers is None else layers
    if not layers:
        return None
    try:
        G, C = _chain_statistics(obj, theta, layers)
    except (ValueError, RuntimeError, NonFiniteError):
        return None
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    keep = S > S.max() * 1e3 * torch.finfo(S.dtype).eps * max(G.shape) if S.numel() else S > 0
    if not bool(keep.any()):
        return None
    Ws = [theta[lay.weight].view(lay.shape) for lay in layers]
    hs = [_least_used(C[k], Ws[k + 1]) for k in range(len(layers) - 1)]
    optimise = hess is not None and sum(lay.shape[0] for lay in layers[:-1]) <= LAYER_PRODUCT_MAX_HIDDEN
    rows = []
    for j in torch.nonzero(keep).flatten().tolist()[:n_pairs]:
        vecs = [Vh[j]] + hs + [-U[:, j]]  # h_0 = v, h_L = −u
        if optimise:
            try:
                vecs = _flatten_curvature(theta, layers, vecs, hess, sweeps)
            except NonFiniteError:
                pass
        d = _direction(theta, layers, vecs)
        rows.append(d / torch.linalg.vector_norm(d))
    return torch.stack(rows)


def layer_product_probe(state: PointState, settings: Any, band_fn: Callable[[torch.Tensor], torch.Tensor],
                        notes: list[str]) -> ProbeResult | None:
    """The probe's ladder along :func:`layer_product_directions` at ``state``.

    The loss change is taken with the first-order term removed and the second-order term *kept*
    (a positive curvature along the direction counts against descent); a change counts beyond the
    probe's thresholds, the quadratic one per direction (``band_fn``: the uncertainty of the
    curvature along each direction, :func:`landscape.classify.newton.direction_band`). A descent
    counts only when it persists at every larger radius of the ladder up to the largest: an
    artefact of the distance to the critical point (a cubic term of order distance·t³) is overtaken
    by the true higher-order rise before the largest radius, a descent through the layers' product
    is not.

    Args:
        state: the point. settings: the classification's :class:`~landscape.classify.degenerate.ProbeSettings`.
        band_fn: (k, dim) directions -> (k,) curvature uncertainties along them (curvature units).
        notes: receives what was found.

    Returns:
        The probe (``parts["layer_products"]``), or None when the objective has no Linear chain.

    Example: see tests/test_classify_strict.py (a 5-3-3-3-5 deep linear plateau, a small tanh plateau).
    """
    obj, theta = state.obj, state.theta
    layers = linear_chain(obj)
    hess = ((lambda M: state.hessian @ M) if state.hessian is not None
            else (lambda M: state.hessian_operator.matmat(M)))
    D = layer_product_directions(obj, theta, layers, hess=hess)
    if D is None:
        return None
    kw = dict(grad=state.grad, loss0=state.loss, batch_loss=batch_loss_fn(obj, theta), **settings.ladder())
    kw["quad_threshold"] = band_fn(D).to(torch.float64).cpu()
    pr = higher_order_probe(loss_or_nan(obj), theta, D, **kw)
    if pr.descent and not _persists(obj, theta, state, pr, kw, D):
        pr = dataclasses.replace(pr, descent=False, descent_radius=None, descent_order=None, descent_delta=None,
                                 descent_direction=None, n_unresolved=pr.n_unresolved + 1)
    if pr.descent:
        notes.append(f"descent through the product of the {len(layers)} Linear layers (balanced rank-one direction "
                     f"of the end-to-end gradient's top singular pair): order ≈ {_fmt(pr.descent_order)}, by "
                     f"{-pr.descent_delta:.3g} at radius {pr.descent_radius:.3g}, persisting to the largest radius")
    return tag_part(pr, "layer_products", n_layers=len(layers))


def _persists(obj: "Objective", theta: torch.Tensor, state: PointState, pr: ProbeResult, kw: dict,
              D: torch.Tensor) -> bool:
    """Δ < −threshold at the descent radius and every larger radius of the ladder, along the descent direction
    (with that direction's own quadratic threshold)."""
    d = pr.descent_direction
    row = int((D.to(d) @ d).abs().argmax())
    radii = [t for t in pr.radii if t >= pr.descent_radius]
    f = loss_or_nan(obj)
    gd = float(torch.dot(state.grad, d))
    eps = torch.finfo(theta.dtype).eps
    q = float(kw["quad_threshold"][row])
    for t in radii:
        v = f(theta + t * d)
        delta = v - state.loss - t * gd
        thr = max(kw["rel_threshold"] * eps * max(abs(v), abs(state.loss)), kw["abs_threshold"], q * t * t)
        if not delta < -thr:
            return False
    return True


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"
