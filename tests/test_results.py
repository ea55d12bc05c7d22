"""`memharness.results`: the run folder model (each file read once), its errors, and `memharness merge`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from runfactory import FakeCall, FakeCell, make_run

import memharness.results.run as results_run
from memharness import names
from memharness.core.records import KIND_TREE_ANON, KIND_TREE_FILE, KIND_TREE_RSS, read_timeline, timeline_dtype
from memharness.errors import MemharnessError
from memharness.report import build
from memharness.results import BrokenRunError, NotARunError, Run

# Every file `open`ed while `_OPENS` is a Counter is counted there (an audit hook sees every open: Python's
# `open`, `os.open`, numpy's `fromfile`, `Path.read_bytes`). Audit hooks cannot be removed, so the hook is
# installed once and does nothing while `_OPENS` is None.
_OPENS: Counter | None = None


def _count_opens(event: str, args: tuple) -> None:
    if _OPENS is not None and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _OPENS[Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve()] += 1


sys.addaudithook(_count_opens)


def _four_cells(tmp_path: Path) -> Path:
    """2 pipelines x 2 sizes, each cell with phases, nested calls, a timeline and (format version 2) a
    memory timeline of the tree's private and file-backed RSS."""
    call = FakeCall("pkg.work", 100, 180, 300, 0.6, 1.2, children=[FakeCall("pkg.inner", 120, 150, 260, 0.7, 1.0)])
    run_dir = make_run(tmp_path, [FakeCell(p, size, calls=[call], prepare_peak_mib=200)
                                  for p in ("a", "b") for size in (100, 200)], scenario="four", run_id="r1")
    for cell_dir in (run_dir / names.CELLS).iterdir():
        tree = read_timeline(cell_dir)
        tree = tree[tree["kind"] == KIND_TREE_RSS]
        mem = np.zeros(2 * len(tree), dtype=timeline_dtype())
        mem["t_ns"] = np.repeat(tree["t_ns"], 2)
        mem["kind"] = np.tile([KIND_TREE_ANON, KIND_TREE_FILE], len(tree))
        mem["dev"] = -1
        mem["value"] = np.repeat(tree["value"], 2) // 2
        mem.tofile(cell_dir / names.MEMORY_TIMELINE)
    return run_dir


def test_a_report_of_a_4_cell_run_reads_each_cells_calls_and_timeline_once(tmp_path, monkeypatch):
    """The whole report (tables, timelines, side-by-side charts, answer, summary) parses each cell's call
    files once (records and process headers in one pass) and opens its timeline once; every other file of a
    cell (memory timeline, status.json, ...) is opened once too."""
    global _OPENS
    run_dir = _four_cells(tmp_path)
    parses: Counter = Counter()
    read_call_files = results_run.read_call_files

    def counting_read_call_files(cell_dir):
        parses[Path(cell_dir).name] += 1
        return read_call_files(cell_dir)

    monkeypatch.setattr(results_run, "read_call_files", counting_read_call_files)
    _OPENS = Counter()
    try:
        index = build(run_dir)
    finally:
        opens, _OPENS = _OPENS, None
    assert index.exists()
    cells = sorted(p.name for p in (run_dir / names.CELLS).iterdir())
    assert len(cells) == 4
    assert parses == {c: 1 for c in cells}
    for cell in cells:
        cdir = (run_dir / names.CELLS / cell).resolve()
        counts = {str(p.relative_to(cdir)): n for p, n in opens.items() if cdir in p.parents}
        call_file = next(k for k in counts if k.startswith(f"{names.CALLS}/"))
        print(cell, dict(sorted(counts.items())))
        assert counts[names.TIMELINE] == 1, counts
        assert counts[call_file] == 1, counts
        assert all(n == 1 for n in counts.values()), counts
        assert {names.MEMORY_TIMELINE, names.STATUS, names.TIMELINE_HEADER, names.FINGERPRINT} <= set(counts)


def test_cells_read_their_files_lazily_and_keep_them(tmp_path):
    run = Run.open(_four_cells(tmp_path))
    cell = run.cells[0]
    assert "_call_files" not in vars(cell) and "timeline" not in vars(cell)  # nothing read by opening the run
    assert cell.calls is cell.calls and cell.timeline is cell.timeline
    assert [c.target for c in cell.calls] == ["phase:prepare", "phase:run", "pkg.work", "pkg.inner"]
    assert cell.peak_calls is cell.calls  # the figures from other files are attached to the same records
    assert run.scenario == "four" and run.run_id == "r1" and run.pipelines == ["a", "b"] and run.sizes == [100, 200]
    assert run.cell("b__200__r0").dir == run.dir / "cells" / "b__200__r0"
    with pytest.raises(KeyError):
        run.cell("nope")


def test_not_a_run_names_the_folder_and_what_is_missing(tmp_path):
    with pytest.raises(NotARunError) as info:
        Run.open(tmp_path)
    assert str(info.value) == f"{tmp_path} is not a memharness run folder (no manifest.json)"
    assert isinstance(info.value, BrokenRunError) and isinstance(info.value, MemharnessError)
    assert info.value.exit_code == 2
    with pytest.raises(NotARunError, match="is not a folder"):
        Run.open(tmp_path / "missing")
    (tmp_path / names.MANIFEST).write_text('{"format": "memharness-run", "cells": "x"}')
    with pytest.raises(BrokenRunError) as info:
        Run.open(tmp_path)
    assert str(info.value) == f"{tmp_path / 'manifest.json'}: 'cells' is a string, expected a list"


def _summary(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "report" / "summary.json").read_text())


def test_merge_command_merges_two_runs_and_report_renders_them(tmp_path):
    """`memharness merge` on two runs of one scenario (sizes split over two machines, one cell run on both):
    the later run's cell wins whole, every cell is listed once, and `memharness report` renders all sizes."""
    import json

    from typer.testing import CliRunner

    from memharness.cli import app

    first = make_run(tmp_path / "m1", [FakeCell("a", 100, calls=[FakeCall("pkg.f", 100, 150, 300, 0.1, 0.5)]),
                                       FakeCell("b", 100, calls=[FakeCall("pkg.f", 100, 150, 320, 0.1, 0.5)])],
                     scenario="study", run_id="r1")
    (first / names.SCENARIO).write_text("name: study\n")
    (first / "cells" / "a__100__r0" / names.WORK).mkdir()
    (first / "cells" / "a__100__r0" / names.WORK / "index.bin").write_bytes(b"x" * 1000)
    second = make_run(tmp_path / "m2", [FakeCell("b", 1000, calls=[FakeCall("pkg.f", 100, 150, 900, 0.1, 0.5)]),
                                        FakeCell("a", 100, calls=[FakeCall("pkg.f", 100, 150, 500, 0.1, 0.5)])],
                      scenario="study", run_id="r2")
    for run, cell, status in ((second, "a__100__r0", "failed"), (first, "a__100__r0", "timeout"),
                              (first, "b__100__r0", "killed")):  # earlier attempts set aside
        aside = run / names.attempt_dir_name(cell, 1)
        aside.mkdir(parents=True)
        (aside / "status.json").write_text(f'{{"status": "{status}"}}')
        (aside / names.WORK).mkdir()
        m = json.loads((run / names.MANIFEST).read_text())
        for c in m["cells"]:
            if c["id"] == cell:
                c["attempts"] = [names.attempt_dir_name(cell, 1)]
        (run / names.MANIFEST).write_text(json.dumps(m))
    out = tmp_path / "merged"
    result = CliRunner().invoke(app, ["merge", str(first), str(second), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{out}: 3 cells from 2 runs"
    manifest = json.loads((out / names.MANIFEST).read_text())
    assert manifest["run_id"] == "merged" and manifest["merged_from"] == [str(first), str(second)]
    assert [c["id"] for c in manifest["cells"]] == ["a__100__r0", "b__100__r0", "b__1000__r0"]
    assert (out / names.SCENARIO).read_text() == "name: study\n"
    # a__100 comes from the second run alone (its process 1001), not laid over the first run's copy
    assert sorted(p.name for p in (out / "cells" / "a__100__r0" / names.CALLS).iterdir()) == ["1001.jsonl"]
    assert not (out / "cells" / "a__100__r0" / names.WORK).exists()
    # the attempts the winning entry lists come along (without work/), not the losing run's of the same cell
    attempt = out / names.attempt_dir_name("a__100__r0", 1)
    assert (attempt / "status.json").read_text() == '{"status": "failed"}' and not (attempt / names.WORK).exists()
    assert (out / names.attempt_dir_name("b__100__r0", 1) / "status.json").read_text() == '{"status": "killed"}'
    assert manifest["cells"][0]["attempts"] == [names.attempt_dir_name("a__100__r0", 1)]

    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    rows = {(r["pipeline"], r["size"], r["target"]): r for r in _summary(out)["rows"]}
    assert {(p, s) for p, s, _ in rows} == {("a", 100), ("b", 100), ("b", 1000)}
    peak = rows[("a", 100, "pkg.f")]["metrics"]["peak"]["median"]
    assert peak == 500 * (1 << 20)  # the second run's cell
    # where each cell ran: a__100 from r2 (it won), b__100 from r1
    assert {c["id"]: c["from_run"] for c in manifest["cells"]} == {"a__100__r0": "r2", "b__100__r0": "r1",
                                                                    "b__1000__r0": "r2"}

    # merged again with a third run (a sample grown session by session): the lineage and origins are kept
    third = make_run(tmp_path / "m3", [FakeCell("c", 100, calls=[FakeCall("pkg.f", 100, 150, 200, 0.1, 0.5)])],
                     scenario="study", run_id="r3")
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["merge", str(out), str(third), "--output", str(again)])
    assert result.exit_code == 0, result.output
    grown = json.loads((again / names.MANIFEST).read_text())
    assert grown["merged_from"] == [str(first), str(second), str(out), str(third)]
    assert {c["id"]: c["from_run"] for c in grown["cells"]} == {"a__100__r0": "r2", "b__100__r0": "r1",
                                                                 "b__1000__r0": "r2", "c__100__r0": "r3"}


def test_merge_refuses_other_scenarios_and_an_output_in_the_way(tmp_path):
    from memharness.results.merge import MergeError, merge

    a = Run.open(make_run(tmp_path, [FakeCell("a", 100)], scenario="one", run_id="r1"))
    b = Run.open(make_run(tmp_path, [FakeCell("a", 200)], scenario="two", run_id="r2"))
    with pytest.raises(MergeError, match="same scenario") as info:
        merge([a, b], tmp_path / "out")
    assert info.value.exit_code == 2 and not (tmp_path / "out").exists()
    c = Run.open(make_run(tmp_path, [FakeCell("a", 300)], scenario="one", run_id="r3"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(MergeError, match="exists and is not an empty folder"):
        merge([a, c], tmp_path / "busy")
    with pytest.raises(MergeError, match="holds the run"):
        merge([a, c], tmp_path / "one")
    merged = Run.open(merge([a, c], tmp_path / "new"))
    assert [x.id for x in merged.cells] == ["a__100__r0", "a__300__r0"]
