"""Per-call memory records of wrapped functions, with exact peaks from the kernel's high-water mark.

The kernel keeps one RSS high-water mark per process (`VmHWM`), reset by writing 5 to
`/proc/self/clear_refs`. Nested calls share it, so the tracker never trusts it across events: at every
call event it reads the mark (the peak since the last reset) and folds it into the running peak of *every*
call still open in the process, and into the process's lifetime peak. It resets the mark at call entries
only: every call open at an event was already open at the last entry, so the interval since that reset lies
inside each of them, and an exit needs no reset. Each open call's peak is therefore the maximum over its
whole lifetime, an inner call never lowers an outer call's peak, and the process's lifetime peak survives
the resets; it is written as the process record (`"ev": "X"`) when the process ends.

The same read gives `RssAnon` (private), `RssFile` (file-backed) and `RssShmem`. The kernel keeps no
high-water mark for those: a call's `anon_peak` / `file_peak` are the largest readings at the events inside
it (its own entry and exit and those of nested calls in the process).

Cost (issue 11): one `pread` of an `/proc/self/status` kept open per event, one `clear_refs` write per entry,
a `waitid` that tells whether the process has children at all before the descendants are scanned, a
`getrusage`, and one `write` of a line formatted from pre-escaped pieces (no `json.dumps` per event). Each
line goes straight to the file with `os.write`, so a process killed by SIGKILL leaves every event before
the kill.

Only the standard library: this module runs inside measured processes.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import resource
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from memharness import names
from memharness.core import procmem
from memharness.core.clock import now_ns
from memharness.core.records import FORMAT_VERSION, CallLog


class CallProbe(Protocol):
    """Extra per-call readings (GPU): same fold-and-reset discipline as the host peak."""

    def on_event(self, open_frames: list[Frame]) -> None: ...

    def on_enter(self, frame: Frame) -> dict[str, Any] | None: ...

    def on_exit(self, frame: Frame) -> dict[str, Any] | None: ...


@dataclass(slots=True, eq=False)  # eq=False: frames compare and hash by identity
class Frame:
    """One open call."""

    call_id: str
    parent_id: str | None
    depth: int
    target: str
    tid: int
    rss_start: int
    peak: int
    anon_peak: int = 0
    file_peak: int = 0
    probe_state: dict[Any, Any] | None = field(default=None, init=False)


_RUSAGE_CHILDREN = resource.RUSAGE_CHILDREN
_getrusage = resource.getrusage


def _children_peak() -> int:
    return _getrusage(_RUSAGE_CHILDREN).ru_maxrss << 10


class Tracker:
    """Records B/E events of wrapped calls of this process into `calls/<pid>.jsonl`."""

    def __init__(self, calls_dir: Path, start_method: str = "main", probe: CallProbe | None = None) -> None:
        self.calls_dir = Path(calls_dir)
        self.probe = probe
        self.closed = False
        self._lock = threading.RLock()
        self._local = threading.local()
        self._open: dict[str, Frame] = {}
        self._quoted: dict[str, str] = {}  # string -> its JSON text, for targets and thread names
        self._open_process(start_method)
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.close)

    # -- process lifecycle -----------------------------------------------------------------------------
    def _open_process(self, start_method: str) -> None:
        self.start_method = start_method
        self.pid = os.getpid()
        self._pid_text = str(self.pid)
        self._counter = itertools.count(1)
        self._open.clear()
        self._local = threading.local()
        self._finished = False
        self.calls = 0
        self.log = CallLog(self.calls_dir / names.calls_file(self.pid))
        self._mem = procmem.SelfMemory()
        hwm, rss, anon, file, shmem = self._mem.read()
        # the lifetime figures of the process; the kernel's mark before our first reset counts too
        self.peak = max(hwm, rss)
        self.anon_peak, self.file_peak = anon, file
        self.hwm_ok = self._mem.reset_hwm()
        self._peak_method = '"hwm"' if self.hwm_ok else '"rss"'
        self.log.write({"ev": "P", "v": FORMAT_VERSION, "pid": self.pid, "ppid": os.getppid(),
                        "argv": sys.argv[:8], "t": now_ns(), "start_method": start_method, "hwm": self.hwm_ok,
                        "rss": rss, "anon": anon, "file": file, "shmem": shmem})

    def _after_fork(self) -> None:
        # A forked child inherits the wrapped functions and this tracker; it gets its own file and an
        # empty call stack (the parent's open calls never return in the child).
        if self.closed:
            return
        self._lock = threading.RLock()
        self.log.detach()
        self._mem.close()
        # children of the forkserver process are forkserver children
        self._open_process("forkserver" if self.start_method == "forkserver" else "fork")
        # multiprocessing's fork and forkserver children leave through os._exit, past atexit: its own
        # exit hook (run at the end of Process._bootstrap) writes the process record instead
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            mp_util.register_after_fork(self, _register_mp_exit)

    def close(self) -> None:
        """Write the process record (once per process) and close the file."""
        if self.closed:
            return
        self.finish()
        self.closed = True
        self.log.close()
        self._mem.close()

    def finish(self) -> None:
        """The process record: this process's lifetime peak RSS (exact across the resets), written once."""
        if self._finished or os.getpid() != self.pid:
            return
        with self._lock:
            self._finished = True
            t = now_ns()
            hwm, rss, anon, file, shmem = self._mem.read()
            self._fold(hwm if hwm > rss and self.hwm_ok else rss, anon, file, hwm)
            self.log.write_line(
                f'{{"ev":"X","pid":{self.pid},"t":{t},"peak_rss":{self.peak},"peak_method":"hwm",'
                f'"rss":{rss},"anon":{anon},"file":{file},"shmem":{shmem},"anon_peak":{self.anon_peak},'
                f'"file_peak":{self.file_peak},"calls":{self.calls},"open_calls":{len(self._open)}}}\n')

    # -- events ----------------------------------------------------------------------------------------
    def _stack(self) -> list[Frame]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _quote(self, text: str) -> str:
        q = self._quoted.get(text)
        if q is None:
            if len(self._quoted) > 4096:  # many short-lived threads with distinct names: keep it bounded
                self._quoted.clear()
            q = self._quoted[text] = json.dumps(text)
        return q

    def _fold(self, peak: int, anon: int, file: int, hwm: int = 0) -> None:
        """Fold the readings of this event into every open call and into the process's lifetime figures.

        `hwm` is the kernel's mark as read: without resets it is the lifetime peak itself."""
        for f in self._open.values():
            if peak > f.peak:
                f.peak = peak
            if anon > f.anon_peak:
                f.anon_peak = anon
            if file > f.file_peak:
                f.file_peak = file
        self.peak = max(self.peak, peak, hwm)
        self.anon_peak = max(self.anon_peak, anon)
        self.file_peak = max(self.file_peak, file)
        if self.probe is not None:
            self.probe.on_event(list(self._open.values()))

    def _children_rss(self) -> int:
        return procmem.descendants_rss(self.pid) if procmem.has_children() else 0

    def enter(self, target: str) -> Frame | None:
        if os.getpid() != self.pid:  # a fork we were not told about
            self._after_fork()
        if self.closed:
            return None
        with self._lock:
            t = now_ns()
            hwm, rss, anon, file, shmem = self._mem.read()
            if self.hwm_ok:
                self._mem.reset_hwm()  # the new call's window starts here
            self._fold(hwm if hwm > rss and self.hwm_ok else rss, anon, file, hwm)
            stack = self._stack()
            parent = stack[-1] if stack else None
            tid = threading.get_ident()
            n = next(self._counter)
            frame = Frame(f"{self._pid_text}:{n}", parent.call_id if parent else None, len(stack), target, tid,
                          rss, rss, anon, file)
            stack.append(frame)
            self._open[frame.call_id] = frame
            self.calls += 1
            gpu = self.probe.on_enter(frame) if self.probe is not None else None
            parent_text = f'"{parent.call_id}"' if parent else "null"
            self.log.write_line(
                f'{{"ev":"B","id":"{frame.call_id}","parent":{parent_text},"depth":{frame.depth},'
                f'"target":{self._quote(target)},"pid":{self._pid_text},"tid":{tid},'
                f'"thread":{self._quote(threading.current_thread().name)},"t":{t},"rss":{rss},"anon":{anon},'
                f'"file":{file},"shmem":{shmem},"children_rss":{self._children_rss()},'
                f'"children_peak_rss":{_children_peak()}'
                + (f',"gpu":{json.dumps(gpu, separators=(",", ":"))}}}\n' if gpu else "}\n"))
            return frame

    def exit(self, frame: Frame | None, error: str | None) -> None:
        if frame is None or frame.call_id not in self._open:
            return
        with self._lock:
            t = now_ns()
            hwm, rss, anon, file, shmem = self._mem.read()
            self._fold(hwm if hwm > rss and self.hwm_ok else rss, anon, file, hwm)
            stack = self._stack()
            if frame in stack:
                del stack[stack.index(frame):]  # frames above it that never exited (a generator, ...)
            self._open.pop(frame.call_id, None)
            gpu = self.probe.on_exit(frame) if self.probe is not None else None
            self.log.write_line(
                f'{{"ev":"E","id":"{frame.call_id}","t":{t},"rss":{rss},"anon":{anon},"file":{file},'
                f'"shmem":{shmem},"peak_rss":{frame.peak},"peak_method":{self._peak_method},'
                f'"anon_peak":{frame.anon_peak},"file_peak":{frame.file_peak},'
                f'"children_rss":{self._children_rss()},"children_peak_rss":{_children_peak()},'
                f'"error":{"null" if error is None else json.dumps(error)}'
                + (f',"gpu":{json.dumps(gpu, separators=(",", ":"))}}}\n' if gpu else "}\n"))


def _register_mp_exit(tracker: Tracker) -> None:
    """Run by multiprocessing in a fork/forkserver child after it clears its finalizers: write the process
    record at the child's exit (after it joined its own children: negative priority runs last)."""
    import multiprocessing.util as mp_util

    mp_util.Finalize(tracker, tracker.finish, exitpriority=-100)


_active: Tracker | None = None


def active() -> Tracker | None:
    return _active


def set_active(tracker: Tracker | None) -> None:
    global _active
    _active = tracker


def enter(label: str) -> Frame | None:
    """Module-level hooks the wrappers call; no-ops when no tracker is active."""
    t = _active
    return t.enter(label) if t is not None else None


def exit_(frame: Frame | None, error: str | None) -> None:
    t = _active
    if t is not None:
        t.exit(frame, error)
