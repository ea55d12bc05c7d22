"""Progress lines off a terminal (`runner/plainprogress.py`): a log of a long cell says how far it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import cli_env, write_scenario

from memharness.runner.plainprogress import DEFAULT_EVERY_S, ENV, PlainProgress, every_from_env


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_every_interval_and_none_before_the_first_interval() -> None:
    clock, lines = _Clock(), []
    plain = PlainProgress(lines.append, 60, clock)
    plain.update(description="[1/2] a__1M__r0")
    for t in range(0, 181, 5):  # ticks every 5 s for 3 minutes
        clock.now = 100.0 + t
        plain.update(live=f"cell {t:6.1f} s  RSS {1000 + t:8.0f} MiB")
    assert lines == ["[1/2] a__1M__r0: cell 60.0 s RSS 1060 MiB", "[1/2] a__1M__r0: cell 120.0 s RSS 1120 MiB",
                     "[1/2] a__1M__r0: cell 180.0 s RSS 1180 MiB"]


def test_a_new_cell_waits_a_whole_interval_and_zero_means_no_lines() -> None:
    clock, lines = _Clock(), []
    plain = PlainProgress(lines.append, 10, clock)
    plain.update(description="[1/2] a", live="cell 1 s")
    clock.now += 9
    plain.update(description="[2/2] b", live="cell 0 s")  # a new cell: its first line 10 s from now
    clock.now += 9
    plain.update(live="cell 9 s")
    assert lines == []
    clock.now += 1
    plain.update(live="cell 10 s")
    assert lines == ["[2/2] b: cell 10 s"]

    silent: list[str] = []
    off = PlainProgress(silent.append, 0, clock)
    for _ in range(5):
        clock.now += 100
        off.update(description="x", live="cell")
    assert silent == []


def test_the_interval_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert every_from_env() == DEFAULT_EVERY_S
    monkeypatch.setenv(ENV, "2.5")
    assert every_from_env() == 2.5
    for bad in ("soon", "-1"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=ENV):
            every_from_env()


LINE = re.compile(r"^\[1/1\] slow__50__r0: cell +([\d.]+) s RSS +(\d+) MiB$", re.M)


def test_a_run_logged_to_a_file_prints_progress_lines_while_the_cell_runs(tmp_path: Path) -> None:
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, "logged", f"""\
        - {{name: slow, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            seconds: 300, release: "{release}"}}}}
        """, "[50]", "[workloads.stage]")
    log = tmp_path / "run.log"
    with open(log, "w", encoding="utf-8") as out:  # a file: not a terminal, so rich draws no live bar
        proc = subprocess.Popen([sys.executable, "-m", "memharness", "run", str(path), "--no-report"],
                                cwd=tmp_path, env={**cli_env(), ENV: "0.3"}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and len(LINE.findall(log.read_text())) < 3:
            time.sleep(0.1)  # polling for the event (three lines written) with a deadline
        seen = LINE.findall(log.read_text())
        assert proc.poll() is None and len(seen) >= 3, log.read_text()
        assert pidfile.exists()  # the lines came while the cell was inside its pipeline
    finally:
        release.touch()
        proc.wait(timeout=180)
    assert proc.returncode == 0, log.read_text()
    seconds = [float(s) for s, _ in seen]
    assert seconds == sorted(seconds) and seconds[-1] > seconds[0]
    assert all(int(rss) > 10 for _, rss in seen)  # the cell's process tree, not an empty reading


def test_a_bad_interval_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "bad", """\
        - {name: ok, kind: callable, options: {function: "workloads:pipeline_ok"}}
        """, "[50]", "[]")
    proc = subprocess.run([sys.executable, "-m", "memharness", "run", str(path)], cwd=tmp_path,
                          env={**cli_env(), ENV: "often"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{ENV}='often': expected seconds" in proc.stderr
    assert not (tmp_path / "results").exists()
    assert os.listdir(tmp_path) == ["bad.yaml"]
