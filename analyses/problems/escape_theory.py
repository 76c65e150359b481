"""Deep linear nets with whitened inputs, in closed form: the pieces the escape study's instances
(:mod:`analyses.problems.escape_instances`) are built from.

Setting (THEORY.md §2, restated for the **mean** convention the study uses). Data X (m, d) with
XᵀX = m·I exactly (a seeded random orthonormal frame × √m), targets Y (m, d); weights
W_1 … W_{H+1} (``nn.Linear(d_{k−1}, d_k, bias=False).weight`` layout), product P = W_{H+1}⋯W_1 and

    L(W) = ½ · mean_i ‖P x_i − y_i‖² = ½‖P − M̂‖²_F + c,    M̂ = YᵀX/m,  c = ½(‖Y‖²_F/m − ‖M̂‖²_F),

so the gradient of L with respect to P is exactly P − M̂ (no data needed) and, with
M̂ = Σ_i ŝ_i û_i v̂_iᵀ, the critical values are L(S) = ½(‖Y‖²_F/m − Σ_{i∈S} ŝ_i²) (THEORY's λ_i/m
= ŝ_i²). The saddle-to-saddle sequence of a small initialisation visits L_0 = L(∅) (W ≈ 0),
L_1 = L({1}), L_2 = L({1, 2}), … (Saxe, McClelland & Ganguli 2014).

Escape along one mode j (THEORY.md §7). With every one of the N layers of a balanced path carrying
the component w (p = w^N the mode's strength, its loss ½(ŝ_j − p)²), gradient descent at step
size η follows dw/dt = η (ŝ_j − w^N) w^{N−1}:

- N = 2 (a strict saddle, Hessian eigenvalue −ŝ_j along the unit direction whose component is
  ε = √2·w): the logistic p(t) = ŝ/(1 + (ŝ/p_0 − 1)e^{−2ηŝt}) reaches the mode's halfway loss
  ¼ŝ² (p* = ŝ(1 − 1/√2)) after ln(δ/ε)/(ηŝ) steps with δ = √(2(√2 − 1)ŝ), for ε ≪ δ; per discrete
  step the component grows by (1 + ηŝ), so :func:`strict_escape_steps` uses ln(δ/ε)/ln(1 + ημ);
- N ≥ 3 (a non-strict saddle of order N): :func:`order_escape_steps` integrates the same ODE from
  w_0 to p* (near 0 it blows up at 1/((N − 2)·η·ŝ·w_0^{N−2})).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: the target of every main cell: halfway (in loss) from the stall's critical value to the next
#: critical value of the saddle-to-saddle sequence
TARGET_FRACTION = 0.5


def random_orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the signs of R's diagonal fixed).

    Args:
        n: the size.
        g: the random generator.

    Returns:
        (n, n) float64 with QᵀQ = I.

    >>> Q = random_orthogonal(3, torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(Q.T @ Q, torch.eye(3, dtype=torch.float64)))
    True
    """
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def whitened_inputs(m: int, d: int, g: torch.Generator) -> torch.Tensor:
    """Inputs with XᵀX = m·I exactly.

    Args:
        m: examples (≥ d).
        d: input dimension.
        g: the random generator.

    Returns:
        X, (m, d) float64.

    >>> X = whitened_inputs(8, 3, torch.Generator().manual_seed(1))
    >>> bool(torch.allclose(X.T @ X, 8 * torch.eye(3, dtype=torch.float64)))
    True
    """
    q, _ = torch.linalg.qr(torch.randn(m, d, generator=g, dtype=torch.float64))
    return math.sqrt(m) * q


def product(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """P = W_{H+1} ⋯ W_1.

    Args:
        weights: [W_1, …, W_{H+1}].

    Returns:
        P, (d_out, d_in).

    >>> product([torch.eye(2) * 2, torch.eye(2) * 3])[0, 0].item()
    6.0
    """
    P = weights[0]
    for w in weights[1:]:
        P = w @ P
    return P


def layer_grads(weights: Sequence[torch.Tensor], Mh: torch.Tensor) -> list[torch.Tensor]:
    """∂L/∂W_k for L = ½‖P − M̂‖² (whitened inputs, mean convention): (W_{H+1}⋯W_{k+1})ᵀ(P − M̂)(W_{k−1}⋯W_1)ᵀ.

    Args:
        weights: [W_1, …, W_{H+1}].
        Mh: M̂ (d_out, d_in).

    Returns:
        The gradients, one per layer, in the layers' shapes.

    >>> W = [torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)]
    >>> [g.item() for g in layer_grads(W, torch.tensor([[3.0]], dtype=torch.float64))]
    [-2.0, -2.0]
    """
    R = product(weights) - Mh
    out = []
    for k in range(len(weights)):
        A = torch.eye(Mh.shape[0], dtype=Mh.dtype)
        for w in reversed(weights[k + 1:]):
            A = A @ w
        B = torch.eye(Mh.shape[1], dtype=Mh.dtype)
        for w in weights[:k]:
            B = w @ B
        out.append(A.T @ R @ B.T)
    return out


def flatten(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """[W_1, …] → flat vector, W_1 first, each row-major (``nn.Sequential`` of ``nn.Linear``'s order).

    Args:
        weights: the matrices.

    Returns:
        (dim,) float64.

    >>> flatten([torch.zeros(2, 3), torch.ones(1, 2)]).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    """
    return torch.cat([w.reshape(-1).to(torch.float64) for w in weights])


def unflatten(theta: torch.Tensor, dims: Sequence[int]) -> list[torch.Tensor]:
    """The inverse of :func:`flatten` for layer widths ``dims`` = [d_0, d_1, …, d_{H+1}].

    Args:
        theta: (dim,).
        dims: the layer widths.

    Returns:
        [W_1, …, W_{H+1}], W_k of shape (d_k, d_{k−1}).

    >>> [tuple(w.shape) for w in unflatten(torch.arange(8.0), [3, 2, 1])]
    [(2, 3), (1, 2)]
    """
    out, i = [], 0
    for a, b in zip(dims[:-1], dims[1:]):
        out.append(theta[i:i + a * b].reshape(b, a))
        i += a * b
    if i != theta.numel():
        raise ValueError(f"theta has {theta.numel()} entries, the widths {list(dims)} need {i}")
    return out


def closed_loss(theta: torch.Tensor, dims: Sequence[int], Mh: torch.Tensor, const: float) -> torch.Tensor:
    """L(θ) = ½‖P(θ) − M̂‖² + c (differentiable in θ).

    Args:
        theta: flat weights (dim,).
        dims: the layer widths.
        Mh: M̂.
        const: c = ½(‖Y‖²/m − ‖M̂‖²).

    Returns:
        A 0-d tensor.

    >>> th = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> closed_loss(th, [1, 1, 1], torch.tensor([[3.0]], dtype=torch.float64), 0.5).item()
    1.0
    """
    R = product(unflatten(theta, dims)) - Mh
    return 0.5 * (R * R).sum() + const


def dense_hessian(theta: torch.Tensor, dims: Sequence[int], Mh: torch.Tensor) -> torch.Tensor:
    """The Hessian of :func:`closed_loss` at θ (torch.func, exact to round-off).

    Args:
        theta: (dim,).
        dims: the layer widths.
        Mh: M̂.

    Returns:
        (dim, dim), symmetrised.

    >>> H = dense_hessian(torch.zeros(2, dtype=torch.float64), [1, 1, 1], torch.tensor([[3.0]], dtype=torch.float64))
    >>> torch.linalg.eigvalsh(H).tolist()      # W = 0, H = 1: ±ŝ
    [-3.0, 3.0]
    """
    H = torch.func.hessian(lambda t: closed_loss(t, dims, Mh, 0.0))(theta.to(torch.float64))
    return 0.5 * (H + H.T)


def balanced_point(weights: Sequence[torch.Tensor], U: torch.Tensor, V: torch.Tensor, s: torch.Tensor,
                   rank: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The exact critical point of rank ``rank`` ∈ {0, 1} nearest in spirit to ``weights``: 0 for rank
    0; for rank 1 the balanced point W_k* = w·a_k a_{k−1}ᵀ (a_0 = v̂_1, a_k the direction of
    W_k a_{k−1}, W_{H+1}* = w·û_1 a_Hᵀ, w = ŝ_1^{1/(H+1)}): its product is ŝ_1 û_1 v̂_1ᵀ = the
    Baldi–Hornik / Kawaguchi point S = {1}, and it follows the hidden directions the trajectory uses.

    Args:
        weights: the trajectory's point [W_1, …, W_{H+1}].
        U, V: M̂'s singular vectors (columns).
        s: M̂'s singular values (descending).
        rank: 0 or 1.

    Returns:
        ``(point, hidden)``: the critical point's weights, and the unit hidden directions a_1 … a_H
        (empty for rank 0).

    >>> W = [torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([[2.0], [0.0]], dtype=torch.float64)]
    >>> P, a = balanced_point(W, torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64),
    ...                       torch.tensor([4.0, 1.0], dtype=torch.float64), 1)
    >>> product(P).tolist()
    [[4.0, 0.0], [0.0, 0.0]]
    """
    if rank == 0:
        return [torch.zeros_like(w) for w in weights], []
    if rank != 1:
        raise ValueError(f"rank must be 0 or 1, got {rank}")
    N = len(weights)
    w = float(s[0]) ** (1.0 / N)
    prev, hidden, out = V[:, 0], [], []
    for k in range(N - 1):
        a = weights[k] @ prev
        n = float(torch.linalg.vector_norm(a))
        if n == 0.0:
            raise ValueError("the trajectory's hidden layer carries no mode-1 signal")
        a = a / n
        out.append(w * torch.outer(a, prev))
        hidden.append(a)
        prev = a
    out.append(w * torch.outer(U[:, 0], prev))
    return out, hidden


def free_path(weights: Sequence[torch.Tensor], hidden: Sequence[torch.Tensor], u: torch.Tensor,
              v: torch.Tensor) -> list[torch.Tensor]:
    """The parts of ``weights`` on the free path of a mode (û, v̂) past a rank-0/1 stall: W_1's
    column along v̂, W_{H+1}'s row along û and the middle layers, each restricted to the hidden
    directions orthogonal to the stall's ``hidden`` directions (all of them at W = 0).

    Args:
        weights: [W_1, …, W_{H+1}] (a displacement from the stall point, or the point itself:
            the stall's weights have no component on the free path).
        hidden: the stall's unit hidden directions a_1 … a_H (empty at W = 0).
        u, v: the mode's output and input singular vectors.

    Returns:
        [x = F_1 W_1 v̂, F_2 W_2 F_1, …, z = F_H W_{H+1}ᵀ û] with F_k = I − a_k a_kᵀ (I at W = 0).

    >>> W = [torch.ones(2, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)]
    >>> [t.tolist() for t in free_path(W, [], torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))]
    [[1.0, 1.0], [1.0, 1.0]]
    """
    N = len(weights)

    def F(k: int) -> torch.Tensor:
        n = weights[k].shape[0]
        I = torch.eye(n, dtype=weights[k].dtype)
        return I - torch.outer(hidden[k], hidden[k]) if hidden else I

    parts = [F(0) @ weights[0] @ v]
    for k in range(1, N - 1):
        parts.append(F(k) @ weights[k] @ F(k - 1))
    parts.append(F(N - 2) @ weights[N - 1].T @ u)
    return parts


def strict_delta(s: float) -> float:
    """δ of the strict-saddle escape time: the distance along the escape direction at which the
    logistic (balanced two-layer) model of the mode reaches its halfway loss, √(2(√2 − 1)·ŝ).

    Args:
        s: the mode's singular value ŝ_j.

    Returns:
        δ (parameter units).

    >>> round(strict_delta(1.0), 6)
    0.91018
    """
    return math.sqrt(2.0 * (math.sqrt(2.0) - 1.0) * s)


def strict_escape_steps(eps: float, mu: float, lr: float, delta: float) -> float:
    """Steps for gradient descent to carry the component along a strict saddle's escape direction
    from ε to δ: ln(δ/ε)/ln(1 + lr·μ) (THEORY.md §7, discrete steps), μ = |λ_min|.

    Args:
        eps: the start's component along the escape eigenspace (parameter units, > 0).
        mu: |λ_min| (curvature units, > 0).
        lr: the step size.
        delta: the distance reached (:func:`strict_delta`).

    Returns:
        The number of steps (a float ≥ 0).

    >>> round(strict_escape_steps(1e-4, 2.0, 0.01, 1.0), 3)      # ≈ ln(1e4)/(0.01·2) = 460.5
    465.107
    """
    if not (eps > 0 and mu > 0 and lr > 0):
        raise ValueError(f"need eps, mu, lr > 0, got {eps}, {mu}, {lr}")
    return max(0.0, math.log(delta / eps) / math.log1p(lr * mu))


def order_escape_steps(w0: float, s: float, lr: float, order: int, fraction: float = TARGET_FRACTION) -> float:
    """Steps for the balanced order-N mode model dw/dt = lr·(ŝ − w^N)·w^{N−1} to go from w_0 to the
    mode's loss fraction ``fraction`` of ½ŝ² removed (p* = ŝ(1 − √(1 − fraction)); halfway: 1 − 1/√2).

    Args:
        w0: each layer's component on the escape path at the start (> 0).
        s: the mode's singular value ŝ_j.
        lr: the step size.
        order: N ≥ 2, the number of layers of the path.
        fraction: the share of the mode's loss to remove.

    Returns:
        The time in steps (continuous-time integral; near 0 it tends to
        1/((N − 2)·lr·ŝ·w_0^{N−2}) for N ≥ 3).

    >>> t = order_escape_steps(1e-3, 1.0, 0.1, 3)
    >>> abs(t - 1 / (0.1 * 1e-3)) / t < 0.01       # the blow-up time 1/(lr·ŝ·w0) dominates
    True
    """
    from scipy.integrate import quad

    if not (w0 > 0 and s > 0 and lr > 0) or order < 2:
        raise ValueError(f"need w0, s, lr > 0 and order >= 2, got {w0}, {s}, {lr}, {order}")
    p_star = s * (1.0 - math.sqrt(1.0 - fraction))
    w_star = p_star ** (1.0 / order)
    if w0 >= w_star:
        return 0.0
    f = lambda w: 1.0 / (lr * (s - w ** order) * w ** (order - 1))  # noqa: E731
    # integrate in log w: the integrand in w is stiff near w0 when N ≥ 3
    val, _ = quad(lambda x: f(math.exp(x)) * math.exp(x), math.log(w0), math.log(w_star), limit=200)
    return float(val)


def gd_to_level(weights: Sequence[torch.Tensor], Mh: torch.Tensor, lr: float, const: float, level: float,
                max_steps: int) -> tuple[list[torch.Tensor], int]:
    """Plain gradient descent on ½‖P − M̂‖² + c from ``weights`` until the loss first falls to
    ``level`` (the small-initialisation trajectory of an instance; deterministic).

    Args:
        weights: the start [W_1, …].
        Mh: M̂.
        lr: the step size.
        const: c.
        level: stop at the first step whose loss is ≤ this.
        max_steps: give up after this many steps.

    Returns:
        ``(weights at that step, the step)``.

    Raises:
        ValueError: the level was not reached within ``max_steps``.

    >>> W = [torch.tensor([[0.1]], dtype=torch.float64), torch.tensor([[0.1]], dtype=torch.float64)]
    >>> _, t = gd_to_level(W, torch.tensor([[1.0]], dtype=torch.float64), 0.1, 0.0, 0.1, 1000)
    >>> 10 < t < 100
    True
    """
    W = [w.clone() for w in weights]
    for t in range(max_steps + 1):
        R = product(W) - Mh
        if float(0.5 * (R * R).sum()) + const <= level:
            return W, t
        W = [w - lr * g for w, g in zip(W, layer_grads(W, Mh))]
    raise ValueError(f"the trajectory did not reach the loss {level:.6g} within {max_steps} steps")


def first_flat_window(weights: Sequence[torch.Tensor], Mh: torch.Tensor, lr: float, const: float, target: float,
                      floor: float, max_steps: int, window: int = 20, rel_tol: float = 1e-3) -> tuple[int | None, int | None]:
    """Plain gradient descent from ``weights`` until the loss reaches ``target``: the first step at
    which the last ``window`` steps lowered the loss by at most ``rel_tol``·(L_{t−window} − floor)
    (the stall detector's flatness, :class:`landscape.monitor.StallDetector`), and the step at which
    the target was reached.

    Args:
        weights: the start.
        Mh: M̂.
        lr: the step size.
        const: c.
        target: the loss to reach.
        floor: the loss's floor (the global value).
        max_steps: give up after this many steps.
        window: the detector's window.
        rel_tol: its relative flatness.

    Returns:
        ``(first flat step or None, steps to the target or None)``.

    >>> W = [torch.tensor([[1e-6]], dtype=torch.float64), torch.tensor([[1e-6]], dtype=torch.float64)]
    >>> first_flat_window(W, torch.tensor([[1.0]], dtype=torch.float64), 0.1, 0.0, 0.25, 0.0, 10 ** 4)
    (20, 141)
    """
    W = [w.clone() for w in weights]
    losses: list[float] = []
    flat = None
    for t in range(max_steps + 1):
        R = product(W) - Mh
        L = float(0.5 * (R * R).sum()) + const
        losses.append(L)
        if flat is None and t >= window and losses[t - window] - L <= rel_tol * (losses[t - window] - floor):
            flat = t
        if L <= target:
            return flat, t
        W = [w - lr * g for w, g in zip(W, layer_grads(W, Mh))]
    return flat, None
