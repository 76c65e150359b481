"""Loss surfaces: directions, grid values against closed forms and direct evaluation, renderers, CLI."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Objective
from landscape.deep_linear import DeepLinearProblem
from landscape.render import surface_figure, surface_png, write_surface_html
from landscape.surface import (SurfaceResult, eigen_directions, evaluate_points, interpolate, normalize_direction,
                               pca_directions, random_directions, surface_1d, surface_2d, surface_eigen,
                               surface_pca)

F64 = torch.float64


def _mlp_objective(batches: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(30, 3, generator=g, dtype=F64)
    Y = torch.randn(30, 2, generator=g, dtype=F64)
    data = (X, Y) if batches == 1 else list(zip(X.chunk(batches), Y.chunk(batches)))
    return model, Objective.from_module(model, nn.MSELoss(), data)


def _conv_objective():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 2, 6, 6, generator=g, dtype=F64)
    y = torch.randint(0, 2, (6,), generator=g)
    return model, Objective.from_module(model, nn.CrossEntropyLoss(), (X, y))


def _quadratic(dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=F64)).Q
    lam = torch.tensor([-3.0, -1.0, 0.5, 1.0, 2.0, 7.0], dtype=F64)[:dim]
    A = Q @ torch.diag(lam) @ Q.T
    A = 0.5 * (A + A.T)
    b = torch.randn(dim, generator=g, dtype=F64)
    obj = Objective.from_function(lambda x: 0.5 * x @ A @ x + b @ x, torch.zeros(dim, dtype=F64))
    return obj, A, b, lam, Q


# ------------------------------------------------------------------------------------ directions
def test_filter_normalisation_matches_theta_filter_norms():
    _, obj = _conv_objective()
    theta = obj.initial_point()
    raw = torch.randn(obj.dim, generator=torch.Generator().manual_seed(3), dtype=F64)
    d = normalize_direction(obj, theta, raw, normalization="filter")
    dp, tp = obj.to_module_params(d), obj.to_module_params(theta)
    for name, shape in zip(obj.spec.names, obj.spec.shapes):
        if len(shape) >= 2:
            got = dp[name].reshape(shape[0], -1).norm(dim=1)
            want = tp[name].reshape(shape[0], -1).norm(dim=1)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
            # direction of each filter is the raw direction's (only rescaled)
            rawp = obj.to_module_params(raw)[name].reshape(shape[0], -1)
            cos = (rawp * dp[name].reshape(shape[0], -1)).sum(1) / (rawp.norm(dim=1) * got)
            torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-12)
        else:
            assert torch.count_nonzero(dp[name]) == 0  # biases zeroed by default
    kept = obj.to_module_params(normalize_direction(obj, theta, raw, normalization="filter", bias="keep"))
    for name, shape in zip(obj.spec.names, obj.spec.shapes):
        if len(shape) == 1:
            assert math.isclose(float(kept[name].norm()), float(tp[name].norm()), rel_tol=1e-12)
    layer = obj.to_module_params(normalize_direction(obj, theta, raw, normalization="layer"))
    for name, shape in zip(obj.spec.names, obj.spec.shapes):
        if len(shape) >= 2:
            assert math.isclose(float(layer[name].norm()), float(tp[name].norm()), rel_tol=1e-12)
    none = normalize_direction(obj, theta, raw, normalization="none")
    assert math.isclose(float(none.norm()), 1.0, rel_tol=1e-12)


def test_random_directions_orthogonal_seeded_and_first_filter_normalised():
    _, obj = _conv_objective()
    theta = obj.initial_point()
    D = random_directions(obj, theta, 2, seed=5)
    u, w = D
    assert abs(float(u @ w)) <= 1e-12 * float(u.norm() * w.norm())
    assert float(w.norm()) > 0
    torch.testing.assert_close(D, random_directions(obj, theta, 2, seed=5), rtol=0, atol=0)
    D_gen = random_directions(obj, theta, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(D, D_gen, rtol=0, atol=0)
    assert not torch.equal(D, random_directions(obj, theta, 2, seed=6))
    w0 = obj.spec.names[0]
    sl = obj.spec.slices[w0]
    shape = obj.spec.shapes[0]
    torch.testing.assert_close(u[sl].reshape(shape[0], -1).norm(dim=1), theta[sl].reshape(shape[0], -1).norm(dim=1),
                               rtol=1e-12, atol=0)


def test_direction_errors_are_explicit():
    obj, *_ = _quadratic()
    theta = torch.ones(obj.dim, dtype=F64)
    with pytest.raises(ValueError, match="1-D"):
        random_directions(obj, theta, 2, normalization="filter")
    with pytest.raises(ValueError, match="normalization"):
        random_directions(obj, theta, 2, normalization="bogus")
    with pytest.raises(ValueError, match="steps"):
        surface_1d(obj, theta, torch.ones(obj.dim, dtype=F64), 1.0, 1)
    with pytest.raises(ValueError, match="span"):
        surface_1d(obj, theta, torch.ones(obj.dim, dtype=F64), -1.0, 5)
    with pytest.raises(ValueError, match="parallel"):
        surface_2d(obj, theta, torch.ones(obj.dim, dtype=F64), 2 * torch.ones(obj.dim, dtype=F64), 1.0, 3)
    with pytest.raises(ValueError, match="both directions"):
        surface_2d(obj, theta, torch.ones(obj.dim, dtype=F64), None, 1.0, 3)


# ------------------------------------------------------------------------------------ values
def test_quadratic_surface_equals_closed_form():
    obj, A, b, _, _ = _quadratic()
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(obj.dim, generator=g, dtype=F64)
    u, w = torch.randn(2, obj.dim, generator=g, dtype=F64)
    res = surface_2d(obj, theta, u, w, span=1.5, steps=9, progress=False)
    a = torch.linspace(-1.5, 1.5, 9, dtype=F64)
    grad = A @ theta + b
    f0 = float(0.5 * theta @ A @ theta + b @ theta)
    AA, BB = torch.meshgrid(a, a, indexing="ij")
    want = (f0 + AA * (grad @ u) + BB * (grad @ w)
            + 0.5 * (AA ** 2 * (u @ A @ u) + 2 * AA * BB * (u @ A @ w) + BB ** 2 * (w @ A @ w)))
    np.testing.assert_allclose(res.loss, want.numpy(), rtol=1e-12, atol=1e-12)
    assert res.loss.shape == (9, 9)
    np.testing.assert_allclose(res.coords[0], a.numpy())
    np.testing.assert_array_equal(res.directions, torch.stack([u, w]).numpy())
    r1 = surface_1d(obj, theta, u, 1.5, 9, progress=False)
    np.testing.assert_allclose(r1.loss, (f0 + a * (grad @ u) + 0.5 * a ** 2 * (u @ A @ u)).numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("strategy", ["auto", "vmap", "loop"])
def test_grid_values_equal_direct_loss_at_sampled_points(strategy):
    _, obj = _mlp_objective(batches=3)
    theta = obj.initial_point()
    res = surface_2d(obj, theta, span=0.8, steps=7, seed=1, chunk_size=10, progress=False, strategy=strategy)
    u, w = (torch.from_numpy(d) for d in res.directions)
    for i, j in [(0, 0), (0, 6), (3, 3), (5, 2), (6, 6)]:
        p = theta + float(res.coords[0][i]) * u + float(res.coords[1][j]) * w
        assert math.isclose(res.loss[i, j], obj.loss(p), rel_tol=1e-12)
    assert res.meta["strategy"] in ("vmap", "loop")
    assert math.isclose(res.loss[3, 3], obj.loss(theta), rel_tol=1e-12)  # a = b = 0 is theta itself


def test_non_vmappable_function_falls_back_to_loop():
    def fn(x):
        return x.pow(2).sum() if bool(x.sum() > 0) else x.abs().sum()  # data-dependent branch: no vmap
    obj = Objective.from_function(fn, torch.zeros(3, dtype=F64))
    theta = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    u = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    res = surface_1d(obj, theta, u, 2.0, 5, progress=False)
    want = [fn(theta + a * u).item() for a in np.linspace(-2, 2, 5)]
    np.testing.assert_allclose(res.loss, want, rtol=1e-14)
    assert res.meta["strategy"] == "loop"


def test_interpolation_endpoints_equal_losses():
    _, obj = _mlp_objective()
    ta = obj.initial_point()
    tb = ta + 0.3 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(4), dtype=F64)
    res = interpolate(obj, ta, tb, steps=11, progress=False)
    assert math.isclose(res.loss[0], obj.loss(ta), rel_tol=1e-13)
    assert math.isclose(res.loss[-1], obj.loss(tb), rel_tol=1e-13)
    mid = 0.5 * (ta + tb)
    assert math.isclose(res.loss[5], obj.loss(mid), rel_tol=1e-12)
    ext = interpolate(obj, ta, tb, steps=9, margin=0.5, progress=False)
    assert ext.coords[0][0] == -0.5 and ext.coords[0][-1] == 1.5
    assert math.isclose(ext.loss[2], obj.loss(ta), rel_tol=1e-12)  # t = 0 is the 3rd of 9 points on [-0.5, 1.5]


def test_eigen_directions_of_quadratic_are_extreme_unit_eigenvectors():
    obj, A, _, lam, Q = _quadratic()
    eig = eigen_directions(obj, torch.zeros(obj.dim, dtype=F64))
    np.testing.assert_allclose(eig.values.numpy(), [7.0, -3.0], rtol=1e-10)
    for k, col in ((0, 5), (1, 0)):
        v = eig.vectors[k]
        assert math.isclose(float(v.norm()), 1.0, rel_tol=1e-12)
        assert float((A @ v - eig.values[k] * v).norm()) < 1e-8
        assert math.isclose(abs(float(v @ Q[:, col])), 1.0, rel_tol=1e-10)
    res = surface_eigen(obj, torch.zeros(obj.dim, dtype=F64), 1.0, 5, progress=False)
    # along unit eigenvectors through the critical point? theta=0 is not critical (b != 0); check
    # the curvature part: second differences equal the eigenvalues.
    h = res.coords[0][1] - res.coords[0][0]
    d2a = (res.loss[0, 2] - 2 * res.loss[1, 2] + res.loss[2, 2]) / h ** 2
    d2b = (res.loss[2, 0] - 2 * res.loss[2, 1] + res.loss[2, 2]) / h ** 2
    assert math.isclose(d2a, 7.0, rel_tol=1e-9) and math.isclose(d2b, -3.0, rel_tol=1e-9)


def test_eigen_directions_deep_linear_w0_match_analytic_hessian():
    # H = 1 at W = 0: Hessian eigenvalues are ±σ_i(XᵀY), each repeated d_1 times (THEORY.md §2).
    dl = DeepLinearProblem.random(4, 3, [2], 20, seed=3)
    obj = dl.objective()
    w0 = dl.zero_point()
    sigma = torch.linalg.svdvals(dl.X.T @ dl.Y)
    eig = eigen_directions(obj, w0)
    np.testing.assert_allclose(eig.values.numpy(), [float(sigma[0]), -float(sigma[0])], rtol=1e-9)
    H = obj.hessian(w0)
    for k in range(2):
        v = eig.vectors[k]
        assert math.isclose(float(v.norm()), 1.0, rel_tol=1e-12)
        assert float((H @ v - eig.values[k] * v).norm()) <= 1e-8 * float(sigma[0])


def test_pca_plane_recovers_planar_trajectory():
    dim = 12
    g = torch.Generator().manual_seed(0)
    E = torch.linalg.qr(torch.randn(dim, 2, generator=g, dtype=F64)).Q.T  # orthonormal rows
    c = torch.randn(dim, generator=g, dtype=F64)
    s = torch.linspace(0, 1, 20, dtype=F64)
    coeff = torch.stack([3 * (1 - s), (1 - s) * torch.sin(4 * s)], 1)
    traj = c + coeff @ E
    plane = pca_directions(traj)
    torch.testing.assert_close(plane.directions @ plane.directions.T, torch.eye(2, dtype=F64), atol=1e-12, rtol=0)
    # the plane is span(E): projector equality
    torch.testing.assert_close(plane.directions.T @ plane.directions, E.T @ E, atol=1e-10, rtol=0)
    recon = traj[-1] + plane.coords @ plane.directions
    torch.testing.assert_close(recon, traj, atol=1e-10, rtol=0)
    assert float(plane.explained.sum()) == pytest.approx(1.0, abs=1e-12)
    obj = Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(dim, dtype=F64))
    res = surface_pca(obj, traj, 5, progress=False)
    np.testing.assert_allclose(res.trajectory, plane.coords.numpy(), atol=1e-10)
    np.testing.assert_allclose(res.trajectory_loss, (traj ** 2).sum(1).numpy(), rtol=1e-12)
    assert res.meta["trajectory_max_off_plane"] < 1e-10
    with pytest.raises(ValueError, match="at least 3"):
        pca_directions(traj[:2])


def test_users_model_is_never_modified():
    model, obj = _mlp_objective()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    theta = obj.initial_point() + 0.1
    D = random_directions(obj, theta, 2, seed=0)
    surface_1d(obj, theta, None, 1.0, 5, progress=False)
    surface_2d(obj, theta, D[0], D[1], 1.0, 4, progress=False, marks=[{"theta": theta, "kind": "minimum"}])
    surface_eigen(obj, theta, 1.0, 3, progress=False)
    surface_pca(obj, torch.stack([theta, theta + D[0], theta + D[1] * 0.5, theta + 0.2 * D[0]]), 3, progress=False)
    interpolate(obj, theta, theta + D[0], 5, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------------------------ files and figures
def _figure_data(res: SurfaceResult) -> list[dict]:
    return surface_figure(res).to_dict()["data"]


def _assert_same_figure_data(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ta, tb in zip(a, b):
        assert ta.keys() == tb.keys()
        for key in ta:
            va, vb = ta[key], tb[key]
            if isinstance(va, (list, tuple, np.ndarray)) or isinstance(vb, (list, tuple, np.ndarray)):
                np.testing.assert_array_equal(np.asarray(va, dtype=object), np.asarray(vb, dtype=object))
            else:
                assert va == vb, key


def test_npz_round_trip_and_replot_reproduce_figure_data(tmp_path):
    _, obj = _mlp_objective()
    theta = obj.initial_point()
    traj = torch.stack([theta + 0.1 * k * torch.sin(torch.arange(obj.dim, dtype=F64) * k) for k in range(5)])
    res = surface_2d(obj, theta, span=0.5, steps=6, progress=False, trajectory=traj,
                     marks=[{"theta": theta, "kind": "strict_saddle", "label": "stall 1"}])
    path = res.save_npz(tmp_path / "s.npz")
    back = SurfaceResult.load_npz(path)
    np.testing.assert_array_equal(back.loss, res.loss)
    np.testing.assert_array_equal(back.directions, res.directions)
    np.testing.assert_array_equal(back.trajectory, res.trajectory)
    assert back.marks == res.marks and back.kind == res.kind and back.meta == res.meta
    _assert_same_figure_data(_figure_data(res), _figure_data(back))
    one = surface_1d(obj, theta, None, 1.0, 5, progress=False)
    _assert_same_figure_data(_figure_data(one), _figure_data(SurfaceResult.load_npz(one.save_npz(tmp_path / "o.npz"))))
    html = write_surface_html(back, tmp_path / "s.html").read_text()
    # offline: the page links the plotly.js written next to it (no CDN), and is small
    js = list(tmp_path.glob("plotly-*.min.js"))
    assert len(js) == 1 and f'<script src="{js[0].name}"' in html and "http" not in html.split("<body>")[0]
    assert "Plotly.newPlot" in html and len(html) < 200_000 and js[0].stat().st_size > 1_000_000
    assert surface_png(back, tmp_path / "s.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="not a surface file"):
        np.savez(tmp_path / "bad.npz", x=np.zeros(2))
        SurfaceResult.load_npz(tmp_path / "bad.npz")


def test_cli_writes_files_and_replots(tmp_path, capsys):
    from analyses.cli import main

    out = tmp_path / "out"
    assert main(["surface", "--problem", "deep_linear_h1_saddle", "--steps", "5", "--out", str(out)]) == 0
    stem = out / "surface_deep_linear_h1_saddle_random"
    for ext in (".png", ".html", ".npz"):
        assert (stem.with_suffix(ext)).stat().st_size > 0
    res = SurfaceResult.load_npz(stem.with_suffix(".npz"))
    assert res.loss.shape == (5, 5) and res.marks[0]["kind"] == "strict_saddle"
    assert main(["surface", "--problem", "deep_linear_h2_zero", "--directions", "pca", "--steps", "4",
                 "--gd-steps", "20", "--out", str(out)]) == 0
    pca = SurfaceResult.load_npz(out / "surface_deep_linear_h2_zero_pca.npz")
    assert pca.trajectory is not None and pca.trajectory.shape[1] == 2
    re_out = tmp_path / "re"
    assert main(["surface", "--replot", str(stem.with_suffix(".npz")), "--out", str(re_out)]) == 0
    assert (re_out / "surface_deep_linear_h1_saddle_random.png").exists()
    assert main(["surface", "--problem", "no_such_problem"]) == 2
    assert "invalid choice: 'no_such_problem'" in capsys.readouterr().err
    # filter normalisation at W = 0 exactly has nothing to scale by: a clear error, not a crash
    assert main(["surface", "--problem", "deep_linear_h2_zero", "--eps", "0", "--norm", "filter", "--steps", "3",
                 "--out", str(out)]) == 2
    assert "zero direction" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ API comforts (issue 13)
def test_surface_result_plot_and_to_html_and_compact_repr(tmp_path):
    obj, A, b, lam, Q = _quadratic()
    theta = torch.zeros(6, dtype=F64)
    res = surface_2d(obj, theta, Q[:, 0], Q[:, 5], span=1.0, steps=7, normalization="none", progress=False)
    png = res.plot(tmp_path / "s.png")
    page = res.to_html(tmp_path / "s.html")
    assert png.stat().st_size > 10_000 and "Plotly.newPlot" in page.read_text()
    text = repr(res)
    assert len(text) < 1000 and "loss=array(shape=(7, 7), dtype=float64" in text
    # the repr's range is the grid's, from the closed form f(x) = xᵀAx/2 + bᵀx at x = a q0 + c q5
    g = np.linspace(-1, 1, 7)
    X = g[:, None, None] * Q[:, 0].numpy() + g[None, :, None] * Q[:, 5].numpy()
    f = 0.5 * np.einsum("ijk,kl,ijl->ij", X, A.numpy(), X) + X @ b.numpy()
    assert f"min={f.min():.4g}" in text and f"max={f.max():.4g}" in text
    assert "coords=(array(shape=(7,)" in text


def test_loss_levels_are_log_spaced_when_the_loss_spans_decades():
    from landscape.render import loss_levels

    z = np.array([[0.3, 1.0], [10.0, 100.0]])
    lv = loss_levels(z, 5)
    np.testing.assert_allclose(np.diff(np.log(lv)), np.log(100 / 0.3) / 4, rtol=1e-12)
    near = loss_levels(np.array([[9.6, 9.7], [9.8, 9.9]]), 4)        # a saddle's few-percent range
    np.testing.assert_allclose(np.diff(near), 0.1, rtol=1e-9)
    assert loss_levels(np.full((2, 2), 3.0)) is None


def test_figure_ids_are_seeded_so_pages_rerender_identically(tmp_path):
    obj, A, b, lam, Q = _quadratic()
    res = surface_2d(obj, torch.zeros(6, dtype=F64), Q[:, 0], Q[:, 1], span=1.0, steps=5, normalization="none",
                     progress=False)
    a = res.to_html(tmp_path / "a" / "page.html").read_bytes()
    b = res.to_html(tmp_path / "b" / "page.html").read_bytes()
    assert a == b and b'id="page-fig0"' in a
