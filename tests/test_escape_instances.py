"""The escape study's instances (issue 23): independent draws, and each stall certified against its
closed form — checked here through the data objective (per-example gradients and the dense Hessian of
``landscape.Objective``, not the closed-form ½‖P − M̂‖² the generator uses) and an SVD of YᵀX/m."""
import math

import numpy as np
import pytest
import torch

from analyses.problems.escape_instances import (CELLS, MAIN_CELLS, TUNING_OFFSET, build_instance, instance_seed,
                                                relu_instance)
from analyses.problems.escape_theory import unflatten


def _svd(inst):
    X, Y = inst.X.numpy(), inst.Y.numpy()
    m = X.shape[0]
    U, s, Vt = np.linalg.svd(Y.T @ X / m)
    return U, s, Vt.T, float((Y * Y).sum()) / m


@pytest.mark.parametrize("cell", MAIN_CELLS)
def test_instances_are_distinct_and_tuning_seeds_disjoint(cell):
    insts = [build_instance(cell, i) for i in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            A, B = insts[a], insts[b]
            same_data = A.X.shape == B.X.shape and torch.equal(A.X, B.X) and torch.equal(A.Y, B.Y)
            assert not same_data and A.info["seed"] != B.info["seed"]
    assert len({tuple(i.dims) for i in insts} | {round(i.info["lr"], 12) for i in insts}) > 1
    test_seeds = {instance_seed(c, i, k) for c in CELLS for i in range(200) for k in range(8)}
    tune_seeds = {instance_seed(c, TUNING_OFFSET + i, k) for c in CELLS for i in range(20) for k in range(8)}
    assert not test_seeds & tune_seeds


@pytest.mark.parametrize("cell,index", [(c, i) for c in MAIN_CELLS for i in (0, 1)])
def test_certificate_against_the_closed_form(cell, index):
    inst = build_instance(cell, index)
    info, rank = inst.info, CELLS[cell].stall_rank
    U, s, V, yy = _svd(inst)
    # critical values, the stall's and the next, and the target: ½(‖Y‖²/m − Σ_{i≤k} ŝ_i²)
    L = [0.5 * (yy - float((s[:k] ** 2).sum())) for k in range(3)]
    scale = L[0]
    assert info["stall_value"] == pytest.approx(L[rank], rel=1e-12)
    assert info["next_value"] == pytest.approx(L[rank + 1], rel=1e-12)
    assert info["target"] == pytest.approx(L[rank] - 0.5 * (L[rank] - L[rank + 1]), rel=1e-12)
    obj = inst.objective()
    theta = inst.theta_stall
    assert obj.loss(theta) == pytest.approx(L[rank], rel=1e-12)
    g = obj.grad(theta)
    assert float(torch.linalg.vector_norm(g)) <= 1e-10 * scale                   # critical
    G = obj.per_example_grads(theta)
    norms = torch.linalg.vector_norm(G, dim=1)
    if CELLS[cell].cause == "vanishing":
        assert float(norms.max()) == 0.0                                          # every g_i = 0
    else:
        assert float(norms.mean()) > 1e-2 * math.sqrt(scale)                      # g_i large, their mean 0
        assert float(torch.linalg.vector_norm(G.mean(0))) <= 1e-10 * float(norms.mean())
    H = obj.hessian(theta)
    lam = torch.linalg.eigvalsh(0.5 * (H + H.T))
    top = float(lam.abs().max())
    j = rank  # the escaping mode (0-based)
    if CELLS[cell].kind == "strict_saddle":
        assert float(lam[0]) == pytest.approx(-s[j], rel=1e-8)                    # λ_min = −ŝ_j
        width = inst.dims[1]
        assert int((lam <= -s[j] * (1 - 1e-8)).sum()) == width - rank            # one per free hidden unit
        assert info["certificate"]["kind"] == "strict_saddle"
    else:
        assert float(lam[0]) >= -1e-9 * top                                       # PSD: no second-order escape
        # descent of order N along the free path of mode j: P moves by q·û_j v̂_jᵀ, L by ½q² − qŝ_j
        W = unflatten(theta, inst.dims)
        N = len(W)
        hidden = []
        prev = torch.as_tensor(V[:, 0])
        for k in range(N - 1):
            if rank == 0:
                break
            a = W[k] @ prev
            hidden.append(a / torch.linalg.vector_norm(a))
            prev = hidden[-1]
        cs = []
        for k in range(N - 1):
            c = torch.randn(inst.dims[k + 1], generator=torch.Generator().manual_seed(k), dtype=torch.float64)
            if hidden:
                c = c - hidden[k] * (hidden[k] @ c)
            cs.append(c / torch.linalg.vector_norm(c))
        u, v = torch.as_tensor(U[:, j]), torch.as_tensor(V[:, j])
        dirs = [torch.outer(cs[0], v)] + [torch.outer(cs[k], cs[k - 1]) for k in range(1, N - 1)] + [torch.outer(u, cs[-1])]
        for t in (0.02, 0.05):
            th = torch.cat([(w + t * d).reshape(-1) for w, d in zip(W, dirs)])
            q = t ** N
            assert obj.loss(th) - L[rank] == pytest.approx(0.5 * q * q - q * s[j], rel=1e-6)
        assert info["certificate"]["kind"] == "non_strict_saddle" and info["certificate"]["descent_order"] == N
    assert info["certificate"]["cause"] == CELLS[cell].cause and info["certificate"]["closed_form_ok"]


@pytest.mark.parametrize("cell", ["cancelling_strict", "cancelling_nonstrict"])
def test_the_start_is_where_the_trajectory_enters_the_plateau(cell):
    inst = build_instance(cell, 2)
    info = inst.info
    gap = info["values"][0] - info["values"][1]
    obj = inst.objective()
    assert obj.loss(inst.theta_start) - info["values"][1] <= 0.01 * gap * (1 + 1e-9)
    assert info["start_step"] > 0 and info["start_loss"] > info["target"]
    assert info["theory_steps"] >= 60 and info["distance_to_stall"] < 0.5 * math.sqrt(info["s_hat"][0])


def test_orthogonal_label_noise_keeps_the_saddle_and_lowers_kappa():
    a = build_instance("cancelling_strict", 0, orth_noise=0.0)
    b = build_instance("cancelling_strict", 0, orth_noise=50.0)
    # M̂ = YᵀX/m, hence the saddle and the whole GD trajectory, unchanged (to round-off)
    assert torch.allclose(a.Mh, b.Mh, rtol=0, atol=1e-12) and a.info["start_step"] == b.info["start_step"]
    assert torch.allclose(a.theta_start, b.theta_start, rtol=1e-9, atol=1e-12)
    # every critical value moves by the same constant ½‖ΔY‖-part: the gaps (hence the target's depth) are kept
    gaps = lambda inst: np.diff(inst.info["values"])  # noqa: E731
    assert np.allclose(gaps(a), gaps(b), rtol=1e-9) and b.info["stall_value"] > a.info["stall_value"] + 1000

    def kappa(inst):
        G = inst.objective().per_example_grads(inst.theta_start)
        return float(torch.linalg.vector_norm(G.mean(0)) / torch.linalg.vector_norm(G, dim=1).mean())

    assert kappa(b) < kappa(a) / 10


def test_relu_controls_are_the_zoo_minima_on_fresh_inputs():
    a, b = relu_instance("cancelling_spurious", 0), relu_instance("cancelling_spurious", 1)
    assert not torch.equal(a["problem"].data[0], b["problem"].data[0])
    assert a["info"]["target"] == pytest.approx(0.5 * a["info"]["stall_value"])
    d = relu_instance("vanishing_spurious", 0)
    assert d["info"]["start_loss"] == pytest.approx(d["info"]["stall_value"], rel=1e-12)  # dead: flat


@pytest.mark.parametrize("cell", ["cancelling_nonstrict", "cancelling_spurious"])
def test_every_method_starts_from_the_same_point_on_the_same_data(cell):
    """Pairing: whatever the method, a job of an instance gets the same start, data, target and horizon
    (only the tuned methods' step size differs), and the plan gives every instance every method."""
    from analyses.escape.design import METHODS, plan
    from analyses.escape.job import _setup

    setups = {m: _setup({"part": "main", "cell": cell, "instance": 1, "setting": "-", "method": m, "overrides": {}})
              for m in ("gd", "rms", "len-rms@always", "adam", "sgd-m/8", "pgd")}
    ref = setups["gd"]
    for m, s in setups.items():
        assert torch.equal(s["start"], ref["start"]), m
        assert all(torch.equal(a, b) for a, b in zip(s["data"], ref["data"]))
        for k in ("target", "horizon", "stall_value", "seed"):
            assert s["info"][k] == ref["info"][k], (m, k)
        assert (s["lr"] == ref["lr"]) == (METHODS[m].lr == "gd"), m
    units = {}
    for j in plan(["main", "control"], instances=3):
        units.setdefault((j["cell"], j["instance"]), []).append(j["method"])
    assert all(sorted(v) == sorted(METHODS) for v in units.values()) and len(units) == 4 * 3 + 4 * 6
