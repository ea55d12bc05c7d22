"""`memharness report` when the report cannot be written: a full disk (a small tmpfs mounted by the test)
and an output that is read-only or blocked by a file. One line, a distinct exit code, no traceback, and no
half-written or temporary file left."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import Result
from runfactory import FakeCall, FakeCell, make_run
from typer.testing import CliRunner

from memharness.cli import app


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=True)


@contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    _mount_tmpfs(where, options)
    try:
        yield where
    finally:
        _umount(where)


def _report_fails(run: Path, out: Path, exit_code: int) -> Result:
    """`memharness report RUN --output OUT`, which must fail with `exit_code` and a message, not a traceback."""
    result = CliRunner().invoke(app, ["report", str(run), "--output", str(out)])
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def small_run(tmp_path) -> Path:
    calls = [FakeCall("pkg.index", 100, 400, 900, 0.2, 3.0, children=[FakeCall("pkg.kmeans", 150, 300, 880, 1, 2)])]
    return make_run(tmp_path / "runs", [FakeCell("a", 100, calls=calls), FakeCell("b", 100, calls=calls),
                                        FakeCell("a", 200, calls=calls), FakeCell("b", 200, calls=calls)])


def _left_over(folder: Path) -> list[str]:
    """Temporary files, and files that are not complete (every JSON parses, every PNG has its end chunk)."""
    bad = []
    for f in folder.rglob("*"):
        if not f.is_file():
            continue
        if f.name.endswith(".tmp"):
            bad.append(f"temp file {f}")
        elif f.suffix == ".json":
            try:
                json.loads(f.read_text())
            except ValueError:
                bad.append(f"half-written {f}")
        elif f.suffix == ".png" and not f.read_bytes().endswith(b"IEND\xaeB`\x82"):
            bad.append(f"half-written {f}")
    return bad


def test_report_on_full_disk_is_one_line_and_leaves_no_half_file(small_run, tmp_path):
    with _tmpfs(tmp_path / "small-disk", "size=96k") as mnt:
        out = mnt / "report"
        result = _report_fails(small_run, out, 3)  # DISK_FULL in commands/report.py
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"memharness report: disk full writing {out}/"), line
        assert line.endswith(f": free space and rerun memharness report {small_run} --output {out}"), line
        assert _left_over(mnt) == []
        # free space (grow the tmpfs) and rerun: the report completes in the same folder
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        again = CliRunner().invoke(app, ["report", str(small_run), "--output", str(out)])
        assert again.exit_code == 0, again.output
        assert (out / "index.html").exists() and _left_over(mnt) == []


def test_report_into_read_only_output(small_run, tmp_path):
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as mnt:
        out = mnt / "report"
        result = _report_fails(small_run, out, 2)
        assert result.stderr.strip() == (f"memharness report: cannot write {out}: Read-only file system; "
                                         "choose a writable --output")


def test_report_into_output_blocked_by_a_file(small_run, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "report"
    result = _report_fails(small_run, out, 2)
    assert result.stderr.strip() == (f"memharness report: cannot write {out}: Not a directory; "
                                     "choose a writable --output")


# --- garbage in a call file ---------------------------------------------------------------------------


def _insert_garbage(calls_file: Path, at: int, garbage: str) -> None:
    lines = calls_file.read_text().splitlines(keepends=True)
    calls_file.write_text("".join(lines[:at] + [garbage] + lines[at:]))


def test_garbage_line_in_the_middle_is_counted_torn_last_line_is_not(small_run):
    from memharness.core.records import read_calls

    cell = small_run / "cells" / "a__100__r0"
    (calls_file,) = (cell / "calls").glob("*.jsonl")
    before = read_calls(cell)
    assert before.bad_lines == [] and len(before) == 2
    _insert_garbage(calls_file, 2, "\x00\x00garbage{\n")  # after the header and the first B event
    _insert_garbage(calls_file, 4, '{"ev": "B", "id": "9:9"}\n')  # an event without its fields
    with open(calls_file, "a") as fh:
        fh.write('{"ev": "B", "id": "1:99", "tar')  # torn last line: a process killed mid-write
    after = read_calls(cell)
    assert [c.target for c in after] == [c.target for c in before] and all(c.complete for c in after)
    assert [(b.file, b.line) for b in after.bad_lines] == [(calls_file, 3), (calls_file, 5)]
    assert after.bad_lines[0].reason.startswith("not JSON") and after.bad_lines[1].reason == "B event with no 'target'"


def test_report_warns_about_garbage_lines(small_run, tmp_path):
    cell = small_run / "cells" / "b__200__r0"
    (calls_file,) = (cell / "calls").glob("*.jsonl")
    _insert_garbage(calls_file, 2, "not json at all\n")
    out = tmp_path / "rep"
    result = CliRunner().invoke(app, ["report", str(small_run), "--output", str(out)])
    assert result.exit_code == 0, result.output
    expected = (f"warning: 1 unreadable line(s) in call files were skipped, so the calls they held are missing "
                f"from the tables: cells/b__200__r0/calls/{calls_file.name}:3 (not JSON (Expecting value))")
    assert expected in result.stdout.splitlines(), result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unreadable_call_lines"] == [{"cell": "b__200__r0", "file": f"calls/{calls_file.name}",
                                                 "line": 3, "reason": "not JSON (Expecting value)"}]
    assert "Warning: 1 unreadable line(s) in call files" in (out / "index.html").read_text()
    # the calls around the garbage line still count: every cell has its two targets
    assert {(r["pipeline"], r["size"]) for r in summary["rows"] if r["target"] == "pkg.kmeans"} == {
        ("a", 100), ("b", 100), ("a", 200), ("b", 200)}


@pytest.mark.parametrize(("name", "garbage"), [
    ("status.json", b"{not json"), ("targets.json", b"\x00\xff\xfe binary"), ("fingerprint.json", b"[1, 2]"),
    ("timeline.json", b"{not json"), ("processes.json", b"\x00\xff\xfe binary"), ("cell_info.json", b"[1, 2]")])
def test_a_broken_cell_file_is_a_warning_not_a_traceback(small_run, tmp_path, name, garbage):
    """A cell JSON file that is not JSON, not text or not an object: the report still renders every table,
    names the file and why in one warning line, and lists it in summary.json."""
    (small_run / "cells" / "b__200__r0" / name).write_bytes(garbage)
    out = tmp_path / "rep"
    result = CliRunner().invoke(app, ["report", str(small_run), "--output", str(out)])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((out / "summary.json").read_text())["unreadable_files"]
    assert entry["cell"] == "b__200__r0" and entry["file"] == name
    why = {b"{": "not JSON", b"\x00": "not UTF-8 text", b"[": "a JSON list, not an object"}[garbage[:1]]
    assert entry["reason"].startswith(why), entry
    warning = f"cells/b__200__r0/{name} ({entry['reason']})"
    assert any(line.startswith("warning: 1 cell file(s) could not be read") and warning in line
               for line in result.stdout.splitlines()), result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["pipeline"], r["size"]) for r in summary["rows"] if r["target"] == "pkg.kmeans"} == {
        ("a", 100), ("b", 100), ("a", 200), ("b", 200)}
