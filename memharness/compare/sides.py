"""One side of a comparison: a run folder, or `RUN_DIR:variant` naming one pipeline variant of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.core.atomic import read_json
from memharness.errors import MemharnessError
from memharness.report.aggregate import Row, collect, load_manifest
from memharness.results.manifest import BrokenRunError


class CompareError(MemharnessError):
    """Bad input the user can fix (exit code 2)."""


@dataclass
class Side:
    spec: str  # as the user wrote it
    run_dir: Path
    variant: str | None
    manifest: dict[str, Any]
    rows: list[Row]
    cells: list[dict[str, Any]]  # manifest cells of the selected pipeline(s), any status
    fingerprints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario", ""))

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.run_dir.name))

    @property
    def pipelines(self) -> list[str]:
        return list(dict.fromkeys(c["pipeline"] for c in self.cells))

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "run_dir": str(self.run_dir), "scenario": self.scenario,
                "run_id": self.run_id, "variant": self.variant, "pipelines": self.pipelines}


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`RUN_DIR` or `RUN_DIR:variant`; an existing folder wins over a colon split (paths may hold colons)."""
    path = Path(spec)
    if (path / "manifest.json").exists() or ":" not in spec:
        return path, None
    head, _, variant = spec.rpartition(":")
    if not head or not variant:
        raise CompareError(f"{spec}: expected RUN_DIR or RUN_DIR:variant")
    return Path(head), variant


def _all_pipelines(manifest: dict[str, Any]) -> list[str]:
    names = [p.get("name") for p in manifest.get("scenario_spec", {}).get("pipelines", []) if p.get("name")]
    names += [c["pipeline"] for c in manifest.get("cells", [])]
    return list(dict.fromkeys(names))


def open_run(spec: str) -> tuple[Path, str | None, dict[str, Any]]:
    """(run folder, variant or None, manifest) of `RUN_DIR` or `RUN_DIR:variant`; CompareError if not a run."""
    run_dir, variant = split_spec(spec)
    if not run_dir.is_dir():
        raise CompareError(f"{run_dir}: no such run folder")
    try:
        manifest = load_manifest(run_dir)
    except BrokenRunError as exc:  # no manifest, or one that is not JSON / not a run manifest
        raise CompareError(str(exc)) from None
    return run_dir, variant, manifest


def load_side(spec: str) -> Side:
    run_dir, variant, manifest = open_run(spec)
    cells = [c for c in manifest.get("cells", []) if isinstance(c, dict) and "pipeline" in c and "size" in c]
    if variant is not None:
        known = _all_pipelines(manifest)
        if variant not in known:
            names = ", ".join(known) or "none"
            raise CompareError(f"{spec}: no pipeline variant {variant!r} in {run_dir}; its variants: {names}")
        cells = [c for c in cells if c["pipeline"] == variant]
    rows = [r for r in collect(run_dir) if variant is None or r.pipeline == variant]
    fingerprints = []
    for cell in cells:
        if cell.get("status") == "done":
            fp = read_json(run_dir / cell.get("dir", f"cells/{cell.get('id')}") / "fingerprint.json")
            if isinstance(fp, dict):
                fingerprints.append(fp)
    return Side(spec, run_dir, variant, manifest, rows, cells, fingerprints)
