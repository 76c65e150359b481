"""The digits autoencoder problem (real data, no network), the user-file loader, and the plateau
facts on hand-built points with known answers."""
import math
import socket

import numpy as np
import pytest
import torch

from analyses import digits_comparison, digits_plateau
from analyses.problems import digits as digits_problem
from analyses.problems import get_problem, list_problems


def test_digits_problem_loads_without_network_and_has_the_stated_shape(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    from sklearn.datasets import load_digits

    assert "digits_autoencoder" in list_problems()
    p = get_problem("digits_autoencoder")
    X, Y = p.data
    raw = load_digits().data
    assert tuple(X.shape) == (1797, 64) and torch.equal(X, Y)
    np.testing.assert_array_equal(X.numpy(), raw / 16.0)
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    model = p.make_model(0)
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(64, 32), (32, 8), (8, 32), (32, 64)]
    assert all(m.bias is not None for m in lins)
    assert sum(isinstance(m, torch.nn.ReLU) for m in model) == 3
    assert p.objective().dim == 64 * 32 + 32 + 32 * 8 + 8 + 8 * 32 + 32 + 32 * 64 + 64
    # the objective is the mean squared error of the network (numpy forward pass)
    th = p.init(0, 0.0)
    W = [m.weight.detach().numpy() for m in lins]
    b = [m.bias.detach().numpy() for m in lins]
    h = raw / 16.0
    for k in range(4):
        h = h @ W[k].T + b[k]
        if k < 3:
            h = np.maximum(h, 0)
    assert math.isclose(p.objective().loss(th), np.mean((h - raw / 16.0) ** 2), rel_tol=1e-12)
    assert math.isclose(p.extra["mean_image_loss"], np.mean((raw / 16 - (raw / 16).mean(0)) ** 2), rel_tol=1e-12)
    # seeded: the same seed gives the same start, another seed another
    assert torch.equal(p.init(0, 0.0), get_problem("digits_autoencoder").init(0, 0.0))
    assert not torch.equal(p.init(0, 0.0), p.init(1, 0.0))


def test_npz_loader_builds_the_seed_shape(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    f = tmp_path / "mnist.npz"
    np.savez(f, x_train=imgs, y_train=np.arange(12))
    X = digits_problem.load_array_file(f)
    assert tuple(X.shape) == (12, 784) and X.dtype == torch.float64
    np.testing.assert_array_equal(X.numpy(), imgs.reshape(12, -1) / 255.0)
    p = get_problem("digits_autoencoder", data_file=str(f))
    lins = [m for m in p.make_model(0) if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(784, 100), (100, 28), (28, 100), (100, 784)]
    assert p.hints["lr"] == 1.0 and tuple(p.data[0].shape) == (12, 784)
    assert tuple(get_problem("digits_autoencoder", data_file=str(f), n=5).data[0].shape) == (5, 784)
    # any (n, d) float array; values outside [0, 1] are min-max scaled
    A = rng.normal(size=(7, 10))
    np.savez(tmp_path / "a.npz", X=A)
    Z = digits_problem.load_array_file(tmp_path / "a.npz").numpy()
    np.testing.assert_allclose(Z, (A - A.min()) / (A.max() - A.min()), rtol=1e-14)
    np.save(tmp_path / "b.npy", A[:, :4].clip(0, 1))
    np.testing.assert_array_equal(digits_problem.load_array_file(tmp_path / "b.npy").numpy(), A[:, :4].clip(0, 1))
    with pytest.raises(ValueError, match="no array 'nope'"):
        digits_problem.load_array_file(f, "nope")
    np.savez(tmp_path / "bad.npz", X=np.arange(5.0))
    with pytest.raises(ValueError, match="must be"):
        digits_problem.load_array_file(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        digits_problem.load_array_file(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="data width"):
        get_problem("digits_autoencoder", data_file=str(f), widths=(64, 8, 64))


def test_network_facts_on_points_with_known_answers():
    p = get_problem("digits_autoencoder", n=200)
    X = p.data[0]
    model = p.make_model(0)
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        lins[0].bias.fill_(-1e3)            # every first-layer unit dead on every input
        lins[-1].weight.zero_()
        lins[-1].bias.copy_(X.mean(0))      # the output is the mean image
    theta = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    f = digits_plateau.network_facts(p, theta)
    assert f["dead_units"][0] == 32 and f["widths"] == [32, 8, 32]
    assert f["mean_image_share"] < 1e-28 and f["output_variance_share"] < 1e-28 and f["outputs_mean_image"]
    # the constant-mean point is critical in every parameter (a dead layer, a zero last layer,
    # residuals summing to zero) and its loss is the mean-image loss
    obj = p.objective()
    loss, g = obj.loss_and_grad(theta)
    assert math.isclose(loss, p.extra["mean_image_loss"], rel_tol=1e-12) and float(g.abs().max()) < 1e-15
    # the seeded initialisation does not output the mean image
    f0 = digits_plateau.network_facts(p, p.init(0, 0.0))
    assert not f0["outputs_mean_image"]


def test_stall_cause_is_the_monitor_rule_against_the_start_of_the_run():
    """The digits part uses the one rule of landscape.monitor: the cause is the factor that
    contributes more orders of magnitude to the small mean gradient (κ vs mean‖g_i‖/r)."""
    rec = digits_plateau.stall_cause_record
    assert rec(0.02, 0.15, 0.17)["cause"] == "cancelling"            # κ 0.02 ≤ ratio 0.88
    assert rec(0.02, 0.001, 0.17)["cause"] == "vanishing"            # ratio 0.006 < κ 0.02
    assert rec(0.5, 0.15, 0.17)["cause"] is None                     # neither an order of magnitude small
    # the case the two old rules disagreed on: κ = 0.01 and ratio 0.05 -> cancelling (κ is smaller)
    assert rec(0.01, 0.05, 1.0)["cause"] == "cancelling"
    assert rec(0.02, 0.15, 0.17)["example_grad_scale_ratio"] == pytest.approx(0.15 / 0.17)
    assert rec(0.02, 0.15, 0.0)["example_grad_scale_ratio"] is None


def test_study_section_contract_on_a_short_run(tmp_path, monkeypatch):
    """The section's plumbing on a small net (100 digits, 64-4-2-4-64) and a 40-step run whose
    detector fires at once (not the real plateau)."""
    import json

    monkeypatch.setitem(digits_plateau.PRESETS, "quick", (40, 1, 1, 5))
    monkeypatch.setitem(digits_comparison.ESCAPE_METHODS, "quick", ("gd",))
    monkeypatch.setattr(digits_problem, "DIGITS_STALL", {"window": 5, "rel_tol": 1.0, "grad_rel": 1.0})
    sec = digits_plateau.study_section(tmp_path, quick=True, seed=0, workers=1,
                               problem_options={"n": 100, "widths": (64, 4, 2, 4, 64)})
    assert {"title", "lead", "html", "summary", "figures"} <= set(sec)
    assert sec["figures"] == ["digits/loss_curve.png", "digits/spectrum.png", "digits/reconstructions.png",
                              "digits/survival.png"]
    assert all((tmp_path / f).stat().st_size > 5_000 for f in sec["figures"])
    json.dumps(sec["summary"])
    st = sec["summary"]["plateau"]["stall"]
    assert st["step"] == 5 and st["cause"] in ("cancelling", "vanishing", None)
    assert sec["summary"]["methods"][0]["method"] == "gd"
    # the comparison: 2 seeds of GD (quick), every run's first stall in one cell, rates with Wilson
    cmp = sec["summary"]["comparison"]
    assert cmp["seeds"] == [0, 1] and cmp["n_runs"] == 2 and cmp["main"][0]["n_stalls"] == 2
    assert "Wilson" in sec["html"] and (tmp_path / "digits" / "runs_quick.jsonl").exists()
