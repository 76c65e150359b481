"""``landscape plateaus [--quick]``: the plateau study (issue 24), run then report.

Writes into ``--out`` (default ``figures/plateaus/``): ``runs.jsonl`` (one record per job,
streamed; a rerun continues it: ``--fresh`` starts over), ``runs.timings.jsonl`` (CPU and wall
seconds, host-dependent), ``plateaus.json`` (the summary: no timings, the same on a rerun),
``plateaus.md`` (the summary as text; no timings: tracked), ``traces.png`` and ``effects.png``
(:mod:`.figures`) and ``report.html`` (the summary plus the measured CPU costs; untracked); after a
full default run ``runs.jsonl.gz``, the copy of the records ``figures/`` ships and the next run
continues. ``study_section`` is the main report's section.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from landscape.results import read_jsonl

from ..cli_common import Heartbeat, add_quiet, positive_int
from ..sweep import SweepFailed, SweepInterrupted, timings_path, write_gzip_copy
from .figures import effects_figure, traces_figure
from .protocol import KEY_FIELDS, cases, plan
from .report import cost_table, markdown, summarize, to_html
from .run import expand_blocks, run_all


#: the figures' captions (:mod:`.figures`)
FIGURES = ("The monitored runs' exact loss, theory's levels and the stalls found",
           "Paired Gehan scores against GD and against the rules' step-length controls")
#: the cases of the quick study's plateau section (``landscape plateaus --quick`` runs them all)
STUDY_QUICK_CASES = ("committee_k2", "deep_linear")


def run_part(out: Path, *, quick: bool, seed: int = 0, workers: int | None = None, resume: bool = True,
             only: tuple[str, ...] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every job of :func:`.protocol.plan` (continuing ``out/runs.jsonl``) and write the report.

    Args:
        out: the output folder. quick: the ``--quick`` design. seed: the first instance's seed.
        workers: processes (None: the cores). resume: continue the records already there.
        only: case names to run (None: all). progress: progress lines on stderr.

    Returns:
        ``{"summary", "costs", "markdown", "figures" ((caption, path) pairs), "paths"}``.
    """
    out = Path(out)
    cs = cases(quick)
    jobs = plan(quick, seed, only=only)
    records = run_all(jobs, out, workers=workers, resume=resume, progress=progress)
    keys = {tuple(j[f] for f in KEY_FIELDS) for j in jobs}
    records = expand_blocks([r for r in records if tuple(r.get(f) for f in KEY_FIELDS) in keys])
    timings = [t for t in read_jsonl(timings_path(out / "runs.jsonl")) if tuple(t.get(f) for f in KEY_FIELDS) in keys]
    summary = summarize(cs, records, seed=seed)
    costs = cost_table(records, timings, seed=seed)
    figs = [(caption, p) for caption, p in ((FIGURES[0], traces_figure(summary, records, out / "traces.png")),
                                            (FIGURES[1], effects_figure(summary, out / "effects.png"))) if p]
    local = [(caption, p.name) for caption, p in figs]
    md = markdown(summary, None, quick=quick, figures=local)
    (out / "plateaus.json").write_text(json.dumps(summary, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                       encoding="utf-8")
    (out / "plateaus.md").write_text(md + "\n", encoding="utf-8")
    (out / "report.html").write_text(to_html(markdown(summary, costs, quick=quick, figures=local)), encoding="utf-8")
    if not quick and only is None:
        write_gzip_copy(out / "runs.jsonl")   # the copy figures/ ships
    return {"summary": summary, "costs": costs, "markdown": md, "figures": figs,
            "paths": [out / "plateaus.json", out / "plateaus.md", out / "report.html", *(p for _, p in figs)]}


def study_section(out_dir: Path, *, quick: bool, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """The main report's plateau section: :func:`run_part` into ``out_dir/plateaus/`` (the default
    run continues the records ``figures/plateaus/runs.jsonl.gz`` ships; ``quick``: the quick design
    on :data:`STUDY_QUICK_CASES` only, so that the quick study stays a smoke test).

    Args:
        out_dir: the main job's output folder. quick: the quick design. seed: the first seed.
        workers: processes for the runs still to do (None: the cores).

    Returns:
        ``{"title", "lead", "html", "summary", "figures"}`` (figure paths relative to ``out_dir``).
    """
    part = run_part(Path(out_dir) / "plateaus", quick=quick, seed=seed, workers=workers,
                    only=STUDY_QUICK_CASES if quick else None)
    summary = part["summary"]
    lead = " ".join(f"{c['title']}: {c['verdict']}" for c in summary.values() if c["methods"])
    rel = [(caption, p.relative_to(Path(out_dir)).as_posix()) for caption, p in part["figures"]]
    page = to_html(markdown(summary, None, quick=quick, figures=rel))
    body = page.split("<body>", 1)[1].rsplit("</body>", 1)[0]
    return {"title": "Plateaus the literature knows", "lead": lead, "html": body, "summary": summary,
            "figures": [p for _, p in rel]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape plateaus``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    p.add_argument("--out", default="figures/plateaus", help="output folder; a rerun continues the records there")
    p.add_argument("--quick", action="store_true",
                   help="3 instances per case, fewer methods, a smaller committee machine (~2–3 min on 2 cores: 259 CPU-s)")
    p.add_argument("--seed", type=int, default=0, help="the first instance's seed (instances: seed, seed + 1, …)")
    p.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: the cores)")
    p.add_argument("--fresh", action="store_true", help="start the records over instead of continuing them")
    p.add_argument("--cases", default=None, help="comma-separated case names to run (default: all)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape plateaus``: the study into ``--out``; print where the report is.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        0; 1 when the workers kept dying (one line: how many runs are saved); 2 for an unknown
        case name; 130 when interrupted (rerunning continues).
    """
    only = None
    if args.cases:
        only = tuple(c.strip() for c in args.cases.split(",") if c.strip())
        unknown = sorted(set(only) - set(cases(args.quick)))
        if unknown:
            print(f"landscape plateaus: error: unknown case(s) {', '.join(unknown)}; choose from "
                  f"{', '.join(cases(args.quick))}", file=sys.stderr)
            return 2
    hb = Heartbeat("plateaus", quiet=args.quiet)
    try:
        with hb.step("the plateau cases" + (" (quick)" if args.quick else "")):
            part = run_part(Path(args.out), quick=args.quick, seed=args.seed, workers=args.workers,
                            resume=not args.fresh, only=only, progress=not args.quiet)
    except SweepFailed as exc:
        print(f"landscape plateaus: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    except SweepInterrupted as exc:
        print(f"\nlandscape plateaus: interrupted; {exc.n_saved} of {exc.n_total} runs are saved in {exc.path}; "
              "run the same command again to continue", file=sys.stderr, flush=True)
        return 130
    finally:
        hb.close()
    for c in part["summary"].values():
        print(f"{c['title']}: {c['verdict']}")
    print("wrote " + ", ".join(str(p) for p in part["paths"]))
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["plateaus", *sys.argv[1:]]))
