"""The committee machine's paired runs, all seeds of one method at once.

One online-SGD run of the soft committee machine is ~10⁵ steps of a 10³-parameter model: the
per-step cost of the plain loop (:func:`.core.train`, ~0.3 ms, mostly Python and autograd
dispatch) would make the 30-seed comparison the study's largest cost. Here the seeds' students
are stacked into one (R, K, N) tensor and trained by **the method's own torch optimiser** over it
(:func:`.methods.make_method`): SGD, heavy-ball momentum and Adam update each entry from its own
gradient and state alone, so every seed follows the optimiser it would follow on its own, on the
same teacher, initialisation and example stream as :func:`.committee.build` (tested against the
plain loop). The gradient is the closed form of ∂½(f − y)²/∂W (no autograd):

    ∂/∂w_k = (f − y) · √(2/π) · exp(−h_k²/2) · x / √N,   h_k = w_k·x/√N.

The exact ε_g of every seed is evaluated every ``eval_every`` steps; a seed's time to the target is
its first evaluated step with ε_g ≤ target (the plain loop's convention), the run stops when every
seed has reached it or stopped being finite, or at the horizon.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .committee import CHUNK, Stream, eps_g, student_init, teacher
from .methods import make_method

C_GP = math.sqrt(2.0 / math.pi)


def closed_form_grad(W: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂½(f(x) − y)²/∂W for each replica.

    Args:
        W: students, shape (R, K, N). x: one example per replica, (R, N). y: teacher outputs, (R,).

    Returns:
        The gradients, shape (R, K, N).

    Example:
        >>> W = torch.zeros(1, 2, 4, dtype=torch.float64); x = torch.ones(1, 4, dtype=torch.float64)
        >>> closed_form_grad(W, x, torch.tensor([1.0], dtype=torch.float64))[0, 0, 0].item() == -math.sqrt(2 / math.pi) / 2
        True
    """
    N = W.shape[-1]
    h = torch.bmm(W, x.unsqueeze(-1)).squeeze(-1) / math.sqrt(N)               # (R, K)
    err = torch.erf(h / math.sqrt(2.0)).sum(-1, keepdim=True) - y.unsqueeze(-1)  # (R, 1)
    d = err * torch.exp(-0.5 * h * h) * (C_GP / math.sqrt(N))                    # (R, K)
    return d.unsqueeze(2) * x.unsqueeze(1)


def train_replicas(seeds: Sequence[int], *, K: int, N: int, method: str, settings: dict[str, Any],
                   horizon: int, target: float, eval_every: int) -> dict[str, Any]:
    """Train one student per seed with ``method`` until each reaches ``target`` (or the horizon).

    Args:
        seeds: the instances (each: teacher, initialisation and stream of :func:`.committee.build`).
        K, N: hidden units and input dimension.
        method: ``"gd"`` (online SGD), ``"momentum"`` or ``"adam"`` (:func:`.methods.make_method`).
        settings: ``{"lr": η, "adam_lr": …}``.
        horizon: steps allowed. target: the ε_g to reach. eval_every: steps between exact ε_g.

    Returns:
        ``{"runs": [per seed: {"seed", "reached", "steps", "final_loss", "min_loss", "diverged",
        "first_step_length"}], "steps_run", "cpu_s", "wall_s"}``.

    Example:
        >>> r = train_replicas([0, 1], K=2, N=20, method="gd", settings={"lr": 0.5}, horizon=40,
        ...                    target=0.0, eval_every=10)
        >>> [run["reached"] for run in r["runs"]], r["steps_run"]
        ([False, False], 40)
    """
    seeds = [int(s) for s in seeds]
    R = len(seeds)
    B = torch.stack([teacher(K, N, s) for s in seeds])
    holder = nn.Module()
    holder.W = nn.Parameter(torch.stack([student_init(K, N, s) for s in seeds]))
    W = holder.W
    opt = make_method(method, holder, None, {}, settings)
    streams = [Stream(N, s) for s in seeds]
    c_erf = 1.0 / math.sqrt(2 * N)
    W0 = W.detach().clone()
    first = torch.zeros(R, dtype=torch.float64)
    e0 = eps_g(W.detach(), B)
    hit = [None] * R
    diverged = [False] * R
    best, last = e0.clone(), e0.clone()
    t0, c0 = time.perf_counter(), time.process_time()
    t, done = 0, False
    while t < horizon and not done:
        X = torch.stack([s.chunk() for s in streams], 1)                                 # (CHUNK, R, N)
        Y = torch.erf(torch.einsum("crn,rkn->crk", X, B) * c_erf).sum(-1)                 # (CHUNK, R)
        for i in range(min(CHUNK, horizon - t)):
            with torch.no_grad():
                W.grad = closed_form_grad(W, X[i], Y[i])
            opt.step()
            t += 1
            if t == 1:
                first = (W.detach() - W0).flatten(1).norm(dim=1)
            if t % eval_every == 0 or t == horizon:
                e = eps_g(W.detach(), B)
                for r in range(R):
                    if hit[r] is not None or diverged[r]:
                        continue   # decided: its record is where it stopped
                    v = float(e[r])
                    last[r] = v
                    if not math.isfinite(v):
                        diverged[r] = True
                        continue
                    best[r] = min(float(best[r]), v)
                    if v <= target:
                        hit[r] = t
                if all(h is not None or d for h, d in zip(hit, diverged)):
                    done = True   # every seed decided
                    break
    runs = [{"seed": s, "reached": hit[r] is not None, "steps": hit[r] if hit[r] is not None else horizon,
             "final_loss": float(last[r]) if not diverged[r] else None,
             "min_loss": float(best[r]), "diverged": diverged[r],
             "first_step_length": float(first[r])} for r, s in enumerate(seeds)]
    return {"runs": runs, "steps_run": t, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0}
