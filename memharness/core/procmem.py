"""Readers of process memory from /proc, cheap enough to call on every wrapped call.

Only the standard library: this module runs inside measured processes, possibly in another virtualenv.
"""

from __future__ import annotations

import os
import re

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError, PermissionError):
        return 0


def reset_hwm() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (`echo 5 > /proc/self/clear_refs`)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def children_pids(pid: int) -> list[int]:
    """Direct children of a process, from /proc/PID/task/*/children."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, PermissionError):
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except (FileNotFoundError, PermissionError, ValueError):
            continue
    return kids


def descendant_pids(pid: int) -> list[int]:
    """All live descendants of a process, breadth first."""
    out: list[int] = []
    frontier = [pid]
    seen = {pid}
    while frontier:
        nxt: list[int] = []
        for p in frontier:
            for c in children_pids(p):
                if c not in seen:
                    seen.add(c)
                    out.append(c)
                    nxt.append(c)
        frontier = nxt
    return out


def descendants_rss(pid: int | None = None) -> int:
    """Summed RSS of the live descendants of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return sum(rss_bytes(c) for c in descendant_pids(pid))


# --- one /proc/PID/status read for every memory figure (issue 11) -----------------------------------------

# In /proc/PID/status these five lines follow each other (Linux >= 4.5); one regex search finds them.
_MEM_LINES = re.compile(rb"VmHWM:\s*(\d+) kB\nVmRSS:\s*(\d+) kB\nRssAnon:\s*(\d+) kB\n"
                        rb"RssFile:\s*(\d+) kB\nRssShmem:\s*(\d+) kB")
_MEM_NAMES = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def parse_mem(status: bytes) -> tuple[int, int, int, int, int] | None:
    """(VmHWM, VmRSS, RssAnon, RssFile, RssShmem) in bytes from the text of /proc/PID/status.

    None where the text has no memory lines (a zombie or a kernel thread). A kernel without the Rss*
    lines gives 0 for them.
    """
    m = _MEM_LINES.search(status)
    if m is not None:
        hwm, rss, anon, file, shmem = m.groups()
        return int(hwm) << 10, int(rss) << 10, int(anon) << 10, int(file) << 10, int(shmem) << 10
    found: dict[bytes, int] = {}
    for line in status.split(b"\n"):
        key, _, rest = line.partition(b":")
        if key.decode(errors="replace") in _MEM_NAMES and rest.split():
            found[key] = int(rest.split()[0]) << 10
    if b"VmRSS" not in found:
        return None
    return (found.get(b"VmHWM", found[b"VmRSS"]), found[b"VmRSS"], found.get(b"RssAnon", 0),
            found.get(b"RssFile", 0), found.get(b"RssShmem", 0))


def mem_status(pid: int | str) -> tuple[int, int, int, int, int] | None:
    """(VmHWM, VmRSS, RssAnon, RssFile, RssShmem) of a process in bytes; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            return parse_mem(fh.read())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


class SelfMemory:
    """This process's memory figures at the price of one `pread` of an `/proc/self/status` kept open.

    The kernel regenerates the file on every read from offset 0, so the descriptor is opened once. It
    names the process that opened it: after a fork, open a new one (`/proc/self` resolves at open time).
    """

    def __init__(self) -> None:
        self._fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._clear_fd: int | None = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._clear_fd = None

    def read(self) -> tuple[int, int, int, int, int]:
        """(VmHWM, VmRSS, RssAnon, RssFile, RssShmem) in bytes."""
        try:
            mem = parse_mem(os.pread(self._fd, 8192, 0))
        except OSError:  # the descriptor was closed behind our back: open the file again
            self._fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
            mem = parse_mem(os.pread(self._fd, 8192, 0))
        return mem if mem is not None else (0, 0, 0, 0, 0)

    def reset_hwm(self) -> bool:
        """Reset the high-water mark to the current RSS; False (and no more tries) where that fails."""
        if self._clear_fd is None:
            return False
        try:
            os.write(self._clear_fd, b"5")
        except OSError:
            os.close(self._clear_fd)
            self._clear_fd = None
            return False
        return True

    def close(self) -> None:
        for fd in (self._fd, self._clear_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._clear_fd = None


def has_children() -> bool:
    """Whether this process has any child, live or not yet reaped: one `waitid` that reaps nothing.

    Linux's wait family looks at the children of every thread of the process; `WNOHANG | WNOWAIT` makes
    it return at once and leave a finished child's status for its owner. Children made with `clone` and
    an exit signal other than SIGCHLD are not seen (Python's fork, subprocess and multiprocessing never
    make those).
    """
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def descendant_tree(pid: int) -> dict[int, int]:
    """Every live descendant of a process mapped to its parent, breadth first."""
    out: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        nxt: list[int] = []
        for p in frontier:
            for c in children_pids(p):
                if c != pid and c not in out:
                    out[c] = p
                    nxt.append(c)
        frontier = nxt
    return out
