"""How a cell ended, as status.json's (status, cause, message): one rule for every executor.

Causes (`classify_exit` says in which order they are checked):

- `exception`: the pipeline raised (error.json holds the traceback);
- `max_rss`: the sampler's guard killed the tree (guard.json);
- `timeout`: the supervisor killed the tree after `timeout`;
- `oom_kill`: SIGKILL while the kernel's oom_kill counter went up;
- `sigkill`: SIGKILL from outside; `signal`: another fatal signal;
- `exit`: the cell left with a non-zero code without raising (`os._exit(3)`, `sys.exit(3)`);
- `interrupted`: Ctrl-C, SIGTERM or SIGHUP to the supervisor, or one of them that killed the cell itself (a
  container or cgroup stop signals every process at once; status `interrupted`, redone by `--resume`);
- `disk_full`: the run folder's disk filled up during the cell (status `interrupted`, redone by `--resume`);
- `sampler_lost`: the timeline sampler kept dying (`runner/samplerwatch.py`): without it `max_rss` is not
  enforced, so the cell was stopped. A sampler that died and came back leaves `sampler_gaps` in status.json.
"""

from __future__ import annotations

import functools
import signal
from dataclasses import dataclass, field
from typing import Any

from memharness.numeric import is_number
from memharness.runner import diskspace
from memharness.runner.signals import STOP_SIGNALS, signal_name, stop_message

__all__ = ["CellWatch", "classify_exit", "json_number", "oom_kills", "rss_text"]

rss_text = functools.partial(diskspace.fmt, mib_decimals=0, gib_decimals=2)  # "600 MiB", "1.50 GiB"


def json_number(value: Any) -> float:
    """A number read from a cell's JSON file, 0 for anything else (a hand-edited or half-known file)."""
    return value if is_number(value) else 0


@dataclass
class CellWatch:
    """What the supervisor saw while the cell ran: its exit code and why the supervisor killed it, if it did."""

    returncode: int
    stop_signal: int | None = None  # a SIGINT/SIGTERM/SIGHUP to the supervisor
    timed_out: bool = False
    disk_full: bool = False
    sampler_lost: str | None = None  # why the supervisor stopped the cell for its sampler
    sampler_gaps: list[dict[str, Any]] = field(default_factory=list)  # status.json `sampler_gaps`

    @property
    def killed_by_us(self) -> bool:
        return self.stop_signal is not None or self.timed_out or self.disk_full or self.sampler_lost is not None


def oom_kills() -> int | None:
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
    a full disk, the guard, a lost sampler, the timeout, then the exit code."""
    rc = watch.returncode
    if watch.stop_signal is not None:
        return "interrupted", "interrupted", stop_message(watch.stop_signal)
    if watch.disk_full:
        return "interrupted", "disk_full", "the run folder's disk is full; killed"
    if guard is not None:
        return "failed", "max_rss", (f"process tree RSS {rss_text(json_number(guard.get('tree_rss')))} crossed max_rss "
                                     f"{rss_text(json_number(guard.get('max_rss')))}; killed")
    if watch.sampler_lost is not None:
        return "failed", "sampler_lost", watch.sampler_lost
    if watch.timed_out:
        return "failed", "timeout", f"ran longer than the timeout of {timeout:g} s; killed"
    if rc == 0:
        return "done", None, ""
    if rc == -signal.SIGKILL:
        if oom_kills_before is not None and oom_kills_after is not None and oom_kills_after > oom_kills_before:
            return "failed", "oom_kill", "killed by the kernel's OOM killer (SIGKILL)"
        return "failed", "sigkill", "killed by SIGKILL from outside the harness"
    if rc < 0 and -rc in STOP_SIGNALS:  # a stop meant for the whole run reached the cell first (or alone)
        return "interrupted", "interrupted", (f"stopped by {signal_name(-rc)} sent to the cell (not to memharness); "
                                              f"--resume runs it again")
    if rc < 0:
        return "failed", "signal", f"died of signal {signal_name(-rc)}"
    if error is not None:
        return "failed", "exception", f"{error.get('type', 'Exception')}: {error.get('message', '')}"
    # no error.json: the cell left through os._exit / sys.exit (or could not write error.json)
    return "failed", "exit", f"exited with code {rc}"
