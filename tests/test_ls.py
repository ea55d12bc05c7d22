"""`memharness ls`: runs under a results folder with their cell counts."""

from __future__ import annotations

from runfactory import FakeCall, FakeCell, make_run
from typer.testing import CliRunner

from memharness.cli import app


def test_ls_lists_runs_with_counts(tmp_path):
    call = FakeCall("pkg.f", 100, 200, 300, 0.1, 0.5)
    make_run(tmp_path, [FakeCell("a", 100, calls=[call]), FakeCell("a", 200, status="failed", cause="timeout"),
                        FakeCell("b", 100, status="pending")], scenario="demo", run_id="20260101-000000")
    make_run(tmp_path, [FakeCell("a", 100, calls=[call])], scenario="other", run_id="r2")
    result = CliRunner().invoke(app, ["ls", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "/demo/" in line or "/other/" in line]
    assert len(rows) == 2
    demo = rows[0].split("│") if "│" in rows[0] else rows[0].split()
    cells = [c.strip() for c in demo if c.strip()]
    assert cells[:6] == ["demo", "20260101-000000", "1", "1", "1", "3"]


def test_ls_of_missing_folder(tmp_path):
    result = CliRunner().invoke(app, ["ls", str(tmp_path / "nope")])
    assert result.exit_code == 2


BROKEN_MANIFESTS = {
    "garbage": (b"this is not json at all", "not valid JSON"),
    "empty": (b"", "empty file"),
    "truncated": (b'{"format": "memharness-run", "version": 1, "cells": [{"id": "a__1', "truncated JSON"),
    "binary": (bytes(range(256)) * 4, "not a text file"),
    "list": (b"[]", "expected a JSON object, got a list"),
    "no_cells": (b'{"format": "memharness-run", "scenario": "x"}', "no 'cells' list"),
}


def test_ls_lists_broken_runs_and_carries_on(tmp_path):
    call = FakeCall("pkg.f", 100, 200, 300, 0.1, 0.5)
    make_run(tmp_path, [FakeCell("a", 100, calls=[call])], scenario="good", run_id="r-good")
    for name, (content, _) in BROKEN_MANIFESTS.items():
        (tmp_path / "broken" / name).mkdir(parents=True)
        (tmp_path / "broken" / name / "manifest.json").write_bytes(content)
    result = CliRunner().invoke(app, ["ls", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    good = [line for line in result.output.splitlines() if "/good/" in line]
    assert len(good) == 1 and "r-good" in good[0]
    for name, (_, reason) in BROKEN_MANIFESTS.items():
        row = [line for line in result.output.splitlines() if f"/broken/{name} " in line]
        assert row, f"{name} not listed:\n{result.output}"
        assert f"broken: {reason}" in row[0], row[0]


def test_report_on_broken_manifest_is_one_line_exit_2(tmp_path):
    for name, (content, reason) in BROKEN_MANIFESTS.items():
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "manifest.json").write_bytes(content)
        result = CliRunner().invoke(app, ["report", str(run_dir)])
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.strip() == f"memharness report: {run_dir / 'manifest.json'}: " + \
            result.stderr.strip().split(": ", 2)[2], result.stderr
        assert reason in result.stderr and "\n" not in result.stderr.strip(), result.stderr
        assert not (run_dir / "report").exists()


def test_read_manifest_api(tmp_path):
    import pytest

    from memharness.results import BrokenRunError, NotARunError, read_manifest

    run_dir = make_run(tmp_path, [FakeCell("a", 100)], scenario="demo", run_id="r1")
    assert read_manifest(run_dir)["cells"][0]["id"] == "a__100__r0"
    with pytest.raises(NotARunError) as info:
        read_manifest(tmp_path)
    assert isinstance(info.value, BrokenRunError) and info.value.reason == "no manifest.json"
    assert str(info.value).startswith(f"{tmp_path} is not a memharness run folder (no manifest.json); run folders "
                                      f"below it: {run_dir}")
    (run_dir / "manifest.json").write_text('{"format": "memharness-run", "cells": [{"id": "x"}]}')
    with pytest.raises(BrokenRunError) as info:
        read_manifest(run_dir)
    assert info.value.path == run_dir / "manifest.json"
    assert info.value.reason == "cells[0] has no 'pipeline', 'size', 'status'"
    assert str(info.value) == f"{run_dir / 'manifest.json'}: cells[0] has no 'pipeline', 'size', 'status'"
