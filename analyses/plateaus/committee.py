"""The soft committee machine's symmetric plateau (Saad & Solla, Phys. Rev. E 52, 4225, 1995).

Student f(x) = Σ_{k≤K} g(w_k·x/√N) and teacher y(x) = Σ_{n≤M} g(B_n·x/√N), g(u) = erf(u/√2),
inputs x ~ N(0, I_N). The teacher's vectors are orthonormal up to the scale √N (B Bᵀ/N = I, a
seeded random rotation). Loss per example ½(f − y)²; online SGD with step η takes one fresh
example per step, w_k ← w_k − η (f − y) g'(w_k·x/√N) x/√N, which is Saad & Solla's rule for
J_k = w_k/√N with learning rate η/N: their time α is steps/N.

Generalisation error ε_g = ½ E(f − y)², exact in the order parameters Q = WWᵀ/N, R = WBᵀ/N,
T = BBᵀ/N (for jointly Gaussian u, v: E g(u)g(v) = (2/π) arcsin(C_uv/√((1+C_uu)(1+C_vv)))):

    ε_g = (1/π) [Σ_ik asin(Q_ik/√((1+Q_ii)(1+Q_kk))) + Σ_nm asin(T_nm/√((1+T_nn)(1+T_mm)))
                 − 2 Σ_in asin(R_in/√((1+Q_ii)(1+T_nn)))].

:func:`eps_g` is that formula in torch (batched, differentiable), so ε_g is tracked with no
sampling noise and serves as an exact :class:`landscape.Objective` of the student's weights.

Symmetric fixed point (M = K, T = I): every student vector equals R·Σ_n B_n with
R = 1/√(K(2K−1)), so Q_ii = Q_ik = 1/(2K−1); there ε_g = (K/π)(π/6 − K·asin(1/(2K)))
(:func:`plateau_eps`; 0.01161 for K = 2, 0.02029 for K = 3). At small η the η → 0 dynamics are
gradient flow on ε_g(W), so this point is a critical point of ε_g.

:func:`simulate` runs many replicas (seeds × step sizes) at once, vectorised, float64, and returns
ε_g every N/``evals_per_alpha`` steps; :func:`build` gives the same instance (same teacher, same
initialisation, same example stream) as an :class:`~analyses.plateaus.core.Instance` for the plain
training loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

import landscape as ls

from .core import Instance, seeded

CASE = "committee"
SQRT2 = math.sqrt(2.0)
#: default input dimension, initial weight scale (entries N(0, s²): Q_ii ≈ s² = 0.25) and SGD step
DEFAULT_N = 500
INIT_SCALE = 0.5
DEFAULT_ETA = 0.1
#: examples drawn per generator call (the stream is the same in :func:`simulate` and :func:`build`)
CHUNK = 250


def plateau_eps(K: int) -> float:
    """Saad & Solla's small-η symmetric-plateau error (K/π)(π/6 − K·asin(1/(2K)))."""
    return (K / math.pi) * (math.pi / 6 - K * math.asin(1.0 / (2 * K)))


def symmetric_order_params(K: int) -> dict[str, float]:
    """Q = C = 1/(2K−1), R = 1/√(K(2K−1)) (T = I)."""
    return {"Q": 1.0 / (2 * K - 1), "C": 1.0 / (2 * K - 1), "R": 1.0 / math.sqrt(K * (2 * K - 1))}


def eps_g(W: torch.Tensor, B: torch.Tensor, N: int | None = None) -> torch.Tensor:
    """Exact ε_g = ½E(f − y)² for student W (…, K, N) and teacher B (…, M, N); shape (…).

    ``N``: the input dimension when W and B are given in reduced coordinates (:func:`reduce`)."""
    N = W.shape[-1] if N is None else N
    Q = W @ W.transpose(-1, -2) / N
    R = W @ B.transpose(-1, -2) / N
    T = B @ B.transpose(-1, -2) / N
    q = 1 + torch.diagonal(Q, dim1=-2, dim2=-1)
    t = 1 + torch.diagonal(T, dim1=-2, dim2=-1)
    ss = torch.asin(Q / torch.sqrt(q.unsqueeze(-1) * q.unsqueeze(-2))).sum((-1, -2))
    tt = torch.asin(T / torch.sqrt(t.unsqueeze(-1) * t.unsqueeze(-2))).sum((-1, -2))
    st = torch.asin(R / torch.sqrt(q.unsqueeze(-1) * t.unsqueeze(-2))).sum((-1, -2))
    return (ss + tt - 2 * st) / math.pi


def reduce(W: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W and B in an orthonormal basis of the span of their rows (K + M coordinates): every overlap,
    hence ε_g (with ``N`` passed), is unchanged. That span is invariant under the gradient of ε_g
    (∂ε_g/∂w_k is a combination of the w_j and B_n), so critical points found there are critical
    points of the full ε_g with the same value; the full Hessian adds, for each direction
    orthogonal to the span, one copy of a K×K block (:func:`spectrum_at` sees them all)."""
    V, _ = torch.linalg.qr(torch.cat([B, W]).T)
    return W @ V, B @ V


def order_params(W: torch.Tensor, B: torch.Tensor) -> dict[str, torch.Tensor]:
    N = W.shape[-1]
    return {"Q": W @ W.transpose(-1, -2) / N, "R": W @ B.transpose(-1, -2) / N}


def teacher(K: int, N: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """K orthonormal directions (a seeded random rotation) scaled by √N: B Bᵀ/N = I. (K, N)."""
    g = torch.Generator().manual_seed(10_000 + int(seed))
    Qm, _ = torch.linalg.qr(torch.randn(N, K, generator=g, dtype=torch.float64))
    return (math.sqrt(N) * Qm.T).to(dtype).contiguous()


def student_init(K: int, N: int, seed: int, init_scale: float = INIT_SCALE, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(20_000 + int(seed))
    return (init_scale * torch.randn(K, N, generator=g, dtype=torch.float64)).to(dtype)


def symmetric_point(B: torch.Tensor, K: int | None = None) -> torch.Tensor:
    """The symmetric fixed point: every student vector R·Σ_n B_n (K rows)."""
    K = B.shape[0] if K is None else K
    R = symmetric_order_params(B.shape[0])["R"]
    return (R * B.sum(0)).expand(K, -1).clone()


class Committee(nn.Module):
    """f(x) = Σ_k erf(w_k·x/√(2N)); one bias-free ``nn.Linear(N, K)`` (weight = W)."""

    def __init__(self, K: int, N: int) -> None:
        super().__init__()
        self.N = N
        self.hidden = nn.Linear(N, K, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(self.hidden(x) / math.sqrt(2 * self.N)).sum(-1)


def half_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out - y).pow(2).mean()


class Stream:
    """Fresh Gaussian examples, drawn ``CHUNK`` at a time from a seeded generator."""

    def __init__(self, N: int, seed: int) -> None:
        self.N, self.g, self.t0, self.X = N, torch.Generator().manual_seed(30_000 + int(seed)), None, None

    def chunk(self) -> torch.Tensor:
        return torch.randn(CHUNK, self.N, generator=self.g, dtype=torch.float64)

    def example(self, t: int) -> torch.Tensor:
        c = t // CHUNK
        if self.t0 != c:
            if self.t0 is not None and c != self.t0 + 1:
                raise ValueError("the online stream is read in order (step t after t − 1)")
            self.X, self.t0 = self.chunk(), c
        return self.X[t % CHUNK]


def build(seed: int = 0, *, K: int = 2, N: int = DEFAULT_N, eta: float = DEFAULT_ETA,
          init_scale: float = INIT_SCALE, alpha: float | None = None) -> Instance:
    """Student K = ``K`` learning a K-unit teacher by online SGD at step ``eta`` (module docstring).

    ``alpha``: run length in α = steps/N (default 40/η + 200: past the plateau's exit at N = 500,
    measured length·η ≈ 70–90)."""
    B = teacher(K, N, seed)
    W0 = student_init(K, N, seed, init_scale)

    def make() -> nn.Module:
        m = Committee(K, N).to(torch.float64)
        with torch.no_grad():
            m.hidden.weight.copy_(W0)
        return m

    model = seeded(make, seed)
    stream = Stream(N, seed)
    tgt = lambda x: torch.erf(x @ B.T / math.sqrt(2 * N)).sum(-1)  # noqa: E731

    def batch(t: int):
        x = stream.example(t).unsqueeze(0)
        return x, tgt(x)

    def probe(n: int, pseed: int = 0):
        g = torch.Generator().manual_seed(40_000 + 1000 * int(seed) + int(pseed))
        x = torch.randn(n, N, generator=g, dtype=torch.float64)
        return x, tgt(x)

    def evaluate(m: nn.Module) -> float:
        return float(eps_g(m.hidden.weight.detach(), B))

    def objective(m: nn.Module) -> ls.Objective:
        return ls.Objective.from_function(lambda th: eps_g(th.view(K, N), B), m.hidden.weight.detach().reshape(-1))

    alpha = alpha if alpha is not None else 40.0 / eta + 200.0
    th = {"plateau_eps": plateau_eps(K), **{f"sym_{k}": v for k, v in symmetric_order_params(K).items()},
          "global_min": 0.0}
    return Instance(case=CASE, seed=seed, model=model, loss_fn=half_mse, batch=batch,
                    optimiser={"name": "sgd", "lr": eta, "steps": int(alpha * N)}, theory=th, evaluate=evaluate,
                    objective=objective, probe=probe, online=True, eval_every=max(1, N // 10),
                    info={"K": K, "N": N, "B": B, "eta": eta, "init_scale": init_scale})


@dataclass
class Simulation:
    """ε_g of each replica (rows: the (seed, η) pairs in ``runs``) at α = ``alpha``."""

    K: int
    N: int
    runs: list[tuple[int, float]]
    alpha: torch.Tensor
    eps: torch.Tensor
    W: torch.Tensor
    B: torch.Tensor
    seconds: float
    cpu_seconds: float = 0.0


def simulate(K: int = 2, N: int = DEFAULT_N, etas=(DEFAULT_ETA,), seeds=(0,), *, alpha_max: float = 400.0,
             evals_per_alpha: int = 10, init_scale: float = INIT_SCALE, stop_below: float | None = None,
             stop_after: float = 20.0) -> Simulation:
    """Online SGD for every (seed, η) pair at once (same streams as :func:`build`), float64.

    Stops at ``alpha_max`` or, with ``stop_below``, ``stop_after`` α after every replica's ε_g
    has been ≤ ``stop_below``. The torch thread count is the caller's."""
    runs = [(int(s), float(e)) for s in seeds for e in etas]
    Rn = len(runs)
    B = torch.stack([teacher(K, N, s) for s, _ in runs])
    W = torch.stack([student_init(K, N, s, init_scale) for s, _ in runs])
    streams = [Stream(N, s) for s, _ in runs]
    lr = torch.tensor([e for _, e in runs], dtype=torch.float64).view(Rn, 1) / math.sqrt(N)
    every = max(1, N // evals_per_alpha)
    c_erf, c_gp, isq = 1 / math.sqrt(2 * N), math.sqrt(2 / math.pi), 1 / math.sqrt(N)
    alphas, eps = [0.0], [eps_g(W, B)]
    done_at = None
    total = int(round(alpha_max * N))
    t0, c0 = time.perf_counter(), time.process_time()
    t = 0
    while t < total:
        X = torch.stack([s.chunk() for s in streams], 1)  # (CHUNK, R, N)
        Y = torch.erf(torch.einsum("crn,rkn->crk", X, B) * c_erf).sum(-1)  # (CHUNK, R)
        for i in range(CHUNK):
            x = X[i]
            h = torch.bmm(W, x.unsqueeze(-1)).squeeze(-1) * isq  # (R, K)
            err = torch.erf(h * (1 / SQRT2)).sum(-1, keepdim=True) - Y[i].unsqueeze(-1)
            d = err * torch.exp(-0.5 * h * h) * c_gp * lr  # (R, K)
            W.baddbmm_(d.unsqueeze(2), x.unsqueeze(1), alpha=-1.0)
            t += 1
            if t % every == 0:
                alphas.append(t / N)
                e = eps_g(W, B)
                eps.append(e)
                if stop_below is not None and done_at is None and bool((e <= stop_below).all()):
                    done_at = t / N
            if t >= total:
                break
        if done_at is not None and t / N >= done_at + stop_after:
            break
    return Simulation(K=K, N=N, runs=runs, alpha=torch.tensor(alphas), eps=torch.stack(eps, 1), W=W, B=B,
                      seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)


def plateau_measure(alpha: torch.Tensor, eps: torch.Tensor, K: int, *, smooth: float = 2.0) -> dict[str, float]:
    """Read one replica's plateau off its ε_g(α) trace (theory used only to bracket the search).

    ``value``: ε_g where the trace is flattest (smallest |Δε_g| over ±``smooth`` α) among the points
    with ε* /3 < ε_g < 3ε* (ε* = :func:`plateau_eps`); ``median``: the median ε_g over the α where
    the trace is within 5 % of ``value``; ``entry``: first α with ε_g ≤ 1.25·value; ``exit``: first
    later α with ε_g ≤ value/2 (nan when not reached); ``length`` = exit − entry."""
    star = plateau_eps(K)
    a, e = alpha.tolist(), eps.tolist()
    step = a[1] - a[0]
    w = max(1, int(round(smooth / step)))
    best, at = math.inf, None
    for i in range(w, len(e) - w):
        if star / 3 < e[i] < 3 * star:
            d = abs(e[i + w] - e[i - w])
            if d < best:
                best, at = d, i
    if at is None:
        return {"value": math.nan, "median": math.nan, "entry": math.nan, "exit": math.nan, "length": math.nan,
                "at": math.nan}
    v = e[at]
    near = torch.tensor([x for x in e if abs(x - v) <= 0.05 * v])
    entry = next((a[i] for i in range(len(e)) if e[i] <= 1.25 * v), math.nan)
    exit_ = next((a[i] for i in range(len(e)) if a[i] > entry and e[i] <= 0.5 * v), math.nan)
    return {"value": v, "median": float(near.median()), "entry": entry, "exit": exit_, "length": exit_ - entry,
            "at": a[at], "slope": best / (2 * w * step)}


def spectrum_at(W: torch.Tensor, B: torch.Tensor) -> dict:
    """Classify the exact ε_g(W) at W (dense Hessian; ``ls.classify_point``). Eigenvalues are
    reported × N (the rate per unit α and unit η: a component along an eigenvector grows or decays
    like exp(−η·(Nλ)·α) under the η → 0 dynamics)."""
    K, N = W.shape
    obj = ls.Objective.from_function(lambda th: eps_g(th.view(K, N), B), W.reshape(-1))
    rep = ls.classify_point(obj, W.reshape(-1))
    ev = rep.eigenvalues
    scale = float(ev.abs().max())
    neg = ev[ev < -rep.eig_tol]
    return {"kind": rep.kind, "index": rep.index, "n_zero": rep.n_zero, "dim": obj.dim, "loss": rep.loss,
            "grad_norm": rep.grad_norm, "lambda_min_N": float(ev[0]) * N, "lambda_max_N": float(ev[-1]) * N,
            "lambda_min_rel": float(ev[0]) / scale, "negative_N": sorted(set(round(float(v) * N, 6) for v in neg)),
            "smallest_positive_rel": float(ev[ev > rep.eig_tol][0]) / scale if (ev > rep.eig_tol).any() else None}


def per_example_stats(W: torch.Tensor, B: torch.Tensor, n: int = 4096, seed: int = 0) -> dict:
    """κ and the per-example gradient scale of ½(f − y)² at W on ``n`` fresh examples, with the
    exact ‖∇ε_g‖ (closed form) beside the sampled ‖mean g_i‖."""
    K, N = W.shape
    g = torch.Generator().manual_seed(123_456 + int(seed))
    x = torch.randn(n, N, generator=g, dtype=torch.float64)
    y = torch.erf(x @ B.T / math.sqrt(2 * N)).sum(-1)
    m = Committee(K, N).to(torch.float64)
    with torch.no_grad():
        m.hidden.weight.copy_(W)
    cs = ls.cancellation_stats(ls.Objective.from_module(m, half_mse, (x, y)), W.reshape(-1))
    Wr = W.detach().clone().requires_grad_(True)
    exact = float(torch.autograd.grad(eps_g(Wr, B), Wr)[0].norm())
    return {"kappa": cs.kappa, "mean_example_grad_norm": cs.mean_example_grad_norm, "sampled_grad_norm": cs.grad_norm,
            "exact_grad_norm": exact, "kappa_exact": exact / cs.mean_example_grad_norm,
            "kappa_noise_floor": 1 / math.sqrt(n), "n": n, "eps_g": float(eps_g(W, B))}
