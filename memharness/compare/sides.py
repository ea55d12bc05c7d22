"""One side of a comparison: a run folder, or `RUN_DIR:variant` naming one pipeline variant of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness import names
from memharness.errors import MemharnessError
from memharness.results import BrokenRunError
from memharness.results.figures import Row, collect
from memharness.results.run import CellFolder, Run


class CompareError(MemharnessError):
    """Bad input the user can fix (exit code 2)."""


@dataclass
class Side:
    spec: str  # as the user wrote it
    run: Run
    variant: str | None
    rows: list[Row]
    cells: list[dict[str, Any]]  # manifest cells of the selected pipeline(s), any status
    fingerprints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    @property
    def manifest(self) -> dict[str, Any]:
        return self.run.manifest

    @property
    def scenario(self) -> str:
        return self.run.scenario

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def pipelines(self) -> list[str]:
        return list(dict.fromkeys(c["pipeline"] for c in self.cells))

    def cell(self, entry: dict[str, Any]) -> CellFolder:
        """The run's cell (its files, read once) of one of `cells`."""
        return self.run.cell(str(entry["id"]))

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "run_dir": str(self.run_dir), "scenario": self.scenario,
                "run_id": self.run_id, "variant": self.variant, "pipelines": self.pipelines}


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`RUN_DIR` or `RUN_DIR:variant`; an existing folder wins over a colon split (paths may hold colons)."""
    path = Path(spec)
    if (path / names.MANIFEST).exists() or ":" not in spec:
        return path, None
    head, _, variant = spec.rpartition(":")
    if not head or not variant:
        raise CompareError(f"{spec}: expected RUN_DIR or RUN_DIR:variant")
    return Path(head), variant


def _all_pipelines(run: Run) -> list[str]:
    return list(dict.fromkeys(run.pipelines + [c.pipeline for c in run.cells]))


def open_run(spec: str) -> tuple[Run, str | None]:
    """(run, variant or None) of `RUN_DIR` or `RUN_DIR:variant`; CompareError if not a run."""
    run_dir, variant = split_spec(spec)
    if not run_dir.is_dir():
        raise CompareError(f"{run_dir}: no such run folder")
    try:
        run = Run.open(run_dir)
    except BrokenRunError as exc:  # no manifest, or one that is not JSON / not a run manifest
        raise CompareError(str(exc)) from None
    return run, variant


def load_side(spec: str) -> Side:
    run, variant = open_run(spec)
    cells = list(run.manifest["cells"])
    if variant is not None:
        known = _all_pipelines(run)
        if variant not in known:
            names_ = ", ".join(known) or "none"
            raise CompareError(f"{spec}: no pipeline variant {variant!r} in {run.dir}; its variants: {names_}")
        cells = [c for c in cells if c["pipeline"] == variant]
    rows = [r for r in collect(run) if variant is None or r.pipeline == variant]
    fingerprints = [run.cell(c["id"]).environment for c in cells if c.get("status") == "done"]
    return Side(spec, run, variant, rows, cells, [fp for fp in fingerprints if fp])
