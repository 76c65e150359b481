"""The embedded problem zoo: registry, seeded start points, and the stated analytic facts."""
import math

import numpy as np
import pytest
import torch

from analyses.problems import PROBLEMS, Problem, get_problem, list_problems, register, teacher_point


def _sigma_eigs(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Eigenvalues of Σ = YᵀX(XᵀX)⁻¹XᵀY, descending (computed here, independently of the library)."""
    S = Y.T @ X @ np.linalg.solve(X.T @ X, X.T @ Y)
    return np.sort(np.linalg.eigvalsh(0.5 * (S + S.T)))[::-1]


def test_registry_lists_required_problems_and_rejects_unknown():
    for name in ("deep_linear_h2_zero", "deep_linear_h1_saddle", "tanh_mlp", "teacher_student"):
        assert name in list_problems()
        p = get_problem(name)
        assert isinstance(p, Problem) and p.name == name and p.description
    with pytest.raises(KeyError, match="known problems"):
        get_problem("nope")
    with pytest.raises(ValueError, match="already registered"):
        register("tanh_mlp")(lambda: None)
    assert set(PROBLEMS) == set(list_problems())


def test_deep_linear_h2_at_zero_is_a_flat_critical_point_with_known_values():
    p = get_problem("deep_linear_h2_zero")
    obj = p.objective()
    X, Y = (t.numpy() for t in p.data)
    w0 = p.reference(0)
    assert torch.count_nonzero(w0) == 0
    assert math.isclose(obj.loss(w0), 0.5 * float((Y ** 2).sum()), rel_tol=1e-12)
    assert float(obj.grad(w0).abs().max()) == 0.0
    assert float(obj.hessian(w0).abs().max()) == 0.0  # H = 2 at W = 0: Hessian exactly zero
    lam = _sigma_eigs(X, Y)
    r = min(min(p.extra["deep_linear"].widths), Y.shape[1])
    assert math.isclose(p.global_min, 0.5 * ((Y ** 2).sum() - lam[:r].sum()), rel_tol=1e-10)
    assert p.reference_kind == "non_strict_saddle" and p.global_min < obj.loss(w0)


def test_deep_linear_h1_saddle_has_predicted_loss_and_index():
    p = get_problem("deep_linear_h1_saddle")
    obj = p.objective()
    X, Y = (t.numpy() for t in p.data)
    lam = _sigma_eigs(X, Y)
    theta = p.reference(0)
    assert math.isclose(obj.loss(theta), 0.5 * ((Y ** 2).sum() - lam[0] - lam[2]), rel_tol=1e-10)  # S = (0, 2)
    assert float(obj.grad(theta).norm()) < 1e-10
    ev = torch.linalg.eigvalsh(obj.hessian(theta))
    tol = 1e-8 * float(ev.abs().max())
    assert int((ev < -tol).sum()) == 1 == p.hints["index"]  # one pair (i=2 in S, j=1 not) with λ_1 > λ_2
    assert p.reference_kind == "strict_saddle"


def test_init_is_seeded_eps_perturbation_of_reference():
    p = get_problem("deep_linear_h1_saddle")
    ref = p.reference(0)
    torch.testing.assert_close(p.init(3, 0.0), ref, rtol=0, atol=0)
    a, b = p.init(3, 1e-2), p.init(3, 1e-2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, p.init(4, 1e-2))
    d = float((a - ref).norm()) / (1e-2 * math.sqrt(ref.numel()))
    assert 0.3 < d < 3.0
    with pytest.raises(ValueError, match="eps"):
        p.init(0, -1.0)


def test_small_nets_build_and_teacher_is_a_global_minimum():
    ts = get_problem("teacher_student")
    obj = ts.objective()
    assert ts.global_min == 0.0
    assert obj.loss(teacher_point(ts)) == pytest.approx(0.0, abs=1e-28)
    assert obj.loss(ts.init(0, 0.0)) > 1e-3
    mlp = get_problem("tanh_mlp")
    o1, o2 = mlp.objective(seed=1), mlp.objective(seed=1)
    torch.testing.assert_close(o1.initial_point(), o2.initial_point(), rtol=0, atol=0)
    torch.testing.assert_close(mlp.reference(1), o1.initial_point(), rtol=0, atol=0)
    assert not torch.equal(mlp.reference(1), mlp.reference(2))
    assert math.isfinite(o1.loss(o1.initial_point())) and mlp.dtype == torch.float64
    with pytest.raises(ValueError, match="activation"):
        get_problem("teacher_student", activation="sigmoid")
