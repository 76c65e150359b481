"""Frye et al.'s cut-off experiment: the closed-form objective, the analytic table, and the
finder's accepted points on a 6-input 2-hidden linear autoencoder (small enough to enumerate)."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from analyses import critical_points as cp
from landscape import DeepLinearProblem
from landscape.critical import find_critical_point


def _small(d=6, h=2, m=12):
    lam = cp.spectrum(d)
    X = cp.make_data(lam, m, seed=0)
    return lam, X, cp.autoencoder_objective(X, h)


def _analytic_numpy(X: np.ndarray, h: int):
    """Critical values ½(tr C − Σ_S λ) and Baldi–Hornik indices #{(i∈S, j∉S): λ_j > λ_i} + (h−s)(d−s),
    from numpy's eigenvalues of C = XᵀX (independent of the library)."""
    lam = np.sort(np.linalg.eigvalsh(X.T @ X))[::-1]
    d = len(lam)
    out = []
    for s in range(h + 1):
        for S in itertools.combinations(range(d), s):
            idx = sum(1 for i in S for j in range(d) if j not in S and lam[j] > lam[i]) + (h - s) * (d - s)
            out.append((0.5 * (lam.sum() - lam[list(S)].sum()), idx))
    return out


def test_data_has_the_chosen_spectrum_and_the_objective_is_the_data_loss():
    lam, X, obj = _small()
    ev = np.sort(np.linalg.eigvalsh((X.T @ X).numpy()))[::-1]
    np.testing.assert_allclose(ev, lam.numpy(), rtol=1e-12)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        th = torch.randn(obj.dim, generator=g, dtype=torch.float64)
        W1, W2 = th[:12].reshape(2, 6).numpy(), th[12:].reshape(6, 2).numpy()
        direct = 0.5 * np.sum((X.numpy() @ (W2 @ W1).T - X.numpy()) ** 2)
        assert math.isclose(obj.loss(th), direct, rel_tol=1e-12)


def test_sixteen_four_table_has_2517_separated_classes():
    X = cp.make_data(cp.spectrum(), 32, seed=0)
    table = cp.analytic_table(DeepLinearProblem(X, X, [4]))
    assert len(table.S) == sum(math.comb(16, k) for k in range(5)) == 2517
    v = np.sort(table.loss)
    assert np.min(np.diff(v) / v[1:]) > 2 * cp.LOSS_RTOL  # a 1e-6 loss match names one class
    # W = 0 is S = ∅: loss ½ tr C and index p·d = 64
    j = table.S.index(())
    assert math.isclose(table.loss[j], 0.5 * float((X ** 2).sum()), rel_tol=1e-12) and table.index[j] == 64


def test_every_point_accepted_at_1e_10_is_analytic_in_value_and_index():
    lam, X, obj = _small()
    truth = _analytic_numpy(X.numpy(), 2)
    table = cp.analytic_table(DeepLinearProblem(X, X, [2]))
    assert len(truth) == len(table.S) == 1 + 6 + 15
    starts = [cp.random_start((6, 6), 2, s, 10 + i) for i, s in enumerate((0.1, 0.3, 1.0, 0.3))]
    starts += [th for _, th in cp.trajectory_starts(obj, 2, 6, seed=5, steps=(0, 20, 40, 80))]
    accepted, classes = 0, set()
    for k, th in enumerate(starts):
        for method in cp.METHODS:
            cs = find_critical_point(obj, th, method=method, grad_tol=1e-13, max_iter=40 if method == "newton-mr" else 400,
                                     seed=k)
            if cs.grad_norm ** 2 >= 1e-10:
                continue
            accepted += 1
            ev = np.linalg.eigvalsh(obj.hessian(cs.theta).numpy())
            n_neg = int((ev < -cp.NEG_EIG_ABS).sum())
            best = min(truth, key=lambda t: abs(t[0] - cs.loss))
            assert abs(cs.loss - best[0]) <= 1e-6 * best[0], (method, k, cs.loss, best)
            assert n_neg == best[1], (method, k, cs.loss, n_neg, best)
            classes.add(round(best[0], 9))
            # the module's own bookkeeping agrees with the independent check
            a = cp.assess(obj, table, cs.theta, cs.loss, cs.grad_norm ** 2)
            assert a["match_loss"] and a["match_index"]
    assert accepted >= 8 and len(classes) >= 2  # the check is not vacuous


def test_cutoff_counts_and_deterministic_outputs(tmp_path):
    kw = dict(presets=(1, 1, 15, 30, (0, 25)), d=6, hidden=2)
    res, cands, table, times = cp.run_experiment(seed=1, **kw)
    rows = res.cutoffs
    assert [r["cutoff"] for r in rows] == [1e-10, 1e-8, 1e-6, None]
    assert rows[-1]["n_candidates"] == len(cands) == 2 * 3
    for r in rows:  # counts by hand from the candidates
        acc = [c for c in cands if r["cutoff"] is None or c.grad_sq < r["cutoff"]]
        assert r["n_candidates"] == len(acc)
        assert r["n_match_loss"] == sum(c.match_loss for c in acc) >= r["n_match_index"]
    assert all(a["n_candidates"] <= b["n_candidates"] for a, b in zip(rows, rows[1:]))
    p1 = cp.write_outputs(res, cands, table, times, tmp_path / "a")
    res2, cands2, table2, times2 = cp.run_experiment(seed=1, **kw)
    p2 = cp.write_outputs(res2, cands2, table2, times2, tmp_path / "b")
    assert p1["json"].read_bytes() == p2["json"].read_bytes()
    assert p1["npz"].read_bytes() == p2["npz"].read_bytes() and p1["png"].read_bytes() == p2["png"].read_bytes()
    z = np.load(p1["npz"])
    np.testing.assert_allclose(z["loss"], [c.loss for c in cands], rtol=1e-11)
    data = json.loads(p1["json"].read_text())
    assert {"cutoff", "n_candidates", "n_match_loss", "n_match_index"} <= set(data["cutoffs"][0])
    assert p1["png"].stat().st_size > 10_000
