"""Processes a cell leaves behind: found by a marker variable in their environment, then killed or kept.

A helper started with `start_new_session=True` (or a double-forked daemon) leaves the cell's process tree
when the cell ends: it is re-parented to init, so the tree walk no longer sees it. Every process of a cell
inherits the cell's environment, which carries `MEMHARNESS_CELL_TOKEN=<random token>`; after the cell ends
the supervisor scans `/proc/*/environ` for that token. `/proc/PID/environ` holds the environment the
process was started with, so a process that later edits `os.environ` is still found; one started with an
explicitly emptied environment (`env={}`) is not.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

from memharness.core import procmem

TOKEN_ENV = "MEMHARNESS_CELL_TOKEN"


def new_token() -> str:
    return uuid.uuid4().hex


def _environments() -> Iterator[tuple[int, bytes]]:
    """(pid, start environment) of every process this user can read, this process excluded."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                yield int(name), fh.read()
        except OSError:
            continue


def marked_pids(token: str) -> list[int]:
    """Live (non-zombie) processes whose start environment carries the token, this process excluded."""
    needle = f"{TOKEN_ENV}={token}".encode() + b"\0"
    return [pid for pid, env in _environments()
            if (env.startswith(needle) or b"\0" + needle in env) and _alive(pid)]


def marked_with(var: str) -> dict[int, dict[str, str]]:
    """Live processes whose start environment sets `var`: pid -> the memharness variables (`MEMHARNESS_*`)
    of that environment."""
    needle = f"{var}=".encode()
    found = {}
    for pid, env in _environments():
        if needle not in env:
            continue
        pairs = [item.decode(errors="replace").partition("=") for item in env.split(b"\0")]
        own = {k: v for k, _, v in pairs if k.startswith("MEMHARNESS_")}
        if var in own and _alive(pid):
            found[pid] = own
    return found


def outliving(token: str, grace: float = 2.0) -> list[int]:
    """Marked processes still alive `grace` seconds after the cell ended (helpers such as
    multiprocessing's resource tracker exit on their own right after their parent: not leftovers)."""
    return wait_gone(marked_pids(token), grace)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return ""


def describe(pids: list[int]) -> list[dict]:
    return [{"pid": p, "rss": procmem.rss_bytes(p), "cmdline": _cmdline(p)} for p in pids]


def send(pids: list[int], sig: int) -> None:
    """Send `sig` to each process in the order given; those already gone (or not ours) are skipped."""
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def sigkill(pids: list[int]) -> None:
    """SIGKILL each process in the order given; those already gone (or not ours) are skipped."""
    send(pids, signal.SIGKILL)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (children first), then its process group."""
    sigkill(list(reversed([pid] + procmem.descendant_pids(pid))))
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (not gone, not zombies)."""
    return [p for p in pids if _alive(p)]


def kill(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL the processes and wait until they are gone; returns those still alive after `timeout`."""
    sigkill(pids)
    return wait_gone(pids, timeout, step=0.02)


def wait_gone(pids: list[int], timeout: float, step: float = 0.05) -> list[int]:
    """Poll until every process of `pids` is gone or `timeout` seconds have passed; those still alive."""
    deadline = time.monotonic() + timeout
    left = alive(pids)
    while left and time.monotonic() < deadline:
        time.sleep(step)
        left = alive(left)
    return left
