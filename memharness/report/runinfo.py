"""What the report reads from a run folder besides the aggregated rows: the run's cells (`memharness.results`
reads every file, once), what the pipeline chose, and each cell's timeline cut into series for drawing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memharness.core.records import KIND_GPU_PROC_USED, KIND_GPU_TREE_USED, KIND_GPU_USED, KIND_PROC_RSS, KIND_TREE_RSS
from memharness.results import BrokenRunError, NotARunError, Run
from memharness.results import Cell as RunCell

__all__ = ["BrokenRunError", "Cell", "CellSeries", "NotARunError", "RunInfo", "Series", "load_run"]


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
    gpu: list[Series] = field(default_factory=list)
    samples: int = 0


class Cell(RunCell):
    """A cell as the report shows it: the results model plus what the pipeline chose and the chart lines."""

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """fingerprint.json (written before the cell ran) plus, under `chosen`, what the pipeline reported
        it ran: the k-means and the index settings the library chose (cell_info.json)."""
        fp = self.fingerprint_json
        chosen = self.chosen
        return {**fp, "chosen": chosen} if chosen else fp

    @cached_property
    def chosen(self) -> dict[str, Any]:
        info = self.cell_info
        kmeans = info.get("kmeans") if isinstance(info.get("kmeans"), dict) else {}
        index = info.get("index") if isinstance(info.get("index"), dict) else {}
        out: dict[str, Any] = {}
        if kmeans.get("label"):
            out["kmeans"] = kmeans["label"]
        for key in ("ragatouille", "use_faiss", "library_settings", "library_sleep_s"):
            if key in kmeans:
                out[f"kmeans_{key}" if not key.startswith("library") else key] = kmeans[key]
        out.update({f"index_{k}": v for k, v in index.items() if k in ("nbits", "kmeans_niters", "num_partitions")
                    and v is not None})
        return out

    def series(self) -> CellSeries:
        """The timeline cut into the lines a chart draws (from the cell's timeline, read once)."""
        rows = self.timeline
        if len(rows) == 0:
            return CellSeries(tree=None)
        if np.any(np.diff(rows["t_ns"]) < 0):
            rows = rows[np.argsort(rows["t_ns"], kind="stable")]
        t0 = self.t0_ns if self.t0_ns is not None else int(rows["t_ns"][0])
        kinds = rows["kind"]

        def make(sel: np.ndarray, label: str) -> Series:
            sub = rows[sel]
            return Series(label, (sub["t_ns"] - t0) / 1e9, sub["value"].astype(np.int64))

        tree_sel = kinds == KIND_TREE_RSS
        out = CellSeries(tree=make(tree_sel, "process tree") if tree_sel.any() else None,
                         samples=int(tree_sel.sum()))
        if out.tree is not None:  # memory shared by a vfork/fork child counted once, as in the tables
            from memharness.report.phases import tree_rows

            out.tree.v = tree_rows(rows)["value"].astype(np.int64)
        proc_sel = kinds == KIND_PROC_RSS
        if proc_sel.any():
            pids = np.unique(rows["pid"][proc_sel])
            if len(pids) > 1:
                names = self._process_names()
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

    def _process_names(self) -> dict[int, str]:
        root = self.timeline_header.get("root_pid")
        names = {}
        for p in self.processes:
            what = "main" if p.pid == root else (p.start_method or "child")
            names[p.pid] = f"pid {p.pid} ({what})"
        if root is not None and int(root) not in names:
            names[int(root)] = f"pid {root} (main)"
        return names


class RunInfo(Run):
    """A run as the report reads it: `Run` whose cells are the report's `Cell`."""

    cell_class = Cell
    cells: list[Cell]

    def target_order(self) -> list[str]:
        """Targets in the order a reader meets them: per cell by first call (so outer calls come before
        the calls nested in them), merged over cells in manifest order."""
        order: list[str] = []
        for cell in self.cells:
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


def load_run(run_dir: Path) -> RunInfo:
    """The run folder's manifest and cells; raises `BrokenRunError` (or its `NotARunError`) naming the file."""
    return RunInfo.open(run_dir)
