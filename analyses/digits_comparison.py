"""The digits plateau's method comparison: the escape study's protocol (:mod:`analyses.escape`) on
the ``digits_autoencoder`` problem, not a new one.

Every method of :data:`ESCAPE_METHODS` / :data:`OPTIONAL_METHODS` × :data:`ESCAPE_SEEDS` seeds
(each seed a different network initialisation) is one job of :func:`analyses.sweep.run_sweep`
through :func:`analyses.escape.run.run_one`, so the records have the escape records' format
(``censored``, ``escaped`` True/False/None, ``escaped_by`` rule/base, ``escape_steps``,
``cost_example_grads``…), stream to ``digits/runs.jsonl`` (fsynced, resumable, byte-identical
whatever the workers) and are shipped as ``runs.jsonl.gz``, which the study continues
(:func:`run_comparison`). Their statistics are :func:`analyses.escape.summary.summarize`'s
(:func:`comparison_summary`): one stall per (run, kind, cause), rates over the stalls with a known
outcome with Wilson 95 % intervals, Kaplan–Meier escape times, log-rank against GD with Holm over
the methods of the cell, Newcombe differences against GD and the step-length-matched controls,
costs in example-gradient units.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .escape import run as escape_run
from .escape.protocol import BASELINE, KEY_FIELDS, NO_STALL, VARIANTS, available_variants
from .escape.records import clean
from .escape.stall_report import summary_html
from .escape.summary import SummaryRow, sig, summarize, verdict
from .problems import digits as digits_problem
from .sweep import continue_shipped, dumps, job_key, read_records, run_sweep

#: the method comparison (the escape study's protocol, :mod:`analyses.escape`): methods run on the
#: problem, each seed a different initialisation of the network (``make_model(seed)``; the start is
#: the seeded initialisation itself, eps = 0). ncd and sfn are left out: a Lanczos solve or Krylov
#: model every step costs ~100 HVPs a step on this 4 744-parameter net.
ESCAPE_METHODS = {"quick": ("gd", "synaprune-rms"),
                  "default": ("gd", "adam", "pgd", "synaprune-rms", "synaprune-devarg", "synaprune-noise",
                              "synaprune-penalty", "synaprune-hebbian")}
#: the step-length-matched controls (GD whose first escape step has rms's / devarg's length, then GD)
#: (the quick preset is a smoke run of the plumbing: GD and rms only)
OPTIONAL_METHODS = {"quick": (), "default": ("gd-matched", "gd-matched-devarg")}
#: seeds per method. Default 16: a Wilson 95 % half-width ≤ 0.22 at any rate (0.097 at 16/16 or 0/16).
#: Measured single-threaded, CPU seconds of one 1 500-step run (seed 3, one stall): gd 10, adam 6.7,
#: pgd 7.4, rms 9.6, devarg 35 (three reverted 50-step phases of per-example gradients), noise 5.4,
#: penalty 6.6, hebbian 20, gd-matched 6.8 — ~115 CPU-s a seed with one stall; a run with two
#: stalls (seed 0 at 2 000 steps: devarg 212 s wall, nine reverted phases) costs up to ~2× that.
#: The 160 default runs thus take ~15–30 min on 2 quiet cores from scratch (wall time on a shared
#: machine was 2–5× the CPU time), so the study ships their records (``digits/runs.jsonl.gz``) and
#: continues them.
ESCAPE_SEEDS = {"quick": 2, "default": 16}
#: steps per comparison run: GD's plateau is detected at steps 360–470 (seeds 0, 2–5, 7) and the
#: escape horizon is 1 000 steps, so a stall before step ESCAPE_STEPS − 1 000 has a known outcome;
#: a later one whose run ends first is censored (never counted as a failure). The unit is the run's
#: first stall of a (kind, cause) cell, so later stalls add cost, not data.
ESCAPE_STEPS = {"quick": 1200, "default": 1500}
#: trainer options of every comparison run: no per-stall classification (the nearest critical
#: point of one stall costs a Newton-MR solve on this net; the plateau analysis classifies it once)
RUN_OPTIONS: dict[str, Any] = {"classify": False}
#: the comparison's record file per preset, under ``digits/`` (the default one is shipped gzipped)
RECORDS_NAME = {"quick": "runs_quick.jsonl", "default": "runs.jsonl"}


def available_methods(preset: str) -> tuple[str, ...]:
    """The comparison's methods.

    Args:
        preset: ``"quick"`` or ``"default"``.

    Returns:
        :data:`ESCAPE_METHODS` plus the :data:`OPTIONAL_METHODS` this trainer provides (labels of
        :data:`analyses.escape.protocol.VARIANTS`).
    """
    avail = set(available_variants())
    return tuple(m for m in ESCAPE_METHODS[preset] + OPTIONAL_METHODS[preset] if m in avail)


def comparison_jobs(methods: Sequence[str], seeds: Sequence[int], steps: int,
                    problem_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The sweep's jobs (:func:`analyses.escape.run.run_one`), method-major, then seed. Each carries
    the problem options (with the stall detector
    :data:`analyses.problems.digits.DIGITS_STALL` in force now) and :data:`RUN_OPTIONS`, so that a
    record says how it was made and worker processes need no state.

    Args:
        methods: variant labels.
        seeds: network initialisations.
        steps: steps per run.
        problem_options: options of the ``digits_autoencoder`` factory (tests use a smaller net).

    Returns:
        One job dict per (method, seed).
    """
    popts = {**(problem_options or {}), "stall": dict(digits_problem.DIGITS_STALL)}
    return [{"problem": "digits_autoencoder", "method": m, "seed": int(s), "max_steps": int(steps),
             "options": dict(RUN_OPTIONS), "problem_options": popts} for m in methods for s in seeds]


def _same_config(record: dict[str, Any], job: dict[str, Any]) -> bool:
    """Was ``record`` made by ``job``'s configuration (steps, the variant's options with the job's,
    problem options)? A record of a failed run never is (it is rerun)."""
    opts = {**VARIANTS.get(job["method"], ("", {}))[1], **(job.get("options") or {})}
    return (record.get("status") != "error" and record.get("max_steps") == job["max_steps"]
            and record.get("options") == clean(opts)
            and record.get("problem_options") == clean(job["problem_options"]))


def run_comparison(jobs: Sequence[dict[str, Any]], path: Path, *, workers: int | None = 1,
                   log: Any = None) -> list[dict[str, Any]]:
    """Run the comparison's jobs, continuing the records already there.

    The jobs go through :func:`analyses.sweep.run_sweep` into ``path`` (JSON lines, streamed,
    fsynced; byte-identical whatever ``workers``). When only ``path``.gz exists it is unpacked
    first (the shipped records); a stored run whose configuration (steps, trainer options, problem
    options with the stall detector) differs from its job's is dropped and rerun.

    Args:
        jobs: :func:`comparison_jobs`.
        path: the records file (``runs.jsonl``).
        workers: processes (1 = in this process).
        log: a callable receiving the progress messages (default: stderr).

    Returns:
        The records of ``jobs``, in job order.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    continue_shipped(path, say)
    by_key = {job_key(j, KEY_FIELDS): j for j in jobs}
    kept, dropped = [], 0
    for r in read_records(path):
        j = by_key.get(tuple(r.get(f) for f in KEY_FIELDS))
        if j is not None and not _same_config(r, j):
            dropped += 1
            continue
        kept.append(r)
    if dropped:
        say(f"digits: {dropped} stored run(s) in {path} were made with another configuration; rerunning them")
    path.write_text("".join(dumps(r) + "\n" for r in kept), encoding="utf-8")
    records = run_sweep(jobs, escape_run.run_one, path, key_fields=KEY_FIELDS, workers=workers, resume=True,
                        desc="digits", progress=False, log=lambda msg: None)
    wanted = set(by_key)
    return [r for r in records if tuple(r.get(f) for f in KEY_FIELDS) in wanted]


def main_cell(rows: Sequence[Any]) -> tuple[str, str] | None:
    """The (kind, cause) cell of the plateau: the cell holding the most first stalls of GD runs
    (ties: the larger cell overall, then by name).

    Args:
        rows: the comparison's summary rows (:class:`analyses.escape.summary.SummaryRow`).

    Returns:
        ``(kind, cause)``, or None when GD never stalled.
    """
    cells: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:
        if r.kind == NO_STALL:
            continue
        g, n = cells.get((r.kind, r.cause), (0, 0))
        cells[(r.kind, r.cause)] = (g + (r.n_stalls if r.method == BASELINE else 0), n + r.n_stalls)
    gd_cells = {c: v for c, v in cells.items() if v[0] > 0}
    if not gd_cells:
        return None
    return max(gd_cells, key=lambda c: (gd_cells[c], c))


def comparison_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The escape study's statistics on the digits runs (:func:`analyses.escape.summarize`: one
    stall per (run, kind, cause), censored stalls excluded from rates, Wilson 95 %, Kaplan–Meier,
    log-rank vs GD with Holm over the methods of a cell, Newcombe differences vs GD and the
    step-matched control, costs in example-gradient units). ``rows`` every cell's rows (dicts),
    ``cell`` the plateau's (kind, cause), ``main`` its rows with the verdict against GD, the cost
    relative to GD's and the rate's half-width, ``quiet`` the methods whose runs never stalled,
    ``failed`` the runs that raised.

    Args:
        records: the comparison's records.

    Returns:
        The summary dict (JSON-able).
    """
    rows = summarize(records)
    cell = main_cell(rows)
    main = [r for r in rows if cell is not None and (r.kind, r.cause) == cell]
    gd = next((r for r in main if r.method == BASELINE), None)
    out_main = []
    for r in main:
        d = r.to_dict()
        d["half_width"] = None if r.ci_low is None else (r.ci_high - r.ci_low) / 2
        d["cost_vs_gd"] = (None if gd is None or not gd.median_cost_example_grads or r.median_cost_example_grads is None
                           else r.median_cost_example_grads / gd.median_cost_example_grads)
        d["verdict"] = "reference" if r is gd else verdict(r, gd)
        out_main.append(d)
    return {"rows": [r.to_dict() for r in rows], "cell": list(cell) if cell else None, "main": out_main,
            "quiet": [{"method": r.method, "runs": r.n_runs, "median_run_cost": r.median_run_cost}
                      for r in rows if r.kind == NO_STALL],
            "failed": [f"{r['method']}/{r['seed']}: {r.get('error')}" for r in records if r.get("status") == "error"],
            "stopped": [f"{r['method']}/{r['seed']}: {r.get('train_status')} at step {r.get('n_steps')}"
                        for r in records if r.get("status") != "error"
                        and r.get("train_status") not in (None, "completed")],
            "n_runs": len(records), "seeds": sorted({r["seed"] for r in records}),
            "max_half_width": max((d["half_width"] for d in out_main if d["half_width"] is not None), default=None)}


def methods_text(cmp: dict[str, Any]) -> str:
    """What the comparison says, per method of the plateau's cell: escapes / known outcomes with
    the Wilson interval, the Kaplan–Meier median, the log-rank test against GD (Holm), the cost
    relative to GD — and the verdict; no ranking on point estimates.

    Args:
        cmp: :func:`comparison_summary`.

    Returns:
        One paragraph of plain text.
    """
    if cmp["cell"] is None:
        return "GD never stalled in these runs: there is no plateau to compare escapes at."
    kind, cause = cmp["cell"]
    seeds = cmp["seeds"]
    parts = []
    for d in cmp["main"]:
        rate = ("outcome unknown (all censored)" if d["escape_rate"] is None else
                f"{d['n_escaped']}/{d['n_known']} [{sig(d['ci_low'], 2)}, {sig(d['ci_high'], 2)}]")
        med = "KM median –" if d["median_escape_steps"] is None else f"KM median {sig(d['median_escape_steps'])} steps"
        by = f", {d['n_by_rule']} by the rule's own phase" if d["method"].startswith("synaprune") else ""
        test = ("" if d["logrank_p_vs_gd"] is None else
                f", log-rank vs GD p {sig(d['logrank_p_vs_gd'], 2)} (Holm {sig(d['holm_p_vs_gd'], 2)})")
        cost = "" if d["cost_vs_gd"] is None or d["method"] == "gd" else f", cost ×{sig(d['cost_vs_gd'], 2)} GD's"
        cens = f", {d['n_censored']} censored" if d["n_censored"] else ""
        parts.append(f"{d['method']}: {rate}{by}{cens}, {med}{test}{cost} — {d['verdict']}")
    quiet = "".join(f"; {q['method']}: {q['runs']} of {len(seeds)} runs without any stall" for q in cmp["quiet"])
    hw = cmp["max_half_width"]
    return (f"{len(seeds)} seeds (network initialisations {seeds[0]}–{seeds[-1]}) per method; plateau cell "
            f"{kind.replace('_', ' ')} · {cause}, one stall per run, escaped / known outcome [Wilson 95 %]: "
            + "; ".join(parts) + quiet + "."
            + (f" Widest rate half-width {sig(hw, 2)}." if hw is not None else "")
            + (f" Failed runs: {'; '.join(cmp['failed'])}." if cmp["failed"] else "")
            + (f" Runs stopped early: {'; '.join(cmp['stopped'])}." if cmp.get("stopped") else ""))


def methods_table(cmp: dict[str, Any]) -> str:
    """The comparison's tables.

    Args:
        cmp: :func:`comparison_summary`.

    Returns:
        HTML: every cell's rows (:data:`analyses.escape.stall_report.TABLE_COLUMNS`: Wilson, KM,
        Newcombe, log-rank with Holm, costs), then the runs that never stalled.
    """
    rows = [SummaryRow(**r) for r in cmp["rows"]]
    return summary_html(rows)
