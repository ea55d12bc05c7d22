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

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.core import procmem
from memharness.core.atomic import read_json, write_json
from memharness.core.clock import now_ns
from memharness.core.sampler import GUARD_FILE
from memharness.core.session import start_sampler, stop_sampler
from memharness.runner import leftovers as leftovers_mod
from memharness.runner.executors.node import local_node, machine_gpus
from memharness.runner.matrix import CellPlan
from memharness.runner.preflight import Preflight, cache_dir, interpreter_env
from memharness.runner.signals import Interrupted, stop_message
from memharness.scenario import format_size


@dataclass
class CellOutcome:
    status: str
    cause: str | None
    message: str
    wall_seconds: float
    peak_tree_rss: int
    leftovers: list[dict] = field(default_factory=list)


def _oom_kills() -> int | None:
    try:
        with open("/proc/vmstat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (children first)."""
    for p in reversed([pid] + procmem.descendant_pids(pid)):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def write_cell_spec(cell_dir: Path, plan: CellPlan, scenario, pre: Preflight) -> None:
    check = pre.pipelines[plan.pipeline]
    probe = check.probe
    write_json(cell_dir / "cell.json", {
        "id": plan.id, "pipeline": plan.pipeline, "kind": plan.kind, "size": plan.size, "repeat": plan.repeat,
        "options": plan.options, "model": check.model_path, "model_spec": plan.model, "device": check.device,
        "targets": list(plan.targets), "default_targets": probe.get("default_targets", []),
        "line_profile": list(scenario.line_profile), "corpus_file": str(pre.corpus_file),
        "sample_interval": scenario.sample_interval, "python": check.python,
        "sys_path": list(pre.sys_path),
    })


def _sampler_done(sampler: subprocess.Popen | None) -> None:
    if sampler is None:
        return
    try:
        sampler.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop_sampler(sampler)


def run_cell(plan: CellPlan, cell_dir: Path, scenario, pre: Preflight,
             on_tick: Callable[[float, int], None] | None = None,
             stop_requested: Callable[[], int | None] | None = None,
             disk_low: Callable[[], bool] | None = None) -> CellOutcome:
    """Run one cell to its end; raises Interrupted (after cleaning up) when `stop_requested()` returns a
    signal number, and OSError when the run folder cannot be written (nothing of the cell left running).

    Call it with signals deferred (`StopSignals.deferred`): nothing here may be cut short between starting
    the cell and taking charge of it.
    """
    check = pre.pipelines[plan.pipeline]
    cell_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("error.json", GUARD_FILE, "timeline.bin", "timeline.json", "cell_info.json"):
        (cell_dir / stale).unlink(missing_ok=True)
    calls = cell_dir / "calls"
    if calls.is_dir():
        for f in calls.glob("*.jsonl"):
            f.unlink()
    write_cell_spec(cell_dir, plan, scenario, pre)
    fingerprint = dict(check.probe.get("fingerprint", {}))
    fingerprint["device"] = check.device
    fingerprint["node"] = local_node(machine_gpus(fingerprint))  # the Ray executor retakes it on its node
    write_json(cell_dir / "fingerprint.json", fingerprint)
    env = interpreter_env(scenario.env)
    # A virtualenv's python is a symlink to the base interpreter: compare bin folders, not resolved files.
    other_env = Path(check.python).absolute().parent != Path(sys.executable).absolute().parent
    if "TORCH_EXTENSIONS_DIR" not in env and other_env:
        # torch caches compiled extensions by name: two virtualenvs sharing ~/.cache/torch_extensions rebuild
        # each other's (colbert's) on every alternation, inflating the prepare phase. One folder each.
        digest = hashlib.sha1(str(Path(check.python).absolute()).encode()).hexdigest()[:10]
        env["TORCH_EXTENSIONS_DIR"] = str(cache_dir() / "torch_extensions" / digest)
    if check.device == "cpu":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    token = leftovers_mod.new_token()
    env[leftovers_mod.TOKEN_ENV] = token
    from memharness.explain import during_run as explain_mod  # the scenario's `explain:` cells

    explain_req = explain_mod.prepare(scenario, plan.pipeline, plan.size, cell_dir, env)
    t0, wall0 = now_ns(), time.time_ns()
    write_json(cell_dir / "status.json", {"status": "running", "cause": None, "message": "", "t_start_ns": t0,
                                          "wall_start_ns": wall0})
    oom_before = _oom_kills()
    stop_requested = stop_requested or (lambda: None)
    proc: subprocess.Popen | None = None
    sampler: subprocess.Popen | None = None
    timed_out = disk_full = False
    signum: int | None = None
    try:
        with open(cell_dir / "stdout.log", "wb") as out, open(cell_dir / "stderr.log", "wb") as err:
            proc = subprocess.Popen([check.python, "-m", "memharness.runner.cell", str(cell_dir)], stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        sampler = start_sampler(proc.pid, cell_dir, scenario.sample_interval, scenario.max_rss)
        while True:
            signum = stop_requested()
            if signum is not None:
                kill_tree(proc.pid)
                rc = proc.wait()
                break
            try:
                rc = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = (now_ns() - t0) / 1e9
            if on_tick is not None:
                on_tick(elapsed, procmem.rss_bytes(proc.pid) + procmem.descendants_rss(proc.pid))
            if scenario.timeout is not None and elapsed > scenario.timeout and not timed_out:
                timed_out = True
                kill_tree(proc.pid)
            if sampler.poll() is not None and disk_low is not None and disk_low():
                disk_full = True  # the sampler could not write the timeline: stop rather than run unmeasured
                kill_tree(proc.pid)
    except BaseException:
        if proc is not None and proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        leftovers_mod.kill(leftovers_mod.marked_pids(token))
        raise
    finally:
        _sampler_done(sampler)
    t1 = now_ns()
    left = leftovers_mod.outliving(token)
    left_info = leftovers_mod.describe(left)
    policy = getattr(scenario, "leftovers", "kill")
    if left and (policy == "kill" or signum is not None or timed_out or disk_full):
        still = leftovers_mod.kill(left)
        for item in left_info:
            item["killed"] = item["pid"] not in still
    header = read_json(cell_dir / "timeline.json", {}) or {}
    guard = read_json(cell_dir / GUARD_FILE)
    error = read_json(cell_dir / "error.json")
    if signum is not None:
        status, cause, message = "interrupted", "interrupted", stop_message(signum)
    elif disk_full:
        status, cause, message = "interrupted", "disk_full", "the run folder's disk is full; killed"
    elif guard is not None:
        status, cause = "failed", "max_rss"
        message = (f"process tree RSS {_fmt_bytes(guard['tree_rss'])} crossed max_rss "
                   f"{_fmt_bytes(guard['max_rss'])}; killed")
    elif timed_out:
        status, cause, message = "failed", "timeout", f"ran longer than the timeout of {scenario.timeout:g} s; killed"
    elif rc == 0:
        status, cause, message = "done", None, ""
    elif rc == -signal.SIGKILL:
        oom_after = _oom_kills()
        if oom_before is not None and oom_after is not None and oom_after > oom_before:
            status, cause, message = "failed", "oom_kill", "killed by the kernel's OOM killer (SIGKILL)"
        else:
            status, cause, message = "failed", "sigkill", "killed by SIGKILL from outside the harness"
    elif rc < 0:
        status, cause = "failed", "signal"
        message = f"died of signal {signal.Signals(-rc).name}"
    elif error is not None:
        status, cause, message = "failed", "exception", f"{error['type']}: {error['message']}"
    else:
        # no error.json: the cell left through os._exit / sys.exit (or could not write error.json)
        status, cause, message = "failed", "exit", f"exited with code {rc}"
    if explain_req is not None and signum is None:
        explain_mod.finish(cell_dir, explain_req)
    info = read_json(cell_dir / "cell_info.json")
    if info:
        fingerprint.update({k: v for k, v in info.items()})
        write_json(cell_dir / "fingerprint.json", fingerprint)
    from memharness.report.phases import run_tree_peak  # the run phase's tree peak, the report's figure

    peak = run_tree_peak(cell_dir) or int(header.get("peak_tree_rss", 0))
    shown = left_info if policy != "keep" or any(item.get("killed") for item in left_info) else []
    outcome = CellOutcome(status, cause, message, (t1 - t0) / 1e9, peak, shown)
    record = {
        "status": status, "cause": cause, "message": message, "exit_code": rc, "t_start_ns": t0, "t_end_ns": t1,
        "wall_start_ns": wall0, "wall_seconds": outcome.wall_seconds, "peak_tree_rss": peak,
        "size": plan.size, "pipeline": plan.pipeline,
    }
    if left_info:
        record["leftovers"] = left_info
    write_json(cell_dir / "status.json", record)
    if signum is not None:
        raise Interrupted(signum)
    return outcome


def summarize(outcome: CellOutcome, plan: CellPlan) -> str:
    tail = f" ({outcome.cause}: {outcome.message})" if outcome.status != "done" else ""
    if outcome.leftovers:
        killed = all(item.get("killed") for item in outcome.leftovers)
        pids = ", ".join(str(item["pid"]) for item in outcome.leftovers)
        rss = sum(item["rss"] for item in outcome.leftovers)
        tail += (f"; left {len(outcome.leftovers)} processes behind (pids {pids}, RSS {_fmt_bytes(rss)}): "
                 + ("killed" if killed else "still running"))
    return (f"{plan.id}: {outcome.status} in {outcome.wall_seconds:.1f} s, "
            f"peak tree RSS {_fmt_bytes(outcome.peak_tree_rss)}{tail}")


def describe_plan(plans: list[CellPlan]) -> list[str]:
    return [f"{p.id}: {p.pipeline} ({p.kind}) size {format_size(p.size)} repeat {p.repeat}" for p in plans]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
