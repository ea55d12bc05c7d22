"""Every way a cell can end is recorded with its cause, partial records are kept, other cells still run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cli import default_stop_signals

from memharness.core.records import read_calls, read_timeline

TESTS = Path(__file__).resolve().parent
MiB = 1 << 20


def write_scenario(tmp_path: Path, name: str, pipelines: str, extra: str = "", sizes: str = "[50]",
                   output: Path | None = None) -> Path:
    """`tmp_path/<name>.yaml`, writing its runs into `output` (default `tmp_path/results`)."""
    text = textwrap.dedent(f"""\
        name: {name}
        corpus: {{source: synthetic, seed: 3}}
        sizes: {sizes}
        output: {output or tmp_path / "results"}
        sample_interval: 20ms
        targets: [workloads.stage]
        """) + extra + "pipelines:\n" + textwrap.indent(textwrap.dedent(pipelines), "  ")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def memharness(*args: str, cwd: Path, extra_env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    """`memharness ARGS` in its own session (signals reach it and its group only), output captured."""
    # the tests folder (workloads) and this checkout (not whichever memharness the venv has installed)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]), **(extra_env or {}))
    return subprocess.Popen([sys.executable, "-m", "memharness", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_stop_signals, **kw)


def run_dir_of(tmp_path: Path, name: str) -> Path:
    (run,) = (tmp_path / "results" / name).iterdir()
    return run


def cell(run: Path, cid: str) -> tuple[dict, Path]:
    d = run / "cells" / cid
    return json.loads((d / "status.json").read_text()), d


# One cell for each way a cell can end, and two good ones around them (the Ray executor runs the same matrix).
FAILURE_PIPELINES = """\
        - {name: ok, kind: callable, options: {function: "workloads:pipeline_ok", mib: 20}}
        - {name: raises, kind: callable, options: {function: "workloads:pipeline_raises"}}
        - {name: grows, kind: callable, options: {function: "workloads:pipeline_grows", step_mib: 64}}
        - {name: sleeps, kind: callable, options: {function: "workloads:pipeline_sleeps", seconds: 600}}
        - {name: ok2, kind: callable, options: {function: "workloads:pipeline_ok", mib: 30}}
        """
FAILURE_LIMITS = "max_rss: 600MiB\ntimeout: 20s\n"


def test_exception_max_rss_timeout_recorded_and_other_cells_complete(tmp_path):
    path = write_scenario(tmp_path, "failures", FAILURE_PIPELINES, extra=FAILURE_LIMITS)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    run = run_dir_of(tmp_path, "failures")
    manifest = json.loads((run / "manifest.json").read_text())
    assert {c["id"]: (c["status"], c["cause"]) for c in manifest["cells"]} == {
        "ok__50__r0": ("done", None),
        "raises__50__r0": ("failed", "exception"),
        "grows__50__r0": ("failed", "max_rss"),
        "sleeps__50__r0": ("failed", "timeout"),
        "ok2__50__r0": ("done", None),
    }

    status, d = cell(run, "raises__50__r0")
    assert status["message"] == "ValueError: boom after 50 passages"
    assert "Traceback" in json.loads((d / "error.json").read_text())["traceback"]
    calls = {c.target: c for c in read_calls(d)}
    assert calls["workloads.stage"].complete
    assert calls["phase:run"].error == "ValueError: boom after 50 passages"

    status, d = cell(run, "grows__50__r0")
    assert status["message"].startswith("process tree RSS ") and "crossed max_rss 600 MiB; killed" in status["message"]
    guard = json.loads((d / "guard.json").read_text())
    assert guard["tree_rss"] > 600 * MiB
    stages = [c for c in read_calls(d) if c.target == "workloads.stage"]
    assert len(stages) >= 5 and sum(c.complete for c in stages) >= 4  # records up to the kill are kept
    assert [c.target for c in read_calls(d) if not c.complete] == ["phase:run"] or not stages[-1].complete
    assert read_timeline(d)["value"].max() > 600 * MiB

    status, d = cell(run, "sleeps__50__r0")
    assert status["message"] == "ran longer than the timeout of 20 s; killed"
    assert 20 <= status["wall_seconds"] < 44
    open_calls = [c.target for c in read_calls(d) if not c.complete]
    assert open_calls == ["phase:run"]
    assert [c.target for c in read_calls(d) if c.complete and c.target == "workloads.stage"]

    for cid, mib in (("ok__50__r0", 20), ("ok2__50__r0", 30)):
        _, d = cell(run, cid)
        (stage,) = [c for c in read_calls(d) if c.target == "workloads.stage"]
        assert abs(stage.increment - mib * MiB) < 0.05 * mib * MiB
        assert (d / "work" / "out.txt").read_text().startswith("50 ")


def _wait_for(path: Path, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def test_sigkill_from_outside_is_recorded(tmp_path):
    pidfile = tmp_path / "cell.pid"
    path = write_scenario(tmp_path, "killed", f"""\
        - {{name: victim, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}"}}}}
        - {{name: after, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        """)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    os.kill(_wait_for(pidfile), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    run = run_dir_of(tmp_path, "killed")
    status, d = cell(run, "victim__50__r0")
    assert (status["status"], status["cause"]) == ("failed", "sigkill")
    assert status["message"] == "killed by SIGKILL from outside the harness"
    assert [c.target for c in read_calls(d) if c.complete] == ["phase:load_corpus", "phase:prepare",
                                                                 "workloads.stage"]
    assert cell(run, "after__50__r0")[0]["status"] == "done"


def test_ctrl_c_then_resume_finishes_without_redoing(tmp_path):
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, "resumable", f"""\
        - {{name: first, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        - {{name: second, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            seconds: 600, release: "{release}"}}}}
        - {{name: third, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        """)
    proc = memharness("run", str(path), "--no-report", cwd=tmp_path)
    cell_pid = _wait_for(pidfile)  # the second cell is inside its pipeline
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "--resume" in out
    assert not _alive(cell_pid)
    run = run_dir_of(tmp_path, "resumable")
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done"), ("second__50__r0", "interrupted"), ("third__50__r0", "pending")]
    first_before = cell(run, "first__50__r0")[0]

    # the resumed run must not sleep: the second cell returns at once once the release file exists
    release.write_text("")
    proc = memharness("run", str(path), "--resume", str(run), "--no-report", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming: 1 cells already finished, 2 to run" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done"), ("second__50__r0", "done"), ("third__50__r0", "done")]
    assert cell(run, "first__50__r0")[0] == first_before  # not redone
    assert len(list((tmp_path / "results" / "resumable").iterdir())) == 1


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    path = write_scenario(tmp_path, "r2", '- {name: a, kind: callable, options: {function: "workloads:pipeline_ok"}}\n')
    proc = memharness("run", str(path), "--resume", str(tmp_path), cwd=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out.strip() == f"error: --resume {tmp_path}: not a memharness run folder (no manifest.json)"
