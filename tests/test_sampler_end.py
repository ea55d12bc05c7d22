"""How a sampler's end is told apart: one that saw the tree go (exit 0, `stopped_by: tree_gone`) from one
stopped by a signal (exit 128 + the signal), and the supervisor's watch, which must not call a sampler dead
(and record a gap) when the root is only slow to exit after its memory is gone, as a 21 GiB cell is."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from memharness.core.session import start_sampler
from memharness.runner.samplerwatch import SamplerWatch
from memharness.runner.supervisor import _watch_cell

# A root that waits for a file to appear (checked every 10 ms), then exits.
WAITER = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.01)\n"


def _root(release: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WAITER, str(release)])


def _exited(rc: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({rc})"])
    proc.wait()
    return proc


def test_sampler_exit_code_says_why_it_stopped(tmp_path: Path) -> None:
    release = tmp_path / "release"
    root = _root(release)
    sampler = start_sampler(root.pid, tmp_path / "a", 0.02)
    sampler.terminate()
    assert sampler.wait(timeout=60) == 128 + signal.SIGTERM
    assert json.loads((tmp_path / "a" / "timeline.json").read_text())["stopped_by"] == "SIGTERM"
    sampler = start_sampler(root.pid, tmp_path / "b", 0.02)
    release.write_text("")
    assert root.wait(timeout=60) == 0 and sampler.wait(timeout=60) == 0
    assert json.loads((tmp_path / "b" / "timeline.json").read_text())["stopped_by"] == "tree_gone"


def test_a_sampler_that_saw_the_tree_go_is_not_a_gap_while_the_root_finishes_exiting(tmp_path: Path) -> None:
    """The sampler exits 0 while the root has not been reaped yet: the watch waits for the root instead of
    restarting the sampler, so no gap is recorded."""
    release = tmp_path / "release"
    root = _root(release)
    starts: list[bool] = []
    asked = []

    def start(restart: bool) -> subprocess.Popen:
        starts.append(restart)
        return _exited(0)

    def stop_requested() -> None:
        # asked once per turn of the watch; the second time comes only from a watch that waits for the root
        # after seeing the sampler gone: the root leaves then (one without that wait restarts the sampler)
        asked.append(1)
        if len(asked) == 2:
            release.write_text("")

    watch = SamplerWatch(start, tmp_path, guarding=True)
    watch.begin()
    try:
        result = _watch_cell(root, watch, 0, None, None, stop_requested, None)
    finally:
        release.write_text("")
    assert result.returncode == 0 and starts == [False] and result.sampler_gaps == []


def test_a_sampler_stopped_by_a_signal_while_the_root_runs_on_is_restarted_with_a_gap(tmp_path: Path) -> None:
    release = tmp_path / "release"
    root = _root(release)
    starts: list[bool] = []

    def start(restart: bool) -> subprocess.Popen:
        starts.append(restart)
        if not restart:
            return _exited(128 + signal.SIGTERM)
        release.write_text("")  # the new sampler is up; let the cell finish
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    watch = SamplerWatch(start, tmp_path, guarding=True)
    watch.begin()
    try:
        result = _watch_cell(root, watch, 0, None, None, lambda: None, None)
    finally:
        watch.proc.kill()
    assert result.returncode == 0 and starts == [False, True]
    (gap,) = result.sampler_gaps
    assert gap["why"] == "exited with code 143" and gap["to_ns"] >= gap["from_ns"]
