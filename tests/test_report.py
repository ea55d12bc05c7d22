"""Report tables, summary, charts and the `report` command, built from run folders in the on-disk format."""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runfactory import FakeCall, FakeCell, MiB, make_run

from memharness.core.atomic import write_json
from memharness.core.records import KIND_TREE_RSS, CallRecord, read_timeline, timeline_dtype
from memharness.report import build
from memharness.report.downsample import envelope
from memharness.report.fmt import size_label
from memharness.report.scaling import fit
from memharness.report.series import cell_series
from memharness.results import NotARunError
from memharness.results.figures import TREE
from memharness.results.spans import assign_lanes, innermost_at

SETUP = "colbert.indexing.collection_indexer.CollectionIndexer.setup"
SAMPLE = "colbert.indexing.collection_indexer.CollectionIndexer._sample_embeddings"
INDEX = "colbert.indexer.Indexer.index"


def _calls(final_setup: float = 300.0) -> list[FakeCall]:
    return [FakeCall(INDEX, 90, 400, 1500, 0.5, 8.0, children=[
        FakeCall(SETUP, 100, final_setup, 1300, 1.0, 5.0, children=[FakeCall(SAMPLE, 120, 250, 1250, 2.0, 4.0)]),
    ])]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    cells = [
        FakeCell("colbert", 250_000, calls=_calls()),
        FakeCell("colbert", 100_000, 0, calls=_calls(1540.2)),
        FakeCell("colbert", 100_000, 1, calls=_calls(1551.0)),
        FakeCell("colbert", 100_000, 2, calls=_calls(1546.7)),
        FakeCell("ragatouille", 2_000_000, calls=_calls()),
        FakeCell("ragatouille", 100_000, calls=_calls()),
        FakeCell("colbert", 1_000_000, status="failed", cause="max_rss", calls=_calls()),
    ]
    run_dir = make_run(root, cells, pipelines=["ragatouille", "colbert"])
    cell = run_dir / "cells" / "colbert__1000000__r0"
    status = json.loads((cell / "status.json").read_text())
    status["message"] = "tree RSS 9000.0 MiB over the 8192 MiB limit"
    write_json(cell / "status.json", status)
    write_json(run_dir / "cells" / "colbert__250000__r0" / "targets.json", {
        "resolved": [], "missing": [{"path": "colbert.indexer.Indexer.__launch", "reason": "no attribute",
                                     "default": True}]})
    (run_dir / "cells" / "colbert__250000__r0" / "lineprof").mkdir()
    (run_dir / "cells" / "colbert__250000__r0" / "lineprof" / f"{SETUP}.txt").write_text(
        "Filename: x.py\n\nLine #    Mem usage    Increment  Occurrences   Line Contents\n")
    build(run_dir)
    return run_dir


def _table_json(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / "report" / "tables" / f"{name}.json").read_text())


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_seed_columns_and_exact_numbers(run):
    table = _table_json(run, SETUP)
    row = next(r for r in table["rows"] if r["pipeline"] == "colbert" and r["size"] == 250_000)
    text = row["text"]
    assert text["Indexing Method"] == "colbert" and text["Document Size"] == "250k"
    assert text["Starting Memory"] == "100.0 MiB"
    assert text["Memory Increment"] == "200.0 MiB"
    assert text["Final Memory"] == "300.0 MiB"
    assert text["Peak Memory"] == "1300.0 MiB"
    assert text["Peak over Start"] == "1200.0 MiB"
    assert text["Duration"] == "4.0 s" and text["Calls"] == "1"
    assert table["columns"][:7] == ["Indexing Method", "Document Size", "Repeats", "Starting Memory",
                                    "Memory Increment", "Final Memory", "Peak Memory"]
    assert not any(c.startswith("GPU") for c in table["columns"])
    md = (run / "report" / "tables" / f"{SETUP}.md").read_text()
    assert "| colbert | 250k | 1 | 100.0 MiB | 200.0 MiB | 300.0 MiB | 1300.0 MiB | 1200.0 MiB | 4.0 s | 1 |" in md


def test_rows_follow_scenario_order_then_size(run):
    rows = _table_json(run, SETUP)["rows"]
    assert [(r["pipeline"], r["size_label"]) for r in rows] == [
        ("ragatouille", "100k"), ("ragatouille", "2M"), ("colbert", "100k"), ("colbert", "250k")]


def test_repeats_show_median_and_range(run):
    row = next(r for r in _table_json(run, SETUP)["rows"] if r["pipeline"] == "colbert" and r["size"] == 100_000)
    assert row["repeats"] == 3
    assert row["text"]["Final Memory"] == "1546.7 MiB (1540.2–1551.0)"
    assert row["text"]["Starting Memory"] == "100.0 MiB (100.0–100.0)"
    single = next(r for r in _table_json(run, SETUP)["rows"] if r["size"] == 250_000)
    assert single["text"]["Final Memory"] == "300.0 MiB"


def test_tables_md_has_tree_first_then_outer_to_inner(run):
    md = (run / "report" / "tables.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("### ")]
    assert headings == ["### Whole process tree", f"### `{INDEX}`", f"### `{SETUP}`", f"### `{SAMPLE}`"]
    tree = _table_json(run, "process_tree")
    assert tree["target"] == TREE and "Calls" not in tree["columns"]
    row = next(r for r in tree["rows"] if r["pipeline"] == "colbert" and r["size"] == 250_000)
    assert row["text"]["Starting Memory"] == "100.0 MiB" and row["text"]["Peak Memory"] == "1500.0 MiB"


def test_csv_and_json_parse_back(run):
    text = (run / "report" / "tables" / f"{SETUP}.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    r = next(r for r in rows if r["pipeline"] == "colbert" and r["size"] == "250000")
    assert float(r["start_mib"]) == 100.0 and float(r["increment_mib"]) == 200.0
    assert float(r["final_mib"]) == 300.0 and float(r["peak_mib"]) == 1300.0
    assert float(r["peak_over_start_mib"]) == 1200.0 and float(r["duration_s"]) == pytest.approx(4.0)
    rep = next(r for r in rows if r["pipeline"] == "colbert" and r["size"] == "100000")
    assert float(rep["final_mib_min"]) == pytest.approx(1540.2, abs=1e-3)
    assert float(rep["final_mib_max"]) == pytest.approx(1551.0, abs=1e-3)
    data = _table_json(run, SETUP)
    jrow = next(x for x in data["rows"] if x["pipeline"] == "colbert" and x["size"] == 100_000)
    assert jrow["metrics"]["final"]["median"] == pytest.approx(1546.7, abs=1e-3)
    assert jrow["metrics"]["final"]["unit"] == "MiB"


def test_summary_lists_rows_failed_cells_and_missing_targets(run):
    s = json.loads((run / "report" / "summary.json").read_text())
    setup_rows = [r for r in s["rows"] if r["target"] == SETUP]
    assert len(setup_rows) == 4
    assert setup_rows[3]["metrics"]["final"]["median"] == 300 * MiB
    assert s["failed_cells"] == [{"id": "colbert__1000000__r0", "pipeline": "colbert", "size": 1_000_000,
                                  "repeat": 0, "status": "failed", "cause": "max_rss",
                                  "message": "tree RSS 9000.0 MiB over the 8192 MiB limit", "exit_code": 1}]
    assert s["missing_targets"] == [{"path": "colbert.indexer.Indexer.__launch", "reason": "no attribute",
                                     "default": True, "cells": ["colbert__250000__r0"]}]
    assert s["line_profiles"] == [f"lineprof/colbert__250000__r0/{SETUP}.txt"]
    assert (run / "report" / "lineprof" / "colbert__250000__r0" / f"{SETUP}.txt").exists()


def test_pngs_exist_and_are_plausible(run):
    rep = run / "report"
    cells = sorted(p.name for p in (run / "cells").iterdir())
    for cid in cells:  # failed cells get a timeline too: it shows how memory got there
        w, h = _png_size(rep / f"timeline-{cid}.png")
        assert 1200 <= w <= 2000 and 500 <= h <= 2000
        assert (rep / f"timeline-{cid}.png").stat().st_size > 20_000
    # compare charts only where two pipelines ran that size; scaling since there are several sizes
    assert sorted(p.name for p in rep.glob("compare-*.png")) == ["compare-100k.png"]
    w, h = _png_size(rep / "compare-100k.png")
    assert w >= 800 and h >= 400
    assert _png_size(rep / "scaling.png")[0] >= 800
    from PIL import Image

    for p in rep.glob("*.png"):
        with Image.open(p) as im:
            im.verify()


def test_timeline_peak_is_named_by_innermost_call(tmp_path):
    run_dir = make_run(tmp_path, [FakeCell("p", 1000, calls=_calls(), samples=2000)])
    cdir = run_dir / "cells" / "p__1000__r0"
    rows = read_timeline(cdir)
    t0 = json.loads((cdir / "status.json").read_text())["t_start_ns"]
    tree = np.flatnonzero(rows["kind"] == KIND_TREE_RSS)
    spike = tree[np.argmin(np.abs(rows["t_ns"][tree] - (t0 + 3.0e9)))]
    rows["value"][spike] = 5000 * MiB  # at 3.0 s: inside index > setup > _sample_embeddings
    rows.tofile(cdir / "timeline.bin")
    build(run_dir)
    info = json.loads((run_dir / "report" / "summary.json").read_text())["timelines"]["p__1000__r0"]
    assert info["peak_call"] == SAMPLE
    assert info["peak_mib"] == 5000.0 and info["peak_s"] == pytest.approx(3.0, abs=0.01)
    assert not (run_dir / "report" / "scaling.png").exists()
    assert not list((run_dir / "report").glob("compare-*.png"))


def test_scaling_slope_is_exact_on_linear_data(tmp_path):
    cells = []
    for size in (100_000, 200_000, 400_000, 1_000_000):
        peak = 500 + 150 * size / 100_000  # 150 MiB per 100k documents
        cells.append(FakeCell("a", size, calls=[FakeCall("m.f", 100, 120, peak, 1.0, 2.0)]))
        cells.append(FakeCell("b", size, base_mib=200 + 20 * size / 100_000,
                              calls=[FakeCall("m.f", 100, 120, 900, 1.0, 2.0)]))
    run_dir = make_run(tmp_path, cells)
    build(run_dir)
    s = json.loads((run_dir / "report" / "summary.json").read_text())["scaling"]
    assert s["a"]["peak_slope_mib_per_100k"] == pytest.approx(150.0, abs=1e-6)
    assert s["a"]["peak_intercept_mib"] == pytest.approx(500.0, abs=1e-6)
    assert s["a"]["final_slope_mib_per_100k"] == pytest.approx(0.0, abs=1e-6)
    assert s["b"]["final_slope_mib_per_100k"] == pytest.approx(20.0, abs=1e-6)
    assert s["b"]["peak_slope_mib_per_100k"] == pytest.approx(0.0, abs=1e-6)
    assert s["a"]["sizes"] == [100_000, 200_000, 400_000, 1_000_000]
    assert _png_size(run_dir / "report" / "scaling.png")[0] >= 800
    assert "+150.0, final +0.0 MiB per 100k" in (run_dir / "report" / "index.html").read_text()


def test_fit_is_least_squares():
    slope, intercept = fit([100_000, 200_000, 300_000], [10.0, 30.0, 20.0])
    assert slope == pytest.approx(5.0) and intercept == pytest.approx(10.0)
    assert fit([100_000, 100_000], [1.0, 2.0]) is None


def test_gpu_columns_appear_only_when_recorded(tmp_path):
    gpu_end = {"0": {"allocated": 300 * MiB, "reserved": 512 * MiB, "peak_allocated": 900 * MiB,
                     "peak_reserved": 1024 * MiB, "nvml_used": 1500 * MiB, "nvml_proc_used": 1400 * MiB}}
    inner = FakeCall("m.cpu_fn", 110, 120, 130, 1.5, 2.0)
    outer = FakeCall("m.gpu_fn", 100, 200, 400, 1.0, 3.0, gpu=gpu_end, children=[inner])
    run_dir = make_run(tmp_path, [FakeCell("g", 1000, gpu_samples=True, calls=[outer])])
    path = run_dir / "cells" / "g__1000__r0" / "calls" / "1000.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for ev in events:
        if ev["ev"] == "B" and ev["target"] == "m.gpu_fn":
            ev["gpu"] = {"0": {"allocated": 100 * MiB, "reserved": 256 * MiB}}
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    build(run_dir)
    t = _table_json(run_dir, "m.gpu_fn")["rows"][0]["text"]
    assert t["GPU Start (allocated)"] == "100.0 MiB" and t["GPU Final (allocated)"] == "300.0 MiB"
    assert t["GPU Peak (allocated)"] == "900.0 MiB" and t["GPU Peak (reserved)"] == "1024.0 MiB"
    assert t["GPU Used on Device at Exit (NVML)"] == "1500.0 MiB"  # what it covers, in its name
    assert not any(c.startswith("GPU") for c in _table_json(run_dir, "m.cpu_fn")["columns"])
    assert _png_size(run_dir / "report" / "timeline-g__1000__r0.png")[1] > 700  # the GPU panel adds height


def test_envelope_keeps_extremes_and_bounds_points():
    rng = np.random.default_rng(1)
    t = np.arange(1_000_000, dtype=np.float64) * 0.05
    v = (rng.normal(1000, 5, t.size) * MiB).astype(np.int64)
    v[123_457] = 9000 * MiB
    v[765_432] = 1 * MiB
    tx, vy = envelope(t, v, 1500)
    assert len(tx) <= 3000 and vy.max() == v.max() and vy.min() == v.min()
    assert np.all(np.diff(tx) >= 0)
    small_t, small_v = envelope(t[:100], v[:100], 1500)
    assert len(small_t) == 100


def _rec(cid, parent, depth, pid, t0, t1, target="m.f"):
    return CallRecord(call_id=cid, parent_id=parent, depth=depth, target=target, pid=pid, tid=1, thread="Main",
                      t_start_ns=int(t0 * 1e9), rss_start=0, children_rss_start=0,
                      t_end_ns=None if t1 is None else int(t1 * 1e9), rss_end=0, peak_rss=0)


def test_lanes_nest_calls_across_processes_and_threads():
    calls = [
        _rec("1:1", None, 0, 1, 0.0, 10.0, "phase:run"),
        _rec("1:2", None, 0, 1, 1.0, 9.0),
        _rec("1:3", "1:2", 1, 1, 2.0, 5.0),
        _rec("2:1", None, 0, 2, 3.0, 4.0, "child.work"),  # a child process while 1:3 is open
        _rec("1:4", "1:2", 1, 1, 4.5, None),  # open call of another thread, overlapping 1:3
    ]
    spans = {s.call.call_id: s for s in assign_lanes(calls, 0, int(9.5e9))}
    assert "1:1" not in spans  # phases are not drawn as calls
    assert (spans["1:2"].lane, spans["1:3"].lane, spans["2:1"].lane) == (0, 1, 2)
    assert spans["1:4"].lane == 2 and spans["1:4"].open and spans["1:4"].end == 9.5
    assert innermost_at(list(spans.values()), 3.5).call.call_id == "2:1"
    assert innermost_at(list(spans.values()), 8.0).call.call_id == "1:4"
    assert innermost_at(list(spans.values()), 9.8) is None


def test_size_labels():
    assert [size_label(n) for n in (300, 1000, 100_000, 250_000, 1_000_000, 1_500_000, 2_000_000, 12_345)] == [
        "300", "1k", "100k", "250k", "1M", "1.5M", "2M", "12345"]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(NotARunError, match="not a memharness run folder"):
        build(tmp_path)


def test_report_command(run, tmp_path):
    from typer.testing import CliRunner

    from memharness.cli import app

    runner = CliRunner()
    out_dir = tmp_path / "elsewhere"
    res = runner.invoke(app, ["report", str(run), "--output", str(out_dir)])
    assert res.exit_code == 0, res.output
    assert f"report: {out_dir / 'index.html'}" in res.stdout
    assert f"  {SETUP}: 4 rows (ragatouille, colbert), highest peak 1300.0 MiB" in res.stdout
    assert "| colbert | 250k | 1 | 100.0 MiB | 0.0 MiB | 100.0 MiB | 1500.0 MiB | 1400.0 MiB |" in res.stdout
    assert "failed cells: colbert__1000000__r0 (max_rss)" in res.stdout
    assert (out_dir / "index.html").exists() and (out_dir / "tables.md").exists()
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2
    assert "is not a memharness run folder (no manifest.json)" in bad.stderr
    assert "Traceback" not in bad.output


def test_report_renders_without_pipeline_libraries(run, tmp_path):
    code = (
        "import sys; from pathlib import Path; from memharness.report import build; "
        f"build(Path({str(run)!r}), Path({str(tmp_path / 'r')!r})); "
        "print(sorted(m for m in ('torch', 'colbert', 'ragatouille', 'transformers', 'faiss', 'datasets') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_timeline_rows_are_drawn_from_disk_alone(tmp_path):
    """A timeline with rows out of order and a torn last row still renders (reader drops the torn row)."""
    run_dir = make_run(tmp_path, [FakeCell("p", 1000, calls=_calls(), samples=500)])
    path = run_dir / "cells" / "p__1000__r0" / "timeline.bin"
    rows = np.fromfile(path, dtype=timeline_dtype())
    rows[::-1].tofile(path)
    with open(path, "ab") as fh:
        fh.write(b"\x01" * 10)
    build(run_dir)
    info = json.loads((run_dir / "report" / "summary.json").read_text())["timelines"]["p__1000__r0"]
    assert info["peak_mib"] == 1500.0 and info["samples"] == 500


def test_series_split_by_kind_process_and_device(tmp_path):
    from memharness.core.records import KIND_GPU_PROC_USED, KIND_GPU_TREE_USED, KIND_GPU_USED, KIND_PROC_RSS
    from memharness.results.run import Run

    run_dir = make_run(tmp_path, [FakeCell("p", 1000, calls=_calls(), samples=10)])
    cdir = run_dir / "cells" / "p__1000__r0"
    t0 = json.loads((cdir / "status.json").read_text())["t_start_ns"]
    spec = [(KIND_PROC_RSS, 1000, -1), (KIND_PROC_RSS, 1001, -1), (KIND_TREE_RSS, 0, -1), (KIND_GPU_USED, 0, 0),
            (KIND_GPU_USED, 0, 1), (KIND_GPU_PROC_USED, 1000, 0), (KIND_GPU_PROC_USED, 1001, 0),
            (KIND_GPU_TREE_USED, 0, 0)]
    rows = np.zeros(3 * len(spec), dtype=timeline_dtype())
    for i in range(3):
        for j, (kind, pid, dev) in enumerate(spec):
            rows[i * len(spec) + j] = (t0 + i * 10**9, pid, kind, dev, (j + 1) * MiB)
    rows.tofile(cdir / "timeline.bin")
    s = cell_series(Run.open(run_dir).cells[0])
    assert s.samples == 3 and s.tree is not None and list(s.tree.t) == [0.0, 1.0, 2.0]
    assert [p.label for p in s.procs] == ["pid 1000 (main)", "pid 1001"]
    assert [g.label for g in s.gpu] == ["GPU0 used (device)", "GPU1 used (device)", "GPU0 used by tree",
                                        "GPU0 pid 1000", "GPU0 pid 1001"]
    assert [int(g.v[0] // MiB) for g in s.gpu] == [4, 5, 8, 6, 7]
