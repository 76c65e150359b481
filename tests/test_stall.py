"""The scale-free stall detector: plateaus by relative loss change and the run's own gradient scale."""
import json
import math

import pytest
import torch

from landscape.deep_linear import DeepLinearProblem, half_sq_error
from landscape.monitor import StallDetector
from synaprune import Trainer


def _feed(det, losses, grads):
    return [t for t, (l, g) in enumerate(zip(losses, grads)) if det.update(t, l, g)]


def test_decisions_do_not_depend_on_the_loss_units():
    # descent, then a plateau (loss flat, gradient 1e-3 of the run's largest), then descent again
    losses = [10 * math.exp(-0.05 * t) for t in range(100)] + [10 * math.exp(-5)] * 60 \
        + [10 * math.exp(-5 - 0.05 * t) for t in range(60)]
    grads = [0.5 * math.exp(-0.05 * t) for t in range(100)] + [5e-4] * 60 + [0.02] * 60
    ref = _feed(StallDetector(), losses, grads)
    assert ref == [120]          # the first full window inside the plateau (steps 100..120), then disarmed
    for c in (1e-6, 1e-3, 1e3, 1e6):
        assert _feed(StallDetector(), [c * v for v in losses], [c * v for v in grads]) == ref, c
    # offsets: the loss is measured from its floor, so c·L + b with the floor moved along decides the same
    for c, b in ((1.0, 1e3), (1e-3, -5.0), (1e6, 1e7), (1e-6, 0.25)):
        det = StallDetector(loss_floor=b)
        assert _feed(det, [c * v + b for v in losses], [c * v for v in grads]) == ref, (c, b)
    # ...and without the floor a large offset hides the plateau's end: the check can fail
    assert _feed(StallDetector(), [v + 1e3 for v in losses], grads) != ref
    with pytest.raises(ValueError, match="loss_floor"):
        StallDetector(loss_floor=math.nan)


def test_one_plateau_one_event_and_rearm():
    det = StallDetector(window=10)
    fired = _feed(det, [1.0] * 50, [1e-6] * 50)
    assert fired == [10]         # disarmed: the rest of the plateau adds nothing
    det.rearm()
    assert [t for t in range(50, 80) if det.update(t, 1.0, 1e-6)] == [60]
    assert det.config() == {"window": 10, "rel_tol": 1e-3, "grad_tol": None, "abs_tol": 0.0, "min_step": 0,
                            "grad_rel": 1e-2, "param_scale": 1.0, "loss_floor": 0.0}
    assert StallDetector(**det.config()).config() == det.config()


def test_large_gradient_on_flat_loss_is_not_a_stall():
    det = StallDetector()
    # loss oscillating without net decrease, gradient at the run's own scale: not a plateau
    assert _feed(det, [1.0 + 0.01 * (t % 2) for t in range(200)], [1.0] * 200) == []
    # steady relative descent is never a stall, whatever the gradient
    assert _feed(StallDetector(), [math.exp(-0.01 * t) for t in range(500)], [1e-9] * 500) == []


def test_absolute_threshold_still_available_and_bad_input():
    det = StallDetector(window=5, grad_tol=1e-3)
    assert det.grad_threshold() == 1e-3
    assert _feed(det, [1.0] * 10, [2e-3] * 10) == []
    for bad in ({"window": 0}, {"rel_tol": -1.0}, {"grad_rel": math.inf}, {"param_scale": 0.0},
                {"grad_tol": math.nan}, {"min_step": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StallDetector(**bad)


def test_strict_saddle_plateau_of_a_linear_net_is_detected(tmp_path):
    # 4 → 2 → 3 linear net, 64 examples, ½Σ‖·‖² (sum), started at 1e-4·N(0, 1), GD lr 0.05: the
    # loss sits on the W = 0 strict saddle for ~28 steps (relative change < 1e-4) while ‖g‖ grows
    # from 1e-3 to 1e-1 — an absolute grad_tol = 1e-3 detector records no stall there.
    dl = DeepLinearProblem.random(4, 3, [2], 64, seed=0)
    theta0 = 1e-4 * torch.randn(dl.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def run(det, log_dir=None):
        tr = Trainer(dl.module(seed=0), half_sq_error, (dl.X, dl.Y), method="gd", lr=0.05, stall=det,
                     reduction="sum", dtype=torch.float64, progress=False, cancellation=False,
                     global_min=dl.global_min(), log_dir=log_dir)
        return tr.fit(300, theta0=theta0)

    L0 = 0.5 * float((dl.Y ** 2).sum())
    res = run(StallDetector(), str(tmp_path / "run"))
    plateau = [t for t, v in enumerate(res.losses) if abs(v - L0) < 1e-4 * L0]
    assert len(plateau) >= 25 and plateau[0] == 0
    on_plateau = [e for e in res.events if e.step <= plateau[-1]]
    assert len(on_plateau) == 1                        # one plateau, one event
    ev = on_plateau[0]
    nc = ev.nearest_critical
    kind, index, _ = dl.predicted(())                  # W = 0 of an H = 1 net: strict saddle, index d_1·d_y
    assert nc["kind"] == kind == "strict_saddle" and nc["index"] == index == 6
    assert nc["loss"] == pytest.approx(dl.critical_value(()), rel=1e-10) and nc["converged"]
    assert ev.kind == "strict_saddle" and ev.classify_tolerances["grad_tol"] >= ev.grad_norm
    line = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[ev.index])
    assert line["nearest_critical"]["kind"] == "strict_saddle" and line["nearest_critical"]["index"] == 6
    assert line["classify_tolerances"]["grad_tol"] == ev.classify_tolerances["grad_tol"]
    old = run(StallDetector(window=20, grad_tol=1e-3))
    assert not [e for e in old.events if e.step <= plateau[-1]]
