"""Saddle-to-saddle from a small initialisation (analyses.plateaus.saddles): a deep linear net's
plateaus at the best low-rank losses, and the digits tanh net's class-prior plateau."""
import math

import torch

import landscape as ls
from analyses.plateaus import saddles as sd
from analyses.plateaus.core import flat_params, train


def test_whitened_data_make_the_loss_half_the_frobenius_distance():
    X, Y, M = sd.linear_data(0)
    assert torch.allclose(X.T @ X, X.shape[0] * torch.eye(X.shape[1], dtype=torch.float64), atol=1e-10)
    P = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(sd.half_sq(X @ P.T, Y)) - 0.5 * float(((P - M) ** 2).sum())) < 1e-10
    assert torch.allclose(torch.linalg.svdvals(M), torch.tensor(sd.LINEAR_S, dtype=torch.float64))
    assert sd.linear_plateaus((4, 2, 1, 0.5, 0.25), 3) == [10.65625, 2.65625, 0.65625, 0.15625]


def test_deep_linear_plateaus_are_the_best_low_rank_losses_to_1e6():
    """5-3-3-3-5 linear net, init N(0, 0.1²), GD lr 0.05, seed 0: plateaus at steps ~10-170 (L_0),
    ~240-410 (L_1), ~540-2490 (L_2); the critical point nearest_critical finds from a point on each
    has loss ½Σ_{i>k} s_i² to 1e-6 relative (measured ~1e-12). The loss check uses the search alone
    (``ls.find_critical_point`` with polish, as nearest_critical does); classifying the degenerate
    L_1/L_2 points takes 5–30 s each and is the survey's job."""
    inst = sd.build_linear(0, steps=1000)
    levels = inst.info["plateaus"]
    at = {100: 0, 320: 1, 1000: 2}
    snaps = {}
    train(inst, callback=lambda info: snaps.__setitem__(info.step, flat_params(info.model)) if info.step in at else None)
    obj = inst.objective(inst.model)
    for step, k in at.items():
        assert abs(obj.loss(snaps[step]) - levels[k]) / levels[k] < 2e-3  # on the plateau
        cs = ls.find_critical_point(obj, snaps[step], polish=True)
        assert cs.converged
        assert abs(cs.loss - levels[k]) / levels[k] < 1e-6, (k, cs.loss, levels[k])
    # the first plateau is W ≈ 0: a non-strict saddle (Hessian exactly zero there, H = 3 hidden layers)
    assert ls.nearest_critical(obj, snaps[100]).kind == "non_strict_saddle"


def test_tanh_digits_first_plateau_is_the_class_prior_entropy():
    X, y = sd.digits()
    H = sd.class_entropy(y)
    assert abs(H - math.log(10)) < 2e-4 and H < math.log(10)
    inst = sd.build_tanh(0, steps=500, dtype=torch.float32)  # float32: the plateau value is the point here
    tr = train(inst, eval_every=100)
    assert abs(tr.eval_loss[-1] - H) < 1e-4, (tr.eval_loss[-1], H)
    assert abs(tr.eval_loss[-1] - tr.eval_loss[-3]) < 1e-5  # flat
