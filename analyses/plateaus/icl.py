"""In-context linear regression with one multi-head linear-attention layer whose key and query
matrices are separate (Zhang, Singh, Latham & Saxe, "Training dynamics of in-context learning in
linear attention", ICML 2025, arXiv:2501.16265): from a small initialisation the loss drops in
stages, one principal component of the input covariance per stage.

Task. A sequence has N context tokens z_n = (x_n, y_n) and a query token (x_q, 0) in ℝ^{D+1};
x ~ N(0, Λ), Λ = diag(λ_1 > … > λ_D) (distinct eigenvalues), y = wᵀx with a fresh task vector
w ~ N(0, I_D) per sequence; the target is y_q = wᵀx_q and the loss ½(ŷ − y_q)².

Model. H heads; head h has a key k_h and a query q_h acting on the x part of a token and a value
v_h reading its y part (rank-one key, query and value per head):

    ŷ = Σ_h (q_h·x_q) · (1/N) Σ_n v_h y_n (k_h·x_n) = x_qᵀ Γ β̂,   Γ = Σ_h v_h q_h k_hᵀ,  β̂ = (1/N)Σ_n y_n x_n.

(The other blocks of a general (D+1)×(D+1) key/query/value — key or value on the other coordinate —
multiply terms that are even in w while the residual is odd in w, so their population gradient
vanishes where they are zero: the model here is an invariant subspace of the general layer's
gradient flow, and those blocks are left out.)

Population loss (exact, derived here; Gaussian moments): E[β̂ β̂ᵀ] = A with
A = Λ² + (tr Λ·Λ + Λ²)/N and E[β̂ wᵀ] = Λ, so

    L(Γ) = ½ tr(Λ Γ A Γᵀ) − tr(Λ Γ Λ) + ½ tr Λ          (:func:`population_loss`).

Every term is diagonal in the eigenbasis, so the best Γ of rank k keeps the k components with the
largest λ_j³/A_j (the top k, since it increases with λ_j) with Γ_jj = λ_j/A_j, and the stage
plateaus are

    L_k = ½ [tr Λ − Σ_{j≤k} λ_j³ / A_j],   A_j = λ_j² + λ_j (tr Λ + λ_j)/N     (:func:`stage_losses`),

L_0 = ½ tr Λ (predict 0), L_min(H, D) the global minimum with H heads. Each plateau is the critical
point where k heads carry one component each and the others are zero (a product of three zero
factors: a non-strict saddle).

Two ways to train: full-batch GD on the exact population loss (:func:`build` with
``online=False``, deterministic, the stage losses to round-off) and online SGD on freshly sampled
sequences (``online=True``, the transformer as trained in practice; the exact loss is still
evaluated in closed form).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

import landscape as ls

from .core import Instance, seeded

CASE = "icl_linear_attention"
LAMBDAS: tuple[float, ...] = (1.0, 0.5, 0.25)
CONTEXT = 20
INIT = 0.005
LR = 0.5
BATCH = 64


def stage_losses(lam: Sequence[float], N: int, heads: int | None = None) -> list[float]:
    """L_k for k = 0..min(heads, D) (module docstring)."""
    lam = sorted((float(v) for v in lam), reverse=True)
    tr = sum(lam)
    gains = [l ** 3 / (l * l + l * (tr + l) / N) for l in lam]
    kmax = len(lam) if heads is None else min(heads, len(lam))
    return [0.5 * (tr - sum(gains[:k])) for k in range(kmax + 1)]


def gamma(k: torch.Tensor, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Γ = Σ_h v_h q_h k_hᵀ from k, q (H, D) and v (H,)."""
    return torch.einsum("h,hi,hj->ij", v, q, k)


def population_loss(G: torch.Tensor, lam: torch.Tensor, N: int) -> torch.Tensor:
    """Exact ½E(ŷ − y_q)² for ŷ = x_qᵀ Γ β̂ (module docstring)."""
    A = lam * lam + (lam.sum() * lam + lam * lam) / N
    return 0.5 * (lam[:, None] * G * G * A[None, :]).sum() - (lam * torch.diagonal(G) * lam).sum() + 0.5 * lam.sum()


class LinearAttention(nn.Module):
    """One multi-head linear-attention layer (separate rank-one key, query, value per head) on
    token tensors Z (batch, N + 1, D + 1), the last token the query (its y entry is ignored)."""

    def __init__(self, D: int, heads: int) -> None:
        super().__init__()
        self.D = D
        self.key = nn.Parameter(torch.zeros(heads, D))
        self.query = nn.Parameter(torch.zeros(heads, D))
        self.value = nn.Parameter(torch.zeros(heads))

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        ctx, zq = Z[:, :-1], Z[:, -1]
        keys = ctx[..., :self.D] @ self.key.T  # (B, N, H)
        vals = ctx[..., self.D:] * self.value  # (B, N, H)
        att = (vals * keys).mean(1)  # (B, H): (1/N) Σ_n v_h y_n (k_h·x_n)
        return ((zq[..., :self.D] @ self.query.T) * att).sum(-1)

    def gamma(self) -> torch.Tensor:
        return gamma(self.key, self.query, self.value)


def sample(n: int, lam: torch.Tensor, N: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences: tokens (n, N + 1, D + 1) and query targets (n,)."""
    D = lam.numel()
    x = torch.randn(n, N + 1, D, generator=g, dtype=torch.float64) * lam.sqrt()
    w = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = torch.einsum("bnd,bd->bn", x, w)
    Z = torch.cat([x, y.unsqueeze(-1)], -1)
    Z[:, -1, D] = 0.0
    return Z, y[:, -1]


def half_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out - y).pow(2).mean()


def build(seed: int = 0, *, lam: Sequence[float] = LAMBDAS, N: int = CONTEXT, heads: int | None = None,
          init: float = INIT, lr: float = LR, steps: int = 6000, online: bool = False, batch: int = BATCH) -> Instance:
    """The ICL instance (module docstring). ``online=False``: full-batch GD on the exact population
    loss (``batch`` ignored; the model is called on an empty token tensor and the loss function
    returns the population loss of its Γ); ``online=True``: SGD on ``batch`` fresh sequences a step."""
    lam_t = torch.tensor(sorted((float(v) for v in lam), reverse=True), dtype=torch.float64)
    D = lam_t.numel()
    H = D if heads is None else int(heads)

    def make() -> nn.Module:
        m = LinearAttention(D, H).to(torch.float64)
        g = torch.Generator().manual_seed(70_000 + int(seed))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(init * torch.randn(p.shape, generator=g, dtype=torch.float64))
        return m

    model = seeded(make, seed)
    gs = torch.Generator().manual_seed(80_000 + int(seed))
    levels = stage_losses(lam_t.tolist(), N, H)

    def evaluate(m: nn.Module) -> float:
        with torch.no_grad():
            return float(population_loss(m.gamma(), lam_t, N))

    def unflat(th: torch.Tensor):
        return th[:H * D].view(H, D), th[H * D:2 * H * D].view(H, D), th[2 * H * D:]

    def objective(m: nn.Module) -> ls.Objective:
        th0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
        return ls.Objective.from_function(lambda th: population_loss(gamma(*unflat(th)), lam_t, N), th0)

    def probe(n: int, pseed: int = 0):
        return sample(n, lam_t, N, torch.Generator().manual_seed(90_000 + 1000 * int(seed) + int(pseed)))

    if online:
        loss_fn, batch_fn = half_mse, (lambda t: sample(batch, lam_t, N, gs))
    else:
        empty = (torch.zeros(0, N + 1, D + 1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
        loss_fn = lambda out, y: population_loss(model.gamma(), lam_t, N) + 0.0 * out.sum()  # noqa: E731
        batch_fn = lambda t: empty  # noqa: E731
    th = {f"stage_{k}": v for k, v in enumerate(levels)}
    th["global_min"] = levels[-1]
    return Instance(case=CASE, seed=seed, model=model, loss_fn=loss_fn, batch=batch_fn,
                    optimiser={"name": "sgd" if online else "gd", "lr": lr, "steps": steps}, theory=th,
                    evaluate=evaluate, objective=objective, probe=probe, online=online,
                    eval_every=10 if online else 1,
                    info={"lam": lam_t, "N": N, "heads": H, "D": D, "stages": levels})
