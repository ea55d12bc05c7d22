"""What the report reads from a run folder besides the aggregated rows: cells, their status, targets,
fingerprints, and each cell's timeline cut into series for drawing. Only the on-disk format is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memharness.core.atomic import read_json
from memharness.core.records import (
    KIND_GPU_PROC_USED,
    KIND_GPU_TREE_USED,
    KIND_GPU_USED,
    KIND_PROC_RSS,
    KIND_TREE_RSS,
    CallRecord,
    ProcessInfo,
    read_calls,
    read_processes,
    read_timeline,
    timeline_header,
)
from memharness.results.manifest import BrokenRunError, NotARunError, read_manifest

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


@dataclass
class Cell:
    id: str
    pipeline: str
    kind: str
    size: int
    repeat: int
    dir: Path
    status: str
    cause: str | None

    @cached_property
    def status_json(self) -> dict[str, Any]:
        return read_json(self.dir / "status.json", {}) or {}

    @cached_property
    def targets_json(self) -> dict[str, Any]:
        return read_json(self.dir / "targets.json", {}) or {}

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """fingerprint.json (written before the cell ran) plus, under `chosen`, what the pipeline reported
        it ran: the k-means and the index settings the library chose (cell_info.json)."""
        fp = read_json(self.dir / "fingerprint.json", {}) or {}
        chosen = self.chosen
        return {**fp, "chosen": chosen} if chosen else fp

    @cached_property
    def chosen(self) -> dict[str, Any]:
        info = read_json(self.dir / "cell_info.json", {}) or {}
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

    @cached_property
    def calls(self) -> list[CallRecord]:
        return read_calls(self.dir)

    @cached_property
    def processes(self) -> list[ProcessInfo]:
        return read_processes(self.dir)

    @cached_property
    def timeline_header(self) -> dict[str, Any]:
        return timeline_header(self.dir)

    @cached_property
    def t0_ns(self) -> int | None:
        """The cell's start: status.json's t_start_ns, else the sampler's start, else the first record."""
        for value in (self.status_json.get("t_start_ns"), self.timeline_header.get("started_ns")):
            if value:
                return int(value)
        firsts = [c.t_start_ns for c in self.calls[:1]]
        rows = read_timeline(self.dir)
        if len(rows):
            firsts.append(int(rows["t_ns"].min()))
        return min(firsts) if firsts else None

    def end_ns(self) -> int | None:
        """The cell's end: status.json's t_end_ns, else the last timestamp seen."""
        if self.status_json.get("t_end_ns"):
            return int(self.status_json["t_end_ns"])
        stamps = [c.t_end_ns or c.t_start_ns for c in self.calls]
        return max(stamps) if stamps else None

    def series(self) -> CellSeries:
        """The timeline cut into the lines a chart draws (read from disk on every call; callers keep it)."""
        rows = read_timeline(self.dir)
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

    def lineprof_files(self) -> list[Path]:
        d = self.dir / "lineprof"
        return sorted(d.glob("*.txt")) if d.is_dir() else []


@dataclass
class RunInfo:
    dir: Path
    manifest: dict[str, Any]
    cells: list[Cell]

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario", ""))

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.dir.name))

    @property
    def pipelines(self) -> list[str]:
        """Pipeline names in scenario order (then any others in cell order)."""
        spec = self.manifest.get("scenario_spec") or {}
        names = [p.get("name") for p in spec.get("pipelines", []) if isinstance(p, dict) and p.get("name")]
        for c in self.cells:
            if c.pipeline not in names:
                names.append(c.pipeline)
        return names

    @property
    def sizes(self) -> list[int]:
        return sorted({c.size for c in self.cells})

    def scenario_text(self) -> str:
        path = self.dir / "scenario.yaml"
        if path.exists():
            return path.read_text(encoding="utf-8", errors="replace")
        return json.dumps(self.manifest.get("scenario_spec", {}), indent=2, default=str)

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
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    cells = []
    for c in manifest.get("cells", []):
        cells.append(Cell(
            id=str(c["id"]), pipeline=str(c.get("pipeline", "")), kind=str(c.get("kind", "")),
            size=int(c.get("size", 0)), repeat=int(c.get("repeat", 0)),
            dir=run_dir / c.get("dir", f"cells/{c['id']}"),
            status=str(c.get("status", "")), cause=c.get("cause"),
        ))
    return RunInfo(run_dir, manifest, cells)
