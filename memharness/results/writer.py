"""Writing a run folder: a new folder per run, its manifest created once and updated atomically at every cell
status change, scenario revisions kept beside it. The runner and `memharness.profile` both write through
`Manifest`; a cell's own files are written by the cell and its supervisor (names in `memharness.names`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from memharness.core.atomic import write_json, write_text
from memharness.core.clock import clock_anchor
from memharness.names import MANIFEST, SCENARIO, cell_dir_name, scenario_revision_file
from memharness.results import shapes
from memharness.results.manifest import RUN_FORMAT, BrokenRunError, NotARunError, check_cells, cleaned, parse_manifest


class PlannedCell(Protocol):
    """What the manifest records of a cell to run (`runner.matrix.CellPlan` is one)."""

    id: str
    pipeline: str
    kind: str
    size: int
    repeat: int


def cell_entry(cell: PlannedCell) -> dict[str, Any]:
    """A manifest entry for a cell not yet run."""
    return {"id": cell.id, "pipeline": cell.pipeline, "kind": cell.kind, "size": cell.size, "repeat": cell.repeat,
            "dir": cell_dir_name(cell.id), "status": "pending", "cause": None}


def new_run_dir(output: Path, scenario_name: str) -> Path:
    """A new, empty `<output>/<scenario name>/<timestamp>` folder (preflight checked `<output>/<name>`)."""
    base = Path(output) / scenario_name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        candidate = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {base}")


class ManifestError(BrokenRunError, ValueError):
    """A manifest.json that cannot be resumed; `str()` is one line naming the file."""


def _resume_reason(exc: BrokenRunError) -> str:
    """Why `memharness.results` could not parse a manifest, worded as `--resume` has always said it."""
    err = exc.error
    if isinstance(err, json.JSONDecodeError):
        return "the file is empty" if not err.doc.strip() else \
            f"not valid JSON (line {err.lineno} column {err.colno}: {err.msg})"
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start})"
    if isinstance(err, OSError):
        return f"cannot read: {err.strerror}"
    return exc.reason


def _resume_problem(data: Any) -> str | None:
    """What a resumed run needs of its manifest: a scenario name and cells as every reader needs them."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if not isinstance(data.get("scenario"), str):
        return "no scenario name" if data.get("scenario") is None else \
            f"'scenario' is {shapes.kind_of(data['scenario'])}, expected the scenario's name"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "no list of cells"
    return check_cells(cells)


class Manifest:
    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.data = data
        self.dropped: list[str] = []  # fields `load` read as absent (an unexpected JSON type), one line each

    @classmethod
    def create(cls, run_dir: Path, name: str, spec: dict[str, Any], scenario_text: str,
               cells: list[PlannedCell]) -> Manifest:
        """Write the manifest of a new run of scenario `name` (`spec`: the scenario as JSON data, `scenario_text`:
        the file kept as scenario.yaml) with `cells` pending."""
        anchor = clock_anchor()
        data = {
            "format": RUN_FORMAT, "version": 1, "scenario": name, "run_id": Path(run_dir).name,
            "created_wall_ns": anchor["wall_ns"], "clock": anchor,
            "scenario_spec": spec,
            "cells": [cell_entry(c) for c in cells],
        }
        write_text(Path(run_dir) / SCENARIO, scenario_text)
        m = cls(run_dir, data)
        m.save()
        return m

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        """Read and check a run's manifest; raises ManifestError (one line naming the file) when broken."""
        try:
            path, data = parse_manifest(run_dir)
        except NotARunError:
            raise FileNotFoundError(f"{run_dir} is not a memharness run folder (no {MANIFEST})") from None
        except BrokenRunError as exc:
            raise ManifestError(exc.path, _resume_reason(exc),
                                f"{exc.path}: {_resume_reason(exc)}; not a resumable memharness run") from None
        problem = _resume_problem(data)
        if problem is not None:
            raise ManifestError(path, problem, f"{path}: {problem}; not a resumable memharness run")
        manifest = cls(run_dir, cleaned(data))
        manifest.dropped = [f"{path}: {why}" for why in shapes.clean(data, shapes.MANIFEST_FIELDS)[1]]
        return manifest

    def add_revision(self, spec: dict[str, Any], scenario_text: str, finished: list[str]) -> int:
        """Record that the remaining cells run under an edited scenario; returns the new revision number.

        `scenario_revisions` lists every scenario the run used (0 is the one it was created with, kept in
        scenario.yaml; revision N is kept in scenario.rN.yaml); each cell's `scenario_rev` says which one
        it ran under. `scenario_spec` is the newest.
        """
        revisions = self.data.setdefault("scenario_revisions", [
            {"rev": 0, "file": SCENARIO, "spec": self.data.get("scenario_spec"),
             "created_wall_ns": self.data.get("created_wall_ns")}])
        for c in self.data["cells"]:
            c.setdefault("scenario_rev", revisions[-1]["rev"] if c["id"] in finished else None)
        rev = revisions[-1]["rev"] + 1
        name = scenario_revision_file(rev)
        write_text(self.run_dir / name, scenario_text)
        revisions.append({"rev": rev, "file": name, "spec": spec, "created_wall_ns": time.time_ns()})
        self.data["scenario_spec"] = spec
        return rev

    @property
    def revision(self) -> int | None:
        revisions = self.data.get("scenario_revisions")
        return revisions[-1]["rev"] if revisions else None

    def save(self) -> None:
        write_json(self.run_dir / MANIFEST, self.data)

    def cell(self, cell_id: str) -> dict[str, Any]:
        for c in self.data["cells"]:
            if c["id"] == cell_id:
                return c
        raise KeyError(cell_id)

    def add_cells(self, cells: list[PlannedCell]) -> None:
        known = {c["id"] for c in self.data["cells"]}
        self.data["cells"] += [cell_entry(c) for c in cells if c.id not in known]

    def set_status(self, cell_id: str, status: str, cause: str | None = None) -> None:
        c = self.cell(cell_id)
        c["status"], c["cause"] = status, cause
        if status == "running" and self.revision is not None:
            c["scenario_rev"] = self.revision
        self.save()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.data["cells"]:
            out[c["status"]] = out.get(c["status"], 0) + 1
        return out
