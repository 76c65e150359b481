"""report.html and one interactive page in a real headless Chromium (Debian's `chromium`, driven
by playwright without a browser download): no JavaScript console errors, every plotly figure drawn
(a non-empty SVG), every image loaded."""
import shutil
from pathlib import Path

import pytest

from _study_run import quick_study

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable (apt-get install chromium; .ci/run does)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[test]')"),
]


def _check_page(page, url: str) -> dict:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_timeout(500)
    # plotly draws asynchronously: wait until every figure has its main SVG
    page.wait_for_function("""() => [...document.querySelectorAll('.plotly-graph-div')]
        .every(d => d.querySelector('svg.main-svg'))""", timeout=30_000)
    stats = page.evaluate("""() => ({
        n_figs: document.querySelectorAll('.plotly-graph-div').length,
        empty_figs: [...document.querySelectorAll('.plotly-graph-div')].filter(d => {
            const svg = d.querySelector('svg.main-svg');
            const r = svg ? svg.getBoundingClientRect() : null;
            const marks = d.querySelectorAll('path, rect, circle, image, text').length;
            return !r || r.width < 50 || r.height < 50 || marks < 5; }).map(d => d.id),
        imgs: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    })""")
    stats["errors"] = errors
    return stats


@pytest.mark.xdist_group("study")  # reads the quick study its group's worker made
def test_report_and_an_interactive_page_render_in_chromium():
    out = quick_study()
    pages = [out / "report.html", next(out.glob("spectrum/*/spectrum_report.html"))]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for path in pages:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                s = _check_page(page, path.as_uri())
                assert s["errors"] == [], (path.name, s["errors"])
                assert s["empty_figs"] == [], (path.name, s["empty_figs"])
                bad = [i["src"] for i in s["imgs"] if not i["ok"]]
                assert not bad, (path.name, bad)
                if path.name == "report.html":
                    assert s["imgs"], "the report shows its figures"
                else:
                    assert s["n_figs"] >= 2, "the interactive page holds its plotly figures"
                page.close()
        finally:
            browser.close()
