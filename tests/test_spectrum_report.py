"""The spectrum report: one section per stall, valid HTML, numbers that match the analytic Hessian."""
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from analyses.problems import get_problem
from analyses.spectrum_report import report_run, train_problem
from synaprune import StallDetector


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.h2 = [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()
        self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


@pytest.fixture(scope="module")
def strict_saddle_run(tmp_path_factory):
    # Deep linear H = 1 net started 1e-6 away from a Baldi–Hornik saddle of index 1: the first stall is
    # that saddle (THEORY §2), whose Hessian we know exactly.
    out = tmp_path_factory.mktemp("spec")
    problem = get_problem("deep_linear_h1_saddle")
    result = train_problem(problem, "gd", out / "run", max_steps=120, eps=1e-6, progress=False,
                           stall=StallDetector(window=10, grad_tol=1e-3))
    return problem, result, out


def test_report_has_one_section_per_stall(strict_saddle_run):
    problem, result, out = strict_saddle_run
    assert result.n_stalls >= 1
    assert result.events[0].kind == "strict_saddle"
    rep = report_run(out / "run", out, k=3, slq_runs=3, slq_steps=20)
    assert len(rep.stalls) == result.n_stalls
    page = (out / "spectrum_report.html").read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    sections = [h for h in checker.h2 if h.startswith("Stall ")]
    assert len(sections) == result.n_stalls
    assert "strict_saddle" in sections[0]
    for st in rep.stalls:
        assert (out / st.png).exists()
    assert (out / "spectrum_report.json").exists()


def test_report_spectrum_matches_dense_hessian(strict_saddle_run):
    problem, result, out = strict_saddle_run
    rep = report_run(out / "run", out / "again", k=2, slq_runs=2, slq_steps=10)
    st = rep.stalls[0]
    obj = problem.objective()
    theta = torch.as_tensor(np.load(out / "run" / "stall_thetas" / "stall_0000.npy"), dtype=torch.float64)
    # Independent reference: the dense Hessian of ½‖X Pᵀ − Y‖² written out here (torch.func.hessian
    # of the product of the unflattened weights), not the Objective's Hessian the report uses.
    dl = problem.extra["deep_linear"]

    def loss(flat):
        ws, i = [], 0
        for rows, cols in dl.shapes:
            ws.append(flat[i:i + rows * cols].reshape(rows, cols))
            i += rows * cols
        P = ws[0]
        for w in ws[1:]:
            P = w @ P
        return 0.5 * ((dl.X @ P.T - dl.Y) ** 2).sum()

    assert float(loss(theta)) == pytest.approx(obj.loss(theta), rel=1e-12)
    exact = torch.linalg.eigvalsh(torch.func.hessian(loss)(theta))
    # Index 1 saddle: exactly one clearly negative eigenvalue (the rest ≥ −O(ε)).
    assert int((exact < -1e-3).sum()) == 1
    assert st.dense_eigs == pytest.approx(exact.tolist(), abs=1e-10)
    assert st.eig_values[0] == pytest.approx(float(exact[0]), rel=1e-8)
    assert st.eig_values[-1] == pytest.approx(float(exact[-1]), rel=1e-8)
    assert st.lambda_min < 0 < st.lambda_max
    # Per-layer extremes = extremes of the diagonal blocks of that independent Hessian.
    Hd = torch.func.hessian(loss)(theta)
    scale = float(exact.abs().max())
    offsets, i = [], 0
    for rows, cols in dl.shapes:
        offsets.append((i, i + rows * cols))
        i += rows * cols
    assert len(st.layer_extremes) == len(offsets)
    for (lo, hi), (name, (smallest, largest)) in zip(offsets, st.layer_extremes.items()):
        block = torch.linalg.eigvalsh(Hd[lo:hi, lo:hi])
        assert smallest == pytest.approx(float(block[0]), abs=1e-6 * scale), name
        assert largest == pytest.approx(float(block[-1]), abs=1e-6 * scale), name
    # The H − G split: λ_min(H) = vᵀGv + vᵀ(H−G)v, with G = JᵀJ ⪰ 0 for this squared loss.
    ng = st.nongg
    assert ng["hessian_min"] == pytest.approx(float(exact[0]), rel=1e-6)
    assert ng["ggn_along"] + ng["residual_along"] == pytest.approx(ng["hessian_min"], abs=1e-9 * scale)
    assert ng["ggn_along"] >= -1e-9 * scale


def test_report_from_dir_without_problem_needs_objective(tmp_path):
    import json

    from synaprune import Trainer

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1).double()
    X, Y = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    Trainer(model, torch.nn.MSELoss(), (X, Y), method="gd", lr=0.1, log_dir=str(tmp_path / "r"), progress=False).fit(5)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["meta"] == {}
    with pytest.raises(ValueError, match="meta.problem"):
        report_run(tmp_path / "r")
