"""The theorem verification run (quick mode) and its numerical pieces."""
import json

import numpy as np
import pytest
import torch

from analyses.theorems import numerics as th_num
from analyses.theorems import statements as th_st
from landscape.deep_linear import DeepLinearProblem


def test_numpy_loss_and_gradients_match_autograd():
    prob = DeepLinearProblem.random(4, 3, [3, 2], 20, seed=1)
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((2, *s)) for s in prob.shapes]
    L, G = th_num.loss_grads(Ws, prob.X.numpy(), prob.Y.numpy())
    for r in range(2):
        ts = [torch.tensor(W[r], requires_grad=True) for W in Ws]
        P = ts[2] @ ts[1] @ ts[0]
        loss = 0.5 * ((prob.X @ P.T - prob.Y) ** 2).sum()
        grads = torch.autograd.grad(loss, ts)
        assert L[r] == pytest.approx(float(loss.detach()), rel=1e-12)
        for g_np, g_t in zip(G, grads):
            np.testing.assert_allclose(g_np[r], g_t.numpy(), rtol=1e-10, atol=1e-12)


def test_lbfgs_reaches_global_value():
    prob = DeepLinearProblem.random(4, 3, [3, 3], 20, seed=2)
    x, f, gn, it, status = th_num.lbfgs(prob, th_num.random_init(prob, 0))
    assert gn < 1e-6 and f == pytest.approx(prob.global_min(), abs=1e-10)


def test_fit_escape_recovers_synthetic_laws():
    eps = np.logspace(-6, -1, 8)
    f = th_num.fit_escape(eps, 3.0 * eps ** -2.0)
    assert f["pow_exponent"] == pytest.approx(-2.0, abs=1e-10) and f["pow_rms_lnT"] < f["log_rms_lnT"]
    f = th_num.fit_escape(eps, 0.5 + 2.0 * np.log(1 / eps))
    assert f["log_slope"] == pytest.approx(2.0, abs=1e-10) and f["log_rms_lnT"] < f["pow_rms_lnT"]


def test_escape_time_h1_is_logarithmic_with_rate_sigma1():
    prob = th_num.escape_problem(1, seed=3)
    assert float(torch.linalg.svdvals(prob.XtY)[0]) == pytest.approx(1.0, rel=1e-12)
    eps = np.logspace(-8, -2, 4)
    T = th_num.escape_times(prob, eps.tolist(), 1, seed=0)[0]
    slopes = np.diff(T) / np.diff(np.log(1 / eps))
    np.testing.assert_allclose(slopes, 1.0, rtol=0.05)      # T ≈ ln(1/ε)/σ₁ + const, σ₁ = 1


def test_quick_run_via_cli(tmp_path):
    from analyses.cli import main

    rc = main(["theorems", "--quick", "--out", str(tmp_path), "--seed", "0"])
    assert rc == 0
    for name in ("theorems.json", "theorems.md", "escape_time.png", "gap_hist.png", "index_vs_loss.png",
                 "theorems.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    html = (tmp_path / "theorems.html").read_text(encoding="utf-8")
    js = list(tmp_path.glob("plotly-*.min.js"))                  # one local plotly.js, no CDN
    assert 'src="http' not in html and len(js) == 1 and f'src="{js[0].name}"' in html
    assert html.count("Plotly.newPlot") == 3
    rep = json.loads((tmp_path / "theorems.json").read_text())
    assert all(v["pass"] for v in rep["verdicts"].values())
    for r in rep["statement3"]:                                  # analytic critical points
        assert r["max_grad_norm"] < 1e-10 and r["max_loss_err"] < 1e-10
        assert r["n_kind_ok"] == r["n_points"] and r["n_non_global_saddles"] == r["n_non_global"]
    esc = rep["statement4"]["escape"]
    assert esc["1"]["better_model"] == "log"
    for H in (2, 3):
        assert esc[str(H)]["fit"]["pow_exponent"] == pytest.approx(-(H - 1), abs=0.1)
    md = (tmp_path / "theorems.md").read_text()
    assert "| statement | configurations | evidence | verdict |" in md
    # timings are not in the tracked JSON (reruns stay byte-identical) but in timings.json
    assert "timings_s" not in rep
    assert json.loads((tmp_path / "timings.json").read_text())["theorems_s"]["total"] > 0


def test_problem_data_are_bit_identical_whatever_the_allocator_holds():
    """M̂ = YᵀX(XᵀX)⁻¹, Σ and L* do not depend on what earlier allocations left in memory (torch's
    default lstsq driver gelsy reads an uninitialised pivot array, pytorch/pytorch#187411, which
    made theorems.json differ from run to run); M̂ is checked against NumPy's solve."""
    ref = DeepLinearProblem.random(6, 4, [6, 6], 48, seed=7000)
    X, Y = ref.X.numpy(), ref.Y.numpy()
    np.testing.assert_allclose(ref.M_hat.numpy(), np.linalg.solve(X.T @ X, X.T @ Y).T, rtol=1e-12, atol=1e-14)
    junk = []
    for i in range(60):
        junk.append(torch.full((i % 5 + 6,), -(i + 1), dtype=torch.int64))  # dirty integer buffers
        del junk[:-3]
        p = DeepLinearProblem.random(6, 4, [6, 6], 48, seed=7000)
        assert torch.equal(p.M_hat, ref.M_hat) and torch.equal(p.Sigma, ref.Sigma)
        assert p.global_min() == ref.global_min()


def test_roundoff_values_are_reported_as_bounds():
    prob = DeepLinearProblem.random(4, 3, [2], 32, seed=0)
    floor = th_st.roundoff_floor(prob)
    assert floor == pytest.approx(1000 * np.finfo(float).eps * max(1.0, prob.trYY), rel=1e-15)
    assert th_st.at_floor(0.5 * floor, floor) == 0.0 and th_st.at_floor(-floor, floor) == 0.0
    assert th_st.at_floor(2 * floor, floor) == 2 * floor
    assert th_st.fmt_bound(0.0, 4.4e-12) == "≤ 4.4e-12" and th_st.fmt_bound(3.21e-7, 4.4e-12) == "3.2e-07"
