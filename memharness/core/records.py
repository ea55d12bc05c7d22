"""Writing and reading the on-disk format of call events and timelines (see docs/format.md).

Writers append and flush line by line so a process killed at any moment leaves every event before the
kill; readers tolerate a torn last line or row.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness import names

FORMAT_VERSION = 2  # 2: process records (X), private/file-backed readings; version-1 files still read

# One timeline row: 24 bytes, little endian.
TIMELINE_FIELDS = [("t_ns", "<i8"), ("pid", "<i4"), ("kind", "<u2"), ("dev", "<i2"), ("value", "<i8")]
TIMELINE_ROW_BYTES = 24
KIND_PROC_RSS = 0
KIND_TREE_RSS = 1
KIND_GPU_USED = 2
KIND_GPU_PROC_USED = 3
KIND_GPU_TREE_USED = 4
# Kinds 5-9 live in the side file `timeline_mem.bin` (same rows), so readers of `timeline.bin` see only 0-4.
KIND_PROC_HWM = 5
KIND_PROC_ANON = 6
KIND_PROC_FILE = 7
KIND_TREE_ANON = 8
KIND_TREE_FILE = 9
TIMELINE_KINDS = {
    KIND_PROC_RSS: "rss of one process",
    KIND_TREE_RSS: "rss summed over the process tree",
    KIND_GPU_USED: "NVML used memory of one GPU",
    KIND_GPU_PROC_USED: "NVML used memory of one process on one GPU",
    KIND_GPU_TREE_USED: "NVML used memory summed over the tree's processes on one GPU",
    KIND_PROC_HWM: "VmHWM of one process (written when it changes)",
    KIND_PROC_ANON: "RssAnon (private) of one process",
    KIND_PROC_FILE: "RssFile (file-backed) of one process",
    KIND_TREE_ANON: "RssAnon summed over the process tree",
    KIND_TREE_FILE: "RssFile summed over the process tree",
}


class CallLog:
    """Append-only JSON-lines writer of one process's call events.

    Each line is one `os.write` on an `O_APPEND` descriptor: once it returns the line is in the kernel's
    page cache, so a process killed by SIGKILL right after still leaves it in the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        self.write_line(json.dumps(event, separators=(",", ":"), default=str) + "\n")

    def write_line(self, line: str) -> None:
        """Append one complete line (ending in a newline) in one system call."""
        fd = self._fd
        if fd is None:
            return
        data = line.encode("utf-8", "replace")
        try:
            n = os.write(fd, data)
        except OSError:  # the descriptor was closed behind our back: open the file again, once
            self._fd = fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            n = os.write(fd, data)
        while n < len(data):  # a short write (a full disk, a signal): finish the line
            data = data[n:]
            n = os.write(fd, data)

    def detach(self) -> None:
        """Forget the descriptor without closing it twice (a forked child's copy)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self.detach()


@dataclass
class CallRecord:
    """One call of a wrapped function, joined from its B and E events."""

    call_id: str
    parent_id: str | None
    depth: int
    target: str
    pid: int
    tid: int
    thread: str
    t_start_ns: int
    rss_start: int
    children_rss_start: int
    t_end_ns: int | None = None
    rss_end: int | None = None
    peak_rss: int | None = None
    peak_method: str | None = None
    children_rss_end: int | None = None
    children_peak_rss: int | None = None
    error: str | None = None
    gpu_start: dict[str, Any] | None = None
    gpu_end: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # format version 2 (None in version-1 files): private / file-backed / shmem readings at the events,
    # the largest readings at events inside the call, and the reaped-children peak at entry
    anon_start: int | None = None
    file_start: int | None = None
    shmem_start: int | None = None
    anon_end: int | None = None
    file_end: int | None = None
    shmem_end: int | None = None
    anon_peak: int | None = None
    file_peak: int | None = None
    children_peak_rss_start: int | None = None
    # filled in by memharness.core.peaks.attach_peaks (from other processes' records and the timeline)
    descendants_peak: int | None = None
    descendants_peak_pid: int | None = None
    tree_peak: int | None = None

    @property
    def complete(self) -> bool:
        return self.t_end_ns is not None

    @property
    def increment(self) -> int | None:
        return None if self.rss_end is None else self.rss_end - self.rss_start

    @property
    def peak_over_start(self) -> int | None:
        return None if self.peak_rss is None else self.peak_rss - self.rss_start

    @property
    def duration_s(self) -> float | None:
        return None if self.t_end_ns is None else (self.t_end_ns - self.t_start_ns) / 1e9


@dataclass
class ProcessInfo:
    pid: int
    ppid: int | None
    start_method: str
    t_ns: int
    argv: list[str]
    version: int = 1
    rss_start: int | None = None  # RSS when the tracker opened (version 2)
    exit: ProcessExit | None = None  # the process record, where the process wrote one


@dataclass
class ProcessExit:
    """The process record (`"ev": "X"`, format version 2): written once when an instrumented process ends."""

    t_ns: int
    peak_rss: int  # lifetime exact peak RSS, folded across the tracker's own high-water resets
    rss: int
    anon: int
    file: int
    shmem: int
    anon_peak: int  # largest RssAnon read at the process's events
    file_peak: int
    calls: int


@dataclass
class BadLine:
    """A line of a call file that could not be read as an event (1-based line number)."""

    file: Path
    line: int
    reason: str


class CallRecords(list):
    """What `read_calls` returns: the call records in start order (a plain list to every caller), plus
    `bad_lines`, the lines of the call files that were skipped because they are not events (garbage in the
    middle of a file). A torn last line, left by a process killed while writing, is normal and not counted."""

    def __init__(self, records=(), bad_lines=()) -> None:
        super().__init__(records)
        self.bad_lines: list[BadLine] = list(bad_lines)


def _iter_events(path: Path, bad: list[BadLine] | None = None):
    """(line number, event) of a call file; lines that are not a JSON object go to `bad`."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break  # torn last line of a killed process
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as exc:
                if bad is not None:
                    bad.append(BadLine(Path(path), number, "empty line" if not line.strip()
                                       else f"not JSON ({exc.msg})"))
                continue
            if not isinstance(ev, dict):
                if bad is not None:
                    bad.append(BadLine(Path(path), number, "not a JSON object"))
                continue
            yield number, ev


def _apply_event(records: dict[str, CallRecord], ev: dict[str, Any]) -> None:
    """Fold one B or E event into `records`; raises KeyError / TypeError / ValueError for a malformed one."""
    kind = ev.get("ev")
    if kind == "B":
        records[ev["id"]] = CallRecord(
            call_id=ev["id"],
            parent_id=ev.get("parent"),
            depth=int(ev.get("depth", 0)),
            target=str(ev["target"]),
            pid=int(ev["pid"]),
            tid=int(ev.get("tid", 0)),
            thread=ev.get("thread", ""),
            t_start_ns=int(ev["t"]),
            rss_start=int(ev["rss"]),
            children_rss_start=int(ev.get("children_rss", 0)),
            gpu_start=ev.get("gpu"),
            anon_start=ev.get("anon"),
            file_start=ev.get("file"),
            shmem_start=ev.get("shmem"),
            children_peak_rss_start=ev.get("children_peak_rss"),
        )
    elif kind == "E":
        rec = records.get(ev["id"])
        if rec is None:
            return
        t_end, rss_end = int(ev["t"]), int(ev["rss"])
        peak = int(ev["peak_rss"]) if ev.get("peak_rss") is not None else None
        rec.t_end_ns, rec.rss_end, rec.peak_rss = t_end, rss_end, peak
        rec.peak_method = ev.get("peak_method")
        rec.children_rss_end = ev.get("children_rss")
        rec.children_peak_rss = ev.get("children_peak_rss")
        rec.error = ev.get("error")
        rec.gpu_end = ev.get("gpu")
        rec.anon_end = ev.get("anon")
        rec.file_end = ev.get("file")
        rec.shmem_end = ev.get("shmem")
        rec.anon_peak = ev.get("anon_peak")
        rec.file_peak = ev.get("file_peak")


def read_call_files(cell_dir: Path) -> tuple[CallRecords, list[ProcessInfo]]:
    """One pass over a cell's call files: the call records (every process, in start order, `.bad_lines`
    for the lines skipped as garbage) and each file's process header with its process record."""
    calls_dir = Path(cell_dir) / names.CALLS
    records: dict[str, CallRecord] = {}
    bad: list[BadLine] = []
    processes: list[ProcessInfo] = []
    if not calls_dir.is_dir():
        return CallRecords(), processes
    for path in sorted(calls_dir.glob(names.CALLS_GLOB)):
        header: ProcessInfo | None = None
        seen_header = False
        for number, ev in _iter_events(path, bad):
            kind = ev.get("ev")
            if not seen_header:  # the first event of a file is its process header
                seen_header = True
                if kind == "P":
                    header = _process_info(ev)
                    if header is not None:
                        processes.append(header)
                    continue
            if kind == "X":
                if header is not None and header.version >= 2:
                    header.exit = _process_exit(ev)
                continue
            try:
                _apply_event(records, ev)
            except (KeyError, TypeError, ValueError) as exc:
                what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else "a field of the wrong type"
                bad.append(BadLine(path, number, f"{ev.get('ev', '?')} event with {what}"))
    return CallRecords(sorted(records.values(), key=lambda r: (r.t_start_ns, r.call_id)), bad), processes


def read_calls(cell_dir: Path) -> CallRecords:
    """All call records of a cell (every process), ordered by start time; `.bad_lines` lists the lines
    skipped as garbage."""
    return read_call_files(cell_dir)[0]


def read_processes(cell_dir: Path) -> list[ProcessInfo]:
    """The process headers of a cell's call files."""
    return read_call_files(cell_dir)[1]


def _process_info(ev: dict[str, Any]) -> ProcessInfo | None:
    try:
        return ProcessInfo(pid=int(ev["pid"]), ppid=ev.get("ppid"), start_method=ev.get("start_method", ""),
                           t_ns=int(ev["t"]), argv=list(ev.get("argv", [])), version=int(ev.get("v", 1)),
                           rss_start=ev.get("rss"), exit=None)
    except (KeyError, TypeError, ValueError):
        return None  # a broken header only loses the process's name in the charts


def _process_exit(ev: dict[str, Any]) -> ProcessExit | None:
    try:
        return ProcessExit(t_ns=int(ev["t"]), peak_rss=int(ev["peak_rss"]), rss=int(ev.get("rss", 0)),
                           anon=int(ev.get("anon", 0)), file=int(ev.get("file", 0)), shmem=int(ev.get("shmem", 0)),
                           anon_peak=int(ev.get("anon_peak", 0)), file_peak=int(ev.get("file_peak", 0)),
                           calls=int(ev.get("calls", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def timeline_dtype():
    import numpy as np

    return np.dtype(TIMELINE_FIELDS)


def _read_rows(path: Path):
    """Rows of a timeline file (or of its xz-compressed copy `<name>.xz`, as committed in results/samples);
    empty when neither exists; a torn last row is dropped."""
    import numpy as np

    dtype = timeline_dtype()
    if not path.exists():
        packed = path.with_name(path.name + names.COMPRESSED)
        if not packed.exists():
            return np.zeros(0, dtype=dtype)
        import lzma

        data = lzma.decompress(packed.read_bytes())
        return np.frombuffer(data, dtype=dtype, count=len(data) // TIMELINE_ROW_BYTES).copy()
    return np.fromfile(path, dtype=dtype, count=os.path.getsize(path) // TIMELINE_ROW_BYTES)


def read_timeline(cell_dir: Path):
    """The timeline rows of a cell as a numpy structured array (empty if none); drops a torn last row."""
    return _read_rows(Path(cell_dir) / names.TIMELINE)


def read_memory_timeline(cell_dir: Path):
    """The rows of `timeline_mem.bin` (VmHWM, private and file-backed readings; format version 2), as
    `read_timeline` reads `timeline.bin`; empty for a version-1 run."""
    return _read_rows(Path(cell_dir) / names.MEMORY_TIMELINE)


def tree_rss_series(rows):
    """(t_ns, bytes) arrays of the whole-tree RSS rows."""
    sel = rows[rows["kind"] == KIND_TREE_RSS]
    return sel["t_ns"], sel["value"]
