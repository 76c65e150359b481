"""Survey of the five plateau cases: every number that PLATEAUS_NOTES.md quotes, measured afresh.

    python3 -m analyses.plateaus.survey [--quick] [--case committee saddles icl mnist1d autoencoder]

Single-threaded (torch.set_num_threads(1)); seeds are printed with every number. ``--quick`` runs
fewer seeds, step sizes and widths (a few minutes in all); the default is the full survey.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

import landscape as ls

from . import autoencoder, committee, icl, mnist1d_case, saddles
from .core import flat_params, load_flat, train


def _p(*a) -> None:
    print(*a, flush=True)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def find_plateaus(steps, values, *, rel_rate: float = 1e-4, min_len: int = 100, floor: float = 0.0,
                  window: int = 1) -> list[dict]:
    """Theory-free plateaus of a loss trace: maximal runs where the relative decrease per step,
    |L(t+w) − L(t−w)| / ((s_{t+w} − s_{t−w})·(L(t) − floor)), is below ``rel_rate``, lasting at
    least ``min_len`` steps. Each: start, end, length, median loss, the flattest point's step."""
    s = [int(a) for a in steps]
    v = [float(a) for a in values]
    out, run = [], []
    for i in range(window, len(v) - window):
        r = abs(v[i + window] - v[i - window]) / ((s[i + window] - s[i - window]) * max(v[i] - floor, 1e-300))
        if r < rel_rate:
            run.append((i, r))
            continue
        if run:
            out.append(run)
        run = []
    if run:
        out.append(run)
    res = []
    for run in out:
        i0, i1 = run[0][0], run[-1][0]
        if s[i1] - s[i0] < min_len:
            continue
        flat = min(run, key=lambda t: t[1])[0]
        res.append({"start": s[i0], "end": s[i1], "length": s[i1] - s[i0],
                    "median": statistics.median(v[i0:i1 + 1]), "flattest_step": s[flat], "flattest_loss": v[flat]})
    return res


# ------------------------------------------------------------------------------------------ committee
def survey_committee(quick: bool = False) -> dict:
    _p("\n=== 1. soft committee machine (Saad & Solla 1995): online SGD, exact eps_g ===")
    res: dict = {}
    N = committee.DEFAULT_N
    for K in (2, 3):
        star = committee.plateau_eps(K)
        _p(f"K={K}: theory eps_sym = (K/pi)(pi/6 - K asin(1/2K)) = {star:.6f}; order params {committee.symmetric_order_params(K)}")
        B = committee.teacher(K, N, 0)
        t0 = time.perf_counter()
        sp = committee.spectrum_at(committee.symmetric_point(B), B)
        _p(f"  symmetric fixed point (N={N}, exact eps_g, dense Hessian {time.perf_counter() - t0:.1f}s): "
           + _fmt({k: sp[k] for k in ("kind", "index", "n_zero", "dim", "loss", "grad_norm", "lambda_min_N",
                                      "lambda_max_N", "lambda_min_rel", "smallest_positive_rel")})
           + f", negative eigenvalues x N: {sp['negative_N']}")
        res[f"K{K}_fixed_point"] = sp
    # eta table, N = 500: all step sizes and seeds as replicas of one vectorised run
    etas = (0.1, 0.3, 1.0) if quick else (0.1, 0.2, 0.3, 0.5, 1.0)
    seeds = (0,) if quick else (0, 1)
    for K in (2, 3):
        star = committee.plateau_eps(K)
        amax = 120.0 if quick else (300.0 if K == 2 else 400.0)
        sim = committee.simulate(K, N, etas, seeds, alpha_max=amax, stop_below=star / 4, stop_after=5)
        _p(f"K={K}, N={N}: eta x seed table ({len(sim.runs)} replicas, alpha up to {float(sim.alpha[-1]):.0f}, "
           f"{sim.seconds:.1f}s; init entries N(0, {committee.INIT_SCALE}^2))")
        rows = []
        for r, (seed, eta) in enumerate(sim.runs):
            m = committee.plateau_measure(sim.alpha, sim.eps[r], K)
            rows.append((seed, eta, m))
            _p(f"  seed={seed} eta={eta:<4}: plateau eps_g median={m['median']:.5f} (/theory {m['median'] / star:.3f}), "
               f"entry alpha={m['entry']:.1f}, exit alpha={m['exit']:.1f}, length={m['length']:.1f}, "
               f"length*eta={m['length'] * eta:.1f}")
        small = [(eta, m["median"]) for _, eta, m in rows if eta <= 0.3 and math.isfinite(m["median"])]
        if len({e for e, _ in small}) >= 2:
            n = len(small)
            me = sum(e for e, _ in small) / n
            mv = sum(v for _, v in small) / n
            slope = sum((e - me) * (v - mv) for e, v in small) / sum((e - me) ** 2 for e, _ in small)
            icpt = mv - slope * me
            _p(f"  linear fit over eta <= 0.3: eps_plateau(eta) = {icpt:.5f} + {slope:.4f} eta -> eta->0: {icpt:.5f} "
               f"(theory {star:.5f}, ratio {icpt / star:.3f})")
            res[f"K{K}_eta_fit"] = {"intercept": icpt, "slope": slope}
        res[f"K{K}_eta_table"] = rows
        # the plateau point of the eta = 0.3 seed-0 replica, classified: SGD point at mid-plateau
    for K in (2, 3):
        star = committee.plateau_eps(K)
        eta = 0.3
        sim = committee.simulate(K, N, (eta,), (0,), alpha_max=60.0)
        W, B = sim.W[0], sim.B[0]
        W0 = committee.student_init(K, N, 0)
        t0 = time.perf_counter()
        obj = ls.Objective.from_function(lambda th: committee.eps_g(th.view(K, N), B), W.reshape(-1))
        nc = ls.nearest_critical(obj, W.reshape(-1))
        Wc = nc.theta.view(K, N)
        op = committee.order_params(Wc, B)
        _p(f"K={K}, eta={eta}, seed 0, SGD point at alpha=60 (eps_g={float(committee.eps_g(W, B)):.5f}): nearest_critical "
           f"({time.perf_counter() - t0:.1f}s): kind={nc.kind} index={nc.index} n_zero={nc.n_zero} loss={nc.loss:.12f} "
           f"(theory {star:.12f}, rel {abs(nc.loss - star) / star:.1e}) distance={nc.distance:.3f} "
           f"(|W|={float(W.norm()):.2f}); Q diag {[round(float(v), 4) for v in torch.diagonal(op['Q'])]}, "
           f"R mean {float(op['R'].mean()):.4f} (theory {committee.symmetric_order_params(K)['R']:.4f})")
        for name, pt in (("init", W0), ("plateau", W), ("fixed point", Wc)):
            st = committee.per_example_stats(pt, B, n=4096)
            _p(f"  per-example gradients at {name:11s}: eps_g={st['eps_g']:.5f} kappa={st['kappa']:.4f} "
               f"(exact-gradient kappa {st['kappa_exact']:.2e}; sampling floor ~{st['kappa_noise_floor']:.3f}), "
               f"mean|g_i|={st['mean_example_grad_norm']:.4f}, |grad eps_g| exact={st['exact_grad_norm']:.2e}")
            res[f"K{K}_stats_{name}"] = st
        res[f"K{K}_nearest"] = {"kind": nc.kind, "index": nc.index, "loss": nc.loss, "distance": nc.distance}
    return res


def survey_committee_n(quick: bool = False) -> dict:
    """K = 2, η = 0.5: the plateau's value and length against N."""
    res: dict = {}
    Ns = (500, 1000) if quick else (500, 1000, 2000)
    seeds = (0, 1) if quick else (0, 1, 2, 3)
    K, eta = 2, 0.5
    star = committee.plateau_eps(K)
    B = committee.teacher(K, 12, 0)
    mu = -committee.spectrum_at(committee.symmetric_point(B), B)["lambda_min_N"]
    _p(f"K=2, eta={eta}: N dependence (seeds {seeds}); escape rate at the saddle mu = |lambda_min|*N = {mu:.5f}: "
       f"one e-fold of the symmetry-breaking mode per 1/(eta mu) = {1 / (eta * mu):.1f} alpha")
    for n_ in Ns:
        sim = committee.simulate(K, n_, (eta,), seeds, alpha_max=300.0, stop_below=star / 4, stop_after=2)
        ms = [committee.plateau_measure(sim.alpha, sim.eps[r], K) for r in range(len(sim.runs))]
        lens = [m["length"] for m in ms]
        _p(f"  N={n_}: plateau median eps_g {statistics.mean(m['median'] for m in ms):.5f}, lengths (alpha) "
           f"{[round(v, 1) for v in lens]}, mean {statistics.mean(lens):.1f}; {sim.seconds:.1f}s "
           f"(cpu {sim.cpu_seconds:.1f}s; {int(float(sim.alpha[-1]) * n_)} steps x {len(seeds)} replicas)")
        res[f"N{n_}"] = {"median": [m["median"] for m in ms], "length": lens, "seconds": sim.seconds}
    return res


# ------------------------------------------------------------------------------------------ saddles
def survey_linear(quick: bool = False) -> dict:
    _p("\n=== 2a. deep linear net 5-3-3-3-5 from a small init: plateaus at the best low-rank losses ===")
    res: dict = {}
    seeds = (0,) if quick else (0, 1, 2)
    for seed in seeds:
        inst = saddles.build_linear(seed)
        levels = inst.info["plateaus"]
        snaps: dict[int, torch.Tensor] = {}
        tr = train(inst, callback=lambda info: snaps.__setitem__(info.step, flat_params(info.model)) and None)
        plats = find_plateaus(tr.eval_steps, tr.eval_loss, rel_rate=1e-4, min_len=50, floor=0.0)
        _p(f"seed {seed}: s={inst.info['s']}, theory L_k = 1/2 sum_(i>k) s_i^2 = {levels}; {tr.seconds:.1f}s for "
           f"{tr.steps} GD steps (lr {inst.optimiser['lr']})")
        obj = inst.objective(inst.model)
        for p in plats:
            k = min(range(len(levels)), key=lambda j: abs(levels[j] - p["flattest_loss"]))
            th = snaps.get(p["flattest_step"], flat_params(inst.model))
            t0 = time.perf_counter()
            nc = ls.nearest_critical(obj, th, global_min=levels[-1])
            rel = abs(nc.loss - levels[k]) / levels[k]
            _p(f"  plateau steps {p['start']}-{p['end']} at loss {p['flattest_loss']:.6f} (L_{k} = {levels[k]:.6f}); "
               f"nearest_critical: loss {nc.loss:.12f} rel {rel:.1e}, kind={nc.kind} index={nc.index} "
               f"n_zero={nc.n_zero} distance={nc.distance:.3f} ({time.perf_counter() - t0:.1f}s)")
            res.setdefault(seed, []).append({"k": k, "plateau": p, "critical_loss": nc.loss, "rel": rel,
                                             "kind": nc.kind})
    return res


def survey_tanh(quick: bool = False) -> dict:
    _p("\n=== 2b. 64-8-8-8-10 tanh on the digits, init x 0.05, full-batch GD lr 0.5 ===")
    res: dict = {}
    seeds = (0, 1) if quick else (0, 1, 2, 3)
    H = saddles.class_entropy(saddles.digits()[1])
    _p(f"theory: class-prior entropy H = {H:.6f} (ln 10 = {math.log(10):.6f})")
    for seed in seeds:
        inst = saddles.build_tanh(seed, steps=10_000)
        keep: dict = {}

        def cb(info, keep=keep):
            if info.step == 3000:
                keep["theta"] = flat_params(info.model)

        tr = train(inst, callback=cb, eval_every=50, stop_below=H - 0.5)
        plats = find_plateaus(tr.eval_steps, tr.eval_loss, rel_rate=1e-6, min_len=500)
        esc = tr.first_below(H - 0.01)
        _p(f"seed {seed}: plateau(s) {[(p['start'], p['end'], round(p['median'], 6)) for p in plats]}, loss at step "
           f"3000 {tr.eval_loss[60]:.7f} (H {H:.7f}, gap {tr.eval_loss[60] - H:.1e}); leaves (loss < H - 0.01) at "
           f"step {esc}; {tr.seconds / tr.steps * 1e3:.2f} ms/step")
        res[seed] = {"escape": esc, "plateaus": plats, "ms_per_step": tr.seconds / tr.steps * 1e3}
        if seed == seeds[0] and "theta" in keep and not quick:  # dense classification, dim 754: ~1 min CPU
            inst2 = saddles.build_tanh(seed)
            load_flat(inst2.model, keep["theta"])
            obj = inst2.objective(inst2.model)
            t0 = time.perf_counter()
            nc = ls.nearest_critical(obj, keep["theta"])
            ev = nc.report.eigenvalues
            _p(f"  nearest_critical from step 3000 ({time.perf_counter() - t0:.1f}s): kind={nc.kind} index={nc.index} "
               f"n_zero={nc.n_zero}/{obj.dim} loss={nc.loss:.9f} (H {H:.9f}) distance={nc.distance:.2e} "
               f"lambda_min={nc.lambda_min:.2e} lambda_max={nc.lambda_max:.2e} probe_order={nc.probe_order} "
               f"eig_tol={nc.report.eig_tol:.1e} (eigenvalues > eig_tol: {int((ev > nc.report.eig_tol).sum())})")
            cs = ls.cancellation_stats(obj, keep["theta"])
            cs0 = ls.cancellation_stats(obj, flat_params(saddles.build_tanh(seed).model))
            _p(f"  per-example gradients: plateau kappa={cs.kappa:.4f} mean|g_i|={cs.mean_example_grad_norm:.3e} "
               f"|g|={cs.grad_norm:.2e}; init kappa={cs0.kappa:.4f} mean|g_i|={cs0.mean_example_grad_norm:.3e}")
            res["nearest"] = {"kind": nc.kind, "index": nc.index, "n_zero": nc.n_zero, "loss": nc.loss}
    return res


# ------------------------------------------------------------------------------------------ ICL
def survey_icl(quick: bool = False) -> dict:
    _p("\n=== 3. in-context linear regression, separate key/query linear attention (Zhang et al. 2025) ===")
    res: dict = {}
    lam, N = icl.LAMBDAS, icl.CONTEXT
    levels = icl.stage_losses(lam, N)
    _p(f"Lambda={lam}, N={N} context tokens, H={len(lam)} heads; derived stage losses L_k = {levels}")
    seeds = (0,) if quick else (0, 1, 2)
    for seed in seeds:
        inst = icl.build(seed, steps=12_000)
        snaps: dict[int, torch.Tensor] = {}
        tr = train(inst, eval_every=10,
                   callback=lambda info: snaps.__setitem__(info.step, flat_params(info.model)) if info.step % 10 == 0 else None)
        plats = find_plateaus(tr.eval_steps, tr.eval_loss, rel_rate=1e-5, min_len=100)
        _p(f"seed {seed} (GD on the exact population loss, lr {inst.optimiser['lr']}, init {icl.INIT}): "
           f"{tr.seconds:.1f}s for {tr.steps} steps")
        obj = inst.objective(inst.model)
        for p in plats:
            k = min(range(len(levels)), key=lambda j: abs(levels[j] - p["flattest_loss"]))
            th = snaps.get(p["flattest_step"])
            nc = ls.nearest_critical(obj, th, global_min=levels[-1])
            _p(f"  stage {k}: steps {p['start']}-{p['end']}, plateau loss {p['flattest_loss']:.8f} vs L_{k} "
               f"{levels[k]:.8f} (rel {abs(p['flattest_loss'] - levels[k]) / levels[k]:.1e}); nearest_critical "
               f"loss {nc.loss:.10f} (rel {abs(nc.loss - levels[k]) / levels[k]:.1e}) kind={nc.kind} index={nc.index} "
               f"n_zero={nc.n_zero}")
            res.setdefault(seed, []).append({"k": k, "plateau": p, "critical": nc.loss, "kind": nc.kind})
    # online SGD on sampled sequences: the same stages, with an SGD-noise excess
    inst = icl.build(0, steps=12_000, online=True, lr=0.2)
    tr = train(inst, eval_every=50)
    plats = find_plateaus(tr.eval_steps, tr.eval_loss, rel_rate=3e-5, min_len=500, window=4)
    _p(f"online SGD (batch {icl.BATCH} fresh sequences, lr 0.2, seed 0): {tr.seconds:.1f}s; exact loss along the run: "
       + ", ".join(f"step {s}: {v:.4f}" for s, v in list(zip(tr.eval_steps, tr.eval_loss))[::24]))
    Z, y = inst.probe(2048)
    obj = ls.Objective.from_module(inst.model, icl.half_mse, (Z, y))
    cs = ls.cancellation_stats(obj, flat_params(inst.model))
    _p(f"  end of run: kappa={cs.kappa:.4f}, mean|g_i|={cs.mean_example_grad_norm:.3e} on 2048 sequences")
    res["sgd"] = {"plateaus": plats}
    return res


# ------------------------------------------------------------------------------------------ MNIST-1D
def survey_mnist1d(quick: bool = False) -> dict:
    _p("\n=== 4. MNIST-1D (Greydanus 2020): MLP and CNN, Adam lr 1e-2, batch 100, 6000 steps, float32 ===")
    res: dict = {}
    x, y, xt, yt = mnist1d_case.data()
    H = saddles.class_entropy(y)
    _p(f"data: train {tuple(x.shape)}, test {tuple(xt.shape)}; training-label entropy {H:.6f}")
    seeds = (0,) if quick else (0, 1)
    for arch in ("mlp", "cnn"):
        for init, opt in ((1.0, None), (0.1, None), (0.1, {"name": "sgd", "lr": 0.1})):
            if quick and opt is not None:
                continue
            for seed in seeds:
                inst = mnist1d_case.build(seed, arch=arch, init=init, optimiser=opt)
                tr = train(inst, eval_every=25)
                acc = mnist1d_case.accuracy(inst.model, xt, yt)
                esc = tr.first_below(H - 0.05)
                plats = find_plateaus(tr.eval_steps, tr.eval_loss, rel_rate=2e-5, min_len=100, window=2)
                plats = [p for p in plats if p["median"] > H - 0.05]
                _p(f"{arch} init x{init} {inst.optimiser['name']} lr {inst.optimiser['lr']} seed {seed}: test acc {acc:.3f} "
                   f"(published {mnist1d_case.PUBLISHED[arch]}), final train loss {tr.eval_loss[-1]:.4f}, "
                   f"loss < H-0.05 at step {esc}, prior plateau {[(p['start'], p['end']) for p in plats]}, "
                   f"{tr.seconds:.1f}s ({tr.seconds / tr.steps * 1e3:.2f} ms/step)")
                res[(arch, init, inst.optimiser["name"], seed)] = {"acc": acc, "escape": esc, "seconds": tr.seconds}
    return res


# ------------------------------------------------------------------------------------------ autoencoder
def survey_autoencoder(quick: bool = False) -> dict:
    _p("\n=== 5. digits ReLU autoencoder 64-h-8-h-64, MSE, full-batch GD lr 0.1 ===")
    res: dict = {}
    mean_l = autoencoder.mean_image_loss()
    pca = autoencoder.pca_losses(r_max=3)
    _p(f"theory: mean-image loss {mean_l:.6f}; best affine rank-r (PCA) losses r=0..3: {[round(v, 6) for v in pca]}")
    seeds = (0, 1, 2) if quick else tuple(range(8))
    for h in ((32,) if quick else (32, 16)):
        rows = []
        for seed in seeds:
            inst = autoencoder.build(seed, widths=(64, h, 8, h, 64), steps=6000)
            tr = train(inst, eval_every=10, stop_below=0.95 * pca[1])
            below = {f: tr.first_below(f * mean_l) for f in (0.99, 0.97, 0.95, 0.9)}
            t_pca1 = tr.first_below(pca[1])
            on = [v for st, v in zip(tr.eval_steps, tr.eval_loss) if below[0.99] and below[0.99] <= st <= (below[0.97] or st)]
            rate = (on[0] - on[-1]) / (on[0] * max(1, (below[0.97] or tr.steps) - below[0.99])) if len(on) > 1 else math.nan
            _p(f"h={h} seed {seed}: first step below f x mean-image loss: {below}; plateau (0.99 -> 0.97) "
               f"{(below[0.97] or math.nan) - (below[0.99] or math.nan)} steps, relative decrease there {rate:.1e}/step; "
               f"reaches the rank-1 PCA loss {pca[1]:.5f} at step {t_pca1}; {tr.seconds / tr.steps * 1e3:.2f} ms/step")
            rows.append({"seed": seed, "below": below, "t_pca1": t_pca1, "ms": tr.seconds / tr.steps * 1e3})
        res[h] = rows
    return res


# ------------------------------------------------------------------------------------------ timing
def survey_timing(quick: bool = False) -> dict:
    """Per-step cost of each case's plain loop (and the vectorised committee), single-threaded:
    wall time and this process's CPU time (on a shared machine the CPU time is the better estimate
    of an idle core's wall time)."""
    _p(f"\n=== per-step cost, 1 thread (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) ===")
    res: dict = {}
    n = 100 if quick else 300
    builds = {
        "committee K=2 N=500 (plain loop)": lambda: committee.build(0),
        "deep linear 5-3-3-3-5": lambda: saddles.build_linear(0),
        "digits tanh 64-8-8-8-10 float64": lambda: saddles.build_tanh(0),
        "digits tanh 64-8-8-8-10 float32": lambda: saddles.build_tanh(0, dtype=torch.float32),
        "ICL GD on population loss": lambda: icl.build(0),
        "ICL online SGD batch 64": lambda: icl.build(0, online=True),
        "MNIST-1D MLP (Adam, batch 100, f32)": lambda: mnist1d_case.build(0, arch="mlp"),
        "MNIST-1D CNN (Adam, batch 100, f32)": lambda: mnist1d_case.build(0, arch="cnn"),
        "digits AE 64-32-8-32-64 f64": lambda: autoencoder.build(0),
        "digits AE 64-16-8-16-64 f64": lambda: autoencoder.build(0, widths=(64, 16, 8, 16, 64)),
        "digits AE 64-32-8-32-64 f32": lambda: autoencoder.build(0, dtype=torch.float32),
    }
    for name, b in builds.items():
        inst = b()
        tr = train(inst, steps=n, eval_every=10 * n)
        res[name] = (tr.seconds / n * 1e3, tr.cpu_seconds / n * 1e3)
        _p(f"  {name:40s}: {tr.seconds / n * 1e3:7.3f} ms/step wall, {tr.cpu_seconds / n * 1e3:7.3f} ms/step CPU")
    for R in (1, 30):
        sim = committee.simulate(2, 500, (0.5,), tuple(range(R)), alpha_max=n * 10 / 500)
        steps = int(round(float(sim.alpha[-1]) * 500))
        res[f"committee simulate R={R}"] = (sim.seconds / steps * 1e3, sim.cpu_seconds / steps * 1e3)
        _p(f"  {'committee simulate K=2 N=500, ' + str(R) + ' replicas':40s}: {sim.seconds / steps * 1e3:7.3f} ms/step wall, "
           f"{sim.cpu_seconds / steps * 1e3:7.3f} ms/step CPU (all replicas together)")
    return res


CASES = {"committee": survey_committee, "committee_n": survey_committee_n, "linear": survey_linear,
         "tanh": survey_tanh, "icl": survey_icl,
         "mnist1d": survey_mnist1d, "autoencoder": survey_autoencoder, "timing": survey_timing}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", nargs="*", choices=sorted(CASES), default=list(CASES))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.case:
        t0, c0 = time.perf_counter(), time.process_time()
        CASES[name](args.quick)
        _p(f"[{name}: {time.perf_counter() - t0:.0f}s wall, {time.process_time() - c0:.0f}s CPU]")


if __name__ == "__main__":
    main()
