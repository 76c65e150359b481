"""StallMonitor's cheap per-step path and its schedules (issue 22 item 7), against independent references.

- the losses a stochastic monitor holds unread and reads every few steps are the loop's own
  losses, bit for bit, with a non-finite one skipped (None) and named once;
- the preconditioned operator's gradient (the ``"auto"`` Lanczos start of a λ_max(P⁻¹H) solve) is
  P^{-1/2}g, checked against a hand-built diagonal quadratic;
- a fixed check period longer than ten detector windows still confirms a plateau: the soft
  committee machine's symmetric plateau (Saad & Solla 1995) under online SGD, checks every 250
  steps, default window 20 (before, no earlier check was ever within ten windows and nothing fired).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import landscape as ls
from analyses.plateaus import committee
from analyses.plateaus.core import train
from landscape.monitor import AnalysisSettings
from landscape.monitor.sharpness import Preconditioned


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_held_losses_are_the_loops_own_and_a_non_finite_one_is_skipped_once():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g, dtype=torch.float64)
    Y = X @ torch.tensor([[1.0], [-1.0], [0.5]], dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = ls.StallMonitor(model, nn.MSELoss(), (X, Y), optimizer=opt, progress=False, loop_loss="batch",
                          per_layer=False, sharpness_every=0)
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in range(203):
            idx = torch.randint(0, 64, (8,), generator=g)
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            fed = loss * float("nan") if t == 77 else loss      # one non-finite loss
            seen.append(float(fed.detach()))
            mon.step(fed)
    assert mon.mode == "stochastic"
    expected = [None if math.isnan(v) else v for v in seen]
    assert mon.losses == expected                               # bit-identical, in step order, all 203
    named = [w for w in caught if "is nan at step 77" in str(w.message)]
    assert len(named) == 1


def test_preconditioned_gradient_is_p_to_the_minus_half_g():
    h = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    obj = ls.Objective.from_function(lambda w: 0.5 * (h * (w - c) ** 2).sum(), torch.zeros(3, dtype=torch.float64))
    theta = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    p = torch.tensor([4.0, 0.25, math.inf], dtype=torch.float64)     # the last coordinate frozen
    op = Preconditioned(obj.hvp_operator(theta), p)
    g = h * (theta - c)                                              # the hand gradient
    assert torch.allclose(op.gradient, g / p.sqrt(), rtol=1e-14, atol=0.0)
    assert op.gradient[2] == 0.0


def test_a_fixed_check_period_longer_than_ten_windows_still_confirms_the_committee_plateau():
    inst = committee.build(0, K=2, N=500, eta=0.5)
    mon = ls.StallMonitor(inst.model, inst.loss_fn, inst.probe(1024), per_layer=False, sharpness_every=0,
                          settings=AnalysisSettings(classify=False, nearest=False), progress=False,
                          check_every=250)
    assert mon.window * 10 < 250

    def cb(si):
        mon.step(si.loss, grad_norm=si.grad_norm)
        return False

    tr = train(inst, 6000, callback=cb, eval_every=250)
    exact = dict(zip(tr.eval_steps, tr.eval_loss))
    star = committee.plateau_eps(2)
    assert mon.stalls, "no stall on the symmetric plateau"
    first = mon.stalls[0]
    eps = exact[max(k for k in exact if k <= first["step"])]
    # on the plateau (its exact ε_g between ε* and twice it; the start is ≈ 40 ε*, the end 0), cancelling
    assert 1.0 < eps / star < 2.0 and first["cause"] == "cancelling", (first["step"], eps / star)
