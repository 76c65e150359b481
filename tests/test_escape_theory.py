"""The escape times behind the study's horizons (THEORY.md §7), against gradient descent on the scalar
models they come from: a strict saddle (two layers, Hessian ±s at 0) and an order-3 saddle."""
import math

import pytest
import torch

from analyses.escape.design import HORIZON_MULT, horizon_for
from analyses.problems.escape_instances import build_instance
from analyses.problems.escape_theory import (gd_to_level, order_escape_steps, strict_delta, strict_escape_steps,
                                             unflatten)


def _gd_chain(w0: float, s: float, lr: float, order: int, max_steps: int = 10 ** 6) -> int:
    """Steps of GD on ½(s − w^N)² (balanced: every layer w) until the loss is ¼s² (halfway)."""
    w = w0
    for t in range(max_steps):
        if 0.5 * (s - w ** order) ** 2 <= 0.25 * s * s:
            return t
        w = w + lr * (s - w ** order) * w ** (order - 1)
    raise AssertionError("no escape")


def test_strict_saddle_horizon_against_ln_one_over_eps():
    s, lr = 2.0, 0.02          # λ_min = −s; lr·|λ| = 0.04
    mu = s
    steps = {}
    for eps in (1e-4, 1e-6, 1e-8, 1e-10):
        # ε is the component along the unit escape direction (1, 1)/√2: each layer w = ε/√2
        steps[eps] = _gd_chain(eps / math.sqrt(2), s, lr, 2)
        th = strict_escape_steps(eps, mu, lr, strict_delta(s))
        assert abs(steps[eps] - th) <= 1 + 0.01 * th              # the discrete form, to a step and 1 %
    # per decade of 1/ε GD needs ln(10)/ln(1 + lr·μ) more steps (discrete), ≈ ln(10)/(lr·|λ|) (continuous)
    per_decade = (steps[1e-10] - steps[1e-4]) / 6
    assert per_decade == pytest.approx(math.log(10) / math.log1p(lr * mu), abs=0.5)
    assert per_decade == pytest.approx(math.log(10) / (lr * mu), rel=lr * mu)
    # as ε → 0 the theory is ln(1/ε)/(lr·|λ|) up to the discrete factor lr·μ/ln(1 + lr·μ)
    eps = 1e-300
    ratio = strict_escape_steps(eps, mu, lr, strict_delta(s)) / (math.log(1 / eps) / (lr * mu))
    assert ratio == pytest.approx(lr * mu / math.log1p(lr * mu), rel=2e-3)


def test_order_three_escape_against_the_blowup_time():
    s, lr = 1.5, 0.05
    for w0 in (1e-2, 1e-3):
        th = order_escape_steps(w0, s, lr, 3)
        assert th == pytest.approx(1.0 / (lr * s * w0), rel=30 * w0)   # 1/((N − 2)·lr·s·w0^(N − 2)) near 0
        assert _gd_chain(w0, s, lr, 3) == pytest.approx(th, rel=0.05)
    th4 = order_escape_steps(0.05, s, lr, 4)
    assert th4 == pytest.approx(1.0 / (2 * lr * s * 0.05 ** 2), rel=0.05)


def test_horizons_are_a_multiple_of_the_theory_and_gd_reaches_the_target():
    assert HORIZON_MULT[2] >= 3 and HORIZON_MULT[3] >= 3
    assert horizon_for(40.0, 2, 600) == 120 and horizon_for(500.0, 3, 600) == 5000
    inst = build_instance("vanishing_strict", 3)
    W, t = gd_to_level(unflatten(inst.theta_start, inst.dims), inst.Mh, inst.lr, inst.const, inst.info["target"],
                       10 ** 5)
    assert t == pytest.approx(inst.info["theory_steps"], rel=0.03)        # strict: theory to a few %
    assert t <= horizon_for(inst.info["theory_steps"], 2, 0)
    assert inst.info["eps"] > 0 and inst.info["mu"] == pytest.approx(inst.info["s_hat"][0], rel=1e-8)
    assert torch.equal(inst.theta_start, build_instance("vanishing_strict", 3).theta_start)   # cached, pure
