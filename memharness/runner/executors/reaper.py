"""Kills a Ray task's cell when the task's worker dies (`ray.cancel(force=True)`, a lost worker).

The cell runs in its own session, so killing the worker leaves it running. This watcher, started by the
task in a session of its own, waits for the worker to end; then it kills every process whose command line
names the task's scratch folder (the cell and its sampler) with their descendants, and removes the folder.

    python -m memharness.runner.executors.reaper WORKER_PID SCRATCH_DIR
"""

from __future__ import annotations

import shutil
import sys

import psutil

from memharness.runner import leftovers


def _reap(scratch: str) -> None:
    victims: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if proc.pid != psutil.Process().pid and any(scratch in part for part in cmd):
            try:
                victims.extend(proc.children(recursive=True))
            except psutil.Error:
                pass
            victims.append(proc)
    leftovers.kill([proc.pid for proc in victims])  # SIGKILL each, wait until gone (zombies count as gone)
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    worker_pid, scratch = int(sys.argv[1]), sys.argv[2]
    try:
        worker = psutil.Process(worker_pid)
    except psutil.NoSuchProcess:
        _reap(scratch)
        return 0
    while True:
        try:
            worker.wait(timeout=1.0)
            break
        except psutil.TimeoutExpired:
            continue
        except psutil.NoSuchProcess:
            break
    _reap(scratch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
