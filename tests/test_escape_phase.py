"""The escape-phase protocol, attribution and censoring on constructed runs with known answers.

The landscape: L(w) = w0² + ¼(w1² − 1)² + (w2 − 3)², w ∈ R³. At w = (0, 0, 3): ∇L = 0,
L = ¼, a strict saddle (curvature −1 along w1); minima at w1 = ±1. Scripted rules move θ by a
fixed vector per step, so every phase's outcome is known in closed form.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.monitor import stall_cause
from synaprune import METHODS, StallDetector, Trainer
from synaprune.base import StepContext, UpdateRule
from synaprune.escape_phase import TRANSITIONS
from synaprune.events import TIMING_FIELDS

SADDLE = (0.0, 0.0, 3.0)


def L(w) -> float:
    w0, w1, w2 = (float(v) for v in w)
    return w0 ** 2 + 0.25 * (w1 ** 2 - 1) ** 2 + (w2 - 3) ** 2


def grad_L(w) -> np.ndarray:
    w0, w1, w2 = (float(v) for v in w)
    return np.array([2 * w0, w1 * (w1 ** 2 - 1), 2 * (w2 - 3)])


class Landscape(nn.Module):
    """Every example's loss is L(w) (so per-example gradients all equal ∇L)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w0, w1, w2 = self.w
        value = w0 ** 2 + 0.25 * (w1 ** 2 - 1) ** 2 + (w2 - 3) ** 2
        return value * torch.ones_like(x[:, :1])


def mean_out(out, y):
    return out.mean()


class Push(UpdateRule):
    """Scripted SynaPrune rule: θ ← θ + lr·d for a fixed d (option ``d``)."""

    name = "test-push"
    synaprune = True
    DEFAULTS = {"d": (0.0, 0.1, 0.0)}

    def step(self, ctx: StepContext) -> torch.Tensor:
        return ctx.theta + ctx.lr * torch.tensor(self.d, dtype=ctx.theta.dtype)


@pytest.fixture
def push(monkeypatch):
    monkeypatch.setitem(METHODS, "test-push", Push)
    return "test-push"


def _trainer(method, *, lr=1.0, horizon=1000, **kw):
    X = torch.zeros(4, 1, dtype=torch.float64)
    kw.setdefault("stall", StallDetector(window=20, rel_tol=1e-3, grad_tol=1e-3))
    return Trainer(Landscape(), mean_out, (X, X), method=method, lr=lr, classify=False, progress=False,
                   escape_horizon=horizon, **kw)


def _thetas(tr, max_steps, theta0):
    seen = {}
    res = tr.fit(max_steps, theta0=torch.tensor(theta0, dtype=torch.float64),
                 callback=lambda t, s: seen.__setitem__(t, s["theta"].clone()))
    return res, seen


def test_accepted_phase_hands_over_to_the_base_method(push):
    tr = _trainer(push, lr=1.0, d=(0.0, 0.1, 0.0), grad_scale_reference=1.0)
    res, th = _thetas(tr, 30, SADDLE)
    ev = res.events[0]
    assert ev.step == 20 and ev.loss == 0.25
    (a,) = ev.attempts  # accepted at once: no second phase at this stall
    # step k = 0 moves w1 to 0.1: L = ¼·0.99² drops by 0.004975 > f_thres = 0.1·max(1e-6, 1e-2·¼)
    assert a.f_thres == pytest.approx(2.5e-4, rel=1e-15)
    assert (a.start_step, a.end_step, a.steps, a.accepted) == (20, 21, 1, True)
    assert a.loss_before == 0.25 and a.loss_after == pytest.approx(0.25 * 0.99 ** 2, rel=1e-14)
    assert a.first_step_norm == pytest.approx(0.1, rel=1e-14) and a.n_capped == 0
    # the escape target ¼ − 2.5e-3 is reached at the same step: the rule's accepted phase did it
    assert ev.escaped and ev.escaped_by == "rule" and ev.escape_steps == 1 and not ev.censored
    assert ev.resolution == "escaped" and ev.escape_accepted
    # after acceptance plain GD runs from the accepted point: θ_{t+1} = θ_t − lr·∇L(θ_t)
    assert res.phases[21:].tolist() == [0] * 10
    for t in range(21, 29):
        np.testing.assert_allclose(th[t + 1].numpy(), th[t].numpy() - grad_L(th[t].numpy()), rtol=1e-13, atol=1e-15)


def test_reverted_phases_decay_wait_and_max_attempts(push):
    tr = _trainer(push, lr=1.0, horizon=40, d=(0.01, 0.0, 0.0), escape_steps=4, t_wait=3, max_attempts=2,
                  escape_decay=0.5, grad_scale_reference=1.0)
    res, th = _thetas(tr, 70, SADDLE)
    ev = res.events[0]
    assert [(a.start_step, a.end_step, a.steps, a.accepted) for a in ev.attempts] == [(20, 24, 4, False),
                                                                                    (27, 31, 4, False)]
    # step k of a phase is the rule's step × 0.5^k: w0 = 0.01, 0.015, 0.0175 at t = 21, 22, 23
    assert [float(th[t][0]) for t in (21, 22, 23)] == pytest.approx([0.01, 0.015, 0.0175], rel=1e-14)
    w0_end = 0.01 * (1 + 0.5 + 0.25 + 0.125)
    assert ev.attempts[0].loss_after == pytest.approx(0.25 + w0_end ** 2, rel=1e-14)
    # revert: θ restored exactly, the curve shows the snapshot's loss at the revert step
    assert torch.equal(th[24], torch.tensor(SADDLE, dtype=torch.float64)) and res.losses[24] == 0.25
    phases = res.phases.tolist()
    assert [t for t, p in enumerate(phases) if p] == [21, 22, 23, 28, 29, 30]
    # no third attempt; the base method (GD at a critical point) stays put; no escape by the horizon
    assert torch.equal(res.final_theta, torch.tensor(SADDLE, dtype=torch.float64))
    assert ev.escaped is False and not ev.censored and ev.escaped_by is None and ev.escape_steps is None
    assert ev.resolution == "horizon" and ev.observed_steps == 40 and ev.resolved_step == 60
    assert ev.escape_accepted is False


def test_step_cap_scales_with_the_snapshot_norm(push):
    tr = _trainer(push, lr=1.0, d=(100.0, 0.0, 0.0), escape_step_cap=0.1, escape_steps=3, max_attempts=1,
                  grad_scale_reference=1.0)
    res, th = _thetas(tr, 25, SADDLE)
    a = res.events[0].attempts[0]
    # ‖θ̃‖ = 3: every phase step (raw 100·0.95^k) is shortened to 0.1·max(1, 3) = 0.3
    assert a.first_step_norm == pytest.approx(0.3, rel=1e-14) and a.first_step_norm_raw == pytest.approx(100.0)
    assert [float(th[t][0]) for t in (21, 22)] == pytest.approx([0.3, 0.6], rel=1e-14)
    assert a.n_capped == 3 and a.accepted is False and a.loss_after == pytest.approx(L((0.9, 0.0, 3.0)), rel=1e-14)
    # uncapped (escape_step_cap=None) with decay 1: the raw step
    tr = _trainer(push, lr=1.0, d=(0.0, 0.05, 0.0), escape_step_cap=None, escape_decay=1.0, grad_scale_reference=1.0)
    res, th = _thetas(tr, 22, SADDLE)
    assert float(th[21][1]) == pytest.approx(0.05, rel=1e-14) and res.events[0].attempts[0].n_capped == 0


def _gd_escape_step(w1: float, lr: float, stall_step: int, phase_steps: set[int], target: float) -> int:
    """Independent reference: iterate the exact GD map on w1 (w0 = 0, w2 = 3), skipping the steps
    spent in (reverted) phases; return the first step whose loss reaches ``target``."""
    t = 0
    while True:
        if L((0.0, w1, 3.0)) <= target and t > stall_step:
            return t
        if t not in phase_steps:
            w1 = w1 - lr * w1 * (w1 ** 2 - 1)
        t += 1


def test_escape_after_reverted_phases_is_the_base_methods(push):
    w1 = 1e-7
    tr = _trainer(push, lr=0.1, d=(0.1, 0.0, 0.0), escape_steps=5, t_wait=5, max_attempts=2, grad_scale_reference=1.0)
    res, _ = _thetas(tr, 400, (0.0, w1, 3.0))
    ev = res.events[0]
    assert ev.step == 20 and all(a.accepted is False for a in ev.attempts) and len(ev.attempts) == 2
    # the phases occupy steps [20, 25) and [30, 35); a reverted phase leaves θ where it started
    frozen = set(range(20, 25)) | set(range(30, 35))
    expected = _gd_escape_step(w1, 0.1, 20, frozen, ev.escape_target)
    assert ev.escaped and ev.escaped_by == "base" and ev.resolved_step == expected
    assert ev.escape_steps == expected - 20 and ev.observed_steps == ev.escape_steps


def test_censored_stall_and_run_ending_inside_a_phase(push):
    tr = _trainer(push, lr=1.0, d=(0.01, 0.0, 0.0), escape_steps=50, grad_scale_reference=1.0)
    res, _ = _thetas(tr, 60, SADDLE)
    ev = res.events[0]
    assert ev.censored and ev.escaped is None and ev.escaped_by is None and ev.escape_steps is None
    assert ev.resolution == "end_of_run" and ev.observed_steps == 40
    # the run ended 40 steps into an unaccepted phase: reverted, the final point is the snapshot
    assert ev.attempts[0].accepted is False and ev.attempts[0].end_step == 60
    assert torch.equal(res.final_theta, torch.tensor(SADDLE, dtype=torch.float64)) and res.final_loss == 0.25


def test_baseline_escape_is_attributed_to_the_base_and_always_mode_to_the_rule(push):
    tr = _trainer("gd", lr=0.1, grad_scale_reference=1.0)
    res, _ = _thetas(tr, 400, (0.0, 1e-7, 3.0))
    ev = res.events[0]
    assert ev.attempts == [] and ev.escaped and ev.escaped_by == "base"
    assert ev.resolved_step == _gd_escape_step(1e-7, 0.1, 20, set(), ev.escape_target)
    # mode="always": the rule runs every step (no phases, no cap, no decay): θ_t = θ_0 + t·lr·d
    tr = _trainer(push, lr=0.5, mode="always", d=(0.0, 1e-9, 0.0), grad_scale_reference=1.0)
    res, th = _thetas(tr, 25, SADDLE)
    assert float(th[24][1]) == pytest.approx(24 * 0.5e-9, rel=1e-12) and res.phases.sum() == 0
    ev = res.events[0]
    assert ev.attempts == [] and ev.censored  # it never reaches the target in 25 steps
    with pytest.raises(ValueError, match="need mode='at_stalls'"):
        _trainer(push, mode="always", escape_steps=3)


def test_state_machine_table_is_closed():
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == {"base", "escape", "wait"}
    assert TRANSITIONS[("escape", "accept")] == "base"  # no new phase after an accepted one
    assert TRANSITIONS[("escape", "timeout")] == "wait"


def test_stall_cause_rule():
    # ‖mean g‖ = κ·ratio·r: the smaller factor (if ≤ 0.1) is the cause
    assert stall_cause(1e-3, 0.5) == "cancelling"
    assert stall_cause(0.6, 2e-4) == "vanishing"
    assert stall_cause(1e-3, 1e-5) == "vanishing" and stall_cause(1e-5, 1e-3) == "cancelling"
    assert stall_cause(0.5, 0.5) is None and stall_cause(0.5, None) is None
    assert stall_cause(0.05, None) == "cancelling" and stall_cause(float("nan"), 0.0) == "vanishing"
    assert stall_cause(0.2, 0.3, kappa_max=0.25) == "cancelling"


def test_cause_at_a_least_squares_minimum_is_cancelling_with_values():
    # Linear regression ℓ_i = ½(w·x_i − y_i)² at its least-squares solution: Σ g_i = 0 while
    # g_i = r_i x_i are large (noisy targets): a cancelling stall at the global minimum.
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    Y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + torch.randn(40, 1, generator=gen,
                                                                                    dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    w_init = model.weight.detach().clone().reshape(-1)
    w_ls = torch.linalg.lstsq(X, Y, driver="gelsd").solution.reshape(-1)

    def half_mse(out, y):
        return 0.5 * ((out - y) ** 2).sum(1).mean()

    tr = Trainer(model, half_mse, (X, Y), method="gd", lr=0.01, classify=False, progress=False,
                 stall=StallDetector(window=20, grad_tol=1e-6), grad_scale_reference="model")
    res = tr.fit(25, theta0=w_ls)
    ev = res.events[0]
    r_ls = (X @ w_ls - Y[:, 0])
    scale = float((r_ls.abs() * X.norm(dim=1)).mean())
    ref = float(((X @ w_init - Y[:, 0]).abs() * X.norm(dim=1)).mean())
    mean_g = (r_ls[:, None] * X).mean(0)
    assert ev.example_grad_scale == pytest.approx(scale, rel=1e-12)
    assert res.example_grad_scale_reference == {"source": "model", "value": pytest.approx(ref, rel=1e-12)}
    assert ev.example_grad_scale_ratio == pytest.approx(scale / ref, rel=1e-12)
    assert ev.kappa == pytest.approx(float(mean_g.norm()) / scale, rel=1e-6, abs=1e-12) and ev.kappa < 1e-10
    assert ev.cause == "cancelling" and ev.cause_thresholds["kappa_max"] == 0.1
    assert ev.censored  # 5 steps observed


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in TIMING_FIELDS}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def test_same_seed_gives_identical_records_and_no_shared_state():
    from landscape.deep_linear import DeepLinearProblem, half_sq_error

    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    det = StallDetector(window=20, grad_tol=1e-3)  # one detector object given to several trainers
    th0 = 1e-6 * torch.ones(pb.dim, dtype=torch.float64)

    def run(seed, method="synaprune-noise"):
        tr = Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method=method, lr=0.05, reduction="sum", seed=seed,
                     stall=det, progress=False, num_threads=1, sigma=0.05, mode="always")
        return tr, tr.fit(300, theta0=th0)

    tr_a, a = run(3)
    _, other = run(4)
    tr_b, b = run(3)
    assert tr_a.stall is not det and tr_a.stall is not tr_b.stall
    assert a.n_stalls >= 1
    assert _strip(a.to_dict()) == _strip(b.to_dict()) and torch.equal(a.final_theta, b.final_theta)
    assert not torch.equal(a.final_theta, other.final_theta)  # the seed does matter
    again = tr_a.fit(300, theta0=th0)  # a second fit of the same trainer starts from a clean state
    assert _strip(again.to_dict()) == _strip(a.to_dict())


# ---------------------------------------------------------------------- fair controls and cost
def _per_example_grads(model_fn, theta, X, Y):
    """Independent reference: one autograd call per example (no vmap)."""
    rows = []
    for i in range(X.shape[0]):
        p = theta.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model_fn(p, X[i:i + 1], Y[i:i + 1]), p)
        rows.append(g)
    return torch.stack(rows)


def test_gd_matched_first_step_has_the_rms_length_and_the_gd_direction():
    from landscape.deep_linear import DeepLinearProblem, half_sq_error

    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    th0 = 1e-6 * torch.ones(pb.dim, dtype=torch.float64)
    runs = {}
    for method in ("synaprune-rms", "gd-matched"):
        tr = Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method=method, lr=0.05, reduction="sum",
                     stall=StallDetector(window=20, grad_tol=1e-3), classify=False, progress=False)
        seen = {}
        res = tr.fit(23, theta0=th0, callback=lambda t, s, seen=seen: seen.__setitem__(t, s["theta"].clone()))
        runs[method] = (tr, res, seen)
    tr, rms, seen_r = runs["synaprune-rms"]
    _, gdm, seen_g = runs["gd-matched"]
    s = rms.events[0].step
    assert gdm.events[0].step == s and torch.equal(seen_r[s], seen_g[s])  # both are GD until the stall
    theta = seen_g[s]
    # the rms step at θ̃ by hand: A_j = sign(μ_j)·sqrt(mean_i g_ij²), objective scale n (sum reduction)
    d1, d2 = pb.dims[1], pb.dims[0]

    def ex_loss(p, x, y):
        W1 = p[:d1 * d2].reshape(d1, d2)
        W2 = p[d1 * d2:].reshape(pb.dims[2], d1)
        return 0.5 * ((x @ W1.T @ W2.T - y) ** 2).sum()

    G = _per_example_grads(ex_loss, theta, pb.X, pb.Y)
    A = torch.sign(G.mean(0)) * G.pow(2).mean(0).sqrt() * pb.X.shape[0]
    cap = 0.1 * max(1.0, float(theta.norm()))
    length = min(0.05 * float(A.norm()), cap)
    g = G.sum(0)
    a_r, a_g = rms.events[0].attempts[0], gdm.events[0].attempts[0]
    assert a_r.first_step_norm == pytest.approx(length, rel=1e-10)
    assert a_g.first_step_norm == pytest.approx(length, rel=1e-10)
    np.testing.assert_allclose((seen_g[s + 1] - theta).numpy(), (-length * g / g.norm()).numpy(), rtol=1e-9,
                               atol=1e-12 * length)
    # then plain GD: θ_{s+2} = θ_{s+1} − lr·∇L(θ_{s+1})
    g1 = _per_example_grads(ex_loss, seen_g[s + 1], pb.X, pb.Y).sum(0)
    np.testing.assert_allclose(seen_g[s + 2].numpy(), (seen_g[s + 1] - 0.05 * g1).numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="needs mode='at_stalls'"):
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="gd-matched", mode="always")


def test_pgd_thresholds_follow_jin_et_al():
    # d = 3 (this landscape), ℓ = 1, Δf = 0.25, c = 1, δ = 0.5, ε = 0.5: d·ℓ·Δf/(c ε² δ) = 6 < e⁴,
    # so χ = 3·4 = 12; ρ = 0.125 makes √(ε³/ρ) = 1.
    tr = _trainer("pgd", lr=1.0, ell=1.0, rho=0.125, eps=0.5, c=1.0, delta=0.5, delta_f=0.25,
                  grad_scale_reference=1.0)
    res = tr.fit(3, theta0=torch.tensor((1.0, 0.5, 3.0), dtype=torch.float64))
    th = res.method_options["thresholds"]
    assert th["chi"] == 12.0
    assert th["radius"] == pytest.approx(0.5 / 144, rel=1e-15) and th["g_thres"] == pytest.approx(0.5 / 144, rel=1e-15)
    assert th["f_thres"] == pytest.approx(1 / 1728, rel=1e-14) and th["t_thres"] == 48 and th["eta"] == 1.0
    # a larger problem constant: χ = 3·ln(d·ℓ·Δf/(c ε² δ)) with default Δf = L(θ_0) − 0 and ℓ = c/lr
    tr = _trainer("pgd", lr=0.1, eps=1e-3, grad_scale_reference=1.0)
    res = tr.fit(1, theta0=torch.tensor((1.0, 0.5, 3.0), dtype=torch.float64))
    th = res.method_options["thresholds"]
    f0 = L((1.0, 0.5, 3.0))
    chi = 3 * math.log(3 * 10.0 * f0 / (1e-6 * 0.1))
    assert th["ell"] == 10.0 and th["delta_f"] == pytest.approx(f0) and th["chi"] == pytest.approx(chi, rel=1e-12)
    assert th["t_thres"] == math.ceil(chi * 10.0 / math.sqrt(1e-3))
    assert "thresholds" not in _trainer("pgd-fixed").method_options


def test_pgd_fixed_stop_is_a_failure_not_censoring():
    # GD contracts w2 − 3 = 1e-5 by 0.8 a step: the stall fires at step 20, ‖g‖ falls below
    # g_thres = 1e-12 at step 74 and PGD perturbs (radius 1e-6); 5 steps later L has not dropped by
    # f_thres = 1e-4, so PGD declares the saddle second-order stationary and stops.
    tr = _trainer("pgd-fixed", lr=0.1, g_thres=1e-12, t_thres=5, radius=1e-6, f_thres=1e-4, grad_scale_reference=1.0)
    res = tr.fit(200, theta0=torch.tensor((0.0, 0.0, 3.0 + 1e-5), dtype=torch.float64))
    first = next(t for t in range(200) if 2 * 1e-5 * 0.8 ** t <= 1e-12)
    assert res.status == "second_order_stationary" and res.n_steps == first + 5
    ev = res.events[0]
    assert ev.step == 20 and ev.resolution == "stopped" and ev.escaped is False and not ev.censored


def test_cost_in_example_gradient_units():
    X = torch.zeros(4, 1, dtype=torch.float64)
    tr = _trainer("gd", lr=0.1, grad_scale_reference=1.0)
    res = tr.fit(30, theta0=torch.tensor((0.0, 1e-7, 3.0), dtype=torch.float64))
    n = X.shape[0]
    # GD: one full-batch gradient per step (31 points) = 31·n; nothing else
    assert res.cost_example_grads == 31 * n and res.n_grad_evals == 31
    ev = res.events[0]
    assert ev.cost_example_grads == (ev.resolved_step - ev.step) * n
    # analysis: the reference is given, cancellation statistics at the stall = n per-example gradients
    assert ev.analysis_cost_example_grads == n and res.analysis_cost_example_grads == n
    assert res.cost_ratio_source in ("flop_count", "default") and res.hvp_over_grad > 0
    d = res.to_dict()
    for key in ("cost_example_grads", "wall_time_s", "classify_time_s", "hvp_over_grad", "mode", "method",
                "method_options"):
        assert key in d


def test_hvp_over_grad_is_the_flop_ratio_of_a_linear_model():
    # y = X w (one matmul, n×d by d×1): forward 2nd FLOPs; the gradient adds Xᵀr (2nd): 4nd in all;
    # the HVP (double backward through the gradient) counts its own matmuls: measured, not assumed.
    from torch.utils.flop_counter import FlopCounterMode
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    Y = torch.randn(16, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    tr = Trainer(model, nn.MSELoss(), (X, Y), method="gd", classify=False, progress=False)
    res = tr.fit(0)
    w = tr.obj.initial_point()
    with FlopCounterMode(display=False) as fc:
        tr.obj.loss_and_grad(w)
    grad_flops = fc.get_total_flops()
    assert grad_flops == 4 * 16 * 5  # forward X·w, backward Xᵀ·r (no input gradient needed)
    assert res.loss_over_grad == pytest.approx(0.5) and res.cost_ratio_source == "flop_count"
    assert res.hvp_over_grad >= 1.0


CONTRACT_EVENT_KEYS = {"kind", "cause", "kappa", "example_grad_scale", "example_grad_scale_ratio", "cause_thresholds",
                       "censored", "escaped", "escaped_by", "escape_steps", "cost_example_grads", "attempts"}
CONTRACT_ATTEMPT_KEYS = {"start_step", "end_step", "accepted", "loss_before", "loss_after", "first_step_norm"}


def test_streamed_log_merges_to_the_in_memory_records(push, tmp_path):
    from synaprune import load_run

    tr = _trainer(push, lr=1.0, horizon=40, d=(0.01, 0.0, 0.0), escape_steps=4, t_wait=3, max_attempts=2,
                  log_dir=tmp_path, grad_scale_reference=1.0)
    res = tr.fit(70, theta0=torch.tensor(SADDLE, dtype=torch.float64))
    run = load_run(tmp_path)
    mem = [e.to_dict() for e in res.events]
    assert len(run.events) == len(mem) == 1
    assert CONTRACT_EVENT_KEYS <= set(run.events[0]) and CONTRACT_ATTEMPT_KEYS <= set(run.events[0]["attempts"][0])
    for key in mem[0]:
        if key != "report":
            assert run.events[0][key] == mem[0][key], key
    assert run.config["cause_thresholds"] == {"kappa_max": 0.1, "ratio_max": 0.1}
    assert run.config["example_grad_scale_reference"] == {"source": "given", "value": 1.0}
    assert run.config["cost_example_grads"] == res.cost_example_grads and "hvp_over_grad" in run.config


def test_no_escape_is_counted_inside_a_phase_that_is_then_reverted(push):
    # f_thres = 1 can never be met, so the phase reverts; on its way w1 reaches 0.3 (L = 0.207,
    # below the escape target 0.2475) — that dip must not count as an escape.
    tr = _trainer(push, lr=1.0, horizon=30, d=(0.0, 0.1, 0.0), escape_decay=1.0, escape_steps=3, max_attempts=1,
                  f_thres=1.0, grad_scale_reference=1.0)
    res, th = _thetas(tr, 60, SADDLE)
    ev = res.events[0]
    assert min(res.losses[21:24]) < ev.escape_target  # the phase went below the target ...
    assert ev.attempts[0].accepted is False and ev.escaped is False and ev.resolution == "horizon"  # ... and was undone
    assert torch.equal(res.final_theta, torch.tensor(SADDLE, dtype=torch.float64))


def test_rms_cost_counts_monitoring_and_phase_per_example_gradients():
    from landscape.deep_linear import DeepLinearProblem, half_sq_error

    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    n = pb.X.shape[0]
    tr = Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="synaprune-rms", lr=0.05, reduction="sum",
                 stall=StallDetector(window=20, grad_tol=1e-3), classify=False, progress=False)
    res = tr.fit(150, theta0=1e-6 * torch.ones(pb.dim, dtype=torch.float64))
    phase_steps = sum(a.steps for e in res.events for a in e.attempts)
    # a full-batch gradient (n) per visited point, n per-example gradients per rule step in a phase
    assert phase_steps > 0 and res.cost_example_grads == (res.n_steps + 1) * n + phase_steps * n
    # analysis: the reference at the model's parameters and the statistics at each stall, n each
    assert res.analysis_cost_example_grads == (1 + res.n_stalls) * n
