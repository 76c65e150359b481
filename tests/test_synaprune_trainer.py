"""The trainer: stalls classified at known critical points, streaming logs, bad input."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from landscape.deep_linear import DeepLinearProblem, half_sq_error
from synaprune import METHODS, StallDetector, Trainer, load_run


def _perturbed(pb: DeepLinearProblem, theta: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(pb.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return theta + eps * noise / torch.linalg.vector_norm(noise)


def _trainer(pb: DeepLinearProblem, method: str = "gd", **kw) -> Trainer:
    kw.setdefault("stall", StallDetector(window=20, grad_tol=1e-3))
    kw.setdefault("progress", False)
    return Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method=method, lr=kw.pop("lr", 0.05),
                   reduction="sum", global_min=pb.global_min(), **kw)


def test_stall_near_strict_saddle_is_classified_strict_and_escaped():
    # One hidden layer (H = 1): W = 0 is a strict saddle with λ_min = −σ_1(XᵀY) (THEORY §2).
    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    sigma1 = float(torch.linalg.svdvals(pb.XtY)[0])
    res = _trainer(pb).fit(1400, theta0=_perturbed(pb, pb.zero_point(), 1e-6))
    ev = res.events[0]
    assert ev.step == 20 and ev.kind == "strict_saddle"
    assert ev.loss == pytest.approx(pb.critical_value(()), rel=1e-9)
    assert ev.report.lambda_min == pytest.approx(-sigma1, rel=1e-4)
    # Hessian eigenvalues at W = 0: ±σ_i(XᵀY), each repeated d_1 = 2 times
    sv = torch.linalg.svdvals(pb.XtY)
    assert ev.report.index == 2 * int((sv > ev.report.eig_tol).sum()) == 4
    assert ev.escaped and 0 < ev.escape_steps < 300 and ev.distance_moved > 1e-2
    assert ev.cancellation is not None and 0 <= ev.cancellation.kappa <= 1
    # the next stall is the global minimum L* = ½(tr YᵀY − Σλ_i)
    assert len(res.events) == 2 and ev.next_kind == "global_minimum" == res.events[1].kind
    assert res.events[1].loss == pytest.approx(pb.global_min(), abs=1e-5)
    assert res.events[1].next_is_final and res.final_kind == "global_minimum"


def test_stall_near_zero_of_three_layer_linear_net_is_non_strict():
    # Two hidden layers (H = 2): the Hessian at W = 0 is exactly 0, the loss falls at order 3.
    pb = DeepLinearProblem.random(3, 2, [2, 2], 10, seed=1)
    res = _trainer(pb).fit(60, theta0=_perturbed(pb, pb.zero_point(), 1e-3))
    ev = res.events[0]
    assert ev.kind == "non_strict_saddle"
    assert ev.loss == pytest.approx(pb.critical_value(()), rel=1e-5)
    assert ev.report.index == 0 and ev.report.lambda_min >= -ev.report.eig_tol
    assert ev.report.probe_order == pytest.approx(3.0, abs=0.3)
    # the run ends before the stall is resolved: censored, not a failure
    assert ev.censored and ev.escaped is None and ev.observed_steps == 60 - ev.step
    # per-example gradients vanish near W = 0 (each contains another small layer) and agree in
    # direction: κ and mean‖g_i‖ against one autograd call per example
    theta = ev.theta
    shapes = [tuple(s) for s in pb.shapes]
    sizes = [a * b for a, b in shapes]
    rows = []
    for i in range(pb.X.shape[0]):
        p = theta.clone().requires_grad_(True)
        parts = torch.split(p, sizes)
        Ws = [w.reshape(s) for w, s in zip(parts, shapes)]
        out = pb.X[i:i + 1]
        for W in Ws:
            out = out @ W.T
        (g,) = torch.autograd.grad(0.5 * ((out - pb.Y[i:i + 1]) ** 2).sum(), p)
        rows.append(g)
    G = torch.stack(rows)
    scale = float(G.norm(dim=1).mean())
    assert ev.example_grad_scale == pytest.approx(scale, rel=1e-10)
    assert ev.kappa == pytest.approx(float(G.mean(0).norm()) / scale, rel=1e-10) and ev.kappa > 0.1
    assert ev.example_grad_scale_ratio < 0.1 and ev.cause == "vanishing"


def test_events_survive_interrupt_and_load_run(tmp_path):
    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    stop_at = 55

    def callback(step, state):
        if step == stop_at:
            raise KeyboardInterrupt

    tr = _trainer(pb, "synaprune-rms", log_dir=tmp_path, checkpoint_every=10, meta={"problem": "deep_linear_h1"})
    with pytest.raises(KeyboardInterrupt):
        tr.fit(500, theta0=_perturbed(pb, pb.zero_point(), 1e-6), callback=callback)
    run = load_run(tmp_path)
    assert run.status == "interrupted"
    assert run.config["method"] == "synaprune-rms" and run.config["meta"] == {"problem": "deep_linear_h1"}
    assert run.config["stall_detector"]["window"] == 20 and run.config["dtype"] == "torch.float64"
    assert len(run.events) == 1 and run.events[0]["kind"] == "strict_saddle" and run.events[0]["step"] == 20
    assert run.events[0]["attempts"][0]["rule"] == "synaprune-rms"
    assert np.array_equal(run.steps, np.arange(stop_at + 1)) and run.losses[0] == pytest.approx(pb.critical_value(()), rel=1e-9)
    assert run.stall_thetas[0].shape == (pb.dim,)
    assert np.linalg.norm(run.stall_thetas[0]) < 1e-5  # still at the saddle
    assert run.final is not None and run.final["losses"].shape == (stop_at + 1,)


def test_events_survive_killed_process(tmp_path):
    script = textwrap.dedent(f"""
        import time, torch
        from landscape.deep_linear import DeepLinearProblem, half_sq_error
        from synaprune import StallDetector, Trainer
        pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
        th = 1e-6 * torch.ones(pb.dim, dtype=torch.float64)
        def cb(step, state):
            if state["events"]:
                time.sleep(60)  # killed here
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="gd", lr=0.05, reduction="sum",
                stall=StallDetector(window=20, grad_tol=1e-3), classify=False, progress=False,
                log_dir={str(tmp_path)!r}, checkpoint_every=5).fit(1000, theta0=th, callback=cb)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    events = tmp_path / "events.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (events.exists() and events.read_text().strip()):
        if proc.poll() is not None:
            pytest.fail(f"subprocess ended early: {proc.stderr.read().decode()}")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = load_run(tmp_path)
    assert run.status == "running" and run.final is None  # never finished
    assert len(run.events) == 1 and run.events[0]["step"] == 20
    assert json.loads(events.read_text().splitlines()[0])["index"] == 0
    assert len(run.losses) >= 20 and 0 in run.stall_thetas


def test_bad_input_errors():
    pb = DeepLinearProblem.random(3, 2, [2], 10, seed=1)
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="newton")
    with pytest.raises(TypeError, match="unknown option"):
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="synaprune-rms", q=3)
    with pytest.raises(ValueError, match="p = 1, 2 or 'inf'"):
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="synaprune-rms", p=3)
    with pytest.raises(ValueError, match="SynaPrune methods only"):
        Trainer(pb.module(), half_sq_error, (pb.X, pb.Y), method="adam", mode="always")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x)

    X = torch.randn(8, 3, dtype=torch.float64)
    Y = torch.randn(8, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="nn.Sequential.*got Net"):
        Trainer(Net().double(), nn.MSELoss(), (X, Y), method="synaprune-hebbian")
    conv = nn.Sequential(nn.Linear(3, 4), nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 1, 3), nn.Flatten()).double()
    with pytest.raises(TypeError, match="module '1' is Unflatten"):
        Trainer(conv, nn.MSELoss(), (X, Y), method="synaprune-hebbian")


def test_nonfinite_loss_stops_with_last_good_state(tmp_path):
    X = torch.linspace(-1, 1, 16, dtype=torch.float64).unsqueeze(1)
    Y = 3 * X
    model = nn.Linear(1, 1).double()
    tr = Trainer(model, nn.MSELoss(), (X, Y), method="gd", lr=1e3, classify=False, log_dir=tmp_path, progress=False)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        res = tr.fit(1000)
    assert res.status == "nonfinite" and "non-finite" in res.message and res.n_steps < 1000
    assert bool(torch.isfinite(res.final_theta).all()) and np.isfinite(res.final_loss)
    assert tr.obj.loss(res.final_theta) == pytest.approx(res.final_loss, rel=1e-12)
    run = load_run(tmp_path)
    assert run.status == "nonfinite"
    np.testing.assert_array_equal(run.final["final_theta"], res.final_theta.numpy())
    assert all(name in METHODS for name in ("gd", "sgd", "adam", "pgd", "ncd", "sfn", "synaprune-rms",
                                            "synaprune-devarg", "synaprune-noise", "synaprune-penalty",
                                            "synaprune-hebbian"))


def test_trainer_validates_classifier_and_logging_options():
    model = torch.nn.Linear(2, 1).double()
    X, Y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="classify_method"):
        Trainer(model, torch.nn.MSELoss(), (X, Y), method="gd", classify_method="dens")
    with pytest.raises(ValueError, match="chunk_size"):
        Trainer(model, torch.nn.MSELoss(), (X, Y), method="gd", chunk_size=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(model, torch.nn.MSELoss(), (X, Y), method="gd", checkpoint_every=0)
