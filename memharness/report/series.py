"""A cell's timeline cut into the lines a chart draws (`cell_series`), and the order in which a reader meets
the wrapped functions (`target_order`). The cell's files are read through `memharness.results`, once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memharness.core.records import KIND_GPU_PROC_USED, KIND_GPU_TREE_USED, KIND_GPU_USED, KIND_PROC_RSS, KIND_TREE_RSS
from memharness.results.gpu import torch_readings
from memharness.results.phases import tree_rows
from memharness.results.run import CellFolder, Run

__all__ = ["CellSeries", "Series", "cell_series", "process_names", "target_order"]


@dataclass
class Series:
    """One line to draw: seconds from cell start and bytes."""

    label: str
    t: np.ndarray  # float64 seconds
    v: np.ndarray  # int64 bytes


@dataclass
class CellSeries:
    tree: Series | None
    procs: list[Series] = field(default_factory=list)  # only when the tree had several processes
    gpu: list[Series] = field(default_factory=list)  # NVML, sampled
    samples: int = 0
    torch: list[Series] = field(default_factory=list)  # torch allocated / reserved at the main process's calls


def cell_series(cell: CellFolder) -> CellSeries:
    """The cell's timeline cut into the lines a chart draws (from the cell's timeline, read once)."""
    t, alloc, res = torch_readings(cell)
    torch = [Series("torch allocated (main process)", t, alloc), Series("torch reserved (main process)", t, res)] \
        if len(t) else []
    rows = cell.timeline
    if len(rows) == 0:
        return CellSeries(tree=None, torch=torch)
    if np.any(np.diff(rows["t_ns"]) < 0):
        rows = rows[np.argsort(rows["t_ns"], kind="stable")]
    t0 = cell.t0_ns if cell.t0_ns is not None else int(rows["t_ns"][0])
    kinds = rows["kind"]

    def make(sel: np.ndarray, label: str) -> Series:
        sub = rows[sel]
        return Series(label, (sub["t_ns"] - t0) / 1e9, sub["value"].astype(np.int64))

    tree_sel = kinds == KIND_TREE_RSS
    out = CellSeries(tree=make(tree_sel, "process tree") if tree_sel.any() else None,
                     samples=int(tree_sel.sum()), torch=torch)
    if out.tree is not None:  # memory shared by a vfork/fork child counted once, as in the tables
        out.tree.v = tree_rows(rows)["value"].astype(np.int64)
    proc_sel = kinds == KIND_PROC_RSS
    if proc_sel.any():
        pids = np.unique(rows["pid"][proc_sel])
        if len(pids) > 1:
            names = process_names(cell)
            for pid in pids:
                out.procs.append(make(proc_sel & (rows["pid"] == pid), names.get(int(pid), f"pid {pid}")))
    for kind, what in ((KIND_GPU_USED, "used (device)"), (KIND_GPU_TREE_USED, "used by tree")):
        sel = kinds == kind
        for dev in np.unique(rows["dev"][sel]) if sel.any() else []:
            out.gpu.append(make(sel & (rows["dev"] == dev), f"GPU{dev} {what}"))
    sel = kinds == KIND_GPU_PROC_USED
    if sel.any():  # per-process GPU lines add something only for several processes or no tree sum
        pairs = np.unique(np.stack([rows["pid"][sel], rows["dev"][sel]], axis=1), axis=0)
        if len(np.unique(pairs[:, 0])) > 1 or not (kinds == KIND_GPU_TREE_USED).any():
            for pid, dev in pairs:
                out.gpu.append(make(sel & (rows["pid"] == pid) & (rows["dev"] == dev),
                                    f"GPU{dev} pid {pid}"))
    return out

def process_names(cell: CellFolder) -> dict[int, str]:
    """pid -> a label for the chart's legend: `pid N (main)`, `pid N (spawn)`, ..."""
    root = cell.timeline_header.get("root_pid")
    names = {}
    for p in cell.processes:
        what = "main" if p.pid == root else (p.start_method or "child")
        names[p.pid] = f"pid {p.pid} ({what})"
    if root is not None and int(root) not in names:
        names[int(root)] = f"pid {root} (main)"
    return names




def target_order(run: Run) -> list[str]:
    """Targets in the order a reader meets them: per cell by first call (so outer calls come before
    the calls nested in them), merged over cells in manifest order."""
    order: list[str] = []
    for cell in run.cells:
        seen: list[str] = []
        for rec in cell.calls:
            if not rec.target.startswith("phase:") and rec.target not in seen:
                seen.append(rec.target)
        prev = -1
        for t in seen:
            if t in order:
                prev = order.index(t)
            else:
                order.insert(prev + 1, t)
                prev += 1
    return order
