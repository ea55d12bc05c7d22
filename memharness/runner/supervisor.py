"""Runs cells, one fresh interpreter each, and turns every way a cell can end into a recorded status.

The cell runs in its own session (process group) so Ctrl-C reaches only the supervisor, which then stops
the cell itself and leaves the run folder consistent. The sampler, a sibling process, records the tree's
timeline and enforces `max_rss`. How a cell can end (`exception`, `max_rss`, `timeout`, `oom_kill`,
`interrupted`, ...) and the status each gives are `runner/exitcause.py`'s.

Every process of the cell carries the supervisor's marks (`runner/owner.py`), so a later `--resume` finds
what a killed supervisor left running.

Processes the cell leaves behind (a detached helper) are found by the marker in their environment
(`runner/leftovers.py`), listed in status.json `leftovers` with pid and RSS, and killed unless the scenario
says `leftovers: keep` or `warn`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memharness import names
from memharness.core import procmem
from memharness.core.atomic import read_json, write_json
from memharness.core.clock import now_ns
from memharness.core.launch import cell_env, start_cell_process
from memharness.core.session import start_sampler, stop_sampler
from memharness.runner import leftovers as leftovers_mod
from memharness.runner import owner
from memharness.runner.exitcause import CellWatch, classify_exit, json_number, oom_kills, rss_text
from memharness.runner.leftovers import kill_tree
from memharness.runner.matrix import CellPlan
from memharness.runner.node import local_node, machine_gpus
from memharness.runner.preflight import PipelineCheck, Preflight
from memharness.runner.samplerwatch import SamplerWatch
from memharness.runner.signals import STOP_SIGNALS, Interrupted
from memharness.scenario import format_size

if TYPE_CHECKING:
    from memharness.scenario import Scenario

__all__ = ["CellOutcome", "describe_plan", "kill_tree", "run_cell", "summarize", "write_cell_spec"]

STALE_FILES = (names.ERROR, names.GUARD, names.TIMELINE, names.TIMELINE_HEADER, names.CELL_INFO, names.CELL_NOTES)
STOP_GRACE_S = 2.0  # a cell killed by a stop signal: how long to wait for the supervisor's own (a group stop)


@dataclass
class CellOutcome:
    status: str
    cause: str | None
    message: str
    wall_seconds: float
    peak_tree_rss: int
    leftovers: list[dict] = field(default_factory=list)


def write_cell_spec(cell_dir: Path, plan: CellPlan, scenario: Scenario, pre: Preflight) -> None:
    check = pre.pipelines[plan.pipeline]
    probe = check.probe
    write_json(cell_dir / names.CELL_SPEC, {
        "id": plan.id, "pipeline": plan.pipeline, "kind": plan.kind, "size": plan.size, "repeat": plan.repeat,
        "options": plan.options, "model": check.model_path, "model_spec": plan.model, "device": check.device,
        "targets": list(plan.targets), "default_targets": probe.get("default_targets", []),
        "line_profile": list(scenario.line_profile), "corpus_file": str(pre.corpus_file),
        "sample_interval": scenario.sample_interval, "python": check.python,
        "sys_path": list(pre.sys_path),
    })


def _json_object(path: Path) -> dict[str, Any] | None:
    """A cell file written by the cell or its sampler, as an object; None when absent or unreadable (a
    process killed while writing it cannot leave half a file, but a hand can)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _clear_cell_dir(cell_dir: Path) -> None:
    """Remove what an earlier attempt at this cell left (a resumed or retried cell starts clean)."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    for stale in STALE_FILES:
        (cell_dir / stale).unlink(missing_ok=True)
    calls = cell_dir / names.CALLS
    if calls.is_dir():
        for f in calls.glob(names.CALLS_GLOB):
            f.unlink()


def _write_fingerprint(cell_dir: Path, check: PipelineCheck) -> dict[str, Any]:
    fingerprint = dict(check.probe.get("fingerprint", {}))
    fingerprint["device"] = check.device
    fingerprint["node"] = local_node(machine_gpus(fingerprint))  # the Ray executor retakes it on its node
    write_json(cell_dir / names.FINGERPRINT, fingerprint)
    return fingerprint


def _sampler_done(sampler: subprocess.Popen | None) -> None:
    if sampler is None:
        return
    try:
        sampler.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop_sampler(sampler)


def _stop_that_killed(returncode: int, stop_requested: Callable[[], int | None]) -> int | None:
    """The supervisor's own stop signal when the cell died of a stop signal: a stop of the whole process group
    (a container or cgroup stop) may reach the cell first, so wait a moment for ours."""
    if not (returncode < 0 and -returncode in STOP_SIGNALS):
        return None
    deadline = time.monotonic() + STOP_GRACE_S
    signum = stop_requested()
    while signum is None and time.monotonic() < deadline:
        time.sleep(0.01)
        signum = stop_requested()
    return signum


def _watch_cell(proc: subprocess.Popen, sampler: SamplerWatch, t0: int, timeout: float | None,
                on_tick: Callable[[float, int], None] | None, stop_requested: Callable[[], int | None],
                disk_low: Callable[[], bool] | None) -> CellWatch:
    """Wait for the cell's end, killing its tree on a stop request, past `timeout`, when the sampler died of a
    full disk, or when it keeps dying; a sampler that died otherwise is started again."""
    watch = CellWatch(0, sampler_gaps=sampler.gaps)
    while True:
        signum = stop_requested()
        if signum is not None:
            kill_tree(proc.pid)
            watch.returncode, watch.stop_signal = proc.wait(), signum
            return watch
        try:
            watch.returncode = proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
        else:
            watch.stop_signal = _stop_that_killed(watch.returncode, stop_requested)
            return watch
        elapsed = (now_ns() - t0) / 1e9
        if on_tick is not None:
            rss = procmem.rss_bytes(proc.pid) + procmem.descendants_rss(proc.pid)
            if rss:  # 0: the root has exited and is not reaped yet; keep the last reading on the bar
                on_tick(elapsed, rss)
        if timeout is not None and elapsed > timeout and not watch.timed_out:
            watch.timed_out = True
            kill_tree(proc.pid)
        if sampler.died() and proc.poll() is None and not watch.killed_by_us:
            if sampler.saw_tree_end(proc, stop_requested):
                continue  # the root was freeing its memory on the way out; the next turn takes its exit code
            if disk_low is not None and disk_low():
                watch.disk_full = True  # the sampler could not write the timeline: stop rather than run unmeasured
                kill_tree(proc.pid)
            elif not sampler.restart():  # raises OSError when the cell folder cannot be written
                watch.sampler_lost = sampler.lost
                kill_tree(proc.pid)


def _run_and_watch(cell_dir: Path, python: str, env: dict[str, str], scenario: Scenario, t0: int, token: str,
                   on_tick: Callable[[float, int], None] | None, stop_requested: Callable[[], int | None],
                   disk_low: Callable[[], bool] | None) -> CellWatch:
    """Start the cell interpreter and its sampler and watch it to its end; on any exception (or a
    KeyboardInterrupt) nothing of the cell is left running."""
    proc: subprocess.Popen | None = None
    sampler: SamplerWatch | None = None
    marks = {k: env[k] for k in (owner.CELL_DIR_ENV, owner.SUPERVISOR_ENV) if k in env}  # the sampler's too
    try:
        proc = start_cell_process(python, cell_dir, env)
        root = proc.pid
        sampler = SamplerWatch(lambda restart: start_sampler(root, cell_dir, scenario.sample_interval,
                                                             scenario.max_rss, env=marks, restart=restart),
                               cell_dir, scenario.max_rss is not None)
        sampler.begin()
        return _watch_cell(proc, sampler, t0, scenario.timeout, on_tick, stop_requested, disk_low)
    except BaseException:
        if proc is not None and proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        leftovers_mod.kill(leftovers_mod.marked_pids(token))
        raise
    finally:
        _sampler_done(sampler.proc if sampler is not None else None)


def _handle_leftovers(token: str, policy: str, killed_by_us: bool) -> tuple[list[dict], list[dict]]:
    """(every leftover's description, those status.json and the summary show): killed under `policy: kill`
    or when the supervisor stopped the cell itself; `keep` shows none unless some were killed."""
    left = leftovers_mod.outliving(token)
    left_info = leftovers_mod.describe(left)
    if left and (policy == "kill" or killed_by_us):
        still = leftovers_mod.kill(left)
        for item in left_info:
            item["killed"] = item["pid"] not in still
    shown = left_info if policy != "keep" or any(item.get("killed") for item in left_info) else []
    return left_info, shown


def _merge_cell_info(cell_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Add the facts the pipeline reported (cell_info.json) to the fingerprint."""
    info = _json_object(cell_dir / names.CELL_INFO)
    if info:
        fingerprint.update(info)
        write_json(cell_dir / names.FINGERPRINT, fingerprint)


def _cell_peak(cell_dir: Path) -> int:
    from memharness.results.phases import run_tree_peak  # the run phase's tree peak, the report's figure

    header = _json_object(cell_dir / names.TIMELINE_HEADER) or {}
    return run_tree_peak(cell_dir) or int(json_number(header.get("peak_tree_rss")))


def _closed_stdio_note(cell_dir: Path, status: str, message: str) -> tuple[list[str], str]:
    """(the streams the pipeline closed, the status message saying so) from the cell's notes.json."""
    closed = (_json_object(cell_dir / names.CELL_NOTES) or {}).get("stdio_closed")
    if not isinstance(closed, list) or not closed:
        return [], message
    what = " and ".join(str(c) for c in closed)
    if status == "done":
        return closed, f"the pipeline closed its {what}; what it printed after that is lost"
    return closed, f"{message} (the pipeline had closed its {what}, so {names.STDERR} may not say why)"


def run_cell(plan: CellPlan, cell_dir: Path, scenario: Scenario, pre: Preflight,
             on_tick: Callable[[float, int], None] | None = None,
             stop_requested: Callable[[], int | None] | None = None,
             disk_low: Callable[[], bool] | None = None) -> CellOutcome:
    """Run one cell to its end; raises Interrupted (after cleaning up) when `stop_requested()` returns a
    signal number, and OSError when the run folder cannot be written (nothing of the cell left running).

    Call it with signals deferred (`StopSignals.deferred`): nothing here may be cut short between starting
    the cell and taking charge of it.
    """
    check = pre.pipelines[plan.pipeline]
    _clear_cell_dir(cell_dir)
    write_cell_spec(cell_dir, plan, scenario, pre)
    fingerprint = _write_fingerprint(cell_dir, check)
    env = cell_env(scenario.env, check.python, check.device)
    token = leftovers_mod.new_token()
    env[leftovers_mod.TOKEN_ENV] = token
    env.update(owner.marks(cell_dir))
    from memharness.explain import during_run as explain_mod  # the scenario's `explain:` cells

    explain_req = explain_mod.prepare(scenario, plan.pipeline, plan.size, cell_dir, env)
    t0, wall0 = now_ns(), time.time_ns()
    write_json(cell_dir / names.STATUS, {"status": "running", "cause": None, "message": "", "t_start_ns": t0,
                                          "wall_start_ns": wall0})
    oom_before = oom_kills()
    watch = _run_and_watch(cell_dir, check.python, env, scenario, t0, token, on_tick,
                           stop_requested or (lambda: None), disk_low)
    t1 = now_ns()
    left_info, shown = _handle_leftovers(token, getattr(scenario, "leftovers", "kill"), watch.killed_by_us)
    status, cause, message = classify_exit(
        watch, guard=_json_object(cell_dir / names.GUARD), error=_json_object(cell_dir / names.ERROR),
        timeout=scenario.timeout, oom_kills_before=oom_before,
        oom_kills_after=oom_kills() if watch.returncode == -signal.SIGKILL else None)
    stdio_closed, message = _closed_stdio_note(cell_dir, status, message)
    if explain_req is not None and watch.stop_signal is None:
        explain_mod.finish(cell_dir, explain_req)
    _merge_cell_info(cell_dir, fingerprint)
    peak = _cell_peak(cell_dir)
    outcome = CellOutcome(status, cause, message, (t1 - t0) / 1e9, peak, shown)
    record = {
        "status": status, "cause": cause, "message": message, "exit_code": watch.returncode, "t_start_ns": t0,
        "t_end_ns": t1, "wall_start_ns": wall0, "wall_seconds": outcome.wall_seconds, "peak_tree_rss": peak,
        "size": plan.size, "pipeline": plan.pipeline,
    }
    if left_info:
        record["leftovers"] = left_info
    if watch.sampler_gaps:
        record["sampler_gaps"] = watch.sampler_gaps
    if stdio_closed:
        record["stdio_closed"] = stdio_closed
    write_json(cell_dir / names.STATUS, record)
    if watch.stop_signal is not None:
        raise Interrupted(watch.stop_signal)
    return outcome


def summarize(outcome: CellOutcome, plan: CellPlan) -> str:
    tail = f" ({outcome.cause}: {outcome.message})" if outcome.status != "done" else \
        (f" ({outcome.message})" if outcome.message else "")
    if outcome.leftovers:
        killed = all(item.get("killed") for item in outcome.leftovers)
        pids = ", ".join(str(item["pid"]) for item in outcome.leftovers)
        rss = sum(item["rss"] for item in outcome.leftovers)
        tail += (f"; left {len(outcome.leftovers)} processes behind (pids {pids}, RSS {rss_text(rss)}): "
                 + ("killed" if killed else "still running"))
    return (f"{plan.id}: {outcome.status} in {outcome.wall_seconds:.1f} s, "
            f"peak tree RSS {rss_text(outcome.peak_tree_rss)}{tail}")


def describe_plan(plans: list[CellPlan]) -> list[str]:
    return [f"{p.id}: {p.pipeline} ({p.kind}) size {format_size(p.size)} repeat {p.repeat}" for p in plans]
