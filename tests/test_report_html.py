"""index.html is self-contained and renders: opened in headless Chromium (Debian's `chromium`), every table
is there and every image decodes."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from runfactory import FakeCall, FakeCell, make_run

from memharness.report import build

SETUP = "colbert.indexing.collection_indexer.CollectionIndexer.setup"

# Injected into a copy of the page by this test only: the report itself carries no script.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var d = document.createElement('div');
  d.id = 'render-check';
  d.setAttribute('data-tables', document.querySelectorAll('table').length);
  d.setAttribute('data-results', document.querySelectorAll('table.results').length);
  d.setAttribute('data-result-rows', document.querySelectorAll('table.results tbody tr').length);
  d.setAttribute('data-images', imgs.length);
  d.setAttribute('data-decoded', imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  d.setAttribute('data-widths', imgs.map(function (i) { return i.naturalWidth; }).join(','));
  d.setAttribute('data-pre', document.querySelectorAll('pre').length);
  document.body.appendChild(d);
});
</script>"""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data", "action") and v is not None:
                self.refs.append((tag, k, v))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    calls = [FakeCall("colbert.indexer.Indexer.index", 90, 400, 1500, 0.5, 6.0, children=[
        FakeCall(SETUP, 100, 300, 1300, 1.0, 4.0)])]
    cells = [FakeCell(p, s, calls=calls, fingerprint={"python": "3.11.7", "torch": t})
             for p, t in (("ragatouille", "2.13.0"), ("colbert", "2.13.0+cu126")) for s in (100_000, 250_000)]
    cells.append(FakeCell("colbert", 500_000, status="failed", cause="timeout", calls=calls))
    run_dir = make_run(root, cells, pipelines=["ragatouille", "colbert"])
    lp = run_dir / "cells" / "colbert__100000__r0" / "lineprof"
    lp.mkdir()
    (lp / f"{SETUP}.txt").write_text("Filename: ci.py\n\nLine #    Mem usage    Increment  Occurrences   Line "
                                     "Contents\n=====\n    10    100.0 MiB    200.0 MiB           1   x = y\n")
    (run_dir / "scenario.yaml").write_text("name: fake\npipelines:\n  - name: ragatouille\n  - name: colbert\n")
    return build(run_dir)


def test_page_is_self_contained(report):
    html = report.read_text()
    parser = _Links()
    parser.feed(html)
    imgs = [v for tag, k, v in parser.refs if tag == "img"]
    assert len(imgs) == 8  # 5 timelines, 2 side-by-side (100k, 250k), 1 scaling
    assert all(v.startswith("data:image/png;base64,") for v in imgs)
    others = [v for tag, k, v in parser.refs if tag != "img"]
    assert others and all(v.startswith("#") for v in others), others  # in-page anchors only
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.I)
    assert "@import" not in html and "url(" not in html
    for needle in ("Whole process tree", SETUP, "colbert__500000__r0", "timeout", "name: ragatouille",
                   "Line #    Mem usage", "2.13.0+cu126"):
        assert needle in html, needle


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed: apt-get install -y chromium"
    return exe


def test_chromium_renders_tables_and_images(report, tmp_path):
    page = tmp_path / "probe.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    m = re.search(r'<div id="render-check"([^>]*)>', out.stdout)
    assert m, f"no marker in the rendered DOM (rc {out.returncode}):\n{out.stderr[-2000:]}"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1)))

    summary = json.loads((report.parent / "summary.json").read_text())
    pngs = [report.parent / f"timeline-{cid}.png" for cid in summary["timelines"]]
    pngs += [report.parent / n for n in summary["compare"]] + [report.parent / "scaling.png"]
    widths = sorted(struct.unpack(">I", p.read_bytes()[16:20])[0] for p in pngs)
    assert int(attrs["images"]) == len(pngs) == 8
    assert int(attrs["decoded"]) == len(pngs)
    assert sorted(int(w) for w in attrs["widths"].split(",")) == widths
    assert int(attrs["results"]) == len(summary["tables"]) == 3  # tree, Indexer.index, setup
    assert int(attrs["result-rows"]) == len(summary["rows"]) == 12
    # + failed cells, environment (common + differing), missing targets (none: a note, no table)
    # + the lead: summary, one call tree per pipeline (2), predicted sizes
    assert int(attrs["tables"]) == 3 + 1 + 2 + 1 + 2 + 1
    assert int(attrs["pre"]) == 2  # the line profile and the scenario


def test_screenshot_has_content(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
           f"--screenshot={shot}", "--window-size=1400,3000", report.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=90)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 3000)
        colors = im.convert("RGB").resize((140, 300)).getcolors(maxcolors=100_000)
    assert colors is not None and len(colors) > 50  # text, tables and charts, not a blank page


def test_title_line_names_the_pipelines_run_and_the_scenarios_others_apart(tmp_path):
    """A run made with --pipelines holds cells of some of the scenario's pipelines: the title line names
    those, and the others as having no cells, instead of listing the scenario's as if all had run."""
    calls = [FakeCall("colbert.indexer.Indexer.index", 90, 400, 1500, 0.5, 6.0)]
    run_dir = make_run(tmp_path, [FakeCell("colbert", 1000, calls=calls)], pipelines=["ragatouille", "colbert", "x"])
    page = build(run_dir).read_text()
    assert "; pipelines: colbert (the scenario also names ragatouille, x: no cells in this run).</p>" in page
    both = make_run(tmp_path / "b", [FakeCell(p, 1000, calls=calls) for p in ("colbert", "ragatouille")],
                    pipelines=["ragatouille", "colbert"])
    assert "; pipelines: ragatouille, colbert.</p>" in build(both).read_text()


def test_timeline_hatches_the_stretch_the_sampler_was_not_running(tmp_path):
    """A sampler gap (status.json `sampler_gaps`) is hatched on the RSS panel, named in the legend, and its
    length is in the chart's caption; a cell without one gets neither."""
    import matplotlib.patches as mpatches

    from memharness.report.charts.timeline import timeline_figure
    from memharness.report.series import cell_series
    from memharness.results.run import Run

    calls = [FakeCall("pkg.f", 100, 150, 300, 0.5, 3.0)]
    run_dir = make_run(tmp_path, [FakeCell("a", 100, calls=calls), FakeCell("b", 100, calls=calls)])
    status_file = run_dir / "cells" / "a__100__r0" / "status.json"
    status = json.loads(status_file.read_text())
    t0 = status["t_start_ns"]
    status["sampler_gaps"] = [{"from_ns": t0 + 1_000_000_000, "to_ns": t0 + 2_250_000_000, "why": "killed by SIGKILL"}]
    status_file.write_text(json.dumps(status))
    run = Run.open(run_dir)
    gapped, whole = run.cells
    fig, info = timeline_figure(gapped, cell_series(gapped))
    hatched = [p for p in fig.axes[0].patches if isinstance(p, mpatches.Polygon | mpatches.Rectangle) and p.get_hatch()]
    assert len(hatched) == 1 and info.gap_s == pytest.approx(1.25)
    assert hatched[0].get_x() == pytest.approx(1.0) and hatched[0].get_width() == pytest.approx(1.25)
    assert "no samples (sampler not running)" in fig.axes[0].get_legend_handles_labels()[1]
    fig, info = timeline_figure(whole, cell_series(whole))
    assert info.gap_s == 0 and not [p for p in fig.axes[0].patches if p.get_hatch()]
    page = build(run_dir).read_text()
    assert page.count("No samples for 1.2 s (hatched): the timeline sampler was not running.") == 1
