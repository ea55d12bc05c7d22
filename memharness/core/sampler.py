"""The timeline sampler: a separate process that samples the RSS of every process in a tree.

Being its own process, it keeps its interval while the measured pipeline holds the GIL in a Python loop.
It streams fixed-width rows to `timeline.bin` (see docs/format.md), so memory stays bounded on runs of
hours. From the same read of `/proc/<pid>/status` it streams each process's `VmHWM` (when it changes) and
its private (`RssAnon`) and file-backed (`RssFile`) memory to `timeline_mem.bin`, and keeps
`processes.json` (every process seen, its parent and largest `VmHWM`): the kernel's lifetime peak of a
process memharness does not instrument, which nobody resets.

It is also the cell's guard: when the tree's RSS crosses `--max-rss` it records why in a guard file and
kills the tree with SIGKILL.

Run as `python -m memharness.core.sampler --root PID --out DIR [--interval 0.05] [--max-rss BYTES]`.
Stops when the root process and all its descendants are gone, or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

from memharness import names
from memharness.core import procmem
from memharness.core.atomic import write_json
from memharness.core.clock import now_ns
from memharness.core.nvml import Nvml, open_nvml
from memharness.core.records import (
    KIND_GPU_PROC_USED,
    KIND_GPU_TREE_USED,
    KIND_GPU_USED,
    KIND_PROC_ANON,
    KIND_PROC_FILE,
    KIND_PROC_HWM,
    KIND_PROC_RSS,
    KIND_TREE_ANON,
    KIND_TREE_FILE,
    KIND_TREE_RSS,
    TIMELINE_FIELDS,
    TIMELINE_KINDS,
    TIMELINE_ROW_BYTES,
)

ROW = struct.Struct("<qiHhq")
assert ROW.size == TIMELINE_ROW_BYTES



class _Gpu:
    """NVML readings for the timeline: per device its used memory, each process of the tree's and their sum."""

    def __init__(self, nvml: Nvml) -> None:
        self.nvml = nvml
        self.handles = nvml.handles()

    def rows(self, t: int, pids: set[int]) -> list[bytes]:
        out = []
        nv = self.nvml
        for dev, h in enumerate(self.handles):
            used = nv.used(h)
            if used is None:
                continue
            out.append(ROW.pack(t, 0, KIND_GPU_USED, dev, used))
            procs = [*(nv.compute_processes(h) or []), *(nv.graphics_processes(h) or [])]
            tree_used = 0
            for p in procs:
                if p.pid in pids and p.used is not None:
                    out.append(ROW.pack(t, p.pid, KIND_GPU_PROC_USED, dev, p.used))
                    tree_used += p.used
            out.append(ROW.pack(t, 0, KIND_GPU_TREE_USED, dev, tree_used))
        return out


def _open_gpu(enabled: str) -> _Gpu | None:
    """The timeline's GPU rows; None where they are off or there is no NVML or no GPU."""
    nvml = open_nvml() if enabled != "off" else None
    if nvml is None:
        return None
    try:
        gpu = _Gpu(nvml)
    except Exception:  # noqa: BLE001 - a driver that cannot list its devices: GPU rows are simply absent
        return None
    return gpu if gpu.handles else None


def shared_with_parent(readings: dict[int, tuple], parents: dict[int, int | None]) -> set[int]:
    """The processes whose `/proc/<pid>/status` reading equals their parent's to the byte in the same tick.

    A child started with `vfork` (Python's subprocess and multiprocessing's helpers start theirs so) shares
    its parent's address space until it execs: its VmRSS, VmHWM, RssAnon and RssFile are the parent's.
    Counted as its own, that memory would double the parent in the tree sum (and could trip `max_rss`) and
    give the child the parent's high-water mark as its lifetime peak. Such a child holds nothing of its own
    until it execs (a `fork` child caught before its first write is sharing the same pages too)."""
    return {p for p, m in readings.items()
            if (pp := parents.get(p)) is not None and m[1] > 0 and readings.get(pp) == m}


def _tick_rows(t: int, root: int, exclude: set[int], procs: _ProcessBook) -> tuple[list[bytes], list[bytes], int,
                                                                                 list[int]]:
    """One tick's timeline rows, memory-timeline rows, tree RSS and live pids (empty: the tree is gone)."""
    parents = {p: pp for p, pp in procmem.descendant_tree(root).items() if p not in exclude}
    pids = [root] + list(parents)
    # one read of /proc/<pid>/status per process: None for a process gone or a zombie (no memory)
    readings = [(p, m) for p in pids if (m := procmem.mem_status(p)) is not None]
    live = [p for p, _ in readings]
    rows: list[bytes] = []
    mem_rows: list[bytes] = []
    total = anon_total = file_total = 0
    shared = shared_with_parent(dict(readings), parents)
    for p, (hwm, rss, anon, file, _shmem) in readings:
        if p in shared:  # the parent's memory, read through a vfork child: hold nothing of its own
            hwm = rss = anon = file = 0
        total += rss
        anon_total += anon
        file_total += file
        rows.append(ROW.pack(t, p, KIND_PROC_RSS, -1, rss))
        mem_rows.append(ROW.pack(t, p, KIND_PROC_ANON, -1, anon))
        mem_rows.append(ROW.pack(t, p, KIND_PROC_FILE, -1, file))
        if procs.seen(p, parents.get(p), t, hwm):
            mem_rows.append(ROW.pack(t, p, KIND_PROC_HWM, -1, hwm))
    rows.append(ROW.pack(t, 0, KIND_TREE_RSS, -1, total))
    mem_rows.append(ROW.pack(t, 0, KIND_TREE_ANON, -1, anon_total))
    mem_rows.append(ROW.pack(t, 0, KIND_TREE_FILE, -1, file_total))
    return rows, mem_rows, total, live


def _kill_over_limit(out_dir: Path, t: int, total: int, max_rss: int, live: list[int]) -> None:
    """The tree crossed `max_rss`: say so in guard.json, then SIGKILL it, children first."""
    write_json(out_dir / names.GUARD, {"cause": "max_rss", "t_ns": t, "tree_rss": total, "max_rss": max_rss,
                                      "pids": live})
    for p in reversed(live):  # children first, then the root
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _header(root: int, interval: float, max_rss: int | None, gpu: bool) -> dict:
    return {
        "format": "memharness-timeline", "version": 1, "row_bytes": TIMELINE_ROW_BYTES,
        "fields": [list(f) for f in TIMELINE_FIELDS], "kinds": {str(k): v for k, v in TIMELINE_KINDS.items()},
        "interval_s": interval, "root_pid": root, "started_ns": now_ns(), "clock": "CLOCK_MONOTONIC",
        "gpu": gpu, "max_rss": max_rss, "memory_file": names.MEMORY_TIMELINE,
        "memory_kinds": [5, 6, 7, 8, 9],
    }


def sample(root: int, out_dir: Path, interval: float, max_rss: int | None = None, gpu: str = "auto",
           exclude: set[int] | None = None, restart: bool = False) -> dict:
    """Sample `root`'s process tree every `interval` seconds into `out_dir` until it is gone or SIGTERM/SIGINT
    arrives; returns the header written to timeline.json at the end. `restart`: an earlier sampler of this
    tree died; its processes.json is taken over (the timelines are appended to anyway)."""
    stop: dict[str, int | None] = {"signal": None}  # the stop signal, once one arrives

    def _stop(signum, frame):  # noqa: ANN001, ARG001
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exclude = set(exclude or ()) | {os.getpid()}
    nvml = _open_gpu(gpu)
    header = _header(root, interval, max_rss, nvml is not None)
    if restart:
        header["restarted"] = True  # this header covers the samples since the restart
    write_json(out_dir / names.TIMELINE_HEADER, header)

    ticks = late = 0
    peak_total = 0
    interval_ns = int(interval * 1e9)
    next_t = now_ns()
    killed = False
    procs = _ProcessBook(out_dir / names.PROCESSES, root)
    if restart:
        procs.take_over()
    with open(out_dir / names.TIMELINE, "ab", buffering=0) as fh, \
            open(out_dir / names.MEMORY_TIMELINE, "ab", buffering=0) as mem_fh:
        while stop["signal"] is None:
            t = now_ns()
            rows, mem_rows, total, live = _tick_rows(t, root, exclude, procs)
            if not live:
                break
            mem_fh.write(b"".join(mem_rows))
            procs.tick(t)
            if nvml is not None:
                rows.extend(nvml.rows(t, set(live)))
            fh.write(b"".join(rows))
            ticks += 1
            peak_total = max(peak_total, total)
            if max_rss is not None and total > max_rss and not killed:
                _kill_over_limit(out_dir, t, total, max_rss, live)
                killed = True
            next_t += interval_ns
            delay = next_t - now_ns()
            if delay < 0:
                late += 1
                next_t = now_ns()  # skip the missed ticks rather than bursting
            else:
                time.sleep(delay / 1e9)
    procs.tick(now_ns(), force=True)
    header.update({"stopped_ns": now_ns(), "ticks": ticks, "late_ticks": late, "peak_tree_rss": peak_total,
                   "stopped_by": "tree_gone" if stop["signal"] is None else signal.Signals(stop["signal"]).name})
    write_json(out_dir / names.TIMELINE_HEADER, header)
    return header


class _ProcessBook:
    """Every process the sampler saw, for `processes.json`: parent, first and last sample, the largest
    `VmHWM` read and the process's name. Rewritten (atomically) when a process appeared or left, at most
    once a second (a compile step starts hundreds of short processes), and when the sampler stops.

    `VmHWM` is the kernel's lifetime RSS peak of a process nobody resets it in; in a process instrumented by
    memharness the tracker resets it, so there it is only the peak since the tracker's last reset (the
    tracker's own process record holds that process's lifetime peak).
    """

    def __init__(self, path: Path, root: int) -> None:
        self.path = path
        self.root = root
        self.procs: dict[int, dict] = {}
        self.live: set[int] = set()
        self.prev_live: set[int] = set()
        self.dirty = False
        self.written_ns = 0

    def take_over(self) -> None:
        """Start from the processes an earlier sampler of the tree recorded (it died; this one goes on)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            records = data.get("processes") if isinstance(data, dict) else None
        except (OSError, ValueError):
            return
        keys = ("pid", "first_ns", "last_ns", "hwm", "hwm_t_ns")
        for rec in records if isinstance(records, list) else []:
            if isinstance(rec, dict) and all(type(rec.get(k)) is int for k in keys):
                self.procs[rec["pid"]] = {**rec, "last_hwm": rec["hwm"]}

    def seen(self, pid: int, ppid: int | None, t: int, hwm: int) -> bool:
        """Note one sample; True when its VmHWM differs from the last one written for it."""
        self.live.add(pid)
        rec = self.procs.get(pid)
        if rec is None:
            rec = self.procs[pid] = {"pid": pid, "ppid": ppid, "first_ns": t, "last_ns": t, "hwm": hwm,
                                     "hwm_t_ns": t, "last_hwm": hwm, "name": _comm(pid)}
            return True
        rec["last_ns"] = t
        changed = hwm != rec["last_hwm"]
        rec["last_hwm"] = hwm
        if hwm > rec["hwm"]:
            rec["hwm"], rec["hwm_t_ns"] = hwm, t
        return changed

    def tick(self, t: int, force: bool = False, every_ns: int = 1_000_000_000) -> None:
        self.dirty = self.dirty or self.live != self.prev_live
        if force or (self.dirty and t - self.written_ns >= every_ns):
            write_json(self.path, {"root_pid": self.root, "written_ns": t,
                                   "processes": [{k: v for k, v in r.items() if k != "last_hwm"}
                                                 for r in self.procs.values()]})
            self.dirty, self.written_ns = False, t
        self.prev_live, self.live = self.live, set()


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memharness.core.sampler")
    ap.add_argument("--root", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--max-rss", type=int, default=None)
    ap.add_argument("--gpu", choices=["auto", "off"], default="auto")
    ap.add_argument("--exclude", type=int, action="append", default=[])
    ap.add_argument("--restart", action="store_true", help="take over from a sampler of this tree that died")
    args = ap.parse_args(argv)
    header = sample(args.root, args.out, args.interval, args.max_rss, args.gpu, set(args.exclude), args.restart)
    print(json.dumps({"ticks": header["ticks"], "late_ticks": header["late_ticks"]}), file=sys.stderr)
    # 0: the tree was gone (its root is exiting or has exited); 128 + the signal: stopped by SIGTERM/SIGINT,
    # which the supervisor tells apart from a tree's end (runner/samplerwatch.py)
    return 0 if header["stopped_by"] == "tree_gone" else 128 + signal.Signals[header["stopped_by"]].value


if __name__ == "__main__":
    raise SystemExit(main())
