"""The plateau study (analyses.plateaus: methods, paired statistics, report): the rules' steps
against their definitions, the step-length control's length and direction, the censoring-aware
paired statistics on hand-made pairs, and the summary drawn from records alone."""
import math

import numpy as np
import torch
from torch import nn

from landscape.monitor import AnalysisSettings, StallDetector

import landscape as ls
from analyses.plateaus import paired, protocol, report
from analyses.plateaus import autoencoder, committee, icl, mnist1d_case
from analyses.plateaus import saddles as sd
from analyses.plateaus.core import train
from analyses.plateaus.methods import RuleOptimizer, per_example_grads, rule_direction


def _tiny():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(12, 2, generator=g, dtype=torch.float64)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m, nn.MSELoss(), X, Y


def _explicit_grads(m, loss_fn, X, Y):
    """Per-example gradients one backward pass at a time (the reference)."""
    rows = []
    for i in range(X.shape[0]):
        m.zero_grad()
        loss_fn(m(X[i:i + 1]), Y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]))
    m.zero_grad()
    return torch.stack(rows)


def test_rule_directions_match_their_definitions_on_explicit_per_example_gradients():
    m, loss_fn, X, Y = _tiny()
    G = _explicit_grads(m, loss_fn, X, Y)
    assert torch.allclose(per_example_grads(m, loss_fn, X, Y), G, rtol=1e-12, atol=1e-14)
    mu = G.mean(0)
    rms = torch.sign(mu) * G.pow(2).mean(0).sqrt()
    dev = G.gather(0, G.abs().argmax(0, keepdim=True)).squeeze(0)
    assert torch.allclose(rule_direction(m, loss_fn, (X, Y), "rms"), rms, rtol=1e-10, atol=1e-14)
    assert torch.allclose(rule_direction(m, loss_fn, (X, Y), "devarg"), dev, rtol=1e-10, atol=1e-14)
    assert torch.allclose(rule_direction(m, loss_fn, (X, Y), "gd"), mu, rtol=1e-10, atol=1e-14)
    # one example per step (online SGD): both rules are the example's own gradient
    g1 = G[:1]
    assert torch.allclose(rule_direction(m, loss_fn, (X[:1], Y[:1]), "rms"), g1[0], rtol=1e-10, atol=1e-14)
    assert torch.allclose(rule_direction(m, loss_fn, (X[:1], Y[:1]), "devarg"), g1[0], rtol=1e-10, atol=1e-14)


def test_rms_step_and_its_length_matched_gd_control():
    """rms: θ ← θ − lr·A_rms; gd-len-rms: a step along −∇L of exactly lr·‖A_rms‖."""
    lr = 0.05
    steps = {}
    for rule in ("rms", "gd-len-rms"):
        m, loss_fn, X, Y = _tiny()
        G = _explicit_grads(m, loss_fn, X, Y)
        mu = G.mean(0)
        A = torch.sign(mu) * G.pow(2).mean(0).sqrt()
        th0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()]).clone()
        opt = RuleOptimizer(m, loss_fn, {"batch": (X, Y)}, lr=lr, rule=rule)
        opt.zero_grad()
        loss_fn(m(X), Y).backward()
        opt.step()
        d = torch.cat([p.detach().reshape(-1) for p in m.parameters()]) - th0
        steps[rule] = d
        assert abs(float(d.norm()) - lr * float(A.norm())) < 1e-12 * float(A.norm())
        if rule == "rms":
            assert torch.allclose(d, -lr * A, rtol=1e-10, atol=1e-15)
        else:
            cos = float(d @ mu) / (float(d.norm()) * float(mu.norm()))
            assert cos < -1 + 1e-12   # along −∇L
    assert float(steps["rms"].norm()) > 1.5 * 0.05 * float(_explicit_grads(*_tiny()).mean(0).norm())


def test_gd_len_devarg_steps_along_the_gradient_at_devargs_length():
    """gd-len-devarg: a step along −∇L of exactly lr·‖A_devarg‖, A_devarg_j = g_{i*j} (largest |g_ij|)."""
    lr = 0.05
    m, loss_fn, X, Y = _tiny()
    G = _explicit_grads(m, loss_fn, X, Y)
    mu = G.mean(0)
    A = G.gather(0, G.abs().argmax(0, keepdim=True)).squeeze(0)
    th0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()]).clone()
    opt = RuleOptimizer(m, loss_fn, {"batch": (X, Y)}, lr=lr, rule="gd-len-devarg")
    opt.zero_grad()
    loss_fn(m(X), Y).backward()
    opt.step()
    d = torch.cat([p.detach().reshape(-1) for p in m.parameters()]) - th0
    assert abs(float(d.norm()) - lr * float(A.norm())) < 1e-12 * float(A.norm())
    assert float(d @ mu) / (float(d.norm()) * float(mu.norm())) < -1 + 1e-12
    assert float(A.norm()) > 1.5 * float(mu.norm())   # a different length from GD's, so the check can fail


def test_gehan_scores_and_paired_summary_keep_censoring():
    # method reached first / later / method censored, baseline reached / baseline censored / both censored
    t_m = [10, 50, 100, 30, 100]
    e_m = [True, True, False, True, False]
    t_b = [20, 40, 60, 100, 100]
    e_b = [True, True, True, False, False]
    assert paired.gehan_scores(t_m, e_m, t_b, e_b).tolist() == [1, -1, -1, 1, 0]
    s = paired.paired_summary(t_m, e_m, t_b, e_b, n_boot=500)
    assert (s["both"], s["only_method"], s["only_baseline"], s["neither"]) == (2, 1, 1, 1)
    assert s["gehan"] == 0.0
    # the ratio uses only the two pairs where both reached: median of 10/20 and 50/40 (geometric)
    assert abs(s["ratio_median"] - math.exp(np.median(np.log([0.5, 1.25])))) < 1e-12
    lo, hi = s["gehan_ci"]
    assert -1 <= lo < 0 < hi <= 1
    # a method always twice as fast: Gehan +1 with a degenerate interval, ratio 0.5
    s = paired.paired_summary([5, 10, 15, 20], [True] * 4, [10, 20, 30, 40], [True] * 4, n_boot=300)
    assert s["gehan"] == 1.0 and s["gehan_ci"] == [1.0, 1.0] and abs(s["ratio_median"] - 0.5) < 1e-12


def test_verdict_separates_step_length_from_direction():
    pos, zero, neg = ({"gehan": g, "gehan_ci": ci} for g, ci in ((0.8, [0.5, 1.0]), (0.0, [-0.3, 0.3]),
                                                                  (-0.7, [-1.0, -0.4])))
    assert "step length explains it" in paired.verdict(pos, zero)
    assert "direction helps beyond step length" in paired.verdict(pos, pos)
    assert "what helps is the step length" in paired.verdict(pos, neg)
    assert paired.verdict(neg, None).startswith("rms reaches the target later")
    assert paired.verdict(zero, zero, name="devarg").startswith("devarg is not distinguishable from GD")
    assert "its direction hurts beyond step length" in paired.verdict(neg, neg, name="devarg")
    assert "so its step length explains it" in paired.verdict(neg, zero)


def _deep_linear_records():
    """A deep linear Case and synthetic records: one monitored run with a stall at L_1, and 4 seeds
    of gd (reached), rms (reached, faster) and gd-len-rms (censored at the horizon)."""
    levels = {f"L_{k}": v for k, v in enumerate((10.65625, 2.65625, 0.65625, 0.15625))}
    case = protocol.Case(name="deep_linear", title="deep linear", build=None, target=0.40625, horizon=5000,
                         levels=levels)
    recs = [{"case": "deep_linear", "kind": "monitor", "method": "gd", "seed": 0, "mode": "full",
             "trace": [[0, 11.0], [250, 2.6563], [500, 0.6563]],
             "stalls": [{"step": 253, "loss": 2.6563, "kind": "inconclusive", "cause": "cancelling", "kappa": 0.003,
                         "nearest": {"kind": "strict_saddle", "index": 1, "loss": 2.65625, "n_zero": 39}}]}]
    for s in range(4):
        for m, t, ok in (("gd", 2000 + s, True), ("rms", 900 + s, True), ("gd-len-rms", 5000, False)):
            recs.append({"case": "deep_linear", "kind": "paired", "method": m, "seed": s, "reached": ok, "steps": t,
                         "diverged": False, "first_step_length": 0.01})
    return case, recs


def test_summary_from_records_alone():
    """Synthetic records for the deep linear case: the summary reads stalls against theory's levels
    and pairs the methods by seed."""
    case, recs = _deep_linear_records()
    summ = report.summarize({"deep_linear": case}, recs)["deep_linear"]
    row = summ["stalls"][0]
    assert row["level"].startswith("L_1") and abs(row["rel_gap_nearest"]) < 1e-15
    assert abs(row["rel_gap_exact"] - (2.6563 - 2.65625) / 2.65625) < 1e-15
    assert summ["vs_gd"]["rms"]["gehan"] == 1.0 and summ["vs_gd"]["gd-len-rms"]["gehan"] == -1.0
    assert summ["vs_control"]["rms"]["only_method"] == 4
    md = report.markdown({"deep_linear": summ})
    assert "| rms | 4 / 4 |" in md and "Answer." in md and "<table>" in report.to_html(md)


def test_figures_from_the_summary_and_records(tmp_path):
    """traces.png: one panel per case with monitored runs (a 1 × 1 grid here: 520 × 360 px at 100 dpi);
    effects.png: a row per method and per rule-vs-control pair; neither without its data."""
    from analyses.plateaus.figures import effects_figure, traces_figure
    case, recs = _deep_linear_records()
    summ = report.summarize({"deep_linear": case}, recs)
    png = traces_figure(summ, recs, tmp_path / "traces.png")
    from PIL import Image
    assert Image.open(png).size == (520, 360)
    assert traces_figure(summ, recs[1:], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    eff = effects_figure(summ, tmp_path / "effects.png")
    h_three = Image.open(eff).size[1]        # rms vs GD, gd-len-rms vs GD, rms vs gd-len-rms
    recs += [{"case": "deep_linear", "kind": "paired", "method": "adam", "seed": s, "reached": True, "steps": 10,
              "diverged": False, "first_step_length": 0.1} for s in range(4)]
    h_four = Image.open(effects_figure(report.summarize({"deep_linear": case}, recs), tmp_path / "e4.png")).size[1]
    assert h_four - h_three == 20            # one more row: 0.2 in at 100 dpi
    md = report.markdown(summ, figures=[("the traces", "traces.png")])
    assert '<img src="traces.png" alt="the traces"' in report.to_html(md)


# ------------------------------------------------------------------ the monitor finds each case's plateau
CHEAP = AnalysisSettings(classify=False, nearest=False, cancellation=True)
DETECT_ONLY = AnalysisSettings(classify=False, nearest=False, cancellation=False)


def _monitored(inst, steps, data, settings=CHEAP, **kw):
    """``steps`` of the case's own loop with ``mon.step(loss)`` after each (cheap analysis: no
    classification); returns the stalls and the exact-loss trace."""
    mon = ls.StallMonitor(inst.model, inst.loss_fn, data, per_layer=False, sharpness_every=0, settings=settings,
                          progress=False, **kw)
    tr = train(inst, steps, callback=lambda si: mon.step(si.loss, grad_norm=si.grad_norm) and False,
               eval_every=kw.get("check_every", 1))
    return mon, tr


def test_monitor_finds_the_deep_linear_plateaus_at_the_low_rank_losses():
    """Full-batch GD (exact detection): stalls on L_0, L_1 and L_2 within 1e-3 relative of
    ½Σ_{i>k} s_i² (the plateau points themselves; the critical points match to 1e-6, see
    test_plateaus_saddles), and the ones past the first are cancelling (κ < 0.1, per-example
    gradients larger than at a default initialisation)."""
    inst = sd.build_linear(0)
    X, Y = inst.info["X"], inst.info["Y"]
    mon, _ = _monitored(inst, 700, (X, Y))
    assert mon.mode == "full"
    levels = inst.info["plateaus"]
    found = {}
    for s in mon.stalls:
        k = min(range(len(levels)), key=lambda j: abs(s["loss"] - levels[j]) / levels[j])
        found.setdefault(k, s)
    assert set(found) >= {0, 1, 2}, [(s["step"], s["loss"]) for s in mon.stalls]
    for k in (0, 1, 2):
        assert abs(found[k]["loss"] - levels[k]) / levels[k] < 1e-3
    for k in (1, 2):
        assert found[k]["cause"] == "cancelling" and found[k]["kappa"] < 0.1


def _near(mon, tr, level, rel):
    """The stalls whose exact loss (the trace at the stall's step) is within ``rel`` of ``level``."""
    exact = dict(zip(tr.eval_steps, tr.eval_loss))
    out = []
    for s in mon.stalls:
        e = exact[max(k for k in exact if k <= s["step"])]
        if abs(e - level) <= rel * abs(level):
            out.append((s, e))
    return out


def test_monitor_finds_the_class_prior_plateaus():
    """digits tanh 64-8-8-8-10 (init × 0.05, GD lr 0.5, full batch: exact detection) and the
    MNIST-1D MLP (init × 0.1, SGD lr 0.1, batch 100: stochastic detection, checks every 25 steps on
    the 4 000 training signals): a stall at the class-prior entropy H(p̂) within 1e-3 relative
    (measured 1.4e-5 and 4e-5), cancelling (κ < 0.1: each example's softmax − one-hot is O(1))."""
    inst = sd.build_tanh(0, factor=0.05, dtype=torch.float32)
    mon, tr = _monitored(inst, 80, inst.batch(0))
    hits = _near(mon, tr, inst.theory["plateau_0"], 1e-3)
    assert mon.mode == "full" and hits and all(s["cause"] == "cancelling" and s["kappa"] < 0.1 for s, _ in hits)
    inst = mnist1d_case.build(0, arch="mlp", init=0.1, optimiser={"name": "sgd", "lr": 0.1})
    mon, tr = _monitored(inst, 100, inst.info["train"], check_every=25)
    hits = _near(mon, tr, inst.theory["prior_entropy"], 1e-3)
    assert mon.mode == "stochastic" and hits and all(s["cause"] == "cancelling" for s, _ in hits)


def test_monitor_finds_the_icl_first_stage_and_the_autoencoder_plateau():
    """ICL (online SGD, batch 64; the monitor on 256 probe sequences, stochastic): a stall on
    stage 0, whose exact population loss is ½ tr Λ = 0.875 to 1e-5 (the order-3 saddle at Γ = 0).
    Digits autoencoder 64-32-8-32-64 (GD lr 0.1, float32): with the study's grad_rel = 0.05 (the
    creep's gradient is 2–3 % of the start's, above the default 1 %) a stall between 0.97 and 1 ×
    the mean-image loss (measured 0.988 at step 334)."""
    inst = icl.build(0, online=True, lr=0.2)
    mon, tr = _monitored(inst, 200, inst.probe(256), DETECT_ONLY, check_every=50)
    assert _near(mon, tr, inst.info["stages"][0], 1e-5)
    inst = autoencoder.build(0, dtype=torch.float32)
    mon, tr = _monitored(inst, 450, inst.batch(0), DETECT_ONLY, detector=StallDetector(grad_rel=protocol.AE_GRAD_REL))
    m = inst.theory["mean_image"]
    exact = dict(zip(tr.eval_steps, tr.eval_loss))
    assert mon.stalls and all(0.97 * m < exact[s["step"]] < m for s in mon.stalls), \
        [(s["step"], exact[s["step"]] / m) for s in mon.stalls]


def test_monitor_finds_the_committee_symmetric_plateau():
    """Soft committee machine K = 2, N = 500, online SGD η = 0.5, seed 0 (the monitor on 1 024 probe
    examples, window and checks every N/2 steps): a stall whose exact ε_g is 1.0–1.5 × Saad &
    Solla's small-η value 0.0116108 (the finite-η shift at η = 0.5: measured 1.34 here, 1.27–1.31
    over the plateau in PLATEAUS_NOTES.md), cancelling."""
    inst = committee.build(0, K=2, N=500, eta=0.5)
    mon, tr = _monitored(inst, 6000, inst.probe(1024), check_every=250, detector=StallDetector(window=250))
    star = committee.plateau_eps(2)
    exact = dict(zip(tr.eval_steps, tr.eval_loss))
    hits = [(s, exact[max(k for k in exact if k <= s["step"])]) for s in mon.stalls]
    assert hits and all(1.0 < e / star < 1.5 and s["cause"] == "cancelling" for s, e in hits), hits


def test_committee_stall_is_classified_against_the_exact_generalisation_error():
    """The monitor detects on a probe batch but classifies each stall against the exact ε_g
    (``critical_objective``): at the first stall (K = 2, N = 500, η = 0.5, seed 0) the nearest
    critical point is Saad & Solla's symmetric fixed point — ε_g = 0.0116108 to 1e-6 relative, a
    strict saddle of index (K − 1)² = 1 — and the record says what it was classified on. On the
    probe's own loss (1 024 examples in 1 000 dimensions) the nearest critical point would be a
    near-interpolating one far below the plateau, which is why the exact objective is needed."""
    inst = committee.build(0, K=2, N=500, eta=0.5)
    settings = AnalysisSettings(classify=True, nearest=True, cancellation=True)
    mon, _ = _monitored(inst, 6000, inst.probe(1024), settings=settings, check_every=250,
                        detector=StallDetector(window=250), critical_objective=inst.objective(inst.model))
    assert mon.stalls, "no stall on the plateau"
    s = mon.stalls[0]
    nc = s["nearest_critical"]
    star = committee.plateau_eps(2)
    assert s["classified_on"] == "critical_objective"
    assert nc["converged"] and abs(nc["loss"] - star) / star < 1e-6, nc
    assert nc["kind"] == "strict_saddle" and nc["index"] == 1, nc


def test_a_rule_run_that_diverges_is_recorded_as_diverged_not_an_error():
    """Always-on devarg at a huge step on the tiny tanh net: the parameters overflow, the rule's
    optimiser leaves non-finite parameters alone (no per-example gradients of NaN are taken), and
    the paired loop stops the run as diverged at the first non-finite loss."""
    m, loss_fn, X, Y = _tiny()
    holder = {"batch": (X, Y)}
    opt = RuleOptimizer(m, loss_fn, holder, lr=1e300, rule="devarg")
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = loss_fn(m(X), Y)
        loss.backward()
        losses.append(float(loss))
        opt.step()
    assert not all(math.isfinite(v) for v in losses)
    assert not all(bool(torch.isfinite(p).all()) for p in m.parameters())


def test_icl_stalls_sit_near_the_stage_critical_points_of_the_exact_loss():
    """ICL (online SGD, the monitor on 512 probe sequences): classified against the exact
    population loss, the first two stalls' nearest critical points are the stage-0 and stage-1
    points, L_k = ½[tr Λ − Σ_{j≤k} λ_j³/A_j] = 0.875 and 0.4354396 to 1e-8 relative, and neither is
    called a minimum (they are saddles of the staged dynamics)."""
    inst = icl.build(0, online=True, lr=0.2, steps=1400)
    settings = AnalysisSettings(classify=True, nearest=True, cancellation=False)
    mon, _ = _monitored(inst, 1400, inst.probe(512), settings, check_every=50,
                        critical_objective=inst.objective(inst.model))
    stages = inst.info["stages"]
    near = [s["nearest_critical"] for s in mon.stalls]
    assert len(near) >= 2, near
    for k in (0, 1):
        assert near[k]["converged"] and abs(near[k]["loss"] - stages[k]) / stages[k] < 1e-8, (k, near[k])
        assert near[k]["kind"] in ("strict_saddle", "non_strict_saddle"), near[k]
