"""The names of every file and folder of a run folder (docs/format.md), in one place.

Standard library only (pathlib): the runner, the cell process and every reader take the names from
here. (`memharness.core` writes some of these files and keeps its own spelling, as it imports nothing
above itself.)
"""

from __future__ import annotations

from pathlib import Path

# --- where `memharness baseline` records baselines (`compare --baseline` reads it); relative to the cwd
BASELINE_STORE = Path(".memharness") / "baselines.json"

# --- the run folder: results/<scenario>/<run-id>/
MANIFEST = "manifest.json"
SCENARIO = "scenario.yaml"  # revision N of an edited scenario: scenario_revision_file(N)
CELLS = "cells"  # one folder per cell: cells/<cell-id>/
REPORT = "report"  # written by `memharness report`
LOCK = ".lock"
RESERVE = ".reserve"

# --- a cell folder: cells/<cell-id>/
CELL_SPEC = "cell.json"
STATUS = "status.json"
FINGERPRINT = "fingerprint.json"
TARGETS = "targets.json"
IMPORTS = "imports.json"
CELL_INFO = "cell_info.json"  # what the pipeline reported it ran (k-means, index settings)
CALLS = "calls"  # calls/<pid>.jsonl, one file per instrumented process
CALLS_GLOB = "*.jsonl"
TIMELINE = "timeline.bin"
TIMELINE_XZ = "timeline.bin.xz"  # a committed sample's xz-compressed timeline.bin
TIMELINE_HEADER = "timeline.json"
MEMORY_TIMELINE = "timeline_mem.bin"
PROCESSES = "processes.json"
STDOUT = "stdout.log"
STDERR = "stderr.log"
WORK = "work"  # the pipeline's work folder (index artifacts)
LINEPROF = "lineprof"
EXPLAIN = "explain"


def scenario_revision_file(rev: int) -> str:
    """The file holding revision `rev` of a run's scenario (0: the one it was created with)."""
    return SCENARIO if rev == 0 else f"scenario.r{rev}.yaml"


def cell_dir_name(cell_id: str) -> str:
    """A cell's folder relative to its run folder, as the manifest's `dir` holds it."""
    return f"{CELLS}/{cell_id}"
