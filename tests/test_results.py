"""`memharness.results`: the run folder model (each file read once), its errors, and `memharness merge`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from runfactory import FakeCall, FakeCell, make_run

import memharness.results.run as results_run
from memharness.errors import MemharnessError
from memharness.report import build
from memharness.results import BrokenRunError, NotARunError, Run, names

# Every file `open`ed while `_OPENS` is a Counter is counted there (an audit hook sees every open: Python's
# `open`, `os.open`, numpy's `fromfile`, `Path.read_bytes`). Audit hooks cannot be removed, so the hook is
# installed once and does nothing while `_OPENS` is None.
_OPENS: Counter | None = None


def _count_opens(event: str, args: tuple) -> None:
    if _OPENS is not None and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _OPENS[Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve()] += 1


sys.addaudithook(_count_opens)


def _four_cells(tmp_path: Path) -> Path:
    call = FakeCall("pkg.work", 100, 180, 300, 0.6, 1.2, children=[FakeCall("pkg.inner", 120, 150, 260, 0.7, 1.0)])
    return make_run(tmp_path, [FakeCell(p, size, calls=[call], prepare_peak_mib=200)
                               for p in ("a", "b") for size in (100, 200)], scenario="four", run_id="r1")


def test_a_report_of_a_4_cell_run_reads_each_cells_calls_and_timeline_once(tmp_path, monkeypatch):
    """The whole report (tables, timelines, side-by-side charts, answer, summary) parses each cell's call
    files once and opens its timeline once; every other file of a cell is opened once too. The call file is
    opened a second time only by `read_processes`, which reads its first line (the process header)."""
    global _OPENS
    run_dir = _four_cells(tmp_path)
    parses: Counter = Counter()
    read_calls = results_run.read_calls

    def counting_read_calls(cell_dir):
        parses[Path(cell_dir).name] += 1
        return read_calls(cell_dir)

    monkeypatch.setattr(results_run, "read_calls", counting_read_calls)
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
        assert counts[call_file] == 2, counts  # read_calls' parse + read_processes' header line
        assert all(n == 1 for k, n in counts.items() if k != call_file), counts
        assert {names.STATUS, names.TIMELINE_HEADER, names.FINGERPRINT} <= set(counts)


def test_cells_read_their_files_lazily_and_keep_them(tmp_path):
    run = Run.open(_four_cells(tmp_path))
    cell = run.cells[0]
    assert "calls" not in vars(cell) and "timeline" not in vars(cell)  # nothing read by opening the run
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
