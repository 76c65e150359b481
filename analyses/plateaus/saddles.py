"""Saddle-to-saddle dynamics from a small initialisation (Saxe, McClelland & Ganguli 2014; Jacot,
Ged, Şimşek, Hongler & Gabriel 2021).

(a) **Deep linear net** (:func:`build_linear`). Data: m inputs whitened exactly (XᵀX = m·I, a seeded
random orthonormal frame), targets y = M x with M = U diag(s) Vᵀ (seeded random U, V; distinct,
well-separated singular values s_1 > s_2 > …). Net: bias-free ``nn.Linear`` layers d-h-…-h-d with
H ≥ 3 hidden layers of width h < d (narrow), entries drawn N(0, ``init``²). Loss convention
(stated, because it scales every number): the mean over examples of ½‖P x_i − y_i‖²
(``nn.MSELoss`` would divide again by d), i.e. THEORY.md §2's sum-convention loss divided by m;
with whitened inputs it equals ½‖P − M‖_F². Its critical values are ½ Σ_{i∉S} s_i² for index sets
S (THEORY.md §2: λ_i = m·s_i² there), so the plateau reached after learning the top k modes is

    L_k = ½ Σ_{i>k} s_i²        (:func:`linear_plateaus`),

the last one (k = h) the global minimum. GD from a small initialisation visits L_0 (W ≈ 0: every
layer small, a non-strict saddle of order H + 1), L_1, …, L_h in turn.

(b) **tanh net on the digits** (:func:`build_tanh`): scikit-learn's 1 797 8×8 digits (pixels/16, no
download), 64-8-8-8-10 tanh with biases, PyTorch's default initialisation × 0.05, cross-entropy,
full-batch GD at lr 0.5. The output bias learns the class prior within a few hundred steps while
every path from input to output is a product of small weights: the first plateau is the loss of
predicting the prior, the empirical class entropy H(p̂) = −Σ_c p̂_c ln p̂_c (:func:`class_entropy`;
2.30248 for the digits against ln 10 = 2.30259).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

import landscape as ls

from ..problems.base import sequential_mlp
from .core import Instance, seeded

LINEAR_CASE, TANH_CASE = "deep_linear", "digits_tanh"
#: deep linear defaults: d = 5 in and out, three hidden layers of width 3, singular values 4:2:1:…
LINEAR_S: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5, 0.25)
LINEAR_HIDDEN: tuple[int, ...] = (3, 3, 3)
LINEAR_M = 100
LINEAR_INIT = 0.1
LINEAR_LR = 0.05
TANH_WIDTHS: tuple[int, ...] = (64, 8, 8, 8, 10)
TANH_INIT_FACTOR = 0.05
TANH_LR = 0.5


# ---------------------------------------------------------------------------- (a) deep linear
def linear_plateaus(s: Sequence[float], width: int) -> list[float]:
    """L_k = ½ Σ_{i>k} s_i² for k = 0..min(width, len(s)) (mean-over-examples convention)."""
    s2 = [float(v) ** 2 for v in s]
    return [0.5 * sum(s2[k:]) for k in range(min(width, len(s2)) + 1)]


def half_sq(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean over examples of ½‖out − y‖² (a mean over the batch, as ``ls.Objective`` wants)."""
    return 0.5 * (out - y).pow(2).sum(-1).mean()


def _orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def linear_data(seed: int = 0, s: Sequence[float] = LINEAR_S, m: int = LINEAR_M):
    """(X, Y, M): X (m, d) with XᵀX = m·I exactly, M = U diag(s) Vᵀ, Y = X Mᵀ."""
    d = len(s)
    g = torch.Generator().manual_seed(50_000 + int(seed))
    Xq, _ = torch.linalg.qr(torch.randn(m, d, generator=g, dtype=torch.float64))
    X = math.sqrt(m) * Xq
    M = _orthogonal(d, g) @ torch.diag(torch.tensor([float(v) for v in s], dtype=torch.float64)) @ _orthogonal(d, g).T
    return X, X @ M.T, M


def build_linear(seed: int = 0, *, s: Sequence[float] = LINEAR_S, hidden: Sequence[int] = LINEAR_HIDDEN,
                 m: int = LINEAR_M, init: float = LINEAR_INIT, lr: float = LINEAR_LR, steps: int = 4000) -> Instance:
    """Deep linear net from a small initialisation (module docstring, (a))."""
    X, Y, M = linear_data(seed, s, m)
    widths = [len(s), *[int(h) for h in hidden], len(s)]
    if len(hidden) < 1:
        raise ValueError("need at least one hidden layer")

    def make() -> nn.Module:
        layers = [nn.Linear(a, b, bias=False, dtype=torch.float64) for a, b in zip(widths[:-1], widths[1:])]
        g = torch.Generator().manual_seed(60_000 + int(seed))
        with torch.no_grad():
            for lay in layers:
                lay.weight.copy_(init * torch.randn(lay.weight.shape, generator=g, dtype=torch.float64))
        return nn.Sequential(*layers)

    model = seeded(make, seed)
    levels = linear_plateaus(s, min(hidden))
    data = (X, Y)

    def evaluate(mod: nn.Module) -> float:
        with torch.no_grad():
            return float(half_sq(mod(X), Y))

    th = {f"plateau_{k}": v for k, v in enumerate(levels)}
    th["global_min"] = levels[-1]
    return Instance(case=LINEAR_CASE, seed=seed, model=model, loss_fn=half_sq, batch=lambda t: data,
                    optimiser={"name": "gd", "lr": lr, "steps": steps}, theory=th, evaluate=evaluate,
                    objective=lambda mod: ls.Objective.from_module(mod, half_sq, data),
                    probe=lambda n, pseed=0: (X[:n], Y[:n]), eval_every=1,
                    info={"X": X, "Y": Y, "M": M, "s": tuple(float(v) for v in s), "widths": widths,
                          "plateaus": levels})


def product(model: nn.Sequential) -> torch.Tensor:
    P = None
    for lay in model:
        P = lay.weight.detach() if P is None else lay.weight.detach() @ P
    return P


def mode_strengths(model: nn.Sequential, M: torch.Tensor) -> torch.Tensor:
    """uᵢᵀ P vᵢ / sᵢ for the teacher's singular pairs: 0 unlearnt, 1 learnt."""
    U, S, Vh = torch.linalg.svd(M)
    return torch.einsum("ji,jk,ik->i", U, product(model), Vh) / S


# ---------------------------------------------------------------------------- (b) tanh on the digits
@lru_cache(maxsize=1)
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1 797 digits (pixels / 16, float64) and labels (int64); bundled, no download."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.as_tensor(d.data / 16.0, dtype=torch.float64), torch.as_tensor(d.target, dtype=torch.int64)


def class_entropy(y: torch.Tensor) -> float:
    """H(p̂) = −Σ_c p̂_c ln p̂_c of the labels: the cross-entropy of predicting the class prior."""
    p = torch.bincount(y).to(torch.float64) / y.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def build_tanh(seed: int = 0, *, widths: Sequence[int] = TANH_WIDTHS, factor: float = TANH_INIT_FACTOR,
               lr: float = TANH_LR, steps: int = 10_000, dtype: torch.dtype = torch.float64) -> Instance:
    """64-8-8-8-10 tanh net on the digits, default init × ``factor`` (module docstring, (b))."""
    X, y = digits()
    X = X.to(dtype)
    widths = [int(w) for w in widths]

    def make() -> nn.Module:
        net = sequential_mlp(widths, nn.Tanh)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(factor)
        return net

    model = seeded(make, seed, dtype)
    ce = nn.CrossEntropyLoss()
    data = (X, y)

    def evaluate(mod: nn.Module) -> float:
        with torch.no_grad():
            return float(ce(mod(X), y))

    H = class_entropy(y)
    return Instance(case=TANH_CASE, seed=seed, model=model, loss_fn=ce, batch=lambda t: data,
                    optimiser={"name": "gd", "lr": lr, "steps": steps}, theory={"plateau_0": H, "ln10": math.log(10)},
                    evaluate=evaluate, objective=lambda mod: ls.Objective.from_module(mod, ce, data),
                    probe=lambda n, pseed=0: (X[:n], y[:n]), eval_every=1, info={"widths": widths})


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(X).argmax(-1) == y).double().mean())
