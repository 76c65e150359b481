"""The main job, ``landscape study``: does SynaPrune escape stalls, which kinds, at what cost?

One command on the embedded problems, writing into ``figures/`` (or ``--out``), each part in its
own subfolder, then ``report.html`` and ``study.json``.

The report is assembled from *sections*: modules exposing

    study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict

that return ``title``, ``lead`` (an HTML paragraph: the answer first), ``html`` (the evidence:
tables, ``<img>`` with paths relative to ``out_dir``), ``summary`` (JSON-able numbers) and
``figures`` (relative paths; the first one is the figure that shows the answer). :data:`SECTIONS`
lists them in report order, each under its provider name (its id in ``study.json``, the report and
``--only``). The first section's lead and figure open the report. A new study part: a module with
``study_section``, one entry in :data:`SECTIONS`.

Reproducible: tracked outputs (``report.html``, ``study.json``, the PNGs and JSON summaries)
hold no timings or host information and are byte-identical on a rerun with the same seed;
timings and versions go to the untracked ``run_info.json``. Every interactive page of one study
links the single ``plotly-<version>.min.js`` in ``out`` (offline).
"""
from __future__ import annotations

import argparse
import ctypes
import html
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy
import torch

try:  # scikit-learn's dependency; only run_info.json reads it
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None
try:  # numpy's SIMD dispatch targets and the CPU features in use (a table numpy >= 2 keeps here)
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    _NPY_DISPATCH: tuple[list[str], dict[str, bool]] | None = (list(__cpu_dispatch__), dict(__cpu_features__))
except ImportError:  # pragma: no cover
    _NPY_DISPATCH = None

from landscape.render import PAGE_CSS, html_table, shared_assets
from landscape.results import to_jsonable, write_json

from .cli_common import ALT_NUMERICS, DETERMINISTIC_ENV, NUMERICS_VAR, Heartbeat, add_quiet, deterministic_env, positive_int

#: the study's parts in report order (the first one answers the study's question): provider name
#: -> the module whose ``study_section`` runs it. The provider names are the parts' ids — written
#: into study.json and report.html, and (their last component) the short names of ``--only`` — so
#: they stay as they were when each part was one module (``escape_report``, ``digits``) and the
#: shipped outputs stay byte-identical.
SECTIONS: dict[str, str] = {
    "analyses.escape_report": "analyses.escape.section",
    "analyses.digits": "analyses.digits_plateau",
    "analyses.plateaus": "analyses.plateaus.section",
    "analyses.critical_points": "analyses.critical_points",
    "analyses.theorems": "analyses.theorems.section",
    "analyses.spectrum_report": "analyses.spectrum_report",
    "analyses.surface_plots": "analyses.surface_plots",
}
SECTION_KEYS = ("title", "lead", "html", "summary", "figures")
#: Parts whose computation amplifies round-off by design, so that no rounding of their outputs can
#: make them machine-independent: the escape sweep (runs that leave saddles), the digits part
#: (full-batch GD across a saddle plateau; measured: one configuration change moves the stall's ‖g‖,
#: κ and eigenvalues by ~5e-7 relative, and the nearest critical point's distance with them) and the
#: plateau study (training runs across plateaus, the same amplification). Their
#: reruns are byte-identical under the pinned numerics (:data:`~analyses.cli_common.DETERMINISTIC_ENV`)
#: only, so ``LANDSCAPE_NUMERICS=alt`` (the tests' second configuration) leaves them pinned and
#: changes the numerics of the other parts, whose outputs must not move. The escape records and the
#: digits comparison's and the plateau study's runs are shipped and continued, so a rerun
#: recomputes only the digits plateau.
PINNED_ONLY = ("analyses.escape_report", "analyses.digits", "analyses.plateaus")
#: significant digits of the floats in study.json
JSON_DIGITS = 8


#: MKL's CNR branch codes (mkl_cbwr.h)
_CBWR_NAMES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
               9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}


def numerics_in_effect() -> dict[str, Any]:
    """What this process's numerical libraries actually run on (written to ``run_info.json``; the
    tests check that the pins of :data:`~analyses.cli_common.DETERMINISTIC_ENV` take effect).

    Returns:
        ``mkl_cbwr``: MKL's CNR branch (``"COMPATIBLE"``, ``"AUTO"``, ...; ``"OFF"`` when CNR is
        off; None when MKL's service symbol ``mkl_serv_cbwr_get`` is not in torch's library),
        ``aten_cpu_capability`` (e.g. ``"AVX2"``), ``numpy_simd`` (numpy's SIMD dispatch targets
        in use, e.g. ``["X86_V3"]``; None where numpy does not say), ``openblas_coretypes`` (one per loaded OpenBLAS,
        sorted, from threadpoolctl), ``torch_threads``, ``blas_threads`` (threadpoolctl's
        ``prefix:threads``) and ``env`` (the variables the re-exec sets, as set here).

    >>> numerics_in_effect()["aten_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "NO AVX")
    True
    """
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, which threadpoolctl then reports)

    branch = None
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
        get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
        code = get(1)  # MKL_CBWR_BRANCH
        branch = _CBWR_NAMES.get(code, str(code))
    except (OSError, AttributeError):
        pass
    info = threadpoolctl.threadpool_info() if threadpoolctl is not None else []
    simd = None if _NPY_DISPATCH is None else [t for t in _NPY_DISPATCH[0] if _NPY_DISPATCH[1].get(t)]
    return {"mkl_cbwr": branch, "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(), "numpy_simd": simd,
            "openblas_coretypes": sorted({str(i.get("architecture")) for i in info
                                          if i.get("internal_api") == "openblas"}),
            "torch_threads": torch.get_num_threads(),
            "blas_threads": sorted({f"{i.get('prefix')}:{i.get('num_threads')}" for i in info}),
            "env": {k: os.environ.get(k) for k in sorted({*DETERMINISTIC_ENV, *ALT_NUMERICS, NUMERICS_VAR})}}


# ---------------------------------------------------------------------------- assembling
def _provider(spec: str) -> Any:
    """The section function of a provider name (:data:`SECTIONS`) or of ``module[:function]``."""
    module, _, attr = SECTIONS.get(spec, spec).partition(":")
    return getattr(importlib.import_module(module), attr or "study_section")


def run_section(spec: str, out: Path, *, quick: bool, seed: int, workers: int | None = None) -> dict[str, Any]:
    """Run one part of the study in this process.

    Args:
        spec: a provider name of :data:`SECTIONS`, or ``module[:function]``.
        out: the study's output folder.
        quick: the reduced run.
        seed: the base seed.
        workers: worker processes, for parts that take them.

    Returns:
        The section (``title``, ``lead``, ``html``, ``summary``, ``figures``).

    Raises:
        ValueError: the section lacks one of the contract's keys.
    """
    fn = _provider(spec)
    kwargs: dict[str, Any] = {"quick": quick, "seed": seed}
    if workers is not None and "workers" in inspect.signature(fn).parameters:
        kwargs["workers"] = workers
    sec = fn(out, **kwargs)
    missing = [k for k in SECTION_KEYS if k not in sec]
    if missing:
        raise ValueError(f"{spec}.study_section returned no {', '.join(missing)}")
    return sec


def _anchor(i: int, title: str) -> str:
    return f"s{i}-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")[:40]


def write_report(sections: list[dict[str, Any]], out: Path, *, quick: bool, seed: int) -> Path:
    """``report.html``: the answer and its figure first, then one part per section, then where
    every number comes from. No timings (they are in the untracked ``run_info.json``).

    Args:
        sections: the sections in report order (a failed one holds ``error``), each with its
            ``provider``.
        out: the output folder.
        quick: the run was ``--quick``.
        seed: the base seed.

    Returns:
        The path of ``report.html``.
    """
    ok = [s for s in sections if "error" not in s]
    parts = []
    if ok:
        first = ok[0]
        parts.append(f"<h2>The answer</h2><div class=\"lead\">{first['lead']}</div>")
        if first["figures"]:
            parts.append(f'<p><img src="{html.escape(first["figures"][0])}" alt="the answer" width="1000"></p>')
        if len(ok) > 1:
            parts.append("<p>What else the study found:</p><ul>"
                         + "".join(f"<li><b>{html.escape(s['title'])}.</b> {s['lead']}</li>" for s in ok[1:]) + "</ul>")
    parts.append("<h2>Contents</h2><ol>" + "".join(
        f"<li><a href=\"#{_anchor(i, s['title'])}\">{html.escape(s['title'])}</a></li>" for i, s in enumerate(sections))
        + "</ol>")
    for i, s in enumerate(sections):
        parts.append(f"<h2 id=\"{_anchor(i, s['title'])}\">{html.escape(s['title'])}</h2>")
        if "error" in s:
            parts.append(f"<p class=\"lead\">This part failed: <code>{html.escape(s['error'])}</code>; "
                         "see run_info.json.</p>")
            continue
        parts.append(f"<div class=\"lead\">{s['lead']}</div>")
        parts.append(s["html"])
    rows = [{"part": s["title"], "provider": s["provider"], "figures": ", ".join(s.get("figures") or []) or "–"}
            for s in sections]
    parts.append("<h2>Where the numbers come from</h2><p>Every number above is in <code>study.json</code> (under "
                 "the part's provider) and in the part's own files named under each table; figures are listed "
                 "here. Timings, versions and the host are in the untracked <code>run_info.json</code>.</p>"
                 + html_table(rows, [("part", "part"), ("provider", "provider"), ("figures", "figures")],
                              css_class="data text"))
    parts.append(f"<p class=\"note\">{'Quick' if quick else 'Default'} run, seed {seed}: "
                 f"<code>landscape study{' --quick' if quick else ''}{f' --seed {seed}' if seed else ''}</code>.</p>")
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>landscape study</title>\n"
            f"<style>{PAGE_CSS}table.text td{{text-align:left}}</style></head><body>\n"
            "<h1>Does SynaPrune escape stalls? — landscape study</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _section_main() -> None:
    """Entry point of one section's process: ``SPEC OUT QUICK SEED WORKERS RESULT.json``."""
    spec, out, quick, seed, workers, result = sys.argv[1:7]
    try:
        with shared_assets(Path(out)):
            sec = run_section(spec, Path(out), quick=quick == "1", seed=int(seed),
                              workers=int(workers) or None)
        data = to_jsonable(sec)
    except KeyboardInterrupt:
        raise SystemExit(130)
    except Exception as e:  # reported by the parent, which carries on with the other parts
        data = {"title": spec, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
                "figures": [], "summary": {}}
    Path(result).write_text(json.dumps(data), encoding="utf-8")


def _run_isolated(spec: str, out: Path, *, quick: bool, seed: int, workers: int | None, quiet: bool) -> dict[str, Any]:
    """Run one section in a fresh Python process. Each part then starts from the same process
    state whatever ran before it (a worker pool's timing-dependent allocations in this process
    would otherwise shift array alignment and the last bits of later BLAS results)."""
    root = str(Path(__file__).resolve().parents[1])
    base = dict(os.environ)
    if spec in PINNED_ONLY:  # back to the pins, whatever the second configuration set
        base = {k: v for k, v in base.items() if k not in ALT_NUMERICS}
        base[NUMERICS_VAR] = "pinned"
    env = dict(base, MPLBACKEND="Agg", **deterministic_env(base),
               PYTHONPATH=os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with tempfile.TemporaryDirectory(prefix="study-section-") as td:
        res = Path(td) / "section.json"
        proc = subprocess.run([sys.executable, "-c", "from analyses.study import _section_main; _section_main()",
                               spec, str(out), "1" if quick else "0", str(seed), str(workers or 0), str(res)],
                              env=env, stderr=subprocess.DEVNULL if quiet else None)
        if proc.returncode == 130 or proc.returncode < 0:
            raise KeyboardInterrupt
        if proc.returncode != 0 or not res.exists():
            return {"title": spec, "error": f"the section's process exited with code {proc.returncode}",
                    "figures": [], "summary": {}}
        return json.loads(res.read_text(encoding="utf-8"))


def run_study(out: str | Path = "figures", *, quick: bool = False, seed: int = 0, workers: int | None = None,
              quiet: bool = False, sections: list[str] | None = None) -> dict[str, Any]:
    """Run the study: every section into ``out``, each in its own process; then ``report.html``,
    ``study.json`` (tracked) and ``run_info.json`` (timings, versions, errors; untracked).

    Args:
        out: the output folder (each part writes in its own subfolder).
        quick: the reduced run.
        seed: the base seed of every part.
        workers: worker processes of the parts that take them (default: the cores).
        quiet: no progress lines on stderr.
        sections: the parts to run (provider names); default all of :data:`SECTIONS`.

    Returns:
        The study.json content, plus ``_report_path`` and ``_timings_s``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hb = Heartbeat("study", quiet=quiet)
    done: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    try:
        for spec in sections or SECTIONS:
            with hb.step(_short(spec)) as step:
                sec = _run_isolated(spec, out, quick=quick, seed=seed, workers=workers, quiet=quiet)
            if "error" in sec:
                errors[spec] = sec.pop("traceback", sec["error"])
                hb.say(f"{spec} FAILED: {sec['error']}")
            sec["provider"] = spec
            done.append(sec)
            timings[spec] = round(step.seconds, 2)
    finally:
        hb.close()
    report = write_report(done, out, quick=quick, seed=seed)
    study = {"quick": quick, "seed": seed, "report": "report.html",
             # a list, in report order (key order is sorted in the file)
             "sections": [{k: s.get(k) for k in ("provider", "title", "summary", "figures", "error") if k in s}
                          for s in done]}
    write_json(out / "study.json", study, digits=JSON_DIGITS)
    write_json(out / "run_info.json", {"timings_s": timings, "errors": errors, "torch": torch.__version__,
                                       "numpy": numpy.__version__, "python": platform.python_version(),
                                       "threads": torch.get_num_threads(), "host": platform.node(),
                                       "platform": platform.platform(), "numerics": numerics_in_effect()})
    study["_report_path"] = str(report)
    study["_timings_s"] = timings
    return study


def _short(spec: str) -> str:
    return spec.split(":")[-1] if ":" in spec else spec.split(".")[-1]


def _section_list(text: str) -> list[str]:
    names = {_short(x): x for x in SECTIONS}
    out = []
    for part in filter(None, (t.strip() for t in text.split(","))):
        if part not in names:
            raise argparse.ArgumentTypeError(f"unknown part {part!r} (parts: {', '.join(names)})")
        out.append(names[part])
    if not out:
        raise argparse.ArgumentTypeError("give at least one part")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``landscape study``'s arguments.

    Args:
        p: the subcommand's parser.
    """
    p.add_argument("--out", default="figures", help="output directory; each part writes in its own subfolder")
    p.add_argument("--quick", action="store_true", help="a reduced run (~2.5 min on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="base seed of every part")
    p.add_argument("--only", type=_section_list, default=None, metavar="PART[,PART]",
                   help="run only these parts (short names: " + ", ".join(_short(x) for x in SECTIONS) + "); the "
                        "report then holds only them")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="escape-benchmark worker processes (default: the number of cores)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape study``.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code: 0, or 1 when a part failed (the others still run).
    """
    t0 = time.perf_counter()
    study = run_study(args.out, quick=args.quick, seed=args.seed, workers=args.workers, quiet=args.quiet,
                      sections=args.only)
    failed = [s for s in study["sections"] if "error" in s]
    for s in study["sections"]:
        print(f"{'FAILED ' if 'error' in s else ''}{s['title']}" + (f": {s['error']}" if "error" in s else ""))
    print(f"report: {study['_report_path']}  ({time.perf_counter() - t0:.0f} s; timings in "
          f"{Path(args.out) / 'run_info.json'})")
    return 1 if failed else 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["study", *sys.argv[1:]]))
