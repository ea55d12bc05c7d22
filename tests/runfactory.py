"""Build run folders in the documented on-disk format from a compact description, for tests of readers
(reports, compare) that should not spend time running real cells.

Tests of the measurement itself never use this: they run real workloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memharness.core.atomic import write_json
from memharness.core.records import KIND_GPU_USED, KIND_PROC_RSS, KIND_TREE_RSS, timeline_dtype

MiB = 1 << 20


@dataclass
class FakeCall:
    target: str
    start_mib: float
    end_mib: float
    peak_mib: float
    t0: float  # seconds from cell start
    t1: float
    children: list[FakeCall] = field(default_factory=list)
    gpu: dict[str, Any] | None = None  # {"0": {"allocated":..., "peak_allocated":...}} at the end
    gpu_start: dict[str, Any] | None = None  # {"0": {"allocated":...}} at entry


@dataclass
class FakeCell:
    pipeline: str
    size: int
    repeat: int = 0
    kind: str = "callable"
    status: str = "done"
    cause: str | None = None
    calls: list[FakeCall] = field(default_factory=list)
    samples: int = 200  # timeline rows (tree kind) spread over the cell
    base_mib: float = 100.0
    gpu_samples: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # when set: a `phase:prepare` call needing this much before the calls, which run inside `phase:run`
    prepare_peak_mib: float | None = None


def cell_id(cell: FakeCell) -> str:
    return f"{cell.pipeline}__{cell.size}__r{cell.repeat}"


def _write_calls(path: Path, calls: list[FakeCall], pid: int, t0_ns: int,
                 phases: tuple[tuple[float, float, float], tuple[float, float], float] | None = None) -> None:
    counter = [0]
    lines: list[dict[str, Any]] = [{"ev": "P", "v": 1, "pid": pid, "ppid": 1, "argv": ["fake"], "t": t0_ns,
                                    "start_method": "main"}]

    def emit(call: FakeCall, parent: str | None, depth: int) -> None:
        counter[0] += 1
        cid = f"{pid}:{counter[0]}"
        lines.append({"ev": "B", "id": cid, "parent": parent, "depth": depth, "target": call.target, "pid": pid,
                      "tid": 1, "thread": "MainThread", "t": t0_ns + int(call.t0 * 1e9),
                      "rss": int(call.start_mib * MiB), "children_rss": 0,
                      **({"gpu": call.gpu_start} if call.gpu_start is not None else {})})
        for child in call.children:
            emit(child, cid, depth + 1)
        lines.append({"ev": "E", "id": cid, "t": t0_ns + int(call.t1 * 1e9), "rss": int(call.end_mib * MiB),
                      "peak_rss": int(call.peak_mib * MiB), "peak_method": "hwm", "children_rss": 0,
                      "children_peak_rss": 0, "error": None, "gpu": call.gpu})

    if phases is not None:  # prepare, then run holding the calls
        (p0, p1, prep_peak), (r0, r1), base = phases
        emit(FakeCall("phase:prepare", base, base, prep_peak, p0, p1), None, 0)
        emit(FakeCall("phase:run", base, base, max([base] + [c.peak_mib for c in calls]), r0, r1,
                      children=list(calls)), None, 0)
    else:
        for call in calls:
            emit(call, None, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _write_timeline(cell_dir: Path, cell: FakeCell, pid: int, t0_ns: int, duration_s: float) -> None:
    n = max(cell.samples, 2)
    t = t0_ns + (np.linspace(0, duration_s, n) * 1e9).astype(np.int64)
    level = np.full(n, cell.base_mib * MiB, dtype=np.int64)
    for call in cell.calls:  # a plateau at each top-level call's peak
        inside = (t >= t0_ns + call.t0 * 1e9) & (t <= t0_ns + call.t1 * 1e9)
        level[inside] = int(call.peak_mib * MiB)
    if cell.prepare_peak_mib is not None:  # prepare's spike, between 0.05 s and the first call
        first = min([c.t0 for c in cell.calls] + [0.5])
        inside = (t >= t0_ns + 0.05e9) & (t <= t0_ns + (first - 0.1) * 1e9)
        level[inside] = int(cell.prepare_peak_mib * MiB)
    rows_per_tick = 2 + (1 if cell.gpu_samples else 0)
    rows = np.zeros(n * rows_per_tick, dtype=timeline_dtype())
    rows["t_ns"] = np.repeat(t, rows_per_tick)
    kinds = [KIND_PROC_RSS, KIND_TREE_RSS] + ([KIND_GPU_USED] if cell.gpu_samples else [])
    rows["kind"] = np.tile(kinds, n)
    rows["pid"] = np.tile([pid, 0] + ([0] if cell.gpu_samples else []), n)
    rows["dev"] = np.tile([-1, -1] + ([0] if cell.gpu_samples else []), n)
    vals = np.repeat(level, rows_per_tick)
    if cell.gpu_samples:
        vals[2::rows_per_tick] = 512 * MiB
    rows["value"] = vals
    rows.tofile(cell_dir / "timeline.bin")
    write_json(cell_dir / "timeline.json", {"format": "memharness-timeline", "version": 1, "row_bytes": 24,
                                            "interval_s": duration_s / n, "root_pid": pid, "started_ns": t0_ns,
                                            "stopped_ns": int(t[-1]), "ticks": n, "late_ticks": 0,
                                            "clock": "CLOCK_MONOTONIC"})


def make_run(root: Path, cells: list[FakeCell], scenario: str = "fake", run_id: str = "run1",
             pipelines: list[str] | None = None) -> Path:
    """Write a run folder and return its path."""
    run_dir = Path(root) / scenario / run_id
    pipes = pipelines or list(dict.fromkeys(c.pipeline for c in cells))
    manifest_cells = []
    for i, cell in enumerate(cells):
        cid = cell_id(cell)
        cdir = run_dir / "cells" / cid
        pid = 1000 + i
        t0_ns = 10**12 + i * 10**11
        duration = max([c.t1 for c in cell.calls] + [1.0]) + 0.5
        phases = None
        if cell.prepare_peak_mib is not None:  # prepare from 0.05 s to just before the first call
            first = min([c.t0 for c in cell.calls] + [0.5])
            last = max([c.t1 for c in cell.calls] + [first + 0.1])
            phases = ((0.05, first - 0.1, cell.prepare_peak_mib), (first - 0.05, last + 0.05), cell.base_mib)
        _write_calls(cdir / "calls" / f"{pid}.jsonl", cell.calls, pid, t0_ns, phases)
        _write_timeline(cdir, cell, pid, t0_ns, duration)
        write_json(cdir / "status.json", {"status": cell.status, "cause": cell.cause, "message": cell.cause or "",
                                          "exit_code": 0 if cell.status == "done" else 1, "t_start_ns": t0_ns,
                                          "t_end_ns": t0_ns + int(duration * 1e9), "wall_seconds": duration})
        write_json(cdir / "fingerprint.json", cell.fingerprint or {"python": "3.11.7"})
        manifest_cells.append({"id": cid, "pipeline": cell.pipeline, "kind": cell.kind, "size": cell.size,
                               "repeat": cell.repeat, "dir": f"cells/{cid}", "status": cell.status,
                               "cause": cell.cause})
    write_json(run_dir / "manifest.json", {
        "format": "memharness-run", "version": 1, "scenario": scenario, "run_id": run_id,
        "created_wall_ns": 0, "clock": {"monotonic_ns": 10**12, "wall_ns": 1_700_000_000 * 10**9},
        "scenario_spec": {"name": scenario, "pipelines": [{"name": p, "kind": "callable"} for p in pipes]},
        "cells": manifest_cells,
    })
    return run_dir
