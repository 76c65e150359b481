"""In-context linear regression with separate key/query linear attention (analyses.plateaus.icl):
the closed-form population loss, the derived stage losses, and GD's stages from a small init."""
import math

import torch

import landscape as ls
from analyses.plateaus import icl
from analyses.plateaus.core import flat_params, train


def test_population_loss_matches_sampled_sequences():
    lam = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    N = 20
    g = torch.Generator().manual_seed(3)
    m = icl.LinearAttention(3, 3).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    Z, y = icl.sample(40_000, lam, N, g)
    ell = 0.5 * (m(Z) - y) ** 2
    se = float(ell.std()) / math.sqrt(ell.numel())
    assert abs(float(ell.mean()) - float(icl.population_loss(m.gamma(), lam, N))) < 4 * se
    # the model's Γ form: ŷ = x_qᵀ Γ β̂
    beta = (Z[:, :-1, 3:] * Z[:, :-1, :3]).mean(1)
    assert torch.allclose(m(Z), torch.einsum("bi,ij,bj->b", Z[:, -1, :3], m.gamma(), beta))


def test_stage_losses_are_the_best_rank_k_values():
    lam = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    N = 20
    levels = icl.stage_losses(lam.tolist(), N)
    assert abs(levels[0] - 0.5 * float(lam.sum())) < 1e-15
    A = lam * lam + (lam.sum() * lam + lam * lam) / N
    for k in range(4):
        G = torch.diag(torch.where(torch.arange(3) < k, lam / A, torch.zeros(3, dtype=torch.float64)))
        G.requires_grad_(True)
        L = icl.population_loss(G, lam, N)
        (grad,) = torch.autograd.grad(L, G)
        assert abs(float(L) - levels[k]) < 1e-14
        assert float(grad[:k, :k].abs().max() if k else 0.0) < 1e-14  # optimal on the kept block


def test_gd_stages_sit_at_the_derived_losses():
    """GD on the exact population loss (init 0.005, lr 0.5, seed 0) visits L_1 (steps ~400-2200)
    and L_2 (~2200-11000); the critical points found from there have those losses to 1e-8."""
    inst = icl.build(0, steps=3000)
    levels = inst.info["stages"]
    snaps = {}
    tr = train(inst, eval_every=100,
               callback=lambda info: snaps.__setitem__(info.step, flat_params(info.model)) if info.step in (1200, 3000) else None)
    obj = inst.objective(inst.model)
    for step, k in ((1200, 1), (3000, 2)):
        loss = obj.loss(snaps[step])
        assert abs(loss - levels[k]) / levels[k] < 1e-4, (step, loss, levels[k])
        nc = ls.nearest_critical(obj, snaps[step], global_min=levels[-1])
        assert nc.converged and abs(nc.loss - levels[k]) / levels[k] < 1e-8
    assert abs(tr.eval_loss[0] - levels[0]) < 1e-6  # W ≈ 0: the start sits at L_0 = ½ tr Λ
