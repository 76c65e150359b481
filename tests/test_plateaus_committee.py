"""Soft committee machine (analyses.plateaus.committee): the closed-form ε_g, the symmetric fixed
point's value and kind, and the online-SGD plateau at N = 500, η = 0.3."""
import math

import torch

import landscape as ls
from analyses.plateaus import committee as c
from analyses.plateaus.core import train


def test_eps_g_closed_form_matches_sampling_and_theory():
    for K, want in ((2, 0.0116), (3, 0.0203)):
        assert abs(c.plateau_eps(K) - want) < 5e-5
        B = c.teacher(K, 40, 0)
        assert abs(float(c.eps_g(c.symmetric_point(B), B)) - c.plateau_eps(K)) < 1e-14
        assert float(c.eps_g(B, B)) == 0.0
    K, N = 3, 30
    B, W = c.teacher(K, N, 1), c.student_init(K, N, 1)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(200_000, N, generator=g, dtype=torch.float64)
    m = c.Committee(K, N).double()
    with torch.no_grad():
        m.hidden.weight.copy_(W)
    ell = 0.5 * (m(x) - torch.erf(x @ B.T / math.sqrt(2 * N)).sum(-1)) ** 2
    se = float(ell.std()) / math.sqrt(ell.numel())
    assert abs(float(ell.mean()) - float(c.eps_g(W, B))) < 4 * se


def test_symmetric_fixed_point_is_a_strict_saddle_of_index_k_minus_1_squared():
    # the spectrum x N does not depend on N (only multiplicities do): N = 12 keeps the test fast
    for K, lam_min_N in ((2, -0.06575), (3, -0.046118)):
        B = c.teacher(K, 12, 0)
        sp = c.spectrum_at(c.symmetric_point(B), B)
        assert sp["kind"] == "strict_saddle" and sp["index"] == (K - 1) ** 2
        assert abs(sp["lambda_min_N"] - lam_min_N) < 1e-5
        assert abs(sp["loss"] - c.plateau_eps(K)) < 1e-14


def test_train_loop_and_vectorised_simulation_follow_the_same_trajectory():
    K, N, eta = 2, 500, 0.3
    inst = c.build(3, K=K, N=N, eta=eta)
    train(inst, steps=300, eval_every=100)
    sim = c.simulate(K, N, (eta,), (3,), alpha_max=300 / N)
    assert torch.allclose(inst.model.hidden.weight.detach(), sim.W[0], rtol=0, atol=1e-10)


def test_sgd_plateau_at_n500_eta03_and_its_critical_point():
    """N = 500, η = 0.3, seed 0: ε_g on the plateau (median over α ∈ [15, 30]) lies 0–30 % above the
    small-η theory (measured +18 %: the finite-η shift, see PLATEAUS_NOTES.md); the critical point
    that nearest_critical finds from the SGD point is the symmetric one: ε_g equal to
    (K/π)(π/6 − K asin(1/2K)) to 1e-9 relative, a strict saddle of index 1."""
    K, N, eta = 2, 500, 0.3
    star = c.plateau_eps(K)
    sim = c.simulate(K, N, (eta,), (0,), alpha_max=30.0, evals_per_alpha=2)
    on = sim.eps[0][sim.alpha >= 15]
    med = float(on.median())
    assert 1.0 < med / star < 1.3, med
    assert float(on.max() - on.min()) < 0.1 * star  # flat
    W, B = sim.W[0], sim.B[0]
    # refine in the 2K-dimensional span of the rows of W and B (exact: c.reduce); the survey does the
    # same in all N·K = 1 000 dimensions (same loss, kind strict_saddle, index 1)
    Wr, Br = c.reduce(W, B)
    n_r = Wr.shape[1]
    assert abs(float(c.eps_g(Wr, Br, N)) - float(c.eps_g(W, B))) < 1e-14
    obj = ls.Objective.from_function(lambda th: c.eps_g(th.view(K, n_r), Br, N), Wr.reshape(-1))
    nc = ls.nearest_critical(obj, Wr.reshape(-1))
    assert nc.converged and abs(nc.loss - star) / star < 1e-9
    assert nc.kind == "strict_saddle" and nc.index == 1
    Wc = nc.theta.view(K, n_r) @ torch.linalg.qr(torch.cat([B, W]).T)[0].T  # back to N coordinates
    assert abs(float(c.eps_g(Wc, B)) - star) / star < 1e-9
    # cancelling, not vanishing: at the refined critical point the mean gradient is zero while the
    # per-example gradients keep > 10 % of their size at the start; at the SGD plateau point the
    # exact-gradient κ is below 60 % of the start's (κ ∝ 1/√N everywhere in this high-dim model)
    st = c.per_example_stats(W, B, n=2048)
    stc = c.per_example_stats(Wc, B, n=2048)
    st0 = c.per_example_stats(c.student_init(K, N, 0), B, n=2048)
    assert st["kappa_exact"] < 0.6 * st0["kappa_exact"]
    assert stc["kappa_exact"] < 1e-6 and stc["mean_example_grad_norm"] > 0.1 * st0["mean_example_grad_norm"]
