"""The extended problem zoo (issue 6): global values against independent computations, the
stalls the benchmark relies on, and the autoencoder's .npz loader."""
import math

import numpy as np
import pytest
import torch

from analyses.problems import get_problem, list_problems
from landscape import cancellation_stats
from synaprune import StallDetector, Trainer


def _sigma_eigs(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Eigenvalues of Σ = YᵀX(XᵀX)⁻¹XᵀY, descending (numpy, independent of the library)."""
    S = Y.T @ X @ np.linalg.solve(X.T @ X, X.T @ Y)
    return np.sort(np.linalg.eigvalsh(0.5 * (S + S.T)))[::-1]


ZOO = ["deep_linear_h1_zero", "deep_linear_h3_zero", "deep_linear_h2_bottleneck_zero", "deep_linear_h2_wide_zero",
       "deep_linear_h2_saddle", "deep_linear_h2_padded", "xor", "autoencoder", "noisy_regression"]


def test_zoo_is_registered_with_benchmark_hints():
    for name in ZOO + ["deep_linear_h2_zero", "deep_linear_h1_saddle", "tanh_mlp", "teacher_student"]:
        assert name in list_problems()
        p = get_problem(name)
        assert isinstance(p.hints["stall"], StallDetector)
        assert p.hints["max_steps"] >= p.hints["quick_steps"] > 0 and p.hints["lr"] > 0
    # sum-reduced deep linear nets need a looser absolute gradient threshold than the default 1e-3
    assert get_problem("deep_linear_h2_zero").hints["stall"].grad_tol == pytest.approx(1e-2)


@pytest.mark.parametrize("name,widths", [("deep_linear_h1_zero", [3]), ("deep_linear_h3_zero", [3, 3, 3]),
                                         ("deep_linear_h2_bottleneck_zero", [1, 1]),
                                         ("deep_linear_h2_wide_zero", [8, 8])])
def test_deep_linear_global_value_matches_eigen_formula_and_least_squares(name, widths):
    p = get_problem(name)
    X, Y = (t.numpy() for t in p.data)
    lam = _sigma_eigs(X, Y)
    r = min(min(widths), Y.shape[1])
    assert math.isclose(p.global_min, 0.5 * ((Y ** 2).sum() - lam[:r].sum()), rel_tol=1e-10)
    if r == Y.shape[1]:  # full rank: the least-squares residual
        A = np.linalg.lstsq(X, Y, rcond=None)[0]
        assert math.isclose(p.global_min, 0.5 * ((X @ A - Y) ** 2).sum(), rel_tol=1e-9)
    obj = p.objective()
    w0 = p.reference(0)
    assert torch.count_nonzero(w0) == 0 and float(obj.grad(w0).abs().max()) == 0.0
    assert math.isclose(obj.loss(w0), 0.5 * (Y ** 2).sum(), rel_tol=1e-12)


@pytest.mark.parametrize("name,S,kind", [("deep_linear_h2_saddle", (0, 2), "strict_saddle"),
                                         ("deep_linear_h2_padded", (0, 1), "non_strict_saddle")])
def test_deep_linear_analytic_saddles(name, S, kind):
    p = get_problem(name)
    X, Y = (t.numpy() for t in p.data)
    lam = _sigma_eigs(X, Y)
    obj = p.objective()
    theta = p.reference(0)
    assert math.isclose(obj.loss(theta), 0.5 * ((Y ** 2).sum() - lam[list(S)].sum()), rel_tol=1e-10)
    assert float(obj.grad(theta).norm()) < 1e-10
    ev = torch.linalg.eigvalsh(obj.hessian(theta))
    tol = 1e-8 * float(ev.abs().max())
    n_neg = int((ev < -tol).sum())
    assert (n_neg > 0) == (kind == "strict_saddle") and p.reference_kind == kind


def test_xor_zero_is_a_critical_plateau_and_zero_is_approached():
    p = get_problem("xor")
    obj = p.objective()
    w0 = p.reference(0)
    assert obj.loss(w0) == pytest.approx(0.25, abs=1e-15) and float(obj.grad(w0).abs().max()) < 1e-15
    assert p.global_min == 0.0
    # Hessian at 0 (by hand): only (b2, v1, v2) couple, as (1/8)·u uᵀ with u = (1, ½, ½) → one eigenvalue 3/16
    ev = torch.linalg.eigvalsh(obj.hessian(w0))
    assert float(ev[-1]) == pytest.approx(3 / 16, abs=1e-14) and float(ev[:-1].abs().max()) < 1e-14
    # a hand-built solution: hidden OR and AND units, output OR − AND, scaled by s → loss → 0
    s = 30.0
    W1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]]) * s
    b1 = torch.tensor([-0.5, -1.5]) * s
    W2 = torch.tensor([[1.0, -1.0]]) * s
    b2 = torch.tensor([-0.5]) * s
    theta = torch.cat([W1.reshape(-1), b1, W2.reshape(-1), b2]).double()
    assert obj.loss(theta) < 1e-10


def test_noisy_regression_global_value_by_lstsq_and_cancellation_at_the_optimum():
    p = get_problem("noisy_regression")
    X, y = (t.numpy() for t in p.data)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    L = float(((A @ sol - y) ** 2).mean())
    assert math.isclose(p.global_min, L, rel_tol=1e-10)
    obj = p.objective()
    theta = torch.tensor(np.concatenate([sol[:-1, 0], sol[-1]]), dtype=torch.float64)  # Linear: weight (1, d), bias
    assert math.isclose(obj.loss(theta), L, rel_tol=1e-10)
    assert float(obj.grad(theta).norm()) < 1e-10
    cs = cancellation_stats(obj, theta)
    assert cs.kappa < 1e-8 and cs.mean_example_grad_norm > 0.5  # large per-example gradients that cancel


def _ae_reference_check(p, X: np.ndarray, k: int) -> None:
    n, d = X.shape
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    L = 0.5 * float((s[k:] ** 2).sum()) / n
    assert math.isclose(p.global_min, L, rel_tol=1e-10)
    obj = p.objective()
    Vk = Vt[:k]  # (k, d): the top-k principal directions, W1 = Vk, W2 = Vkᵀ reaches Eckart–Young
    theta = torch.tensor(np.concatenate([Vk.reshape(-1), Vk.T.reshape(-1)]))
    assert math.isclose(obj.loss(theta), L, rel_tol=1e-10)
    ref = p.reference(0)
    assert float(obj.grad(ref).norm()) < 1e-9
    keep = list(range(k - 1)) + [k]  # the PCA saddle skipping the k-th component
    assert math.isclose(obj.loss(ref), 0.5 * float((s ** 2).sum() - (s[keep] ** 2).sum()) / n, rel_tol=1e-9)
    ev = torch.linalg.eigvalsh(obj.hessian(ref))
    assert int((ev < -1e-8 * float(ev.abs().max())).sum()) == 1  # index 1 (one swapped pair)


def test_autoencoder_global_value_is_eckart_young():
    p = get_problem("autoencoder")
    _ae_reference_check(p, p.data[0].numpy(), k=2)


def test_autoencoder_loads_users_npz(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5)) @ np.diag([3.0, 2.0, 1.5, 0.7, 0.3])
    path = tmp_path / "mine.npz"
    np.savez(path, X=X, other=np.zeros(3))
    p = get_problem("autoencoder", data_file=str(path), k=2)
    assert np.array_equal(p.data[0].numpy(), X) and p.data[0].dtype == torch.float64
    _ae_reference_check(p, X, k=2)
    np.savez(tmp_path / "keyed.npz", data=X)
    assert get_problem("autoencoder", data_file=str(tmp_path / "keyed.npz"), key="data", k=1).global_min > 0


def test_autoencoder_loader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_problem("autoencoder", data_file=str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "nokey.npz", data=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"no array 'X'.*arrays present: data"):
        get_problem("autoencoder", data_file=str(tmp_path / "nokey.npz"))
    np.savez(tmp_path / "flat.npz", X=np.ones(10))
    with pytest.raises(ValueError, match=r"must be 2-D.*got shape \(10,\)"):
        get_problem("autoencoder", data_file=str(tmp_path / "flat.npz"))
    bad = np.ones((6, 3))
    bad[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=bad)
    with pytest.raises(ValueError, match="non-finite"):
        get_problem("autoencoder", data_file=str(tmp_path / "nan.npz"))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        get_problem("autoencoder", data_file=str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "ok.npz", X=np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="bottleneck k"):
        get_problem("autoencoder", data_file=str(tmp_path / "ok.npz"), k=3)


def test_gd_stalls_near_zero_of_h2_net_as_a_non_strict_saddle():
    # The stall point itself is near, not at, W = 0 (λ_min ≈ −0.1 there, on either side of any fixed
    # cut-off depending on the seed); what identifies the stall is the critical point it approaches.
    p = get_problem("deep_linear_h2_zero")
    st = p.hints["stall"]
    dl = p.extra["deep_linear"]
    for seed in range(4):
        tr = Trainer(p.make_model(seed), p.loss_fn, p.data, method="gd", lr=p.hints["lr"], seed=seed,
                     stall=StallDetector(**st.config()), global_min=p.global_min, reduction=p.reduction,
                     dtype=p.dtype, progress=False, cancellation=False)
        res = tr.fit(40, theta0=p.init(seed, p.hints["eps"]))
        assert res.events, "the default-tuned detector must see the W = 0 plateau"
        ev = res.events[0]
        assert ev.step <= 25
        assert abs(ev.loss - 0.5 * float((p.data[1] ** 2).sum())) < 1e-2  # still at the W = 0 loss ½‖Y‖²
        nc = ev.nearest_critical
        assert nc["converged"] and nc["kind"] == "non_strict_saddle" and nc["index"] == 0, seed
        assert nc["probe_order"] == pytest.approx(3.0, abs=0.1)          # H + 1
        assert nc["loss"] == pytest.approx(dl.critical_value(()), rel=1e-9)
        assert ev.classify_tolerances is not None and ev.classify_tolerances["grad_tol"] >= ev.grad_norm
