"""`classify_exit`: every way a cell can end maps to one recorded (status, cause, message), first match wins."""

from __future__ import annotations

import signal

import pytest

from memharness.runner.exitcause import CellWatch, classify_exit

GUARD = {"tree_rss": 700 * 2**20, "max_rss": 600 * 2**20}
ERROR = {"type": "ValueError", "message": "bad input"}


@pytest.mark.parametrize(("watch", "extra", "expected"), [
    (CellWatch(0), {}, ("done", None, "")),
    (CellWatch(1), {"error": ERROR}, ("failed", "exception", "ValueError: bad input")),
    (CellWatch(3), {}, ("failed", "exit", "exited with code 3")),
    (CellWatch(-signal.SIGSEGV), {}, ("failed", "signal", "died of signal SIGSEGV")),
    (CellWatch(-signal.SIGKILL), {"oom_kills_before": 4, "oom_kills_after": 5},
     ("failed", "oom_kill", "killed by the kernel's OOM killer (SIGKILL)")),
    (CellWatch(-signal.SIGKILL), {"oom_kills_before": 4, "oom_kills_after": 4},
     ("failed", "sigkill", "killed by SIGKILL from outside the harness")),
    (CellWatch(-signal.SIGKILL), {}, ("failed", "sigkill", "killed by SIGKILL from outside the harness")),
    (CellWatch(-signal.SIGKILL), {"guard": GUARD},
     ("failed", "max_rss", "process tree RSS 700 MiB crossed max_rss 600 MiB; killed")),
    (CellWatch(-signal.SIGKILL, timed_out=True), {"timeout": 2.5},
     ("failed", "timeout", "ran longer than the timeout of 2.5 s; killed")),
    (CellWatch(-signal.SIGKILL, disk_full=True), {"guard": GUARD},
     ("interrupted", "disk_full", "the run folder's disk is full; killed")),
])
def test_each_end_has_its_cause(watch, extra, expected):
    assert classify_exit(watch, **extra) == expected


def test_a_stop_request_wins_over_everything_else():
    watch = CellWatch(-signal.SIGKILL, stop_signal=signal.SIGINT, timed_out=True, disk_full=True)
    status, cause, _ = classify_exit(watch, guard=GUARD, error=ERROR, timeout=1.0)
    assert (status, cause) == ("interrupted", "interrupted")
    assert watch.killed_by_us


def test_gib_amounts_keep_two_decimals():
    guard = {"tree_rss": 3 * 2**30, "max_rss": int(2.5 * 2**30)}
    assert classify_exit(CellWatch(-signal.SIGKILL), guard=guard)[2] == \
        "process tree RSS 3.00 GiB crossed max_rss 2.50 GiB; killed"
    assert not CellWatch(0).killed_by_us
