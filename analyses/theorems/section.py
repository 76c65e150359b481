"""The theorems' part of ``landscape study``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from landscape.render import fmt_num, html_table

from .run import run_theorems


def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict[str, Any]:
    """``landscape study``'s theorem part, under ``out_dir/theorems/`` (the section contract of
    :mod:`analyses.study`).

    Args:
        out_dir: the main job's output folder.
        quick: the reduced run.
        seed: the base seed.

    Returns:
        The report's section (``title``, ``lead``, ``html``, ``summary``, ``figures``; paths
        relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    rep = run_theorems(quick=quick, seed=seed, out=out_dir / "theorems", progress=False)
    v = rep.verdicts
    n_ok = sum(bool(d["pass"]) for d in v.values())
    s2 = rep.statement2
    tol = max(r["gap_tol"] for r in s2)
    lead = (f"<p>Kawaguchi's four statements on deep linear networks (H = 1, 2, 3; {len(rep.configs)} configurations"
            f"{', quick run' if quick else ''}): {n_ok} of 4 confirmed. "
            f"{sum(r['n_at_global'] for r in s2)}/{sum(r['n_init'] for r in s2)} L-BFGS runs ended at the global "
            f"minimum (gap to L* ≤ {fmt_num(tol, 2)} = 10√ε·max(1, L*)); every enumerated non-global critical point "
            "is a saddle; W = 0 is a strict saddle for H = 1 and a non-strict one for H ≥ 2.</p>")
    rows = [{"statement": d["statement"], "verdict": d["verdict"], "evidence": d["evidence"]}
            for _, d in sorted(v.items())]
    body = [html_table(rows, [("statement", "statement"), ("verdict", "verdict"), ("evidence", "evidence")],
                       css_class="data text"),
            "<p>Tolerances: a run is at the global minimum when L − L* ≤ 10√ε·max(1, L*) (ε = float64 machine "
            "epsilon); critical points are classified by landscape.classify_point with its scale-free defaults; "
            "the escape fits accept a slope within 20 % (H = 1) or an exponent within 0.25 of theory (H ≥ 2).</p>",
            '<p><img src="theorems/gap_hist.png" alt="gaps to L*" width="1000"></p>',
            '<p><img src="theorems/escape_time.png" alt="escape time" width="600">'
            '<img src="theorems/index_vs_loss.png" alt="index vs loss" width="600"></p>',
            '<p>Numbers: <code>theorems/theorems.json</code>; table: <a href="theorems/theorems.md">theorems.md</a>; '
            '<a href="theorems/theorems.html">interactive figures</a>.</p>']
    return {"title": "Deep linear networks: Kawaguchi's statements", "lead": lead, "html": "\n".join(body),
            "summary": {"verdicts": {k: {"verdict": d["verdict"], "pass": d["pass"]} for k, d in v.items()},
                        "json": "theorems/theorems.json"},
            "figures": ["theorems/gap_hist.png", "theorems/escape_time.png", "theorems/index_vs_loss.png"]}
