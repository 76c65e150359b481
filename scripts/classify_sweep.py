"""Seeded sweep of the classifier over critical points of known kind (``tests/classify_cases.py``).

For every family, ``--n`` random cases f = c·g(Q(x − x₀)) + b, each classified at x₀ and at a point
1e-6 (relative to the length scale) from it, on the dense and the Lanczos path. Prints, per family,
path and point, the counts of each verdict of ``classify_cases.verdict``: right / inconclusive beyond
the probe's resolution / definite beyond it (the "no descent found" kind) / other inconclusive / wrong
index / wrong definite kind, and lists every case that is neither right nor inconclusive beyond the
resolution, with its margin at the largest probe radius over the probe's threshold there.

    PYTHONPATH=. python3 scripts/classify_sweep.py --n 300          # 300 cases per family
    PYTHONPATH=. python3 scripts/classify_sweep.py --families cubic --n 50 --seed 7
"""
from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import landscape as ls  # noqa: E402
from classify_cases import (FAMILIES, RandomDraw, make_case, probe_threshold_at_max_radius,  # noqa: E402
                            verdict)

COLS = ("right", "inconclusive_resolution", "definite_resolution", "inconclusive", "wrong_index", "wrong")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="cases per family (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--methods", nargs="*", default=["dense", "lanczos"])
    ap.add_argument("--quiet", action="store_true", help="do not list the wrong cases")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    counts: dict = collections.defaultdict(collections.Counter)
    bad = []
    t0 = time.time()
    for fam in a.families:
        for i in range(a.n):
            seed = a.seed * 1_000_003 + FAMILIES.index(fam) * 100_003 + i
            case = make_case(fam, RandomDraw(seed))
            for near in (False, True):
                theta = case.point(near, seed=seed)
                obj = ls.Objective.from_function(case.fn, theta)
                for method in a.methods:
                    try:
                        rep = ls.classify_point(obj, theta, method=method)
                        v = verdict(case, rep)
                    except Exception as exc:  # noqa: BLE001 - a crash is counted and listed
                        rep, v = None, "wrong"
                        print(f"EXCEPTION {fam} seed={seed}: {exc!r}", file=sys.stderr)
                    counts[(fam, method, "near" if near else "at")][v] += 1
                    if v not in ("right", "inconclusive_resolution"):
                        ratio = math.nan
                        if rep is not None:
                            t = rep.tolerances["probe_radius_max"]
                            ratio = case.margin(t) / probe_threshold_at_max_radius(rep, case.margin(t))
                        bad.append((v, fam, seed, method, near, case.describe(),
                                    None if rep is None else f"{rep.kind}/{rep.index} margin/threshold at t_max "
                                    f"{ratio:.3g} {rep.reason or ''}"[:300]))
    short = ("right", "inc_res", "def_res", "inconcl", "wr_index", "wrong")
    print("columns: " + ", ".join(f"{a} = {b}" for a, b in zip(short, COLS)))
    print(f"{'family':14s} {'path':8s} {'point':5s} " + " ".join(f"{c:>8s}" for c in short))
    tot = collections.Counter()
    for key in sorted(counts):
        fam, method, pt = key
        print(f"{fam:14s} {method:8s} {pt:5s} " + " ".join(f"{counts[key][c]:8d}" for c in COLS))
        tot.update(counts[key])
    print(f"{'total':29s} " + " ".join(f"{tot[c]:8d}" for c in COLS))
    print(f"{sum(tot.values())} classifications in {time.time() - t0:.0f} s")
    if not a.quiet:
        for b in bad:
            print(f"{b[0]:12s} {b[1]} seed={b[2]} {b[3]} {'near' if b[4] else 'at'}: {b[5]}\n    -> {b[6]}")
    return 1 if tot["wrong"] or tot["wrong_index"] or tot["inconclusive"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
