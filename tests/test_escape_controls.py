"""The controls that separate a rule's step length from its direction, the no-revert variant and the
trainer's stop at the target (issue 23 item 4)."""
import math

import numpy as np
import pytest
import torch

from analyses.problems import get_problem
from analyses.problems.escape_instances import build_instance
from landscape.deep_linear import half_sq_error
from synaprune import ESCAPE_DEFAULTS, StallDetector, Trainer
from synaprune.access import DataAccess
from synaprune.base import StepContext
from synaprune.controls import LengthMatchedGD
from synaprune.escape_phase import EscapePhase, EscapeProtocol
from synaprune.events import EscapeAttempt, StallEvent
from synaprune.rules import DevargRule, RMSRule


def _rms_length(obj, theta, lr, rule="rms"):
    """lr·‖A(θ)‖ by hand from the per-example gradients (numpy; A_j = sign(μ_j)·rms_i g_ij or devarg)."""
    G = obj.per_example_grads(theta).numpy()
    if rule == "rms":
        A = np.sign(G.mean(0)) * np.sqrt((G ** 2).mean(0))
    else:
        A = G[np.abs(G).argmax(0), np.arange(G.shape[1])]
    return lr * float(np.linalg.norm(A))


@pytest.mark.parametrize("rule_cls,match", [(RMSRule, "synaprune-rms"), (DevargRule, "synaprune-devarg")])
def test_phase_step_lengths_equal_the_rules_after_decay_and_cap(rule_cls, match):
    inst = build_instance("cancelling_strict", 0)
    obj = inst.objective()
    access = DataAccess(obj, half_sq_error, torch.Generator().manual_seed(0))
    proto = EscapeProtocol(ESCAPE_DEFAULTS, method=match, escape_abs=1e-6, escape_rel=0.0)
    theta0 = inst.theta_start
    ev = StallEvent(index=0, step=0, loss=0.0, grad_norm=0.0)
    rng = torch.Generator().manual_seed(1)
    capped = 0
    for k, scale in ((0, 1.0), (3, 1.0), (10, 30.0), (40, 0.01)):
        theta = theta0 + 0.05 * torch.randn(theta0.shape, generator=rng, dtype=torch.float64)
        loss, g = obj.loss_and_grad(theta)
        lens = []
        for rule in (rule_cls(), LengthMatchedGD(match=match)):
            ph = EscapePhase(theta=theta0 * scale, loss=loss, grad=g, start=0, f_thres=0.0, k=k, event=ev,
                             attempt=EscapeAttempt(rule=match, start_step=0, loss_before=loss, f_thres=0.0),
                             attempt_index=0)
            ctx = StepContext(step=k, theta=theta, loss=loss, grad=g, lr=inst.lr, access=access,
                              generator=torch.Generator().manual_seed(2))
            new = proto.step(ph, ctx, rule)
            lens.append(float(torch.linalg.vector_norm(new - theta)))
            capped += ph.attempt.n_capped
            if isinstance(rule, LengthMatchedGD):   # GD's direction
                cos = float((new - theta) @ (-g)) / (lens[-1] * float(torch.linalg.vector_norm(g)))
                assert cos == pytest.approx(1.0, abs=1e-12)
        expected = min(0.95 ** k * _rms_length(obj, theta, inst.lr, match.split("-")[1]),
                       0.1 * max(1.0, float(torch.linalg.vector_norm(theta0 * scale))))
        assert lens[0] == pytest.approx(expected, rel=1e-9) and lens[1] == pytest.approx(lens[0], rel=1e-9)
    assert capped > 0          # the cap was exercised (θ̃ scaled to 0.01: cap 0.1)


def test_whole_phase_control_in_a_run_takes_the_rules_length_at_every_phase_step():
    inst = build_instance("vanishing_strict", 0)
    thetas = {}
    tr = Trainer(inst.make_model(), half_sq_error, (inst.X, inst.Y), method="gd-length-matched", lr=inst.lr, seed=0,
                 stall=StallDetector(window=20, rel_tol=1e-3, loss_floor=inst.info["global_value"]), classify=False,
                 reduction="mean", escape_abs=0.1 * (inst.info["stall_value"] - inst.info["next_value"]), escape_rel=0.0,
                 progress=False, num_threads=1)
    res = tr.fit(150, theta0=inst.theta_start, callback=lambda t, st: thetas.__setitem__(t, st["theta"].clone()))
    obj = inst.objective()
    atts = [a for ev in res.events for a in ev.attempts]
    assert atts
    n_checked = 0
    for a in atts:
        cap = 0.1 * max(1.0, float(torch.linalg.vector_norm(thetas[a.start_step])))
        for k in range(a.steps - 1):
            t = a.start_step + k
            if t + 1 not in thetas:
                break
            want = min(cap, 0.95 ** k * _rms_length(obj, thetas[t], inst.lr))
            assert float(torch.linalg.vector_norm(thetas[t + 1] - thetas[t])) == pytest.approx(want, rel=1e-8)
            n_checked += 1
    assert n_checked >= 5


@pytest.mark.parametrize("revert", [True, False])
def test_no_revert_variant_keeps_the_phase_point(revert):
    # least squares at its optimum: a phase cannot lower the loss, so it times out
    p = get_problem("noisy_regression")
    theta0 = torch.cat([p.extra["lstsq"][:-1], p.extra["lstsq"][-1:]])
    thetas = {}
    tr = p.trainer("synaprune-rms", 0, classify=False, escape_steps=5, t_wait=3, max_attempts=2, revert=revert,
                   num_threads=1)
    res = tr.fit(60, theta0=theta0, callback=lambda t, st: thetas.__setitem__(t, st["theta"].clone()))
    a = res.events[0].attempts[0]
    assert not a.accepted and a.steps == 5
    same = torch.equal(thetas[a.end_step], thetas[a.start_step])
    assert same is revert


def test_fit_stops_at_the_target_and_reports_the_cost():
    inst = build_instance("vanishing_strict", 1)
    costs = []
    tr = Trainer(inst.make_model(), half_sq_error, (inst.X, inst.Y), method="gd", lr=inst.lr, classify=False,
                 cancellation=False, reduction="mean", progress=False)
    res = tr.fit(10 ** 4, theta0=inst.theta_start, stop_below=inst.info["target"],
                 callback=lambda t, st: costs.append(st["cost_example_grads"]))
    assert res.status == "target_reached" and res.losses[-1] <= inst.info["target"] < res.losses[-2]
    n = inst.X.shape[0]
    # GD: one full-batch gradient per step (n example gradients), the observation at the stop included
    assert costs[:3] == [n, 2 * n, 3 * n] and res.cost_example_grads == n * (res.n_steps + 1)
    assert math.isclose(res.final_loss, float(res.losses[-1]))
