"""The Ray executor on a real local Ray instance: same figures as the local executor, every way a cell ends
recorded with its cause, a lost worker, Ctrl-C then --resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from memharness.compare.envdiff import diff
from memharness.core.records import read_calls

ray = pytest.importorskip("ray")

from rich.console import Console  # noqa: E402
from test_runner_failures import (  # noqa: E402
    FAILURE_LIMITS,
    FAILURE_PIPELINES,
    TESTS,
    _alive,
    _wait_for,
    cell,
    memharness,
    write_scenario,
)

from memharness.runner.execute import RunRequest, execute  # noqa: E402

MiB = 1 << 20


@pytest.fixture(scope="module")
def local_ray():
    # The workers inherit the driver's environment: `workloads` must be importable in the cells they start.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * MiB,
             logging_level="ERROR")
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def run_in_process(path: Path, **kw) -> tuple[int, Path, str]:
    buf = io.StringIO()
    code, run = execute(RunRequest(path, report=False, **kw), Console(file=buf, width=200, highlight=False))
    return code, run, buf.getvalue()


def stage_increments(run: Path) -> dict[str, float]:
    out = {}
    for c in json.loads((run / "manifest.json").read_text())["cells"]:
        (stage,) = [r for r in read_calls(run / c["dir"]) if r.target == "workloads.stage"]
        out[c["id"]] = stage.increment
    return out


def test_same_per_call_figures_as_local(tmp_path, local_ray):
    path = write_scenario(tmp_path, "calibrated", """\
        - {name: a40, kind: callable, options: {function: "workloads:pipeline_ok", mib: 40}}
        - {name: a80, kind: callable, options: {function: "workloads:pipeline_ok", mib: 80}}
        - {name: a120, kind: callable, options: {function: "workloads:pipeline_ok", mib: 120}}
        - {name: a160, kind: callable, options: {function: "workloads:pipeline_ok", mib: 160}}
        """)
    code_local, run_local, out_local = run_in_process(path, executor="local")
    code_ray, run_ray, out_ray = run_in_process(path, executor="ray")
    assert (code_local, code_ray) == (0, 0), out_local + out_ray
    local, remote = stage_increments(run_local), stage_increments(run_ray)
    for cid, mib in (("a40__50__r0", 40), ("a80__50__r0", 80), ("a120__50__r0", 120), ("a160__50__r0", 160)):
        print(f"{cid}: local {local[cid] / MiB:.2f} MiB, ray {remote[cid] / MiB:.2f} MiB")
        assert abs(remote[cid] - local[cid]) <= 0.03 * local[cid]
        assert abs(remote[cid] - mib * MiB) <= 0.05 * mib * MiB
    manifest = json.loads((run_ray / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray"
    for c in manifest["cells"]:
        assert c["executor"] == "ray" and c["node"]["node_id"] and c["node"]["hostname"]
        d = run_ray / c["dir"]
        assert not (d / "work").exists()  # work/ stays on the worker unless `return_work`
        fp = json.loads((d / "fingerprint.json").read_text())
        assert fp["node"]["node_id"] == c["node"]["node_id"] and fp["python"]
    assert sorted(p.name for p in (run_ray / "cells").iterdir()) == sorted(local)  # no temp folders left
    assert all(c["executor"] == "local" for c in json.loads((run_local / "manifest.json").read_text())["cells"])
    # the same machine under both executors: no environment difference in `compare`, node type included
    fps = {r: [json.loads(p.read_text()) for p in sorted((r / "cells").glob("*/fingerprint.json"))]
           for r in (run_local, run_ray)}
    env = diff(fps[run_local], fps[run_ray])
    assert env.differ == [], env.differ
    assert "node type" in dict(env.same)
    types = {r: {c["node"]["type"] for c in json.loads((r / "manifest.json").read_text())["cells"]}
             for r in (run_local, run_ray)}
    assert types[run_local] == types[run_ray] and len(types[run_ray]) == 1


def test_exception_max_rss_timeout_recorded_others_finish(tmp_path, local_ray):
    path = write_scenario(tmp_path, "failures", FAILURE_PIPELINES, extra=FAILURE_LIMITS + "return_work: true\n")
    code, run, out = run_in_process(path, executor="ray")
    assert code == 1, out
    manifest = json.loads((run / "manifest.json").read_text())
    assert {c["id"]: (c["status"], c["cause"]) for c in manifest["cells"]} == {
        "ok__50__r0": ("done", None), "raises__50__r0": ("failed", "exception"),
        "grows__50__r0": ("failed", "max_rss"), "sleeps__50__r0": ("failed", "timeout"),
        "ok2__50__r0": ("done", None)}
    assert cell(run, "raises__50__r0")[0]["message"] == "ValueError: boom after 50 passages"
    assert "crossed max_rss 600 MiB; killed" in cell(run, "grows__50__r0")[0]["message"]
    assert cell(run, "sleeps__50__r0")[0]["message"] == "ran longer than the timeout of 20 s; killed"
    assert (run / "cells" / "ok__50__r0" / "work" / "out.txt").read_text().startswith("50 ")  # return_work


def test_killed_worker_is_lost_and_retried_when_asked(tmp_path, local_ray):
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, "lost", f"""\
        - {{name: victim, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            release: "{release}"}}}}
        """)
    result: dict = {}

    # execute() installs signal handlers: run it in this (main) thread, and kill from a helper thread.
    def killer() -> None:
        cell_pid = _wait_for(pidfile)
        worker = psutil.Process(cell_pid).parent()
        result["worker_cmd"] = " ".join(worker.cmdline())
        worker.kill()
        result["cell_pid"] = cell_pid

    k = threading.Thread(target=killer)
    k.start()
    result.update(zip(("code", "run", "out"), run_in_process(path, executor="ray"), strict=True))
    k.join(timeout=300)
    assert result["code"] == 1, result["out"]
    assert "ray" in result["worker_cmd"].lower()  # the process killed is the Ray worker, not the cell
    status, _ = cell(result["run"], "victim__50__r0")
    assert (status["status"], status["cause"]) == ("failed", "lost")
    assert "WorkerCrashedError" in status["message"]
    psutil.wait_procs([psutil.Process(result["cell_pid"])] if _alive(result["cell_pid"]) else [], timeout=60)
    assert not _alive(result["cell_pid"])  # the reaper ended the orphaned cell

    # retries_on_lost: the cell runs again after its worker is killed, and completes
    pidfile.unlink()
    path = write_scenario(tmp_path, "lost_retried", f"""\
        - {{name: victim, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            release: "{release}"}}}}
        """, extra="retries_on_lost: 1\n")

    def kill_then_release() -> None:
        psutil.Process(_wait_for(pidfile)).parent().kill()
        release.write_text("")

    k = threading.Thread(target=kill_then_release)
    k.start()
    code, run, out = run_in_process(path, executor="ray")
    k.join(timeout=300)
    assert code == 0, out
    (c,) = json.loads((run / "manifest.json").read_text())["cells"]
    assert (c["status"], c.get("tries")) == ("done", 2)
    assert "running it again (try 2)" in out


@pytest.mark.parametrize(("first_executor", "resume_executor"), [("ray", "local"), ("local", "ray")])
def test_ctrl_c_then_resume(tmp_path, first_executor, resume_executor):
    pidfile, release = tmp_path / "cell.pid", tmp_path / "release"
    path = write_scenario(tmp_path, "resumable", f"""\
        - {{name: first, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
        - {{name: second, kind: callable, options: {{function: "workloads:pipeline_sleeps", pidfile: "{pidfile}",
            seconds: 600, release: "{release}"}}}}
        """, extra="num_cpus: 0.5\n")
    proc = memharness("run", str(path), "--no-report", "--executor", first_executor, cwd=tmp_path)
    cell_pid = _wait_for(pidfile, timeout=300)  # the second cell is inside its pipeline
    run = next((tmp_path / "results" / "resumable").iterdir())
    first = run / "cells" / "first__50__r0" / "status.json"
    _wait_for_file(first, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out
    assert "--resume" in out
    psutil.wait_procs([psutil.Process(cell_pid)] if _alive(cell_pid) else [], timeout=60)
    assert not _alive(cell_pid)  # the cancelled task's cell was ended with it
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done"), ("second__50__r0", "interrupted")]
    first_before = first.read_text()
    second = json.loads((run / "cells" / "second__50__r0" / "status.json").read_text())
    assert (second["status"], second["cause"]) == ("interrupted", "interrupted")  # under either executor

    release.write_text("")
    proc = memharness("run", str(path), "--resume", str(run), "--no-report", "--executor", resume_executor,
                      cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resuming: 1 cells already finished, 1 to run" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(c["id"], c["status"], c["executor"]) for c in manifest["cells"]] == [
        ("first__50__r0", "done", first_executor), ("second__50__r0", "done", resume_executor)]
    assert first.read_text() == first_before  # not redone
    assert sorted(p.name for p in (run / "cells").iterdir()) == ["first__50__r0", "second__50__r0"]


def _wait_for_file(path: Path, proc, timeout: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_missing_ray_names_the_extra(tmp_path):
    # A failure-path stand-in: a `ray` package that cannot be imported, first on the path.
    (tmp_path / "noray" / "ray").mkdir(parents=True)
    (tmp_path / "noray" / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    path = write_scenario(tmp_path, "noray", """\
        - {name: ok, kind: callable, options: {function: "workloads:pipeline_ok"}}
        """, extra="executor: ray\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "noray"), str(TESTS)]))
    for args in (["--executor", "ray"], []):
        proc = subprocess.run([sys.executable, "-m", "memharness", "run", str(path), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "pip install 'memharness[ray]'" in proc.stderr
        assert not (tmp_path / "results").exists()  # nothing ran


def test_a_cell_no_node_can_run_is_an_error_not_a_hang(tmp_path):
    path = write_scenario(tmp_path, "nogpu", """\
        - {name: ok, kind: callable, options: {function: "workloads:pipeline_ok"}}
        """, extra="device: cpu\ngpus_per_cell: 1\n")
    proc = memharness("run", str(path), "--no-report", "--executor", "ray", cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    assert "error: ok__50__r0: no node of the Ray cluster offers CPU 1, GPU 1" in out
    assert "it would wait forever" in out
