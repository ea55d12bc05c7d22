"""The committed GPU sample run re-renders with the current report code (a slice of it, to stay quick)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memharness.report import build
from memharness.report.series import cell_series
from memharness.results.run import Run

SAMPLE = Path(__file__).resolve().parent.parent / "results" / "samples" / "genomics-gpu-h200-seed"
SLICE = 2  # cells re-rendered: the 100k ColBERT cell and the first RAGatouille one


def _rows(summary: dict, cells: list[dict]) -> dict[tuple[str, int, str], float]:
    keep = {(c["pipeline"], int(c["size"])) for c in cells}
    return {(r["pipeline"], r["size"], r["target"]): r["metrics"]["peak"]["median"]
            for r in summary["rows"] if (r["pipeline"], r["size"]) in keep and "peak" in r["metrics"]}


def test_committed_gpu_sample_rerenders(tmp_path: Path) -> None:
    manifest = json.loads((SAMPLE / "manifest.json").read_text(encoding="utf-8"))
    cells = [c for c in manifest["cells"] if c["status"] == "done"][:SLICE]
    assert len(cells) == SLICE and {c["kind"] for c in cells} == {"colbert", "ragatouille"}
    run = tmp_path / "run"
    run.mkdir()
    for c in cells:
        shutil.copytree(SAMPLE / c["dir"], run / c["dir"])
        assert not (run / c["dir"] / "work").exists()  # index artifacts stay out of the sample
    shutil.copy(SAMPLE / "scenario.yaml", run / "scenario.yaml")
    (run / "manifest.json").write_text(json.dumps({**manifest, "cells": cells}), encoding="utf-8")

    info = Run.open(run)
    for cell in info.cells:  # the timeline is committed xz-compressed and read back transparently
        assert (cell.dir / "timeline.bin.xz").exists() and not (cell.dir / "timeline.bin").exists()
        assert cell_series(cell).samples > 1000
        assert cell.fingerprint["chosen"]["kmeans"].startswith("fastkmeans")

    index = build(run, tmp_path / "report")
    assert index.exists() and (tmp_path / "report" / "tables" / "process_tree.md").exists()
    fresh = json.loads((tmp_path / "report" / "summary.json").read_text(encoding="utf-8"))
    committed = json.loads((SAMPLE / "report" / "summary.json").read_text(encoding="utf-8"))
    got, want = _rows(fresh, cells), _rows(committed, cells)
    assert ("colbert", 100_000, "(process tree)") in got
    assert got == pytest.approx(want, rel=0)  # the same peaks, to the byte, from the raw records
