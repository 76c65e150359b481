"""``landscape bench``'s human-readable table."""
from __future__ import annotations

from .run import TARGETS, BenchResult, at_target


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def format_table(r: BenchResult) -> str:
    """The human-readable table of times and ratios.

    Args:
        r: the benchmark's result.

    Returns:
        The table, lines joined by newlines.
    """
    t, d, m = r.timings, r.details, r.machine
    ms = lambda s: _fmt(None if s is None else 1e3 * s, ".1f")  # noqa: E731
    lines = [
        f"landscape bench{' --quick' if r.quick else ''}: {r.problem}",
        f"torch {m['torch']} ({m.get('torch_build')}), {m['torch_threads']} threads, "
        f"{m.get('torch_interop_threads')} interop threads, {m['cpu_count']} CPUs, {m['processor']}",
        f"load average before {m.get('loadavg_before')} -> after {m.get('loadavg_1_5_15')}: a shared machine "
        "inflates times; read the ratios (measured side by side)",
        "",
        f"HVP / gradient (full data, median of {d['hvp']['repeats']}, interleaved)",
        f"  gradient obj.grad                    {ms(t['grad_s']):>8s} ms   (plain loss.backward {ms(t['grad_plain_autograd_s'])} ms)",
        f"  cached hvp_operator(theta).matvec    {ms(t['hvp_cached_s']):>8s} ms   ratio {_fmt(r.hvp_over_grad)}"
        f"  (target <= {TARGETS['hvp_over_grad']:.1f})",
        f"  stateless obj.hvp                    {ms(t['hvp_stateless_s']):>8s} ms   ratio {_fmt(r.hvp_stateless_over_grad)}",
        "",
        "top-5 + λ_min: accuracy against time (residual measured with one operator for all; time incl. setup)",
        f"  {'method':<34s} " + "  ".join(f"{'res<=' + format(tg, 'g'):>24s}" for tg in r.accuracy["targets"]),
    ]
    names = {"ours": "ours extreme_eigs", "curvlinops": "curvlinops + scipy eigsh", "power": "deflated power iteration",
             "hessian_eigenthings": "hessian-eigenthings lanczos", "pyhessian": "PyHessian top-5 (its tol=target)"}
    for key, label in names.items():
        pts = r.accuracy.get(key) or []
        if not pts:
            lines.append(f"  {label:<34s} not installed / not run")
            continue
        cells = []
        for tg in r.accuracy["targets"]:
            p = at_target(pts, tg)
            cells.append("-" if p is None else f"{p['time_s']:6.2f}s {p['n_hvp']:4d}HVP {p['max_rel_residual']:.0e}")
        lines.append(f"  {label:<34s} " + "  ".join(f"{c:>24s}" for c in cells))
    same = r.accuracy.get("pyhessian_same_accuracy")
    lines += [
        "",
        f"at residual {r.tol:g}: ours {t['eigs_ours_s']:.2f} s, {r.eigs_n_hvp} HVPs (target <= {TARGETS['eigs_n_hvp']}), "
        f"max residual {r.eigs_max_rel_residual:.1e}·|λmax|",
        f"  speedup vs curvlinops+eigsh x{_fmt(r.eigs_speedup_vs_curvlinops)} (target >= {TARGETS['eigs_speedup_vs_curvlinops']:.0f}), "
        f"vs power x{_fmt(r.eigs_speedup_vs_power)} (target >= {TARGETS['eigs_speedup_vs_power']:.0f})"
        + ("" if r.power_converged else " [power NOT converged: lower bound]")
        + f", vs hessian-eigenthings x{_fmt(r.eigs_speedup_vs_hessian_eigenthings)}",
    ]
    if same:
        lines.append(f"  PyHessian defaults: {same['pyhessian_default_time_s']:.2f} s, {same['pyhessian_default_n_hvp']} HVPs, "
                     f"residual {same['pyhessian_default_max_rel_residual']:.1e}; ours top-5 at that residual "
                     f"{same['ours_top5_time_s']:.2f} s, {same['ours_top5_n_hvp']} HVPs (residual "
                     f"{same['ours_top5_max_rel_residual']:.1e}): x{same['speedup']:.2f} in time, "
                     f"x{same['n_hvp_ratio']:.2f} in HVPs "
                     f"(target >= {TARGETS['eigs_speedup_vs_pyhessian_same_accuracy']:.0f})")
        if "ours_top5_max_rel_value_error" in same:
            lines.append(f"    top-5 eigenvalue error against a {r.accuracy['reference_tol']:g}-residual reference, "
                         f"/|λmax|: PyHessian {same['pyhessian_default_max_rel_value_error']:.1e}, ours "
                         f"{same['ours_top5_max_rel_value_error']:.1e} (a residual r puts *an* eigenvalue within r "
                         f"of each value; the 5th and 6th are {r.accuracy['gap_5th_6th_rel']:.1e}·|λmax| apart)")
    c = d["cancellation"]
    lines += [
        "",
        f"cancellation_stats, {c['n_examples']} examples: outer products {ms(c['median_s']['fast'])} ms, "
        f"vmap {ms(c['median_s']['vmap'])} ms: x{_fmt(r.cancellation_speedup_vs_vmap)} "
        f"(target >= {TARGETS['cancellation_speedup_vs_vmap']:.0f}), max rel diff {c['max_rel_diff']:.1e}",
        f"cancellation_stats on a small CNN, {d['cancellation_cnn']['n_examples']} examples: unfold + bmm "
        f"{ms(d['cancellation_cnn']['median_s']['fast'])} ms, vmap {ms(d['cancellation_cnn']['median_s']['vmap'])} ms: "
        f"x{_fmt(r.cancellation_speedup_vs_vmap_cnn)}, max rel diff {d['cancellation_cnn']['max_rel_diff']:.1e}",
        f"per-example gradients, batch {d['per_example']['batch']}: vmap {ms(t['per_example_vmap_s'])} ms, "
        f"loop {ms(t['per_example_loop_s'])} ms: x{_fmt(r.per_example_speedup_vs_loop)}",
    ]
    if r.compile:
        cp = r.compile
        lines.append("torch.compile HVP: " + (f"failed: {cp['error']}" if "error" in cp else
                     f"compile {cp['compile_s']:.1f} s, compiled/cached per product x{cp['compiled_over_cached']:.2f}"
                     f" ({'helps' if cp['helps'] else 'does not help'} here)"))
    if r.scaling:
        lines += ["", "scaling (MLP 64-w-w-10, 128 examples, float32; extreme_eigs(k=1, which='both'), tol 1e-4)",
                  f"  {'dim':>10s} {'grad s':>8s} {'hvp s':>8s} {'hvp ns/param':>12s} {'eigs s':>8s} {'HVPs':>5s} "
                  f"{'conv':>5s} {'peak MiB':>9s} {'vectors':>8s}  load"]
        for sc in r.scaling:
            if "error" in sc:
                lines.append(f"  width {sc['width']}: failed: {sc['error']}")
                continue
            lines.append(f"  {sc['dim']:>10d} {sc['grad_s']:8.3f} {sc['hvp_s']:8.3f} {1e9 * sc['hvp_s'] / sc['dim']:12.2f} "
                         f"{sc['eigs_s']:8.2f} {sc['eigs_n_hvp']:5d} {str(sc['eigs_converged']):>5s} "
                         f"{sc['eigs_peak_mem_bytes'] / 2**20:9.1f} {sc['eigs_peak_mem_vectors']:8.1f}  {sc['loadavg']}")
            if "lambda_max_speedup_vs_curvlinops" in sc or "float32_vs_float64_max_rel_diff" in sc:
                lines.append(f"    ~1M: λ_max ours {sc.get('lambda_max_ours_s', float('nan')):.2f} s vs curvlinops+eigsh "
                             f"{sc.get('lambda_max_curvlinops_s', float('nan')):.2f} s: "
                             f"x{_fmt(sc.get('lambda_max_speedup_vs_curvlinops'))}; float32 vs float64 eigenvalues "
                             f"max rel diff {_fmt(sc.get('float32_vs_float64_max_rel_diff'), '.1e')}")
    if r.figures:
        lines += ["", "figures: " + ", ".join(r.figures)]
    return "\n".join(lines)
