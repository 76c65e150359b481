"""The main job, ``landscape study``: does SynaPrune escape stalls, which kinds, at what cost?

One command on the embedded problems, writing into ``./figures`` (or ``--out``):

1. a reduced escape benchmark (every method × a few zoo problems × a few seeds) → ``escape/``;
2. the deep-linear theorem verification in quick mode → ``theorems/``;
3. Hessian spectrum reports for one GD and one SynaPrune run on the autoencoder problem →
   ``spectrum_autoencoder_<method>/``;
4. loss surfaces (random and Hessian-eigen directions) of the deep linear H = 2 net at its stall
   near W = 0 → ``surface/``;
5. ``report.html``: one page stating the findings with numbers and embedding the figures, and
   ``study.json`` with the same numbers.

Default run: under 5 minutes on 2 cores; ``--quick``: under 1 minute.
"""
from __future__ import annotations

import argparse
import html
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from landscape.results import JsonResult

from . import escape as escape_mod
from .problems import get_problem
from .spectrum_report import report_run, train_problem
from .stats import median
from .surface_plots import make_surface, write_outputs
from .theorems import run_theorems

SYNAPRUNE_PREFIX = "synaprune-"


@dataclass
class StudyResult(JsonResult):
    """What the main job measured; every number on ``report.html`` comes from here."""

    quick: bool
    seed: int
    out: str
    timings_s: dict[str, float] = field(default_factory=dict)
    escape: dict[str, Any] = field(default_factory=dict)
    theorems: dict[str, Any] = field(default_factory=dict)
    spectra: dict[str, Any] = field(default_factory=dict)
    surfaces: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    report: str | None = None


# ---------------------------------------------------------------------------- steps
#: the main job's reduced escape benchmark (default) and its --quick version
STUDY_DEFAULT = {"problems": escape_mod.QUICK_PROBLEMS, "methods": escape_mod.QUICK_METHODS,
                 "seeds": 4}
STUDY_QUICK = {"problems": ("deep_linear_h2_zero", "noisy_regression"),
               "methods": ("gd", "adam", "pgd", "ncd", "synaprune-rms", "synaprune-devarg"), "seeds": 1}
CONTROL_PROBLEM = "noisy_regression"


def _control_text(records: list[dict[str, Any]]) -> str | None:
    """The failure-mode control: cancellation at a true global minimum."""
    evs = [(r["method"], e) for r in records if r.get("problem") == CONTROL_PROBLEM for e in r.get("events", [])]
    if not evs:
        return None
    kappas = [e["kappa"] for _, e in evs if e.get("kappa") is not None]
    n_esc = sum(bool(e.get("escaped")) for _, e in evs)
    kinds: dict[str, int] = {}
    for _, e in evs:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    per_method: dict[str, list[float]] = {}
    for r in records:
        if r.get("problem") == CONTROL_PROBLEM:
            per_method.setdefault(r["method"], []).append(r.get("n_per_example_grads") or 0)
    cost = ""
    if "gd" in per_method:
        worst = max((m for m in per_method if m.startswith(SYNAPRUNE_PREFIX)), key=lambda m: median(per_method[m]),
                    default=None)
        if worst is not None:
            cost = (f" The costliest rule there, {worst}, spent a median {median(per_method[worst]):.0f} per-example "
                    f"gradients per run against {median(per_method['gd']):.0f} for GD.")
    return (f"Control ({CONTROL_PROBLEM}, a true global minimum with large per-example gradients): {len(evs)} stall(s), "
            f"kinds {kinds}, median κ = {median(kappas):.2g} (cancellation looks total), {n_esc} escape(s). "
            "Cancellation alone does not make a stall bad: rules that act on it can only waste work at such a point."
            + cost)


def _escape_step(out: Path, quick: bool, seed: int, workers: int | None, progress: bool | None) -> dict[str, Any]:
    preset = STUDY_QUICK if quick else STUDY_DEFAULT
    seeds = [seed + i for i in range(preset["seeds"])]
    bench = escape_mod.run_benchmark(preset["problems"], preset["methods"], seeds, out / "escape", workers=workers,
                                     progress=progress, quick=True)
    d = bench.to_dict()
    d["description"] = (f"{len(bench.problems)} problems ({', '.join(bench.problems)}) × {len(bench.methods)} methods × "
                        f"{len(bench.seeds)} seed(s) = {len(bench.records)} runs in {bench.wall_time_s:.0f} s with "
                        f"{bench.workers} worker(s); steps per run {bench.max_steps}. A stall counts as escaped when the "
                        "loss drops by max(δ_abs, δ_rel·|L|) within the horizon (SYNAPRUNE.md).")
    d["figures"] = {"png": [os.path.relpath(bench.png, out)] if bench.png else [],
                    "html": [os.path.relpath(bench.html, out)] if bench.html else []}
    d["control"] = _control_text(bench.records)
    d["n_errors"] = sum(r.get("status") == "error" for r in bench.records)
    return d


def _theorem_step(out: Path, seed: int, progress: bool | None) -> dict[str, Any]:
    rep = run_theorems(quick=True, seed=seed, out=out / "theorems", progress=progress)
    return {"verdicts": rep.verdicts, "timings_s": rep.timings_s, "markdown": "theorems/theorems.md"}


def _spectrum_step(out: Path, quick: bool, seed: int, progress: bool | None) -> dict[str, Any]:
    problem = get_problem("autoencoder")
    steps = problem.hints.get("max_steps", 1500)
    if quick:
        steps = min(steps, 400)
    spectra = {}
    for method in ("gd", "synaprune-rms"):
        d = out / f"spectrum_autoencoder_{method}"
        result = train_problem(problem, method, d / "run", max_steps=steps, seed=seed, progress=progress)
        rep = report_run(d / "run", d, k=3 if quick else 5, slq_runs=4 if quick else 8,
                         slq_steps=30 if quick else 60, seed=seed)
        spectra[method] = {
            "final_loss": result.final_loss, "global_min": problem.global_min, "n_steps": result.n_steps,
            "gap": None if problem.global_min is None else result.final_loss - problem.global_min,
            "n_stalls": result.n_stalls, "html": f"{d.name}/spectrum_report.html",
            "stalls": [{"step": s.step, "kind": s.kind, "loss": s.loss, "lambda_min": s.lambda_min,
                        "lambda_max": s.lambda_max, "index": s.morse_index, "n_zero": s.n_zero, "kappa": s.kappa,
                        "png": f"{d.name}/{s.png}"} for s in rep.stalls],
        }
    return spectra


def _surface_step(out: Path, quick: bool, seed: int, progress: bool | None) -> dict[str, Any]:
    problem = get_problem("deep_linear_h2_zero")
    steps = 11 if quick else 25
    res_all = {}
    for directions in ("random", "eigen"):
        res = make_surface(problem, directions, steps=steps, seed=seed, progress=progress)
        paths = write_outputs(res, out / "surface")
        loss = res.loss
        res_all[directions] = {"png": f"surface/{paths['png'].name}", "html": f"surface/{paths['html'].name}",
                               "loss_min": float(loss.min()), "loss_max": float(loss.max()),
                               "loss_centre": float(loss[loss.shape[0] // 2, loss.shape[1] // 2])}
    return res_all


# ---------------------------------------------------------------------------- findings
def _fmt_rate(row: dict[str, Any]) -> str:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    rate = row.get("escape_rate")
    if rate is None:
        return "n/a"
    ci = "" if lo is None or hi is None else f" [{lo:.2f}, {hi:.2f}]"
    return f"{row['n_escaped']}/{row['n_stalls']} = {rate:.2f}{ci}"


def findings(result: StudyResult) -> list[str]:
    """Plain-language findings, each carrying its numbers."""
    out: list[str] = []
    rows = result.escape.get("summary", [])
    kinds: dict[str, int] = {}
    for r in rows:
        if r["kind"] != escape_mod.NO_STALL:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + int(r["n_stalls"])
    if kinds:
        out.append("Stalls met in the escape benchmark, by kind: "
                   + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])) + ".")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], {})[r["method"]] = r
    for kind, methods in sorted(by_kind.items()):
        if kind in ("minimum", "global_minimum"):
            continue
        gd = methods.get("gd")
        syn = {m: r for m, r in methods.items() if m.startswith(SYNAPRUNE_PREFIX) and r.get("escape_rate") is not None}
        base = {m: r for m, r in methods.items() if not m.startswith(SYNAPRUNE_PREFIX) and r.get("escape_rate") is not None}
        if not syn:
            continue
        def rank(kv: tuple[str, dict[str, Any]]) -> tuple[float, float]:
            # Wilson lower bound first, so one lucky stall does not outrank many.
            steps = kv[1].get("median_escape_steps")
            return kv[1].get("ci_low") or 0.0, -(steps if steps is not None else math.inf)

        best_syn = max(syn.items(), key=rank)
        best_base = max(base.items(), key=rank) if base else None

        def steps_cost(r: dict[str, Any]) -> str:
            st = r.get("median_escape_steps")
            return (f"median escape {'–' if st is None else f'{st:.0f}'} steps, "
                    f"median {r.get('median_per_example_grads') or 0:.0f} per-example gradients per run")

        text = (f"At {kind.replace('_', ' ')} stalls the best SynaPrune rule is {best_syn[0]} "
                f"(escape {_fmt_rate(best_syn[1])}, {steps_cost(best_syn[1])})")
        if gd is not None:
            text += f"; plain GD escapes {_fmt_rate(gd)} ({steps_cost(gd)})"
        if best_base is not None and best_base[0] != "gd":
            text += f"; the best baseline is {best_base[0]} ({_fmt_rate(best_base[1])})"
        lo_syn = best_syn[1].get("ci_low")
        hi_base = best_base[1].get("ci_high") if best_base else None
        if lo_syn is not None and hi_base is not None and lo_syn > hi_base:
            text += ": SynaPrune helps here (intervals do not overlap)."
        elif best_base is not None and best_base[1].get("ci_low") is not None and best_syn[1].get("ci_high") is not None \
                and best_base[1]["ci_low"] > best_syn[1]["ci_high"]:
            text += ": the baseline does better (intervals do not overlap)."
        else:
            text += ": no significant difference in escape rate at this sample size."
        s_syn, s_gd = best_syn[1].get("median_escape_steps"), (gd or {}).get("median_escape_steps")
        if s_syn and s_gd and gd is not best_syn[1]:
            faster = "faster" if s_syn < s_gd else "slower"
            text += (f" Over the stalls they do escape, {best_syn[0]} is {faster} ({s_syn:.0f} vs {s_gd:.0f} median steps) at "
                     f"{(best_syn[1].get('median_per_example_grads') or 0) / max(gd.get('median_per_example_grads') or 1, 1):.0f}× "
                     "GD's per-example-gradient cost.")
        out.append(text)
    control = result.escape.get("control")
    if control:
        out.append(control)
    v = result.theorems.get("verdicts") or {}
    if v:
        out.append("Deep linear theorems (quick run): " + "; ".join(
            f"statement {k}: {d.get('verdict', d) if isinstance(d, dict) else d}" for k, d in sorted(v.items())) + ".")
    for method, s in result.spectra.items():
        kinds_s = ", ".join(f"step {st['step']}: {st['kind']} (λ_min {st['lambda_min']:.3g}, κ "
                            f"{'n/a' if st['kappa'] is None else format(st['kappa'], '.3f')})" for st in s["stalls"])
        gap = "n/a" if s["gap"] is None else f"{s['gap']:.3g}"
        out.append(f"Autoencoder with {method}: {s['n_stalls']} stall(s) [{kinds_s or 'none'}], "
                   f"final loss {s['final_loss']:.5g}, gap to the PCA optimum {gap}.")
    return out


# ---------------------------------------------------------------------------- report page
def _summary_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(no stalls recorded)</p>"
    head = ("<table class='summary'><tr><th>stall kind</th><th>method</th><th>stalls</th><th>escape rate [Wilson 95%]</th>"
            "<th>median escape steps</th><th>median final gap</th><th>median HVPs</th><th>median per-example grads</th></tr>")
    body = []
    for r in rows:
        def f(key: str, fmt: str = ".3g") -> str:
            v = r.get(key)
            return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)
        body.append(f"<tr><td>{html.escape(r['kind'])}</td><td>{html.escape(r['method'])}</td><td>{r['n_stalls']}</td>"
                    f"<td>{_fmt_rate(r)}</td><td>{f('median_escape_steps')}</td><td>{f('median_gap')}</td>"
                    f"<td>{f('median_hvp')}</td><td>{f('median_per_example_grads')}</td></tr>")
    return head + "".join(body) + "</table>"


def _img(src: str, width: int = 900) -> str:
    return f'<p><img src="{html.escape(src)}" width="{width}"></p>'


def write_report(result: StudyResult, out: Path) -> Path:
    esc = result.escape
    parts = ["<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in result.findings) + "</ul>"]
    parts.append("<h2>Escape benchmark: by stall kind × method</h2>")
    parts.append(f"<p>{html.escape(esc.get('description', ''))}</p>")
    parts.append(_summary_table(esc.get("summary", [])))
    for fig in esc.get("figures", {}).get("png", []):
        parts.append(_img(fig))
    for fig in esc.get("figures", {}).get("html", []):
        parts.append(f'<p><a href="{html.escape(fig)}">interactive: {html.escape(fig)}</a></p>')
    parts.append("<h2>Deep linear networks: Kawaguchi's statements</h2>")
    parts.append('<p>Full table: <a href="theorems/theorems.md">theorems/theorems.md</a>; data: theorems/theorems.json.</p>')
    th_dir = out / "theorems"
    for png in sorted(th_dir.glob("*.png")) if th_dir.exists() else []:
        parts.append(_img(f"theorems/{png.name}", 700))
    parts.append("<h2>Hessian spectra at the autoencoder's stalls</h2>")
    for method, s in result.spectra.items():
        parts.append(f"<h3>{html.escape(method)}</h3><p><a href=\"{s['html']}\">full spectrum report</a></p>")
        for st in s["stalls"][:3]:
            parts.append(_img(st["png"]))
    parts.append("<h2>Loss surfaces of the deep linear H = 2 net near W = 0</h2>")
    for d, s in result.surfaces.items():
        parts.append(f"<h3>{d} directions</h3>" + _img(s["png"], 800)
                     + f"<p><a href=\"{s['html']}\">interactive surface</a></p>")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items())
    parts.append(f"<h2>Run</h2><p>{'quick' if result.quick else 'default'} run, seed {result.seed}; timings: {timings}; "
                 f"torch {torch.__version__}, {torch.get_num_threads()} threads.</p>")
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>landscape study</title>\n"
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>\n"
            "<h1>Does SynaPrune escape stalls? — landscape study</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- driver
def run_study(out: str | Path = "figures", *, quick: bool = False, seed: int = 0, workers: int | None = None,
              progress: bool | None = None) -> StudyResult:
    """Run the whole study into ``out`` and return its numbers (also in ``out/study.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = StudyResult(quick=quick, seed=seed, out=str(out))
    steps = [("escape", lambda: _escape_step(out, quick, seed, workers, progress)),
             ("theorems", lambda: _theorem_step(out, seed, progress)),
             ("spectra", lambda: _spectrum_step(out, quick, seed, progress)),
             ("surfaces", lambda: _surface_step(out, quick, seed, progress))]
    for name, fn in steps:
        t0 = time.perf_counter()
        print(f"[study] {name} ...", flush=True)
        setattr(result, name, fn())
        result.timings_s[name] = time.perf_counter() - t0
        print(f"[study] {name} done in {result.timings_s[name]:.1f} s", flush=True)
        result.save_json(out / "study.json")  # partial results survive an interruption
    result.findings = findings(result)
    result.report = str(write_report(result, out))
    result.save_json(out / "study.json")
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="figures", help="output directory (default ./figures)")
    p.add_argument("--quick", action="store_true", help="a reduced run (under a minute on 2 cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="escape-benchmark worker processes (default: cores)")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    result = run_study(args.out, quick=args.quick, seed=args.seed, workers=args.workers)
    print("\nFindings:")
    for f in result.findings:
        print(f"  - {f}")
    print(f"\nreport: {result.report}  ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main(["study", *sys.argv[1:]]))
