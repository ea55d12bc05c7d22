"""Runs cells, one fresh interpreter each, and turns every way a cell can end into a recorded status.

The cell runs in its own session (process group) so Ctrl-C reaches only the supervisor, which then stops
the cell itself and leaves the run folder consistent. The sampler, a sibling process, records the tree's
timeline and enforces `max_rss`. Causes:

- `exception`: the pipeline raised (error.json holds the traceback);
- `max_rss`: the sampler's guard killed the tree (guard.json);
- `timeout`: the supervisor killed the tree after `timeout`;
- `oom_kill`: SIGKILL while the kernel's oom_kill counter went up;
- `sigkill`: SIGKILL from outside; `signal`: another fatal signal;
- `exit`: the cell left with a non-zero code without raising (`os._exit(3)`, `sys.exit(3)`);
- `interrupted`: Ctrl-C, SIGTERM or SIGHUP to the supervisor (the cell is redone by `--resume`);
- `disk_full`: the run folder's disk filled up during the cell (status `interrupted`, redone by `--resume`).

Processes the cell leaves behind (a detached helper) are found by the marker in their environment
(`runner/leftovers.py`), listed in status.json `leftovers` with pid and RSS, and killed unless the scenario
says `leftovers: keep` or `warn`.
"""

from __future__ import annotations

import functools
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
from memharness.runner import diskspace
from memharness.runner import leftovers as leftovers_mod
from memharness.runner.leftovers import kill_tree
from memharness.runner.matrix import CellPlan
from memharness.runner.node import local_node, machine_gpus
from memharness.runner.preflight import PipelineCheck, Preflight
from memharness.runner.signals import Interrupted, stop_message
from memharness.scenario import format_size

if TYPE_CHECKING:
    from memharness.scenario import Scenario

__all__ = ["CellOutcome", "CellWatch", "classify_exit", "describe_plan", "kill_tree", "run_cell", "summarize",
           "write_cell_spec"]

STALE_FILES = (names.ERROR, names.GUARD, names.TIMELINE, names.TIMELINE_HEADER, names.CELL_INFO)
_rss_text = functools.partial(diskspace.fmt, mib_decimals=0, gib_decimals=2)  # "600 MiB", "1.50 GiB"


@dataclass
class CellOutcome:
    status: str
    cause: str | None
    message: str
    wall_seconds: float
    peak_tree_rss: int
    leftovers: list[dict] = field(default_factory=list)


@dataclass
class CellWatch:
    """What the supervisor saw while the cell ran: its exit code and why the supervisor killed it, if it did."""

    returncode: int
    stop_signal: int | None = None  # a SIGINT/SIGTERM/SIGHUP to the supervisor
    timed_out: bool = False
    disk_full: bool = False

    @property
    def killed_by_us(self) -> bool:
        return self.stop_signal is not None or self.timed_out or self.disk_full


def _oom_kills() -> int | None:
    try:
        with open("/proc/vmstat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def classify_exit(watch: CellWatch, *, guard: dict | None = None, error: dict | None = None,
                  timeout: float | None = None, oom_kills_before: int | None = None,
                  oom_kills_after: int | None = None) -> tuple[str, str | None, str]:
    """(status, cause, message) of a cell from how it ended (see the module docstring for the causes).

    `guard` is the sampler's guard.json (max_rss crossed), `error` the cell's error.json (it raised);
    `oom_kills_*` the kernel's oom_kill counter before and after the cell. First match wins: our own stop,
    a full disk, the guard, the timeout, then the exit code."""
    rc = watch.returncode
    if watch.stop_signal is not None:
        return "interrupted", "interrupted", stop_message(watch.stop_signal)
    if watch.disk_full:
        return "interrupted", "disk_full", "the run folder's disk is full; killed"
    if guard is not None:
        return "failed", "max_rss", (f"process tree RSS {_rss_text(guard['tree_rss'])} crossed max_rss "
                                     f"{_rss_text(guard['max_rss'])}; killed")
    if watch.timed_out:
        return "failed", "timeout", f"ran longer than the timeout of {timeout:g} s; killed"
    if rc == 0:
        return "done", None, ""
    if rc == -signal.SIGKILL:
        if oom_kills_before is not None and oom_kills_after is not None and oom_kills_after > oom_kills_before:
            return "failed", "oom_kill", "killed by the kernel's OOM killer (SIGKILL)"
        return "failed", "sigkill", "killed by SIGKILL from outside the harness"
    if rc < 0:
        return "failed", "signal", f"died of signal {signal.Signals(-rc).name}"
    if error is not None:
        return "failed", "exception", f"{error['type']}: {error['message']}"
    # no error.json: the cell left through os._exit / sys.exit (or could not write error.json)
    return "failed", "exit", f"exited with code {rc}"


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


def _watch_cell(proc: subprocess.Popen, sampler: subprocess.Popen, t0: int, timeout: float | None,
                on_tick: Callable[[float, int], None] | None, stop_requested: Callable[[], int | None],
                disk_low: Callable[[], bool] | None) -> CellWatch:
    """Wait for the cell's end, killing its tree on a stop request, past `timeout`, or when the sampler died
    of a full disk."""
    timed_out = disk_full = False
    while True:
        signum = stop_requested()
        if signum is not None:
            kill_tree(proc.pid)
            return CellWatch(proc.wait(), signum, timed_out, disk_full)
        try:
            return CellWatch(proc.wait(timeout=0.25), None, timed_out, disk_full)
        except subprocess.TimeoutExpired:
            pass
        elapsed = (now_ns() - t0) / 1e9
        if on_tick is not None:
            on_tick(elapsed, procmem.rss_bytes(proc.pid) + procmem.descendants_rss(proc.pid))
        if timeout is not None and elapsed > timeout and not timed_out:
            timed_out = True
            kill_tree(proc.pid)
        if sampler.poll() is not None and disk_low is not None and disk_low():
            disk_full = True  # the sampler could not write the timeline: stop rather than run unmeasured
            kill_tree(proc.pid)


def _run_and_watch(cell_dir: Path, python: str, env: dict[str, str], scenario: Scenario, t0: int, token: str,
                   on_tick: Callable[[float, int], None] | None, stop_requested: Callable[[], int | None],
                   disk_low: Callable[[], bool] | None) -> CellWatch:
    """Start the cell interpreter and its sampler and watch it to its end; on any exception (or a
    KeyboardInterrupt) nothing of the cell is left running."""
    proc: subprocess.Popen | None = None
    sampler: subprocess.Popen | None = None
    try:
        proc = start_cell_process(python, cell_dir, env)
        sampler = start_sampler(proc.pid, cell_dir, scenario.sample_interval, scenario.max_rss)
        return _watch_cell(proc, sampler, t0, scenario.timeout, on_tick, stop_requested, disk_low)
    except BaseException:
        if proc is not None and proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        leftovers_mod.kill(leftovers_mod.marked_pids(token))
        raise
    finally:
        _sampler_done(sampler)


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
    info = read_json(cell_dir / names.CELL_INFO)
    if info:
        fingerprint.update(dict(info.items()))
        write_json(cell_dir / names.FINGERPRINT, fingerprint)


def _cell_peak(cell_dir: Path) -> int:
    from memharness.results.phases import run_tree_peak  # the run phase's tree peak, the report's figure

    header = read_json(cell_dir / names.TIMELINE_HEADER, {}) or {}
    return run_tree_peak(cell_dir) or int(header.get("peak_tree_rss", 0))


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
    from memharness.explain import during_run as explain_mod  # the scenario's `explain:` cells

    explain_req = explain_mod.prepare(scenario, plan.pipeline, plan.size, cell_dir, env)
    t0, wall0 = now_ns(), time.time_ns()
    write_json(cell_dir / names.STATUS, {"status": "running", "cause": None, "message": "", "t_start_ns": t0,
                                          "wall_start_ns": wall0})
    oom_before = _oom_kills()
    watch = _run_and_watch(cell_dir, check.python, env, scenario, t0, token, on_tick,
                           stop_requested or (lambda: None), disk_low)
    t1 = now_ns()
    left_info, shown = _handle_leftovers(token, getattr(scenario, "leftovers", "kill"), watch.killed_by_us)
    status, cause, message = classify_exit(
        watch, guard=read_json(cell_dir / names.GUARD), error=read_json(cell_dir / names.ERROR),
        timeout=scenario.timeout, oom_kills_before=oom_before,
        oom_kills_after=_oom_kills() if watch.returncode == -signal.SIGKILL else None)
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
    write_json(cell_dir / names.STATUS, record)
    if watch.stop_signal is not None:
        raise Interrupted(watch.stop_signal)
    return outcome


def summarize(outcome: CellOutcome, plan: CellPlan) -> str:
    tail = f" ({outcome.cause}: {outcome.message})" if outcome.status != "done" else ""
    if outcome.leftovers:
        killed = all(item.get("killed") for item in outcome.leftovers)
        pids = ", ".join(str(item["pid"]) for item in outcome.leftovers)
        rss = sum(item["rss"] for item in outcome.leftovers)
        tail += (f"; left {len(outcome.leftovers)} processes behind (pids {pids}, RSS {_rss_text(rss)}): "
                 + ("killed" if killed else "still running"))
    return (f"{plan.id}: {outcome.status} in {outcome.wall_seconds:.1f} s, "
            f"peak tree RSS {_rss_text(outcome.peak_tree_rss)}{tail}")


def describe_plan(plans: list[CellPlan]) -> list[str]:
    return [f"{p.id}: {p.pipeline} ({p.kind}) size {format_size(p.size)} repeat {p.repeat}" for p in plans]
