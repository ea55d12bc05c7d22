"""Figures of a call that come from outside its own B/E events (issue 11): the exact peaks of the processes
it started, the process tree's sampled peak during it, and the sampled private / file-backed readings.

- **Descendants' peak** of a call: the largest lifetime peak RSS among the descendant processes of the
  call's process that were alive at some moment of the call. Per process, the best figure on disk:
  an instrumented process's own process record (`"ev": "X"`, exact across its `clear_refs` resets); for a
  process that was not instrumented, the largest `VmHWM` the sampler read up to the call's end (the kernel's
  own lifetime peak, nobody resets it there; exact up to the last tick that saw the process); and the
  call's reaped-children peak (`getrusage(RUSAGE_CHILDREN)`) when it rose during the call above the call's
  own peak (a child reaped inside the call peaked there; exact for a child that was not instrumented). The
  kernel's figure for an exec'd child includes the memory it had before exec, i.e. its parent's at the
  fork, so a figure at or below the parent's own peak is left out. An instrumented process that
  left no process record (killed) falls back to its calls' peaks and the sampler's readings, a lower bound.
  A worker that outlives the call contributes its whole lifetime's peak.
- **Tree peak during the call**: the highest sampled RSS of the whole tree inside the call's window (none
  when no sample fell inside a call shorter than the interval).
- **Private / file-backed peaks**: the kernel keeps no high-water mark for `RssAnon` / `RssFile`. A call's
  figure is the largest reading at any event inside it (its own entry and exit, nested calls') and at any
  timeline sample of its process inside its window: a lower bound of the true peak, exact when the peak
  lies at an event or lasts longer than a sampling interval.

Reads only the on-disk format (docs/format.md); version-1 runs give None for what they do not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import read_json
from memharness.core.records import (
    KIND_PROC_ANON,
    KIND_PROC_FILE,
    KIND_PROC_HWM,
    KIND_TREE_ANON,
    KIND_TREE_FILE,
    KIND_TREE_RSS,
    CallRecord,
    read_memory_timeline,
    read_processes,
    read_timeline,
)


class RangeMax:
    """Maximum of a time series over any time window in O(1) after an O(n log n) build (a sparse table)."""

    def __init__(self, t, v) -> None:
        import numpy as np

        order = np.argsort(t, kind="stable")
        self.t = np.asarray(t)[order]
        levels = [np.asarray(v, dtype=np.int64)[order]]
        k = 1
        while 2 * k <= len(self.t):
            prev = levels[-1]
            levels.append(np.maximum(prev[:-k], prev[k:]))
            k *= 2
        self.levels = levels

    def __len__(self) -> int:
        return len(self.t)

    def max(self, t0: int, t1: int) -> int | None:
        """Largest value with t0 <= t <= t1, None if no sample lies in the window."""
        import numpy as np

        i = int(np.searchsorted(self.t, t0, side="left"))
        j = int(np.searchsorted(self.t, t1, side="right"))
        if j <= i:
            return None
        n = j - i
        lv = n.bit_length() - 1
        table = self.levels[lv]
        return int(max(table[i], table[j - (1 << lv)]))

    def last_at_or_before(self, t1: int) -> int | None:
        import numpy as np

        j = int(np.searchsorted(self.t, t1, side="right"))
        return None if j == 0 else int(self.levels[0][:j].max())


@dataclass
class ProcessPeak:
    """What is known of one process of the tree."""

    pid: int
    ppid: int | None
    start_ns: int | None
    end_ns: int | None  # None: alive until the end of the records
    instrumented: bool
    exit_peak: int | None  # the process record's lifetime peak (instrumented processes that wrote one)
    hwm: RangeMax | None  # sampled VmHWM
    call_peak: int | None  # largest peak of its own calls (fallback for instrumented without a record)

    def peak_until(self, t1: int) -> int | None:
        """The best figure of this process's peak for a call ending at t1."""
        if self.exit_peak is not None:
            return self.exit_peak
        sampled = self.hwm.last_at_or_before(t1) if self.hwm is not None and len(self.hwm) else None
        if self.instrumented:  # its VmHWM is reset by its tracker: samples and calls are lower bounds
            vals = [v for v in (sampled, self.call_peak) if v is not None]
            return max(vals) if vals else None
        return sampled


def process_peaks(cell_dir: Path, calls: list[CallRecord], rows: Any = None, processes: Any = None,
                  sampled: Any = None) -> dict[int, ProcessPeak]:
    """Every process of a cell, from the call files' headers and records and the sampler's side file
    (`rows`: the memory timeline, `read_memory_timeline`; `processes`: `read_processes`; `sampled`:
    processes.json; each read here when not given)."""
    cell_dir = Path(cell_dir)
    rows = read_memory_timeline(cell_dir) if rows is None else rows
    out: dict[int, ProcessPeak] = {}
    call_peak: dict[int, int] = {}
    for c in calls:
        if c.peak_rss is not None:
            call_peak[c.pid] = max(call_peak.get(c.pid, 0), c.peak_rss)
    for p in read_processes(cell_dir) if processes is None else processes:
        out[p.pid] = ProcessPeak(p.pid, p.ppid, p.t_ns, p.exit.t_ns if p.exit else None, True,
                                 p.exit.peak_rss if p.exit else None, None, call_peak.get(p.pid))
    sampled = ((read_json(cell_dir / names.PROCESSES, {}) or {}) if sampled is None else sampled).get("processes", [])
    hwm_rows = rows[rows["kind"] == KIND_PROC_HWM] if len(rows) else rows
    for s in sampled:
        pid = int(s["pid"])
        sel = hwm_rows[hwm_rows["pid"] == pid] if len(hwm_rows) else hwm_rows
        hwm = RangeMax(sel["t_ns"], sel["value"]) if len(sel) else None
        rec = out.get(pid)
        if rec is None:
            out[pid] = ProcessPeak(pid, s.get("ppid"), s.get("first_ns"), s.get("last_ns"), False, None, hwm, None)
        else:
            rec.hwm = hwm
            rec.ppid = rec.ppid if rec.ppid is not None else s.get("ppid")
            if s.get("first_ns") and (rec.start_ns is None or s["first_ns"] < rec.start_ns):
                rec.start_ns = int(s["first_ns"])
            if s.get("last_ns") and rec.end_ns is None and rec.exit_peak is None:
                rec.end_ns = int(s["last_ns"])  # instrumented, no record (killed): its last sample
    return out


def _ancestors(pid: int, procs: dict[int, ProcessPeak]) -> set[int]:
    seen: set[int] = set()
    p = procs.get(pid)
    while p is not None and p.ppid is not None and p.ppid not in seen:
        seen.add(p.ppid)
        p = procs.get(p.ppid)
    return seen


def attach_peaks(cell_dir: Path, calls: list[CallRecord], rows: Any = None, main_rows: Any = None,
                 processes: Any = None, sampled: Any = None) -> list[CallRecord]:
    """Fill in each call's `descendants_peak` (+ `descendants_peak_pid`), `tree_peak`, and fold the
    sampled private / file-backed readings of its process into `anon_peak` / `file_peak`. What the caller
    has read already (`rows`: memory timeline, `main_rows`: timeline, `processes`, `sampled`: see
    `process_peaks`) is not read again."""
    rows = read_memory_timeline(cell_dir) if rows is None else rows
    main_rows = read_timeline(cell_dir) if main_rows is None else main_rows
    procs = process_peaks(cell_dir, calls, rows, processes, sampled)
    ancestors = {pid: _ancestors(pid, procs) for pid in procs}
    tree = RangeMax(*_series(main_rows, KIND_TREE_RSS)) if len(main_rows) else None
    per_pid: dict[tuple[int, int], RangeMax] = {}

    def series_of(pid: int, kind: int) -> RangeMax | None:
        key = (pid, kind)
        if key not in per_pid:
            sel = rows[(rows["kind"] == kind) & (rows["pid"] == pid)] if len(rows) else rows
            per_pid[key] = RangeMax(sel["t_ns"], sel["value"]) if len(sel) else None
        return per_pid[key]

    for c in calls:
        if c.t_end_ns is None or c.anon_start is None:
            continue  # open, or a version-1 record: these figures are left out, as the run did not hold them
        t0, t1 = c.t_start_ns, c.t_end_ns
        best, best_pid = None, None
        for p in procs.values():
            if p.pid == c.pid or c.pid not in ancestors[p.pid]:
                continue
            if (p.start_ns is not None and p.start_ns > t1) or (p.end_ns is not None and p.end_ns < t0):
                continue
            v = p.peak_until(t1)
            if v is not None and (best is None or v > best):
                best, best_pid = v, p.pid
        if (c.children_peak_rss is not None and c.children_peak_rss_start is not None
                and c.children_peak_rss > c.children_peak_rss_start
                and c.children_peak_rss > (c.peak_rss or 0)
                and (best is None or c.children_peak_rss > best)):
            # a child reaped during the call peaked higher than the call's own process: the kernel counts
            # in an exec'd child's figure the memory it had before exec (its parent's, at the fork), so a
            # figure at or below the parent's own peak may be the parent's and is left out
            best, best_pid = int(c.children_peak_rss), None
        c.descendants_peak, c.descendants_peak_pid = best, best_pid
        if tree is not None:  # the tree held at least what any of its processes held: never below them
            bounds = [v for v in (tree.max(t0, t1), c.peak_rss, best) if v is not None]
            c.tree_peak = max(bounds) if bounds else None
        for kind, attr in ((KIND_PROC_ANON, "anon_peak"), (KIND_PROC_FILE, "file_peak")):
            s = series_of(c.pid, kind)
            v = s.max(t0, t1) if s is not None else None
            if v is not None and v > getattr(c, attr):
                setattr(c, attr, v)
    return calls


def _series(rows, kind: int):
    sel = rows[rows["kind"] == kind]
    return sel["t_ns"], sel["value"]


def call_figures(done: list[CallRecord]) -> dict[str, float]:
    """The issue-11 figures of one function in one cell (its complete calls, in start order), folded the way
    `results.figures.fold_calls` folds the others: peaks are the largest over the calls, increments sum."""
    out: dict[str, float] = {}
    desc = [c.descendants_peak for c in done if c.descendants_peak is not None]
    if desc:
        out["descendants_peak"] = max(desc)
    tree = [c.tree_peak for c in done if c.tree_peak is not None]
    if tree:
        out["tree_peak_in_call"] = max(tree)
    split = [c for c in done if c.anon_start is not None and c.anon_end is not None]
    if split:
        out["private_start"] = split[0].anon_start
        out["private_increment"] = sum(c.anon_end - c.anon_start for c in split)
        out["private_peak"] = max(c.anon_peak or 0 for c in split)
        out["file_start"] = split[0].file_start or 0
        out["file_increment"] = sum((c.file_end or 0) - (c.file_start or 0) for c in split)
        out["file_peak"] = max(c.file_peak or 0 for c in split)
    return out


def tree_split(rows, t0: int | None = None, t1: int | None = None) -> dict[str, float]:
    """Private and file-backed peaks of the whole tree from the memory timeline (`read_memory_timeline`),
    optionally within [t0, t1]."""
    out: dict[str, float] = {}
    for kind, metric in ((KIND_TREE_ANON, "private_peak"), (KIND_TREE_FILE, "file_peak")):
        sel = rows[rows["kind"] == kind] if len(rows) else rows
        if t0 is not None:
            sel = sel[sel["t_ns"] >= t0]
        if t1 is not None:
            sel = sel[sel["t_ns"] <= t1]
        if len(sel):
            out[metric] = float(sel["value"].max())
    return out
