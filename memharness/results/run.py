"""`Run` and `CellFolder`: a run folder as the tools that read it see it (report, compare, ls, explain, the
runner's resume).

Each file is read at most once, when it is first asked for, and kept: a report that draws a cell's timeline,
folds its calls into tables and finds its run-phase peak reads `calls/*.jsonl` and `timeline.bin` once
(`CellFolder.calls`, `CellFolder.timeline`). Opening a run checks its manifest (`read_manifest`) and raises
`BrokenRunError` / `NotARunError` naming the file; the cell files are read leniently, as the report always
did (a missing file reads as empty).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core import peaks
from memharness.core.atomic import read_json
from memharness.core.records import (
    CallRecord,
    CallRecords,
    ProcessInfo,
    read_call_files,
    read_memory_timeline,
    read_timeline,
)
from memharness.numeric import is_int
from memharness.results import shapes
from memharness.results.manifest import entry_dir, read_manifest


def _processes(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    out, dropped = shapes.clean(data, shapes.PROCESSES_FIELDS)
    if "processes" in out:
        out["processes"], more = shapes.clean_list(out["processes"], shapes.PROCESS_FIELDS, "processes",
                                                   shapes.PROCESS_REQUIRED)
        dropped += more
    return out, dropped


# Each cell JSON file's check: (the object with every field of an unexpected type left out, those fields named)
_SHAPES: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]]] = {
    names.STATUS: lambda d: shapes.clean(d, shapes.STATUS_FIELDS),
    names.TIMELINE_HEADER: lambda d: shapes.clean(d, shapes.TIMELINE_HEADER_FIELDS),
    names.PROCESSES: _processes,
    names.CELL_INFO: lambda d: shapes.clean(d, shapes.CELL_INFO_FIELDS),
    names.TARGETS: lambda d: shapes.clean(d, shapes.TARGETS_FIELDS),
}


def _json_file(name: str, doc: str) -> cached_property:
    """A cell property holding the JSON object of the cell's file `name`, read on first use; a field of an
    unexpected JSON type reads as absent and is named in `unreadable`."""

    def read(cell: CellFolder) -> dict[str, Any]:
        try:
            data = read_json(cell.dir / name, {})
        except (OSError, ValueError) as exc:  # not JSON, not UTF-8, unreadable: the report warns, goes on
            cell.unreadable[name] = _why(exc)
            return {}
        except RecursionError:
            cell.unreadable[name] = "JSON nested too deeply"
            return {}
        if not isinstance(data, dict):
            cell.unreadable[name] = f"a JSON {type(data).__name__}, not an object"
            return {}
        if name in _SHAPES:
            data, dropped = _SHAPES[name](data)
            if dropped:
                cell.unreadable[name] = "; ".join(dropped)
        return data

    read.__doc__ = doc
    return cached_property(read)


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, ValueError):
        return f"not JSON ({getattr(exc, 'msg', exc)})"
    return exc.strerror or str(exc)


MISSING = "missing"  # the status (and cause) of a cell recorded done whose folder is gone

_JSON_PROPERTIES = ("cell_spec", "status_json", "targets_json", "fingerprint_json", "cell_info", "imports",
                    "sampled_processes", "modules", "timeline_header")


@dataclass(eq=False)
class CellFolder:
    """One cell of a run: its manifest entry, and its files read on first use."""

    id: str
    pipeline: str
    kind: str
    size: int
    repeat: int
    dir: Path
    status: str  # as the manifest has it; `status_json` holds the cell's own record
    cause: str | None
    unreadable: dict[str, str] = field(default_factory=dict, repr=False)  # file -> why, see unreadable_files

    @classmethod
    def from_entry(cls, run_dir: Path, entry: dict[str, Any]) -> CellFolder:
        """A cell of a checked manifest (`read_manifest`): its entry's fields, the folder it names."""
        def num(key: str) -> int:
            value = entry.get(key, 0)
            return value if is_int(value) else 0

        cause = entry.get("cause")
        return cls(id=str(entry["id"]), pipeline=str(entry.get("pipeline", "")), kind=str(entry.get("kind", "")),
                   size=num("size"), repeat=num("repeat"), dir=Path(run_dir) / entry_dir(entry),
                   status=str(entry.get("status", "")), cause=cause if isinstance(cause, str) else None)

    @classmethod
    def at(cls, cell_dir: Path | str) -> CellFolder:
        """A cell folder read on its own, without its run's manifest (the folder's name as its id)."""
        cell_dir = Path(cell_dir)
        return cls(id=cell_dir.name, pipeline="", kind="", size=0, repeat=0, dir=cell_dir, status="", cause=None)

    # --- JSON files of the cell (an empty dict when absent or not a JSON object)
    cell_spec = _json_file(names.CELL_SPEC, "cell.json: what the cell ran (pipeline, options, interpreter, targets).")
    status_json = _json_file(names.STATUS, "status.json: the cell's own status record.")
    targets_json = _json_file(names.TARGETS, "targets.json: the targets resolved and missing.")
    fingerprint_json = _json_file(names.FINGERPRINT, "fingerprint.json as written.")
    cell_info = _json_file(names.CELL_INFO, "cell_info.json: what the pipeline reported it ran.")
    imports = _json_file(names.IMPORTS, "imports.json: RSS around each import of the pipeline's packages.")
    sampled_processes = _json_file(names.PROCESSES, "processes.json: every process the sampler saw.")
    modules = _json_file(names.MODULES, "modules.json: the distributions the cell process had imported.")
    timeline_header = _json_file(names.TIMELINE_HEADER, "timeline.json: the sampler's header (interval, start).")

    @cached_property
    def environment(self) -> dict[str, Any]:
        """fingerprint.json as the report and `compare` list it: `packages` narrowed to the distributions the
        cell imported (modules.json; runs without it keep the fingerprint's list), and `target_sources`, the
        hash of each wrapped function's source (targets.json), so a changed function shows as a difference."""
        env = dict(self.fingerprint_json)
        imported = self.modules.get("distributions")
        if isinstance(imported, dict):
            env["packages"] = {d: v for d, v in sorted(imported.items()) if d != "memharness"}
        sources = {t["path"]: t["source_sha256"] for t in self.targets_json.get("resolved", []) or []
                   if isinstance(t, dict) and t.get("source_sha256") and isinstance(t.get("path"), str)}
        if sources:
            env["target_sources"] = dict(sorted(sources.items()))
        return env

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """`environment` plus, under `chosen`, what the pipeline reported it ran: the k-means and the index
        settings the library chose (cell_info.json)."""
        fp = self.environment
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

    @cached_property
    def sampler_gaps(self) -> list[dict[str, Any]]:
        """When the timeline sampler was not running while the cell ran (status.json `sampler_gaps`: it died
        and was restarted, or the cell was stopped for it), each `{"from_ns", "to_ns" (None: until the cell
        ended), "why"}`."""
        gaps, dropped = shapes.clean_list(self.status_json.get("sampler_gaps", []), shapes.GAP_FIELDS,
                                          "sampler_gaps", ("from_ns",))
        if dropped:
            self.unreadable[names.STATUS] = "; ".join(filter(None, [self.unreadable.get(names.STATUS), *dropped]))
        return gaps

    def unreadable_files(self) -> dict[str, str]:
        """The cell's JSON files that could not be read (file name -> why); their figures are left out."""
        for prop in _JSON_PROPERTIES:
            getattr(self, prop)
        _ = self.sampler_gaps
        return dict(self.unreadable)

    # --- records
    @cached_property
    def _call_files(self) -> tuple[CallRecords, list[ProcessInfo]]:
        return read_call_files(self.dir)  # one pass over calls/*.jsonl gives both

    @property
    def calls(self) -> CallRecords:
        """Every call record of the cell (all processes), in start order, `.bad_lines` for skipped lines."""
        return self._call_files[0]

    @property
    def processes(self) -> list[ProcessInfo]:
        """The call files' process headers and process records."""
        return self._call_files[1]

    @cached_property
    def timeline(self):
        """timeline.bin (or timeline.bin.xz) rows, a numpy structured array."""
        return read_timeline(self.dir)

    @cached_property
    def memory_timeline(self):
        """timeline_mem.bin rows (empty for a version-1 run)."""
        return read_memory_timeline(self.dir)

    @cached_property
    def peak_calls(self) -> list[CallRecord]:
        """`calls` with the figures that come from other processes and the timeline filled in
        (`core.peaks.attach_peaks`: descendants' peak, tree peak during the call, sampled private /
        file-backed peaks). The same records as `calls`, completed in place."""
        return peaks.attach_peaks(self.dir, self.calls, rows=self.memory_timeline, main_rows=self.timeline,
                                  processes=self.processes, sampled=self.sampled_processes)

    # --- derived
    @cached_property
    def t0_ns(self) -> int | None:
        """The cell's start: status.json's t_start_ns, else the sampler's start, else the first record."""
        for value in (self.status_json.get("t_start_ns"), self.timeline_header.get("started_ns")):
            if value:
                return int(value)
        firsts = [c.t_start_ns for c in self.calls[:1]]
        if len(self.timeline):
            firsts.append(int(self.timeline["t_ns"].min()))
        return min(firsts) if firsts else None

    def end_ns(self) -> int | None:
        """The cell's end: status.json's t_end_ns, else the last timestamp seen."""
        if self.status_json.get("t_end_ns"):
            return int(self.status_json["t_end_ns"])
        stamps = [c.t_end_ns or c.t_start_ns for c in self.calls]
        return max(stamps) if stamps else None

    def lineprof_files(self) -> list[Path]:
        d = self.dir / names.LINEPROF
        return sorted(d.glob(names.LINEPROF_GLOB)) if d.is_dir() else []


class Run:
    """A run folder: its checked manifest and its cells (`Run.open(run_dir)`)."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.dir = Path(run_dir)
        self.manifest = manifest
        self.cells: list[CellFolder] = [CellFolder.from_entry(self.dir, c) for c in manifest.get("cells", [])]
        for c in self.cells:
            if c.status == "done" and not c.dir.is_dir():
                c.status = c.cause = MISSING  # recorded done, but its folder is gone: `--resume` runs it again

    @classmethod
    def open(cls, run_dir: Path | str) -> Run:
        """Read and check `run_dir`'s manifest; raises `BrokenRunError` (or its `NotARunError`) naming the
        file."""
        return cls(Path(run_dir), read_manifest(run_dir))

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario", ""))

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.dir.name))

    @property
    def scenario_spec(self) -> dict[str, Any]:
        spec = self.manifest.get("scenario_spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def pipelines(self) -> list[str]:
        """Pipeline names in scenario order (then any others in cell order)."""
        pipelines = self.scenario_spec.get("pipelines")
        names_ = [p["name"] for p in (pipelines if isinstance(pipelines, list) else [])
                  if isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"]]
        for c in self.cells:
            if c.pipeline not in names_:
                names_.append(c.pipeline)
        return names_

    @property
    def sizes(self) -> list[int]:
        return sorted({c.size for c in self.cells})

    def cell(self, cell_id: str) -> CellFolder:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise KeyError(cell_id)

    def scenario_text(self) -> str:
        """scenario.yaml as given, else the recorded spec as JSON."""
        path = self.dir / names.SCENARIO
        if path.exists():
            return path.read_text(encoding="utf-8", errors="replace")
        return json.dumps(self.scenario_spec, indent=2, default=str)
