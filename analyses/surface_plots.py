"""``landscape surface``: loss-surface plots on the embedded problems.

    landscape surface --problem deep_linear_h2_zero --directions random|eigen|pca|line
                      [--steps N] [--span S] [--out DIR] [--seed N]
    landscape surface --replot FILE.npz [--out DIR]
    landscape surface --bench

Writes ``surface_<problem>_<directions>.png`` (labelled contour + 3-D surface),
``.html`` (interactive, offline) and ``.npz`` (arrays, directions and metadata, enough to redraw
without recomputing). The centre is the problem's start point ``init(seed, eps)`` (near its
reference critical point), which is marked with its kind; ``pca`` and ``line`` first run a short
plain gradient-descent trajectory from there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from landscape import Objective
from landscape.render import fmt_num, surface_png, write_surface_html
from landscape.results import write_json
from landscape.surface import (NORMALIZATIONS, SurfaceResult, interpolate, surface_2d, surface_eigen,
                               surface_pca)

from .cli_common import (Heartbeat, UsageError, add_quiet, existing_file, int_at_least, nonnegative_float,
                         positive_float, positive_int, show_bars)
from .problems import Problem, get_problem, list_problems

DIRECTIONS = ("random", "eigen", "pca", "line")
REFERENCE_MS_PER_POINT = 2.0  # loss-landscapes (PyPI) on the engine benchmark's MLP, per the issue


# ---------------------------------------------------------------------------- computation
def gradient_descent(obj: Objective, theta0: torch.Tensor, lr: float, n_steps: int, *, record_every: int = 1
                     ) -> tuple[torch.Tensor, list[float]]:
    """Plain gradient descent θ ← θ − lr·∇L(θ). Returns the recorded points (T, dim) (every
    ``record_every`` steps, first and last always) and their losses.

    Args:
        obj: the objective.
        theta0: the start (dim,).
        lr: the step size.
        n_steps: steps.
        record_every: record a point every this many steps.

    Returns:
        ``(points (T, dim), losses)``.
    """
    if not (lr > 0) or n_steps < 1:
        raise ValueError(f"need lr > 0 and n_steps >= 1, got lr={lr}, n_steps={n_steps}")
    theta = obj.check_theta(theta0).detach().clone()
    points, losses = [theta.clone()], []
    for k in range(1, n_steps + 1):
        loss, g = obj.loss_and_grad(theta)
        if k == 1:
            losses.append(loss)
        theta = theta - lr * g
        if k % record_every == 0 or k == n_steps:
            points.append(theta.clone())
            losses.append(obj.loss(theta))
    return torch.stack(points), losses


def make_surface(problem: Problem, directions: str = "random", *, steps: int = 21, span: float | None = None,
                 seed: int = 0, eps: float | None = None, normalization: str | None = None,
                 gd_steps: int = 300, lr: float | None = None, progress: bool | None = None) -> SurfaceResult:
    """A surface for ``problem`` around ``problem.init(seed, eps)`` (defaults from ``problem.hints``),
    with the reference critical point marked by its kind.

    Args:
        problem: the zoo problem.
        directions: ``"random"``, ``"eigen"``, ``"pca"`` or ``"line"``.
        steps: grid points per axis.
        span: the grid's half-width (default ``hints["span"]``).
        seed: the start's and the directions' seed.
        eps: the start's perturbation (default ``hints["eps"]``).
        normalization: the directions' normalisation (default ``hints["normalization"]``).
        gd_steps: GD steps of the trajectory (``pca`` / ``line``).
        lr: the trajectory's step size (default ``hints["lr"]``).
        progress: a progress bar.

    Returns:
        :class:`landscape.surface.SurfaceResult`.
    """
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    hints = problem.hints
    eps = float(hints.get("eps", 1e-2) if eps is None else eps)
    span = float(hints.get("span", 1.0) if span is None else span)
    normalization = normalization or hints.get("normalization", "filter")
    lr = float(hints.get("lr", 0.05) if lr is None else lr)
    obj = problem.objective(seed)
    theta = problem.init(seed, eps)
    ref = problem.reference(seed).to(obj.dtype)
    marks = [{"theta": ref, "kind": problem.reference_kind,
              "label": "reference" if problem.reference_kind == "init" else problem.reference_kind.replace("_", " ")}]
    meta: dict[str, Any] = {"problem": problem.name, "description": problem.description, "seed": seed, "eps": eps,
                            "global_min": problem.global_min, "reference_kind": problem.reference_kind}
    if directions == "random":
        res = surface_2d(obj, theta, None, None, span, steps, normalization=normalization, seed=seed,
                         marks=marks, progress=progress, meta=meta)
    elif directions == "eigen":
        res = surface_eigen(obj, theta, span, steps, seed=seed, marks=marks, progress=progress, meta=meta)
    else:
        traj, losses = gradient_descent(obj, theta, lr, gd_steps, record_every=max(1, gd_steps // 100))
        meta.update({"gd_steps": gd_steps, "lr": lr, "gd_loss_start": losses[0], "gd_loss_end": losses[-1]})
        if directions == "pca":
            res = surface_pca(obj, traj, steps, marks=marks, progress=progress, meta=meta)
        else:
            res = interpolate(obj, traj[0], traj[-1], max(steps, 3), margin=0.25, progress=progress)
            res.meta.update(meta)
    return res


def output_stem(res: SurfaceResult) -> str:
    """The outputs' file stem: ``surface_<problem>_<directions>``.

    Args:
        res: the surface.

    Returns:
        The stem.
    """
    return f"surface_{res.meta.get('problem', 'custom')}_{res.kind if res.kind != 'interpolation' else 'line'}"


def write_outputs(res: SurfaceResult, out: str | Path, stem: str | None = None, *, log: bool = False,
                  write_npz: bool = True) -> dict[str, Path]:
    """Write ``<stem>.png``, ``<stem>.html`` (and ``<stem>.npz``) into ``out``.

    Args:
        res: the surface.
        out: the output folder (created).
        stem: the file stem (default :func:`output_stem`).
        log: log-spaced contour levels.
        write_npz: also the ``.npz`` (for ``--replot``).

    Returns:
        ``{"png", "html"(, "npz")}`` → paths.
    """
    out = Path(out)
    stem = stem or output_stem(res)
    title = f"{res.meta.get('problem', 'loss')} — {res.kind} directions"
    paths = {"png": surface_png(res, out / f"{stem}.png", title=title, log=log),
             "html": write_surface_html(res, out / f"{stem}.html", title=title, log=log,
                                        notes=str(res.meta.get("description", "")))}
    if write_npz:
        paths["npz"] = res.save_npz(out / f"{stem}.npz")
    return paths


# ---------------------------------------------------------------------------- benchmark
def bench_surface(*, steps: int = 15, n_examples: int = 2000, repeats: int = 3, seed: int = 0,
                  strategies: tuple[str, ...] = ("auto", "loop", "vmap"), threads: int | None = None,
                  clock: str = "wall") -> dict[str, Any]:
    """ms per grid point of :func:`surface_2d` on the engine benchmark's MLP (64-256-256-10, ReLU,
    cross-entropy, ``n_examples`` examples, float32) against one plain full-data forward pass
    (``loss_fn(model(X), y)`` under ``no_grad``). Timings interleave and report medians (the machine
    may be shared). ``threads``: torch intra-op threads for the measurement (restored after).
    ``clock="cpu"`` times with the process CPU clock, which a busy machine inflates far less than
    the wall clock (meaningful with ``threads=1``).

    Args:
        steps: grid points per axis.
        n_examples: examples of the MLP.
        repeats: timed rounds.
        seed: the problem's seed.
        strategies: the surface strategies timed.
        threads: torch threads during the measurement.
        clock: ``"wall"`` or ``"cpu"``.

    Returns:
        ms per point per strategy, the forward pass's, their ratios and the reference.
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    old_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        return _bench(steps, n_examples, repeats, seed, strategies,
                      time.perf_counter if clock == "wall" else time.process_time, clock)
    finally:
        torch.set_num_threads(old_threads)


def _bench(steps: int, n_examples: int, repeats: int, seed: int, strategies: tuple[str, ...], tick: Any,
           clock: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 10))
    X = torch.randn(n_examples, 64, generator=g)
    y = torch.randint(0, 10, (n_examples,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    obj = Objective.from_module(model, loss_fn, (X, y))
    theta = obj.initial_point()

    def forward_ms(n: int = 20) -> float:
        with torch.no_grad():
            loss_fn(model(X), y)
            t0 = tick()
            for _ in range(n):
                loss_fn(model(X), y)
        return 1e3 * (tick() - t0) / n

    fwd: list[float] = []
    per: dict[str, list[float]] = {s: [] for s in strategies}
    chosen = ""
    for _ in range(repeats):
        for s in strategies:
            fwd.append(forward_ms())
            t0 = tick()
            res = surface_2d(obj, theta, None, None, 1.0, steps, seed=seed, progress=False, strategy=s)
            per[s].append(1e3 * (tick() - t0) / res.n_points)
            if s == "auto":
                chosen = str(res.meta.get("strategy"))
    f = statistics.median(fwd)
    out: dict[str, Any] = {"model": "MLP 64-256-256-10 ReLU, cross-entropy, float32", "n_examples": n_examples,
                           "grid_points": steps * steps, "torch_threads": torch.get_num_threads(), "clock": clock,
                           "forward_ms": f, "auto_strategy": chosen,
                           "reference_ms_per_point": REFERENCE_MS_PER_POINT}
    for s, v in per.items():
        m = statistics.median(v)
        out[f"{s}_ms_per_point"] = m
        out[f"{s}_ratio_to_forward"] = m / f
        out[f"{s}_ratio_to_reference"] = m / REFERENCE_MS_PER_POINT
    return out


# ---------------------------------------------------------------------------- the study's section
STUDY_PROBLEM = "deep_linear_h2_zero"


def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict[str, Any]:
    """``landscape study``'s surface part: random and Hessian-eigen planes through the deep linear
    H = 2 net's non-strict saddle near W = 0, under ``out_dir/surface/`` (the section contract of analyses.study).

    Args:
        out_dir: the main job's output folder.
        quick: a coarser grid.
        seed: the directions' seed.

    Returns:
        The report's section (``title``, ``lead``, ``html``, ``summary``, ``figures``).
    """
    out_dir = Path(out_dir)
    problem = get_problem(STUDY_PROBLEM)
    steps = 11 if quick else 25
    parts, figures, summary = [], [], {}
    for directions in ("random", "eigen"):
        res = make_surface(problem, directions, steps=steps, seed=seed, progress=False)
        paths = write_outputs(res, out_dir / "surface")
        loss = res.loss
        centre = float(loss[loss.shape[0] // 2, loss.shape[1] // 2])
        summary[directions] = {"png": f"surface/{paths['png'].name}", "html": f"surface/{paths['html'].name}",
                               "npz": f"surface/{paths['npz'].name}", "loss_min": float(loss.min()),
                               "loss_max": float(loss.max()), "loss_centre": centre, "steps": steps, "span": res.span,
                               "eigenvalues": res.meta.get("eigenvalues")}
        figures.append(summary[directions]["png"])
        parts.append(f"<h3>{directions} directions</h3>"
                     f'<p><img src="{summary[directions]["png"]}" alt="{directions} surface" width="1000"></p>'
                     f'<p>loss from {fmt_num(loss.min(), 5)} to {fmt_num(loss.max(), 5)} on a {steps}×{steps} grid of '
                     f'half-width {fmt_num(res.span)}, centre {fmt_num(centre, 6)}; '
                     f'<a href="{summary[directions]["html"]}">interactive surface</a>, arrays '
                     f'<code>{summary[directions]["npz"]}</code>.</p>')
    write_json(out_dir / "surface" / "surface_summary.json", summary, digits=8)
    ev = summary["eigen"].get("eigenvalues") or []
    lead = ("<p>Around the deep linear H = 2 net's start near W = 0 the loss is flat to second order along random "
            "directions and bends both ways along the Hessian's extreme eigenvectors"
            + (f" (λ = {', '.join(fmt_num(x) for x in ev)} at the start point, ε = {fmt_num(problem.hints.get('eps', 1e-2))} "
               "away from W = 0)" if ev else "")
            + ": a saddle that gradient descent leaves slowly.</p>")
    return {"title": "Loss surfaces of the deep linear H = 2 net near W = 0", "lead": lead, "html": "\n".join(parts)
            + "<p>Numbers: <code>surface/surface_summary.json</code>.</p>",
            "summary": summary, "figures": figures}


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape surface``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    p.add_argument("--problem", choices=list_problems(), metavar="NAME",
                   help=f"embedded problem: {', '.join(list_problems())}")
    p.add_argument("--directions", choices=DIRECTIONS, default="random",
                   help="random (filter-normalised, orthogonal), eigen (Hessian λ_max/λ_min eigenvectors), "
                        "pca (plane of a gradient-descent trajectory), line (1-D: start → end of that trajectory)")
    p.add_argument("--steps", type=int_at_least(3), default=21, help="grid points per axis")
    p.add_argument("--span", type=positive_float, default=None, help="grid half-width (default: the problem's hint)")
    p.add_argument("--out", default="figures/surface", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed for data, start point and directions")
    p.add_argument("--eps", type=nonnegative_float, default=None,
                   help="size of the perturbation of the reference point (default: the problem's hint)")
    p.add_argument("--norm", choices=NORMALIZATIONS, default=None,
                   help="normalisation of random directions (default: the problem's hint)")
    p.add_argument("--gd-steps", type=positive_int, default=300, help="gradient-descent steps for pca/line")
    p.add_argument("--lr", type=positive_float, default=None, help="gradient-descent step size (default: the problem's hint)")
    p.add_argument("--log", action="store_true", help="plot log10(loss)")
    p.add_argument("--replot", metavar="FILE.npz", type=existing_file,
                   help="redraw the PNG and HTML from a saved .npz (no computation)")
    p.add_argument("--bench", action="store_true", help="ms per grid point on the engine benchmark's MLP vs a forward pass")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads for --bench (default: as configured)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="--bench timer: wall clock, or process CPU time (robust on a busy machine with --threads 1)")
    p.add_argument("--list", action="store_true", help="list the embedded problems")
    add_quiet(p)


def output_dirs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The folder ``landscape surface`` writes in (checked before any work by :func:`analyses.cli.main`).

    Args:
        args: the parsed arguments.

    Returns:
        ``[("--out", folder)]`` (with ``--replot`` and the default ``--out``, the .npz file's folder);
        nothing for ``--list`` and ``--bench``, which write no file.
    """
    if args.list or args.bench:
        return []
    if args.replot and args.out == "figures/surface":
        return [("--replot", str(Path(args.replot).parent))]
    return [("--out", args.out)]


def run(args: argparse.Namespace) -> int:
    """Run ``landscape surface`` (``--problem``, ``--replot`` or ``--bench``; ``--list`` the zoo).

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code, 0.

    Raises:
        analyses.cli_common.UsageError: not exactly one of ``--problem``, ``--replot``, ``--bench``.
    """
    if args.list:
        for name in list_problems():
            print(f"{name}: {get_problem(name).description}")
        return 0
    modes = [m for m, on in (("--problem", args.problem), ("--replot", args.replot), ("--bench", args.bench)) if on]
    if len(modes) > 1:
        raise UsageError(f"give one of --problem, --replot, --bench (got {' and '.join(modes)})")
    hb = Heartbeat("surface", quiet=args.quiet)
    if args.bench:
        with hb.step("surface benchmark"):
            r = bench_surface(threads=args.threads, clock=args.clock)
        print(json.dumps(r, indent=2))
        print(f"surface (auto -> {r['auto_strategy']}): {r['auto_ms_per_point']:.2f} ms/point = "
              f"{r['auto_ratio_to_forward']:.2f} x one forward pass ({r['forward_ms']:.2f} ms), "
              f"{r['auto_ratio_to_reference']:.2f} x the {REFERENCE_MS_PER_POINT} ms/point reference")
        return 0
    if args.replot:
        src = Path(args.replot)
        try:
            res = SurfaceResult.load_npz(src)
        except ValueError as e:
            raise UsageError(str(e)) from None
        out = Path(args.out) if args.out != "figures/surface" else src.parent
        paths = write_outputs(res, out, src.stem, log=args.log, write_npz=False)
        for p in paths.values():
            print(p)
        return 0
    if not args.problem:
        raise UsageError("give --problem NAME (or --replot FILE.npz, --bench, --list); problems: "
                         + ", ".join(list_problems()))
    problem = get_problem(args.problem)
    with hb.step(f"{args.directions} surface of {problem.name} ({args.steps}×{args.steps})"):
        try:
            res = make_surface(problem, args.directions, steps=args.steps, span=args.span, seed=args.seed,
                               eps=args.eps, normalization=args.norm, gd_steps=args.gd_steps, lr=args.lr,
                               progress=show_bars(args.quiet))
        except ValueError as e:  # e.g. a direction the problem cannot have (all-bias model)
            raise UsageError(str(e)) from None
        paths = write_outputs(res, args.out, log=args.log)
    print(f"{problem.name}: {res.kind} surface, {res.n_points} points in {res.seconds:.2f} s "
          f"({res.ms_per_point:.3g} ms/point), centre loss {res.center_loss:.6g}")
    for p in paths.values():
        print(p)
    return 0


if __name__ == "__main__":
    from analyses.cli import main
    raise SystemExit(main(["surface", *sys.argv[1:]]))
