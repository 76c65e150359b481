"""The main job end to end: `landscape study --quick` in a temporary directory."""
import json
from html.parser import HTMLParser

from analyses.cli import main


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.summary_rows = 0
        self._in_summary = False
        self.imgs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == "summary":
            self._in_summary = True
        elif tag == "tr" and self._in_summary:
            self.summary_rows += 1
        elif tag == "img":
            self.imgs.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_summary = False


def test_study_quick_end_to_end(tmp_path):
    assert main(["study", "--quick", "--out", str(tmp_path), "--workers", "2"]) == 0
    page = (tmp_path / "report.html").read_text()
    parser = _Tables()
    parser.feed(page)
    assert parser.summary_rows >= 2  # header + at least one (stall kind × method) row
    for src in parser.imgs:
        assert (tmp_path / src).exists(), src
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["findings"] and study["escape"]["n_errors"] == 0
    methods = {row["method"] for row in study["escape"]["summary"]}
    assert {"gd", "synaprune-rms"} <= methods
    for row in study["escape"]["summary"]:
        assert row["method"] in page
    # The theorem check ran and confirmed all four statements on the quick configurations.
    assert all(v["verdict"].startswith("confirmed") for v in study["theorems"]["verdicts"].values())
    # The control: the noisy regression's stalls are global minima with near-total cancellation.
    assert "noisy_regression" in study["escape"]["control"]
    assert (tmp_path / "escape" / "escape.jsonl").exists()
    assert (tmp_path / "spectrum_autoencoder_gd" / "spectrum_report.html").exists()
    assert list((tmp_path / "surface").glob("*.png"))
