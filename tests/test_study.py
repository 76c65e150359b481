"""The main job end to end: `landscape study --quick` in a temporary directory, and its rerun."""
import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _study_run import quick_study, tracked_outputs

# one quick study per test process: every test that reads it runs in the same xdist worker
pytestmark = pytest.mark.xdist_group("study")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.h2 = [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs["src"])
        elif tag == "a" and not attrs.get("href", "#").startswith("#"):
            self.links.append(attrs["href"])
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data.strip())


def test_report_leads_with_the_answer_and_links_only_existing_files():
    out = quick_study()
    page = (out / "report.html").read_text()
    p = _Page()
    p.feed(page)
    assert p.h2[0] == "The answer"
    study = json.loads((out / "study.json").read_text())
    titles = [s["title"] for s in study["sections"]]
    assert all(t in p.h2 for t in titles) and not any("error" in s for s in study["sections"])
    for src in p.imgs + p.links:
        assert (out / src).is_file(), src
    # the answer's figure is the first section's first figure
    first = study["sections"][0]
    assert p.imgs[0] == first["figures"][0]
    # no timings or host in tracked outputs; they are in run_info.json
    info = json.loads((out / "run_info.json").read_text())
    assert set(info["timings_s"]) == {s["provider"] for s in study["sections"]}
    assert info["host"] not in page and "timings" not in json.dumps(study)


def test_escape_section_counts_every_run_of_its_records():
    """The escape part's run count is the number of per-run records in escape.jsonl."""
    out = quick_study()
    study = json.loads((out / "study.json").read_text())
    esc = next(s for s in study["sections"] if s["provider"] == "analyses.escape_report")
    recs = [json.loads(line) for line in (out / "escape" / "escape.jsonl").read_text().splitlines() if line.strip()]
    assert recs and len(recs) == esc["summary"]["n_runs"]


def test_plateau_section_reproduces_theory_at_the_monitor_s_stalls():
    """The quick study's plateau section (the committee machine and the deep linear net): every
    committee stall's nearest critical point of the exact ε_g is Saad & Solla's symmetric fixed
    point or the global minimum (ε_g = 0), and the deep linear net's stalls lie within 1e-3 of the
    low-rank losses ½Σ_{i>k} s_i² (relative), the critical points themselves to 1e-6."""
    out = quick_study()
    study = json.loads((out / "study.json").read_text())
    summ = next(s for s in study["sections"] if s["provider"] == "analyses.plateaus")["summary"]
    star = 0.011610840313
    com = summ["committee_k2"]["stalls"]
    assert com and all(abs(r["nearest_loss"] - star) / star < 1e-6 or r["nearest_loss"] < 1e-10 * star for r in com)
    assert any(abs(r["nearest_loss"] - star) / star < 1e-6 and r["nearest_kind"] == "strict_saddle" for r in com)
    lin = summ["deep_linear"]["stalls"]
    assert len({r["level"] for r in lin}) >= 3
    assert all(abs(r["rel_gap_exact"]) < 1e-3 and abs(r["rel_gap_nearest"]) < 1e-6 for r in lin), lin


def test_theorem_section_confirms_all_four_statements():
    out = quick_study()
    study = json.loads((out / "study.json").read_text())
    v = next(s for s in study["sections"] if s["provider"] == "analyses.theorems")["summary"]["verdicts"]
    assert sorted(v) == ["1", "2", "3", "4"] and all(d["pass"] for d in v.values())


def test_one_shared_plotly_js_for_the_whole_study():
    out = quick_study()
    js = list(out.rglob("plotly-*.min.js"))
    assert len(js) == 1 and js[0].parent == out
    pages = [p for p in out.rglob("*.html") if p.name != "report.html"]
    assert pages
    for page in pages:
        text = page.read_text()
        assert "plotly.js v" not in text and 'src="http' not in text     # not inlined, no CDN
        src = text.split('<script src="', 1)[1].split('"', 1)[0]
        assert (page.parent / src).resolve() == js[0].resolve()


def test_rerun_under_another_numerical_configuration_gives_byte_identical_tracked_outputs(tmp_path):
    """Run the quick study a second time into the same folder, under the second numerical
    configuration (LANDSCAPE_NUMERICS=alt: MKL's own branch instead of COMPATIBLE, ATen's scalar
    kernels instead of AVX2, OpenBLAS's and numpy's SSE kernels, two threads): every output git
    would track is byte-identical, so no round-off reaches them (round-off-level numbers are written
    as bounds, analyses.roundoff). The parts that amplify round-off by design (study.PINNED_ONLY:
    the escape sweep, the digits plateau) rerun under the pins, so this checks their determinism.
    Timings and host information live in untracked files."""
    out = quick_study()
    before = {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in tracked_outputs(out)}
    assert any(p.endswith(".png") for p in before) and "report.html" in before and "study.json" in before
    pinned = json.loads((out / "run_info.json").read_text())["numerics"]
    quick_study(rerun=True)
    alt = json.loads((out / "run_info.json").read_text())["numerics"]
    after = {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in tracked_outputs(out)}
    assert after.keys() == before.keys()
    changed = sorted(p for p in before if before[p] != after[p])
    assert not changed, f"rerun under the second numerical configuration changed tracked outputs: {changed}"
    # the pins took effect in the re-executed command, and the second configuration differs in each
    assert (pinned["mkl_cbwr"], alt["mkl_cbwr"]) in (("COMPATIBLE", "AUTO"), (None, None))
    assert pinned["torch_threads"] == 1 and alt["torch_threads"] == 2
    if pinned["env"].get("ATEN_CPU_CAPABILITY"):  # an x86-64 CPU with AVX2 (cli_common.deterministic_env)
        assert (pinned["aten_cpu_capability"], alt["aten_cpu_capability"]) == ("AVX2", "DEFAULT")
        assert pinned["openblas_coretypes"] in ([], ["Haswell"]) and "Haswell" not in alt["openblas_coretypes"]
