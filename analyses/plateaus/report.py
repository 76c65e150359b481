"""The plateau study's summary and report, drawn from the records alone.

:func:`summarize` turns the records (``runs.jsonl``) into one entry per case: theory's levels, the
monitored runs' stalls against them (the loss at the stall, the exact loss there, and the nearest
critical point's loss, each with its relative gap to the closest theory level), the classifier's
verdicts with their tolerances, κ and the per-example gradient scale, every method's steps to the
target, the paired comparisons with GD (:func:`.paired.paired_summary`, censoring as censoring)
and rms against its step-length control, and one sentence. Measured CPU seconds (host- and
load-dependent) come from the sweep's timings side file and are reported apart
(:func:`cost_table`); the JSON summary holds none, so it is the same on a rerun.
"""
from __future__ import annotations

import html
import math
import statistics
from typing import Any

from .methods import RULES
from .paired import paired_summary, verdict
from .protocol import ALL_METHODS, Case

#: the SynaPrune rules whose sentence the report writes, each against GD and its ``gd-len-`` control
RULE_NAMES = tuple(r for r in RULES if not r.startswith("gd-len-"))


def _closest(levels: dict[str, float], v: float | None) -> tuple[str | None, float | None, float | None]:
    """(label, value, relative gap) of the theory level closest to ``v`` (relative to the level;
    absolute where the level is 0)."""
    if v is None or not levels:
        return None, None, None
    lab, lev = min(levels.items(), key=lambda kv: abs(kv[1] - v) / max(abs(kv[1]), 1e-12))
    return lab, lev, (v - lev) / lev if lev else v - lev


def _exact_at(trace: list[list[float]], step: int) -> float | None:
    """The exact loss at the last evaluation at or before ``step`` (the trace's granularity)."""
    best = None
    for s, v in trace:
        if s <= step:
            best = v
    return best


def monitor_rows(case: Case, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stall of the case's monitored runs.

    Args:
        case: the case (its theory levels). records: the case's ``monitor`` records.

    Returns:
        Rows: seed, step, the stall's loss (monitor's data), the exact loss there, the nearest
        critical point's loss, kind, index, zero eigenvalues and reason, the closest theory level
        with the relative gaps, the stall point's kind, cause, κ, per-example gradient scale, its
        ratio to the default initialisation's, λ_min/λ_max, and the tolerances used.
    """
    rows = []
    for r in sorted(records, key=lambda r: r["seed"]):
        for s in r.get("stalls", []):
            nc = s.get("nearest") or {}
            exact = _exact_at(r.get("trace", []), int(s["step"]))
            lab, lev, gap = _closest(case.levels, exact)
            _, _, gap_nc = _closest({lab: lev} if lab else {}, nc.get("loss"))
            rows.append({"seed": r["seed"], "step": s["step"], "loss": s["loss"], "exact_loss": exact,
                         "level": lab, "level_value": lev, "rel_gap_exact": gap,
                         "nearest_loss": nc.get("loss"), "rel_gap_nearest": gap_nc, "nearest_kind": nc.get("kind"),
                         "nearest_index": nc.get("index"), "nearest_n_zero": nc.get("n_zero"),
                         "nearest_distance": nc.get("distance"), "nearest_reason": nc.get("reason"),
                         "kind": s.get("kind"), "cause": s.get("cause"), "kappa": s.get("kappa"),
                         "example_grad_scale": s.get("example_grad_scale"),
                         "grad_scale_ratio": s.get("grad_scale_ratio"), "lambda_min": s.get("lambda_min"),
                         "lambda_max": s.get("lambda_max"), "grad_tol": s.get("grad_tol"), "eig_tol": s.get("eig_tol"),
                         "nearest_tolerances": s.get("nearest_tolerances"), "mode": r.get("mode")})
    return rows


def method_table(records: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per method: runs, reached, diverged, median steps over the runs that reached the target,
    median first-step length.

    Args:
        records: the case's ``paired`` records. methods: in report order.

    Returns:
        ``{method: {"n", "reached", "diverged", "median_steps", "median_first_step"}}``.
    """
    out = {}
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        if not rs:
            continue
        hit = [r["steps"] for r in rs if r["reached"]]
        fl = [r["first_step_length"] for r in rs if r.get("first_step_length") is not None]
        out[m] = {"n": len(rs), "reached": len(hit), "diverged": sum(bool(r["diverged"]) for r in rs),
                  "median_steps": statistics.median(hit) if hit else None,
                  "median_first_step": statistics.median(fl) if fl else None}
    return out


def _pairs(records: list[dict[str, Any]], a: str, b: str, field: str = "steps", times: dict | None = None):
    by = {(r["method"], r["seed"]): r for r in records}
    seeds = sorted({r["seed"] for r in records if (a, r["seed"]) in by and (b, r["seed"]) in by})

    def t(m: str, s: int) -> float:
        r = by[(m, s)]
        return float(r[field]) if times is None else float(times.get((r["case"], m, s), math.nan))

    return ([t(a, s) for s in seeds], [bool(by[(a, s)]["reached"]) for s in seeds],
            [t(b, s) for s in seeds], [bool(by[(b, s)]["reached"]) for s in seeds])


def summarize(cases: dict[str, Case], records: list[dict[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """The study's summary (module docstring), one entry per case with records.

    Args:
        cases: from :func:`.protocol.cases`. records: every record of the sweep.
        seed: the bootstrap's seed.

    Returns:
        ``{case: {"title", "note", "target", "horizon", "levels", "stalls", "methods", "vs_gd",
        "vs_control" ({rule: the rule against its step-length control}), "verdict", "accuracy"}}``.
    """
    out: dict[str, Any] = {}
    for name, case in cases.items():
        rs = [r for r in records if r["case"] == name]
        if not rs:
            continue
        paired = [r for r in rs if r["kind"] == "paired"]
        methods = tuple(m for m in ALL_METHODS if any(r["method"] == m for r in paired))
        vs_gd = {m: paired_summary(*_pairs(paired, m, "gd"), seed=seed) for m in methods if m != "gd"}
        controls = {rule: paired_summary(*_pairs(paired, rule, f"gd-len-{rule}"), seed=seed)
                    for rule in RULE_NAMES if rule in methods and f"gd-len-{rule}" in methods}
        ruled = [rule for rule in RULE_NAMES if rule in vs_gd]
        if ruled:
            sentence = " ".join(verdict(vs_gd[rule], controls.get(rule), name=rule) for rule in ruled)
        elif paired:
            sentence = "The rules were not run on this case: " + (case.note.split(".")[0] + ".")
        else:
            sentence = "Monitored only (no paired comparison)."
        acc = [{"seed": r["seed"], "test_acc": r["test_acc"], "published": r["published"]}
               for r in rs if r["kind"] == "accuracy"]
        out[name] = {"title": case.title, "note": case.note, "target": case.target, "horizon": case.horizon,
                     "levels": case.levels, "stalls": monitor_rows(case, [r for r in rs if r["kind"] == "monitor"]),
                     "methods": method_table(paired, methods), "vs_gd": vs_gd, "vs_control": controls,
                     "verdict": sentence, "accuracy": acc}
    return out


def cost_table(records: list[dict[str, Any]], timings: list[dict[str, Any]], *, seed: int = 0
               ) -> dict[str, dict[str, Any]]:
    """Measured CPU seconds per case and method (host- and load-dependent; not in the JSON summary):
    the median over runs, the sum, and the paired CPU cost to the target against GD (a censored
    run's cost is its cost to the horizon; Gehan score and median ratio as for steps).

    Args:
        records: every record. timings: the sweep's timings side file (key fields + ``cpu_s``).
        seed: the bootstrap's seed.

    Returns:
        ``{case: {"total_cpu_s", "by_kind": {kind: cpu_s}, "methods": {m: {"median_cpu_s", "vs_gd"}}}}``.
    """
    times = {(t["case"], t["method"], t["seed"]): t.get("cpu_s") for t in timings if t.get("kind") == "paired"}
    out: dict[str, dict[str, Any]] = {}
    for t in timings:
        c = out.setdefault(t["case"], {"total_cpu_s": 0.0, "by_kind": {}, "methods": {}})
        c["total_cpu_s"] += float(t.get("cpu_s") or 0.0)
        c["by_kind"][t["kind"]] = c["by_kind"].get(t["kind"], 0.0) + float(t.get("cpu_s") or 0.0)
    for name, c in out.items():
        # seeds run together (the committee's blocks) share their CPU seconds: no per-run cost
        paired = [r for r in records if r["case"] == name and r["kind"] == "paired" and not r.get("block")]
        for m in sorted({r["method"] for r in paired}):
            ts = [times.get((name, m, r["seed"])) for r in paired if r["method"] == m]
            ts = [x for x in ts if x is not None]
            row: dict[str, Any] = {"median_cpu_s": statistics.median(ts) if ts else None}
            if m != "gd" and any(r["method"] == "gd" for r in paired):
                row["vs_gd"] = paired_summary(*_pairs(paired, m, "gd", times=times), seed=seed)
            c["methods"][m] = row
    return out


# ------------------------------------------------------------------------------------------ text
def _f(v: Any, d: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{d}g}"
    return str(v)


def _ci(s: dict[str, Any] | None, key: str, ci: str, fmt: str = "+.2f") -> str:
    if not s or s.get(key) is None:
        return "—"
    lo, hi = s.get(ci) or [None, None]
    v = format(s[key], fmt)
    return v + (f" [{format(lo, fmt)}, {format(hi, fmt)}]" if lo is not None and hi is not None else "")


def markdown(summary: dict[str, Any], costs: dict[str, Any] | None = None, *, quick: bool = False,
             figures: list[tuple[str, str]] = ()) -> str:
    """The report as Markdown (the figures, then one section per case).

    Args:
        summary: :func:`summarize`'s result. costs: :func:`cost_table`'s (None: no cost lines).
        quick: say that this is the ``--quick`` design.
        figures: ``(caption, path)`` pairs shown first, paths relative to where the text is read.

    Returns:
        The text.
    """
    out = ["# Plateaus the literature knows" + (" (--quick)" if quick else ""), ""]
    for caption, src in figures:
        out += [f"![{caption}]({src})", ""]
    for name, c in summary.items():
        out += [f"## {c['title']}", "", c["note"], "",
                f"Target {_f(c['target'], 6)} (loss units), horizon {c['horizon']} steps. Theory levels: "
                + ", ".join(f"{k} = {_f(v, 7)}" for k, v in c["levels"].items()) + ".", ""]
        if c["stalls"]:
            out += ["Stalls found by `StallMonitor` (GD/SGD runs):", "",
                    "| seed | step | exact loss | theory level | gap | nearest crit. loss | gap | nearest kind (index, zero eigs) | kind at stall | cause | κ | per-ex. grad scale (× init) | nearest: grad_tol, curvature band |",
                    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in c["stalls"]:
                out.append(f"| {r['seed']} | {r['step']} | {_f(r['exact_loss'], 7)} | {r['level']} | "
                           f"{_f(r['rel_gap_exact'], 2)} | {_f(r['nearest_loss'], 9)} | {_f(r['rel_gap_nearest'], 2)} | "
                           f"{_f(r['nearest_kind'])} ({_f(r['nearest_index'])}, {_f(r['nearest_n_zero'])}) | "
                           f"{_f(r['kind'])} | {_f(r['cause'])} | {_f(r['kappa'], 2)} | "
                           f"{_f(r['example_grad_scale'], 3)} ({_f(r['grad_scale_ratio'], 2)}) | "
                           f"{_f((r['nearest_tolerances'] or {}).get('grad_tol'), 2)}, "
                           f"{_f((r['nearest_tolerances'] or {}).get('curvature_band'), 2)} |")
            out.append("")
        elif name.startswith("committee") or c["methods"]:
            out += ["The monitor found no stall in the monitored runs.", ""]
        if c["methods"]:
            out += ["| method | reached / runs | diverged | median steps (reached) | first step ‖Δθ‖ | "
                    "Gehan vs GD [95% CI] | steps ratio vs GD [95% CI] | both / only method / only GD / neither |",
                    "|---|---|---|---|---|---|---|---|"]
            for m, row in c["methods"].items():
                s = c["vs_gd"].get(m)
                groups = f"{s['both']} / {s['only_method']} / {s['only_baseline']} / {s['neither']}" if s else "—"
                out.append(f"| {m} | {row['reached']} / {row['n']} | {row['diverged']} | {_f(row['median_steps'])} | "
                           f"{_f(row['median_first_step'], 3)} | {_ci(s, 'gehan', 'gehan_ci')} | "
                           f"{_ci(s, 'ratio_median', 'ratio_ci', '.3g')} | {groups} |")
            out.append("")
            for rule, ctl in c["vs_control"].items():
                out += [f"{rule} against GD at {rule}'s step length (gd-len-{rule}): Gehan "
                        f"{_ci(ctl, 'gehan', 'gehan_ci')}.", ""]
        if costs and name in costs:
            k = costs[name]
            out += ["Measured CPU (under load; not reproducible): "
                    + ", ".join(f"{m} median {_f(v['median_cpu_s'], 3)} s"
                                + (f" (Gehan vs GD {_ci(v.get('vs_gd'), 'gehan', 'gehan_ci')})" if v.get("vs_gd") else "")
                                for m, v in k["methods"].items())
                    + f"; all jobs {_f(k['total_cpu_s'], 3)} s.", ""]
        for a in c["accuracy"]:
            out.append(f"Published recipe (Adam 1e-2, batch 100, 6 000 steps), seed {a['seed']}: test accuracy "
                       f"{_f(a['test_acc'], 3)} (published {a['published']}).")
        if c["accuracy"]:
            out.append("")
        out += [f"**Answer.** {c['verdict']}", ""]
    return "\n".join(out)


def to_html(md: str) -> str:
    """A minimal offline HTML page of :func:`markdown`'s text (headings, tables, images, paragraphs).

    Args:
        md: the Markdown text.

    Returns:
        The HTML document.

    Example:
        >>> "<table>" in to_html("# T\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n")
        True
    """
    body, table = [], False
    for line in md.splitlines():
        esc = html.escape(line)
        if line.startswith("|"):
            cells = [html.escape(x.strip()) for x in line.strip("|").split("|")]
            if set(line.replace("|", "").strip()) <= {"-"}:
                continue
            if not table:
                body.append("<table>")
                table = True
                body.append("<tr>" + "".join(f"<th>{x}</th>" for x in cells) + "</tr>")
                continue
            body.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
            continue
        if table:
            body.append("</table>")
            table = False
        if line.startswith("## "):
            body.append(f"<h2>{esc[3:]}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{esc[2:]}</h1>")
        elif line.startswith("![") and line.endswith(")") and "](" in line:
            alt, src = line[2:-1].split("](", 1)
            body.append(f'<p><img src="{html.escape(src)}" alt="{html.escape(alt)}" style="max-width:100%"></p>')
        elif line.strip():
            body.append(f"<p>{esc.replace('**Answer.**', '<b>Answer.</b>')}</p>")
    if table:
        body.append("</table>")
    style = "body{font-family:sans-serif;max-width:70em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
