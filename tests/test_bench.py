"""Smoke tests for ``landscape bench`` (untimed): its baseline and plumbing on tiny problems."""
import json
import math

import pytest
import torch

from analyses import bench
from analyses.bench import cli as bench_cli
from analyses.cli import build_parser

REQUIRED_KEYS = ("hvp_over_grad", "eigs_n_hvp", "eigs_max_rel_residual", "eigs_speedup_vs_pyhessian_same_accuracy",
                 "eigs_speedup_vs_curvlinops", "eigs_speedup_vs_power", "eigs_speedup_vs_hessian_eigenthings",
                 "cancellation_speedup_vs_vmap", "eigs_speedup_vs_pyhessian", "per_example_speedup_vs_loop",
                 "cancellation_speedup_vs_vmap_cnn")


def _known_operator(spectrum, seed=0):
    """A symmetric matrix with the given eigenvalues in a random orthonormal basis."""
    g = torch.Generator().manual_seed(seed)
    n = len(spectrum)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ Q.T
    return 0.5 * (A + A.T)


def test_power_iteration_recovers_known_spectrum():
    spectrum = [6.0, 5.0, 4.0, 3.0, 2.5] + [1.0 - 0.05 * i for i in range(34)] + [-2.0]
    A = _known_operator(spectrum)
    tol = 1e-9
    r = bench.deflated_power_iteration(lambda v: A @ v, A.shape[0], 5, tol=tol, max_iter=5000,
                                       dtype=torch.float64)
    assert r.converged.all()
    assert torch.allclose(r.values[:5], torch.tensor([6.0, 5.0, 4.0, 3.0, 2.5], dtype=torch.float64),
                          rtol=0, atol=1e-8)
    assert abs(float(r.values[5]) - (-2.0)) < 1e-8
    assert float(r.residuals.max()) <= tol * 6.0
    # the vectors really are eigenvectors of A
    V = r.vectors
    assert torch.allclose(A @ V, V * r.values, atol=1e-7)
    assert r.n_matvec == sum(r.iterations)


def test_power_iteration_flags_non_convergence_and_bad_input():
    A = _known_operator([1.0, 0.999999, 0.5, 0.2, -0.1])
    r = bench.deflated_power_iteration(lambda v: A @ v, 5, 1, tol=1e-12, max_iter=3, dtype=torch.float64)
    assert not bool(r.converged.all()) and r.iterations[0] == 3
    with pytest.raises(ValueError, match="k must be"):
        bench.deflated_power_iteration(lambda v: A @ v, 5, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="tol"):
        bench.deflated_power_iteration(lambda v: A @ v, 5, 1, tol=2.0, dtype=torch.float64)


@pytest.fixture(scope="module")
def tiny_result():
    return bench.run_bench(quick=True, dtype=torch.float64, tol=1e-4, n_examples=48, sizes=(4, 16, 3),
                           per_example_batch=16, peers=False, progress=False, power_max_iter=2000)


def test_tiny_bench_numbers_are_right(tiny_result):
    r = tiny_result
    problem = bench.make_problem(48, (4, 16, 3), dtype=torch.float64)
    exact = torch.linalg.eigvalsh(problem.obj.hessian(problem.theta))
    ours = torch.tensor(next(p for p in r.accuracy["ours"] if p["target"] == 1e-4)["values"], dtype=torch.float64)
    want = torch.cat([exact[:1], exact[-5:]])
    # residual <= 1e-4·|λmax| bounds the eigenvalue error by residual²/gap (gaps here > 0.02)
    assert torch.allclose(ours, want, rtol=0, atol=1e-6 * float(exact.abs().max()))
    assert r.eigs_max_rel_residual <= 1e-4
    assert r.power_converged and r.agreement["power_max_rel_eig_diff"] < 1e-5
    assert r.agreement["hvp_cached_vs_stateless_rel_diff"] < 1e-10
    assert r.agreement["per_example_vs_loop_max_rel_diff"] < 1e-10
    assert r.agreement["cancellation_fast_vs_vmap_max_rel_diff"] < 1e-10
    assert r.agreement["cancellation_cnn_fast_vs_vmap_max_rel_diff"] < 1e-10  # float64: conv by unfold + bmm
    for key in ("hvp_over_grad", "eigs_speedup_vs_power", "per_example_speedup_vs_loop", "cancellation_speedup_vs_vmap",
                "cancellation_speedup_vs_vmap_cnn"):
        assert math.isfinite(getattr(r, key)) and getattr(r, key) > 0
    assert r.eigs_speedup_vs_pyhessian is None and r.eigs_speedup_vs_curvlinops is None
    assert r.eigs_speedup_vs_hessian_eigenthings is None and r.eigs_speedup_vs_pyhessian_same_accuracy is None
    # every accuracy point's measured residual is at or below its target (ours)
    for p in r.accuracy["ours"]:
        assert p["max_rel_residual"] <= p["target"]
    assert "MLP 4-16-3" in r.problem and "bench" in bench.format_table(r)


def test_json_has_required_keys(tiny_result, tmp_path):
    d = json.loads(tiny_result.save_json(tmp_path / "b.json").read_text())
    for key in REQUIRED_KEYS:
        assert key in d
        assert d[key] is None or isinstance(d[key], (int, float))
    assert d["eigs_speedup_vs_pyhessian"] is None and isinstance(d["hvp_over_grad"], float)
    assert d["machine"]["torch"] == torch.__version__ and d["machine"]["torch_threads"] >= 1
    assert d["timings"]["eigs_ours_s"] > 0


def test_cli_writes_json(tiny_result, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_cli, "run_bench", lambda **kw: tiny_result)
    out = tmp_path / "cli.json"
    args = build_parser(["bench"]).parse_args(
        ["bench", "--quick", "--json", str(out), "--threads", str(torch.get_num_threads())])
    assert bench_cli.run(args) == 0
    assert set(REQUIRED_KEYS) <= set(json.loads(out.read_text()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script inside curvlinops' deps
def test_curvlinops_peer_matches_dense_when_installed():
    pytest.importorskip("curvlinops")
    problem = bench.make_problem(32, (3, 6, 3), dtype=torch.float64)
    out = bench.bench_curvlinops(problem, tol=1e-10)
    assert "error" not in out
    exact = torch.linalg.eigvalsh(problem.obj.hessian(problem.theta))
    want = torch.cat([exact[:1], exact[-5:]]).tolist()
    assert max(abs(a - b) for a, b in zip(out["values"], want)) < 1e-8 * float(exact.abs().max())


@pytest.mark.parametrize("argv,what", [(["--tol", "2"], "--tol"), (["--tol", "abc"], "--tol"), (["--threads", "0"], "--threads"),
                                       (["--dtype", "float16"], "--dtype"), (["--json", "/no/such/dir/x.json"], "--json")])
def test_cli_rejects_bad_values_before_work(argv, what, capsys, monkeypatch):
    def boom(**kw):
        raise AssertionError("work started before validation")
    monkeypatch.setattr(bench_cli, "run_bench", boom)
    args = build_parser(["bench"]).parse_args(["bench", *argv])
    assert bench_cli.run(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and what in err and err.startswith("landscape bench: error:")


def test_scaling_case_tiny_float32_matches_float64(tmp_path):
    c = bench.scaling_case(8, 16, reference=True, repeats=1)
    assert c["dim"] == 64 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    assert c["eigs_converged"] and c["eigs_max_rel_residual"] <= 1e-4
    # float32 Lanczos against the float64 run of the same problem: eigenvalues within 1e-5 of the scale
    assert c["float32_vs_float64_max_rel_diff"] <= 1e-5
    for key in ("grad_s", "hvp_s", "eigs_s", "eigs_peak_mem_bytes"):
        assert c[key] >= 0
    p = bench.plot_scaling([c, {**c, "dim": 2 * c["dim"]}], tmp_path / "scaling.png")
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_eigenthings_peer_matches_dense_when_installed():
    pytest.importorskip("hessian_eigenthings")
    problem = bench.make_problem(32, (3, 6, 3), dtype=torch.float64)
    exact = torch.linalg.eigvalsh(problem.obj.hessian(problem.theta))
    scale = float(exact.abs().max())
    out = bench.bench_eigenthings(problem, target=1e-6, scale=scale, steps=(10, 20, 40, 50))
    assert "error" not in out and out["reached"], out
    want = torch.cat([exact[:1], exact[-5:]]).tolist()
    assert max(abs(a - b) for a, b in zip(out["values"], want)) < 1e-8 * scale
