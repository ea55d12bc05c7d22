"""Faults a long run meets (issue 15): stop signals at any moment, a second writer, an edited scenario,
broken manifests, a full disk, an unwritable output folder, leftover processes, `os._exit`.

Every `memharness run` here starts in its own session with default signal dispositions
(`test_runner_failures.memharness`), so a signal sent to its group or to it alone reaches only it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from test_runner_failures import _wait_for, cell, memharness, run_dir_of, write_scenario

MiB = 1 << 20
OK_PIPELINE = '- {name: a, kind: callable, options: {function: "workloads:pipeline_ok"}}\n'


def _procs_of(cell_dir: Path) -> list[psutil.Process]:
    """Live processes of a cell: the cell interpreter and its sampler name the cell folder on their command
    line; its children carry the cell's marker in their environment (checked by the tests of leftovers)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and str(cell_dir) in " ".join(p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _gone(pid: int, timeout: float = 10) -> bool:
    try:
        p = psutil.Process(pid)
        p.wait(timeout)  # not our child: psutil polls until it is gone
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return p.status() == psutil.STATUS_ZOMBIE


def _send(proc: subprocess.Popen, sig: int, target: str) -> None:
    if target == "group":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


def _sleeper(tmp_path: Path, name: str, extra: str = "") -> tuple[Path, Path, Path]:
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, name, f"""\
        - {{name: first, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        - {{name: second, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            seconds: 600, release: "{release}"}}}}
        """, extra=extra)
    return path, pidfile, release


# --- 1. SIGTERM / SIGHUP / SIGINT, to the process group or to the process alone --------------------------

@pytest.mark.parametrize("sig, target", [(signal.SIGTERM, "alone"), (signal.SIGTERM, "group"),
                                         (signal.SIGHUP, "alone"), (signal.SIGINT, "group")],
                         ids=["TERM-alone", "TERM-group", "HUP-alone", "INT-group"])
def test_stop_signal_during_a_cell(tmp_path, sig, target):
    path, pidfile, _ = _sleeper(tmp_path, "stopped")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    cell_pid = _wait_for(pidfile)
    _send(proc, sig, target)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out
    run = run_dir_of(tmp_path, "stopped")
    assert f"finish the run with: memharness run {path} --resume {run}" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c["cause"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done", None), ("second__50__r0", "interrupted", "interrupted")]
    status, d = cell(run, "second__50__r0")
    assert status["status"] == "interrupted"
    assert status["message"] == ("stopped by the user (Ctrl-C)" if sig == signal.SIGINT
                                 else f"stopped by {signal.Signals(sig).name}")
    assert _gone(cell_pid)
    assert _procs_of(d) == []  # neither the cell nor its sampler is left running


def test_sigterm_during_preflight(tmp_path):
    mark = tmp_path / "probe.pid"
    slow = tmp_path / "slowpy"  # an "interpreter" whose probe never ends
    slow.write_text(f"#!/bin/sh\necho $$ > {mark}\nexec sleep 600\n")
    slow.chmod(0o755)
    path = write_scenario(tmp_path, "early", f"""\
        - {{name: a, kind: callable, python: {slow}, options: {{function: "workloads:pipeline_ok"}}}}
        """)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    probe_pid = _wait_for(mark)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert out.strip().splitlines()[-1] == "interrupted by SIGTERM during preflight, nothing was run"
    assert _gone(probe_pid)
    assert not (tmp_path / "results").exists()


# --- 2. Ctrl-C while a cell starts, and a second Ctrl-C 50 ms later ---------------------------------------

def test_double_ctrl_c_while_a_cell_starts(tmp_path):
    path, _, _ = _sleeper(tmp_path, "window")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    status_file = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the moment the second cell is marked running, before it runs
        runs = list((tmp_path / "results" / "window").glob("*/cells/second__50__r0/status.json"))
        if runs:
            try:
                if json.loads(runs[0].read_text())["status"] == "running":
                    status_file = runs[0]
                    break
            except (ValueError, OSError):
                pass
        time.sleep(0.002)
    assert status_file is not None, "the second cell never started"
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    run = run_dir_of(tmp_path, "window")
    assert f"--resume {run}" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["cells"][1]["status"] == "interrupted"
    assert json.loads(status_file.read_text())["status"] == "interrupted"
    assert _procs_of(status_file.parent) == []


# --- 3. one writer per run folder -------------------------------------------------------------------------

def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    path, pidfile, release = _sleeper(tmp_path, "locked")
    first = memharness("run", str(path), "--no-report", cwd=tmp_path)
    _wait_for(pidfile)
    run = run_dir_of(tmp_path, "locked")
    second = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 2, out
    assert out.strip() == (f"error: {run} is in use by another memharness run (pid {first.pid}); "
                           "wait for it to end or stop it first")
    release.write_text("")
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    # the holder is gone (its flock went with it): the folder can be resumed again
    again = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert "resuming: 2 cells already finished, 0 to run" in out


def test_lock_of_a_killed_holder_is_not_stale(tmp_path):
    path, pidfile, release = _sleeper(tmp_path, "crashed")
    first = memharness("run", str(path), "--no-report", cwd=tmp_path)
    cell_pid = _wait_for(pidfile)
    first.kill()  # SIGKILL: no clean-up at all
    first.communicate(timeout=60)
    os.kill(cell_pid, signal.SIGKILL)
    run = run_dir_of(tmp_path, "crashed")
    assert (run / ".lock").read_text().strip() == str(first.pid)
    release.write_text("")
    again = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out


# --- 4. --resume with an edited scenario ------------------------------------------------------------------

def test_resume_with_an_edited_scenario_needs_force_and_records_both(tmp_path):
    path = write_scenario(tmp_path, "edited", """\
        - {name: a, kind: callable, options: {function: "workloads:pipeline_ok", mib: 20}}
        - {name: b, kind: callable, options: {function: "workloads:pipeline_ok", mib: 25}}
        """)
    proc = memharness("run", str(path), "--pipelines", "a", "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    run = run_dir_of(tmp_path, "edited")
    original = path.read_text()
    path.write_text(original.replace("mib: 25}}", "mib: 35}}"))  # pipeline b's options change

    proc = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert out.strip() == (f"error: {path} differs from the scenario {run} was run with: "
                           "pipelines[1].options.mib: 25 -> 35; resume with the same scenario, or pass --force "
                           "to run the remaining cells under the edited one (both are recorded)")
    assert "preflight" not in out

    proc = memharness("run", str(path), "--resume", str(run), "--force", "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c["scenario_rev"]) for c in manifest["cells"]] == [
        ("a__50__r0", "done", 0), ("b__50__r0", "done", 1)]
    revs = manifest["scenario_revisions"]
    assert [(r["rev"], r["file"]) for r in revs] == [(0, "scenario.yaml"), (1, "scenario.r1.yaml")]
    assert revs[0]["spec"]["pipelines"][1]["options"]["mib"] == 25
    assert revs[1]["spec"]["pipelines"][1]["options"]["mib"] == 35
    assert manifest["scenario_spec"] == revs[1]["spec"]
    assert (run / "scenario.yaml").read_text() == original
    assert (run / "scenario.r1.yaml").read_text() == path.read_text()


# --- 5. broken manifests ----------------------------------------------------------------------------------

BROKEN = {
    "list": (b"[]", "expected a JSON object, got list"),
    "no cells": (b'{"scenario": "broken"}', "no list of cells"),
    "not json": (b"{not json", "not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    "empty": (b"", "the file is empty"),
    "binary": (bytes(range(256)) * 4, "not UTF-8 text (byte 128)"),
}


@pytest.mark.parametrize("content, why", BROKEN.values(), ids=list(BROKEN))
def test_resume_of_a_broken_manifest(tmp_path, content, why):
    path = write_scenario(tmp_path, "broken", OK_PIPELINE)
    run = tmp_path / "results" / "broken" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "manifest.json").write_bytes(content)
    proc = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert out.strip() == f"error: {run / 'manifest.json'}: {why}; not a resumable memharness run"


# --- 6. disk full -----------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size mounted under tmp_path (we run as root in CI); unmounted afterwards."""
    mounts = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> None:
    with open(folder / "filler.bin", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * MiB)
        except OSError:
            pass


def test_disk_full_during_a_run_is_recorded_and_resumable(tmp_path, small_disk):
    disk = small_disk("24m")
    flag, fill = tmp_path / "fill.flag", disk / "pipeline-output.bin"
    flag.write_text("")
    path = write_scenario(tmp_path, "full", f"""\
        - {{name: a, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        - {{name: b, kind: callable, options: {{function: "workloads:pipeline_fills_disk", flag: "{flag}",
            fill: "{fill}"}}}}
        - {{name: c, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        """, extra="timeout: 60s\n", output=disk)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 74, out
    (run,) = (disk / "full").iterdir()
    assert "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("disk full writing ") and last.endswith(
        f": free space and resume with: memharness run {path} --resume {run}"), out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c["cause"]) for c in manifest["cells"]] == [
        ("a__50__r0", "done", None), ("b__50__r0", "interrupted", "disk_full"), ("c__50__r0", "pending", None)]
    status, _ = cell(run, "b__50__r0")
    assert (status["status"], status["cause"]) == ("interrupted", "disk_full")

    fill.unlink()  # free space, and let the cell run normally this time
    flag.unlink()
    proc = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [c["status"] for c in manifest["cells"]] == ["done", "done", "done"]


def test_preflight_on_a_full_disk_leaves_no_folder(tmp_path, small_disk):
    disk = small_disk("2m")
    _fill(disk)
    path = write_scenario(tmp_path, "nospace", OK_PIPELINE, output=disk)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1] == (f"  {path}:4: output folder {disk / 'nospace'} is not writable: cannot "
                                            "write a 4.0 MiB test file: No space left on device")
    assert sorted(p.name for p in disk.iterdir()) == ["filler.bin"]


def test_preflight_estimates_the_corpus_cache(tmp_path, small_disk, monkeypatch):
    disk = small_disk("16m")
    monkeypatch.setenv("MEMHARNESS_CACHE", str(disk / "cache"))
    path = write_scenario(tmp_path, "big", OK_PIPELINE,
                          sizes="[100k]")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    line = out.strip().splitlines()[-1]
    assert line.startswith(f"  {path}:3: not enough disk space at {disk / 'cache'}: "), out
    assert "corpus cache 100k records ~" in line
    assert not (disk / "cache" / "corpora").exists() or not any((disk / "cache" / "corpora").iterdir())
    assert not (tmp_path / "results").exists()


# --- 7. output folder not writable ------------------------------------------------------------------------

def test_output_folder_blocked_by_a_file(tmp_path):
    path = write_scenario(tmp_path, "blocked", OK_PIPELINE)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "blocked").write_text("not a folder")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert out.strip().splitlines()[-2:] == [
        "preflight failed, nothing was run:",
        f"  {path}:4: output folder {tmp_path / 'results' / 'blocked'}: a file is in the way (not a folder)"]


def test_output_folder_immutable(tmp_path):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    folder = tmp_path / "results" / "frozen"
    folder.mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip(f"this filesystem does not take the immutable attribute ({tmp_path})")
    try:
        path = write_scenario(tmp_path, "frozen", OK_PIPELINE)
        proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
        out, _ = proc.communicate(timeout=120)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    assert proc.returncode == 2, out
    assert out.strip().splitlines()[-2:] == [
        "preflight failed, nothing was run:",
        f"  {path}:4: output folder {folder} is not writable: cannot write a 4.0 MiB test file: "
        "Operation not permitted"]
    assert list(folder.iterdir()) == []


# --- 8. os._exit, leftover processes ----------------------------------------------------------------------

def test_os_exit_is_recorded_as_exit(tmp_path):
    path = write_scenario(tmp_path, "exits",
                          '- {name: a, kind: callable, options: {function: "workloads:pipeline_exits", code: 3}}\n')
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    status, _ = cell(run_dir_of(tmp_path, "exits"), "a__50__r0")
    assert (status["status"], status["cause"], status["message"], status["exit_code"]) == (
        "failed", "exit", "exited with code 3", 3)


@pytest.mark.parametrize("policy", ["kill", "keep"])
def test_detached_helper_left_behind(tmp_path, policy):
    pidfile = tmp_path / "helper.pid"
    path = write_scenario(tmp_path, "leaves", f"""\
        - {{name: a, kind: callable, options: {{function: "workloads:pipeline_leaves_helper", pidfile: "{pidfile}"}}}}
        """, extra="" if policy == "kill" else f"leftovers: {policy}\n")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    helper = int(pidfile.read_text())
    try:
        assert proc.returncode == 0, out
        status, _ = cell(run_dir_of(tmp_path, "leaves"), "a__50__r0")
        assert status["status"] == "done"
        (left,) = status["leftovers"]
        assert left["pid"] == helper
        assert 30 * MiB < left["rss"] < 200 * MiB
        assert "time.sleep(600)" in left["cmdline"]
        if policy == "kill":
            assert left["killed"] is True
            assert _gone(helper)
            assert f"left 1 processes behind (pids {helper}, RSS " in out and "): killed" in out
        else:
            assert "killed" not in left
            assert psutil.Process(helper).is_running()
    finally:
        try:
            os.kill(helper, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- 9. issue 28: one owner per cell, a stop that reaches the cell first, a killed sampler, a frozen folder -----

QUICK = "MEMHARNESS_TEST_QUICK"  # a resumed cell of `pipeline_sleeps` with `quick_env` returns at once


def _wait_until(what: str, check, timeout: float = 120):
    """Poll `check()` until it returns something true (an event: a process or a file appeared); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _samplers(cell_dir: Path) -> list[int]:
    return [p.pid for p in _procs_of(cell_dir) if "memharness.core.sampler" in " ".join(p.cmdline())]


def _stopped_run(tmp_path: Path, name: str) -> tuple[Path, subprocess.Popen, int, Path]:
    """A run of `first` (quick) then `second` (sleeps, or returns at once under QUICK), caught while `second`
    sleeps: (scenario, the run's process, the cell's pid, the cell folder)."""
    pidfile = tmp_path / "cell.pid"
    path = write_scenario(tmp_path, name, f"""\
        - {{name: first, kind: callable, options: {{function: "workloads:pipeline_closes_stdio"}}}}
        - {{name: second, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            seconds: 600, quick_env: {QUICK}}}}}
        """)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    cell_pid = _wait_for(pidfile)
    return path, proc, cell_pid, run_dir_of(tmp_path, name) / "cells" / "second__50__r0"


def test_resume_after_a_killed_supervisor_stops_its_orphan_and_redoes_missing_cells(tmp_path):
    """SIGKILL of `memharness run` leaves its cell and sampler running; `--resume` stops them (and says so)
    before the cell runs again in a folder of its own; the orphan's files are kept aside, never mixed in. A
    done cell whose folder was deleted runs again. A pipeline that closed stdout and stderr is done, and says
    so (issue 28, cases 1, 6 and 7)."""
    path, proc, orphan, cell_dir = _stopped_run(tmp_path, "orphan")
    orphan_sampler = _wait_until("the sampler", lambda: _samplers(cell_dir))[0]
    proc.kill()
    proc.communicate(timeout=60)
    run = cell_dir.parent.parent
    shutil.rmtree(run / "cells" / "first__50__r0")  # a done cell's folder, gone
    assert psutil.pid_exists(orphan) and psutil.pid_exists(orphan_sampler)

    resumed = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path, extra_env={QUICK: "1"})
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "Traceback" not in out, out
    assert f"resuming: cell second__50__r0: stopped 2 processes (pids {min(orphan, orphan_sampler)}, " \
           f"{max(orphan, orphan_sampler)}) that an earlier memharness run (pid {proc.pid}, no longer running) " \
           f"left running; SIGTERM" in out, out  # (", then SIGKILL after 5 s" if one ignored SIGTERM that long)
    assert "resuming: cell first__50__r0 is recorded done but its folder is missing: it runs again" in out, out
    assert _gone(orphan) and _gone(orphan_sampler)
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c.get("attempts")) for c in manifest["cells"]] == [
        ("first__50__r0", "done", None), ("second__50__r0", "done", ["attempts/second__50__r0/1"])]
    # the orphan's attempt, whole and apart: its own root pid, calls and one sampler session
    old = run / "attempts" / "second__50__r0" / "1"
    assert json.loads((old / "timeline.json").read_text())["root_pid"] == orphan
    assert [f.name for f in (old / "calls").iterdir()] == [f"{orphan}.jsonl"]
    assert not (old / "work").exists()
    # the new attempt: nothing of the orphan in it
    new_root = json.loads((cell_dir / "timeline.json").read_text())["root_pid"]
    assert new_root != orphan
    assert json.loads((cell_dir / "processes.json").read_text())["root_pid"] == new_root
    assert [f.name for f in (cell_dir / "calls").iterdir()] == [f"{new_root}.jsonl"]
    assert (cell_dir / "sampler.log").read_text().count('"ticks"') == 1
    # the pipeline that closed its stdout and stderr: done, and the record says why its logs stop
    status, d = cell(run, "first__50__r0")
    assert (status["status"], status["cause"], status["stdio_closed"]) == ("done", None, ["stdout", "stderr"])
    assert status["message"] == "the pipeline closed its stdout and stderr; what it printed after that is lost"
    assert "memharness: the pipeline closed its stdout and stderr" in (d / "stderr.log").read_text()
    assert "first__50__r0: done in" in out and "(the pipeline closed its stdout and stderr;" in out


def test_stop_signal_that_reaches_the_cell_first_is_an_interruption(tmp_path):
    """SIGTERM to the supervisor, the cell and the sampler at once (a container stop), delivered to the cell
    before the supervisor: the cell is `interrupted`, and `--resume` runs it again (issue 28, case 2)."""
    path, proc, cell_pid, cell_dir = _stopped_run(tmp_path, "groupstop")
    sampler = _wait_until("the sampler", lambda: _samplers(cell_dir))[0]
    os.kill(proc.pid, signal.SIGSTOP)  # the supervisor sees its SIGTERM only after the cell died of its own
    try:
        for pid in (cell_pid, sampler, proc.pid):
            os.kill(pid, signal.SIGTERM)
        _wait_until("the cell's death", lambda: _dead(cell_pid))  # a zombie until the supervisor runs again
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    run = cell_dir.parent.parent
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c["cause"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done", None), ("second__50__r0", "interrupted", "interrupted")]
    status, _ = cell(run, "second__50__r0")
    assert (status["status"], status["message"]) == ("interrupted", "stopped by SIGTERM")
    assert out.strip().splitlines()[-1] == f"interrupted (SIGTERM); finish the run with: memharness run {path} " \
                                           f"--resume {run}"

    resumed = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path, extra_env={QUICK: "1"})
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resuming: 1 cells already finished, 1 to run" in out
    assert cell(run, "second__50__r0")[0]["status"] == "done"


def test_a_killed_sampler_is_restarted_the_gap_recorded_and_max_rss_still_enforced(tmp_path):
    """`kill -KILL` of the sampler mid-cell: the supervisor starts it again, status.json and the report name
    the gap, and the cell that then grows past max_rss is still stopped (issue 28, case 3)."""
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, "nosampler", f"""\
        - {{name: grows, kind: callable, options: {{function: "workloads:pipeline_grows_on_release",
            pidfile: "{pidfile}", release: "{release}", step_mib: 64}}}}
        """, extra="max_rss: 600MiB\ntimeout: 120s\n")
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    _wait_for(pidfile)
    cell_dir = run_dir_of(tmp_path, "nosampler") / "cells" / "grows__50__r0"
    first = _wait_until("the sampler", lambda: _samplers(cell_dir))[0]
    os.kill(first, signal.SIGKILL)
    _wait_until("a new sampler", lambda: [p for p in _samplers(cell_dir) if p != first])
    release.write_text("")  # now grow past max_rss: only the new sampler can stop it
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    status, _ = cell(run_dir_of(tmp_path, "nosampler"), "grows__50__r0")
    assert (status["status"], status["cause"]) == ("failed", "max_rss"), status
    (gap,) = status["sampler_gaps"]
    assert gap["why"] == "killed by SIGKILL" and status["t_start_ns"] < gap["from_ns"] < gap["to_ns"]
    header = json.loads((cell_dir / "timeline.json").read_text())
    assert header["restarted"] is True
    assert json.loads((cell_dir / "guard.json").read_text())["tree_rss"] > 600 * MiB

    from typer.testing import CliRunner

    from memharness.cli import app

    report = CliRunner().invoke(app, ["report", str(cell_dir.parent.parent)])
    assert report.exit_code == 0, report.output
    seconds = (gap["to_ns"] - gap["from_ns"]) / 1e9
    start = (gap["from_ns"] - status["t_start_ns"]) / 1e9
    line = (f"warning: the timeline sampler of 1 cell(s) was not running for a while, so their timelines have a gap "
            f"and max_rss was not enforced then: grows__50__r0 {seconds:.1f} s from {start:.1f} s (killed by SIGKILL)")
    assert line in report.stdout.splitlines(), report.stdout
    summary = json.loads((cell_dir.parent.parent / "report" / "summary.json").read_text())
    assert [(g["cell"], g["why"]) for g in summary["sampler_gaps"]] == [("grows__50__r0", "killed by SIGKILL")]


def _freeze(how: str, run: Path, cell_dir: Path) -> list[list[str]]:
    """Make the run folder unwritable mid-run; the commands that undo it. `immutable`: chattr +i on the cell
    folder, `cells/` and the run folder (nothing can be recorded); `read-only`: a read-only bind mount over the
    cell folder alone (as a remount read-only does to paths; the manifest can still be written)."""
    if how == "immutable":
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed")
        undo = []
        for folder in (cell_dir, run / "cells", run):
            if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
                pytest.skip(f"this filesystem does not take the immutable attribute ({folder})")
            undo.append(["chattr", "-i", str(folder)])
        return undo
    for step in (["mount", "--bind", str(cell_dir), str(cell_dir)], ["mount", "-o", "remount,ro,bind", str(cell_dir)]):
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot bind-mount read-only here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    return [["umount", str(cell_dir)]]


@pytest.mark.parametrize("how, why", [("immutable", "Operation not permitted"), ("read-only", "Read-only file system")])
def test_run_folder_made_unwritable_mid_run_ends_in_one_line_and_exit_74(tmp_path, how, why):
    """The run folder stops being writable while a cell runs: one line, exit 74 (no chained traceback from
    releasing `.reserve`), the manifest says `write_error` where it can still be written; once writable again
    `--resume` finishes the run (issue 28, case 4)."""
    path, proc, cell_pid, cell_dir = _stopped_run(tmp_path, "frozenrun")
    run = cell_dir.parent.parent
    undo = _freeze(how, run, cell_dir)
    try:
        os.kill(cell_pid, signal.SIGKILL)  # the cell ends; its status cannot be written
        out, _ = proc.communicate(timeout=120)
    finally:
        for step in undo:
            subprocess.run(step, check=False)
    assert proc.returncode == 74, out
    assert "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"cannot write {run}/") and f"({why}): make the run folder writable again " \
        "(permissions, chattr -i, a read-only mount) and resume with: " in last, out
    assert last.endswith(f"resume with: memharness run {path} --resume {run}"), out
    assert "free space" not in last
    assert _procs_of(cell_dir) == []
    second = json.loads((run / "manifest.json").read_text())["cells"][1]
    assert (second["status"], second["cause"]) == (("running", None) if how == "immutable" else
                                                   ("interrupted", "write_error"))

    resumed = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path, extra_env={QUICK: "1"})
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert [c["status"] for c in json.loads((run / "manifest.json").read_text())["cells"]] == ["done", "done"]


def test_dry_run_checks_disk_space(tmp_path, small_disk):
    """`--dry-run` runs every preflight check that starts no cell, the disk-space estimate included (issue 28,
    case 9): a 16 MiB disk takes the 4 MiB probe file but not an hour of timeline."""
    disk = small_disk("16m")
    path = write_scenario(tmp_path, "tight", OK_PIPELINE, output=disk)
    proc = memharness("run", str(path), "--dry-run", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "dry run: preflight passed" not in out
    assert out.strip().splitlines()[-1].startswith(f"  {path}:4: not enough disk space at {disk / 'tight'}: "), out
    assert list(disk.iterdir()) == []
