"""Bad input meets one line, not a traceback (issue 28): the API's and the marker's `targets`, `merge --output`
into a place that cannot be written, `ls FILE`, a huge scenario, hand-edited run folders (a spec that is a
list, a cell folder deleted, pending cells, garbage call lines for `compare`), and a sampler that keeps dying.
In-process and on run folders built by tests/runfactory.py: no cell runs here."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runfactory import FakeCall, FakeCell, make_run
from typer.testing import CliRunner

import memharness
from memharness.cli import app

pytest_plugins = ["pytester"]
CALLS = [FakeCall("pkg.index", 100, 400, 900, 0.2, 1.0)]


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    (line,) = result.stderr.strip().splitlines()
    return line


# --- the API and the marker (case 10), sample_interval=0 (case 12) -------------------------------------------

def test_api_rejects_bad_targets_and_a_zero_interval_in_one_line():
    for targets, message in (([None], "targets[0] must be a dotted path string such as 'pkg.mod.func', got None"),
                             ([42], "targets[0] must be a dotted path string such as 'pkg.mod.func', got 42"),
                             (None, "targets must be a dotted path or a list of dotted paths (e.g. ['pkg.mod.func']), "
                                    "got None")):
        with pytest.raises(ValueError) as info:
            memharness.profile(targets=targets)
        assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        memharness.profile(targets=["json.dumps"], sample_interval=0)
    assert str(info.value) == "sample_interval must be between 1ms and 60s (None runs no sampler), got 0"
    assert memharness.api.active_profile() is None
    assert memharness.profile(targets="json.dumps", sample_interval=None).sample_interval is None


def test_marker_with_bad_targets_fails_the_test_in_one_line(pytester: pytest.Pytester):
    pytester.makepyfile(test_marked='''
import pytest

@pytest.mark.memharness(targets=[None])
def test_none():
    pass
''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert ("test_marked.py::test_none: @pytest.mark.memharness: targets[0] must be a dotted path string such as "
            "'pkg.mod.func', got None") in text, text
    assert "AttributeError" not in text and "Traceback" not in text


# --- merge --output into what cannot be written (case 11), ls FILE (case 12) ------------------------------

@pytest.fixture
def two_cell_run(tmp_path) -> Path:
    return make_run(tmp_path / "runs", [FakeCell("a", 100, calls=CALLS, samples=4),
                                        FakeCell("a", 200, calls=CALLS, samples=4)])


def test_merge_into_an_unwritable_output_is_one_line_exit_2(two_cell_run, tmp_path):
    line = _one_line_error(_cli("merge", two_cell_run, "--output", "/proc/memharness-merged"))
    assert line.startswith("error: --output /proc/memharness-merged: cannot write /proc/memharness-merged ("), line
    assert line.endswith("); choose a writable --output"), line
    if shutil.which("chattr") is None:
        return
    parent = tmp_path / "frozen"
    parent.mkdir()
    if subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode != 0:
        return
    try:
        line = _one_line_error(_cli("merge", two_cell_run, "--output", parent / "merged"))
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=False)
    assert line == (f"error: --output {parent / 'merged'}: cannot write {parent / 'merged'} (Operation not "
                    f"permitted); choose a writable --output")
    assert list(parent.iterdir()) == []


def test_ls_of_a_file_is_a_one_line_error(two_cell_run):
    line = _one_line_error(_cli("ls", two_cell_run / "manifest.json"))
    assert line == (f"error: {two_cell_run / 'manifest.json'} is a file, not a folder: give the results folder "
                    f"(or a run folder)")


# --- report: a spec that is a list (case 5), a done cell's folder deleted (6), pending cells (12) -------------

def test_report_names_pending_and_missing_cells_and_reads_any_spec(tmp_path):
    run = make_run(tmp_path / "runs", [FakeCell("a", 100, calls=CALLS, samples=4),
                                       FakeCell("a", 200, calls=CALLS, samples=4),
                                       FakeCell("a", 300, calls=CALLS, samples=4, status="failed", cause="exception")])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["scenario_spec"] = ["a list", "not a scenario"]
    manifest["cells"].append({"id": "a__400__r0", "pipeline": "a", "kind": "callable", "size": 400, "repeat": 0,
                              "dir": "cells/a__400__r0", "status": "pending", "cause": None})
    (run / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run / "cells" / "a__200__r0")
    result = _cli("report", run, "--output", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "failed cells: a__300__r0 (exception)" in lines, result.stdout
    assert "pending cells: a__400__r0" in lines, result.stdout
    assert ("missing cells: a__200__r0 (recorded done, but the cell folder is gone; `run --resume` runs them "
            "again)") in lines, result.stdout
    assert "(None)" not in result.stdout
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert {c["id"]: c["status"] for c in summary["failed_cells"]} == {
        "a__200__r0": "missing", "a__300__r0": "failed", "a__400__r0": "pending"}


def test_a_field_of_the_wrong_type_is_named_with_its_article(tmp_path):
    run = make_run(tmp_path / "runs", [FakeCell("a", 100, calls=CALLS, samples=4)])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["cells"][0]["id"] = 42
    (run / "manifest.json").write_text(json.dumps(manifest))
    line = _one_line_error(_cli("report", run))
    assert line == f"memharness report: {run / 'manifest.json'}: cells[0].id is an int, expected a cell id string"


# --- compare warns about garbage call lines as report does (case 12) ----------------------------------------

def test_compare_warns_about_unreadable_call_lines(tmp_path):
    base = make_run(tmp_path / "base", [FakeCell("a", 100, calls=CALLS, samples=4)])
    current = make_run(tmp_path / "current", [FakeCell("a", 100, calls=CALLS, samples=4)])
    (calls,) = (current / "cells" / "a__100__r0" / "calls").glob("*.jsonl")
    lines = calls.read_text().splitlines(keepends=True)
    calls.write_text("".join(lines[:1] + ["not json at all\n"] + lines[1:]))
    result = _cli("compare", base, current)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {current}: 1 unreadable line(s) in call files were skipped, so the calls they held are missing "
        f"from the tables: cells/a__100__r0/calls/{calls.name}:2 (not JSON (Expecting value))"]


# --- the YAML size guard (case 8) ---------------------------------------------------------------------------

def test_a_huge_plain_scenario_is_refused_fast_as_too_many_values(tmp_path):
    options = "".join(f"      k{i}: {i}\n" for i in range(300_000))  # 6 MB, no alias at all
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\ncorpus: {source: synthetic}\nsizes: [10]\npipelines:\n  - name: a\n"
                    "    kind: callable\n    options:\n" + options)
    t = time.perf_counter()
    result = _cli("validate", path)
    seconds = time.perf_counter() - t
    assert result.exit_code != 0, result.output
    assert "the file holds more than 20000 values (keys, values and list items); a scenario holds hundreds" \
        in result.output, result.output
    assert "alias" not in result.output
    assert seconds < 2.0, seconds


# --- a sampler that keeps dying stops the cell (case 3) ---------------------------------------------------

def test_a_sampler_that_keeps_dying_stops_the_cell_as_sampler_lost(tmp_path):
    from memharness.core.clock import now_ns
    from memharness.runner import samplerwatch
    from memharness.runner.exitcause import classify_exit
    from memharness.runner.supervisor import _watch_cell

    cell = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    starts = []

    def start(restart: bool) -> subprocess.Popen:  # a "sampler" that dies at once, every time
        starts.append(restart)
        dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        dead.wait()
        return dead

    watch = samplerwatch.SamplerWatch(start, tmp_path, guarding=True)
    watch.begin()
    try:
        result = _watch_cell(cell, watch, now_ns(), 300, None, lambda: None, lambda: False)
    finally:
        cell.kill()
    assert result.returncode == -signal.SIGKILL
    assert starts == [False, True]  # the restart did not come up: no more tries
    assert [g["why"] for g in result.sampler_gaps] == ["exited with code 3"]
    assert classify_exit(result) == (
        "failed", "sampler_lost", "the timeline sampler died (exited with code 3) and could not be started again "
        "(exited with code 3); max_rss cannot be enforced without it, so the cell was stopped")


def test_a_stop_signal_that_kills_the_cell_alone_is_an_interruption():
    from memharness.runner.exitcause import CellWatch, classify_exit

    assert classify_exit(CellWatch(-signal.SIGTERM)) == (
        "interrupted", "interrupted", "stopped by SIGTERM sent to the cell (not to memharness); --resume runs it "
                                      "again")
    assert classify_exit(CellWatch(-signal.SIGSEGV))[:2] == ("failed", "signal")
