"""The names of every file and folder of a run folder and a report folder (docs/format.md), in one place: the
vocabulary of `memharness.results`, which writes and reads run folders.

A leaf at the package's root (standard library only, no other memharness import), beside `errors.py` and
`metrics.py`, so every module takes its names from here, the measured processes' `core` included.
`tests/test_layout.py` fails on a run-folder file-name literal anywhere else.
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
ATTEMPTS = "attempts"  # attempts/<cell-id>/<n>/: a cell's earlier attempt, moved aside when it runs again

# --- a cell folder: cells/<cell-id>/
CELL_SPEC = "cell.json"  # what the cell runs (written by the supervisor, read by the cell process)
STATUS = "status.json"
FINGERPRINT = "fingerprint.json"
TARGETS = "targets.json"
IMPORTS = "imports.json"
CELL_INFO = "cell_info.json"  # what the pipeline reported it ran (k-means, index settings)
MODULES = "modules.json"  # the distributions whose modules the cell process had imported when it ended
ERROR = "error.json"  # the exception the pipeline raised
GUARD = "guard.json"  # the sampler crossed max_rss and killed the tree
CELL_NOTES = "notes.json"  # what the cell process noticed of its own end (the pipeline closed stdout/stderr)
BOOT = "boot.json"  # how instrumented child processes find the session (not kept by `profile.save`)
SAMPLER_LOG = "sampler.log"
CALLS = "calls"  # calls/<pid>.jsonl, one file per instrumented process
CALLS_GLOB = "*.jsonl"
TIMELINE = "timeline.bin"
COMPRESSED = ".xz"  # a committed sample's timeline files are xz-compressed: timeline.bin.xz, timeline_mem.bin.xz
TIMELINE_XZ = "timeline.bin" + COMPRESSED
TIMELINE_HEADER = "timeline.json"
MEMORY_TIMELINE = "timeline_mem.bin"
PROCESSES = "processes.json"
STDOUT = "stdout.log"
STDERR = "stderr.log"
WORK = "work"  # the pipeline's work folder (index artifacts)
LINEPROF = "lineprof"  # lineprof/<dotted path>.txt, memory_profiler's line tables
LINEPROF_GLOB = "*.txt"

# --- a cell's explain/ folder (`memharness explain`, the scenario's `explain:`)
EXPLAIN = "explain"
EXPLAIN_CONFIG = "config.json"  # what the explainer inside the cell records (MEMHARNESS_EXPLAIN names it)
EXPLAIN_CAPTURE = "capture"  # capture/host/<pid>-<n>.bin, capture/gpu/<pid>-<n>.pickle, capture/calls/<..>.json
EXPLAIN_RERUN = "rerun"  # the second run of the cell
EXPLAIN_JSON = "explain.json"
EXPLAIN_MD = "explain.md"
EXPLAIN_FLAMEGRAPH = "host-flamegraph.html"
EXPLAIN_GPU_SNAPSHOT = "gpu-snapshot.pickle"
# capture/ (what the explainer inside the measured processes writes): one file per explained invocation
CAPTURE_SUFFIX = {"host": ".bin", "gpu": ".pickle", "calls": ".json", "entry": ".bin"}  # sub-folder -> suffix

# --- the report folder (report/ of a run, or `report --output`)
REPORT_INDEX = "index.html"
REPORT_SUMMARY = "summary.json"
REPORT_TABLES_MD = "tables.md"
REPORT_TABLES = "tables"  # tables/<target>.md|csv|json
REPORT_LINEPROF = "lineprof"
SCALING_CHART = "scaling.png"
CHART_GLOBS = ("timeline-*.png", "compare-*.png", SCALING_CHART)  # removed before a report is rendered again


# --- a bisect folder (`memharness bisect -o DIR`): DIR/bisect.json, bisect.md, runs/<version>/, logs/<version>.log
BISECT_STATE = "bisect.json"
BISECT_LOCK = "bisect.lock"
BISECT_TABLE = "bisect.md"
BISECT_RUNS = "runs"  # runs/<version>/<scenario>/<run-id>/: a normal run folder per step
BISECT_LOGS = "logs"
# --- the environment cache of `memharness bisect` (<cache>/bisect-envs/<base>/<package>-<version>/)
ENV_SPEC = "env.json"
ENV_BASE = "base.json"
ENV_PINS = "constraints.txt"
ENV_BUILD_LOG = "build.log"


def log_file(label: str) -> str:
    return f"{label}.log"


def scenario_revision_file(rev: int) -> str:
    """The file holding revision `rev` of a run's scenario (0: the one it was created with)."""
    return SCENARIO if rev == 0 else f"scenario.r{rev}.yaml"


def cell_dir_name(cell_id: str) -> str:
    """A cell's folder relative to its run folder, as the manifest's `dir` holds it."""
    return f"{CELLS}/{cell_id}"


def attempt_dir_name(cell_id: str, n: int) -> str:
    """Where attempt `n` (1, 2, ...) of a cell that ran again is kept, relative to its run folder."""
    return f"{ATTEMPTS}/{cell_id}/{n}"


def calls_file(pid: int) -> str:
    """The call records of one instrumented process, inside `calls/`."""
    return f"{pid}.jsonl"


def capture_file(kind: str, name: str) -> str:
    """A capture of one invocation (`<pid>-<n>`) or process (`<pid>`): capture/<kind>/<name><suffix>."""
    return f"{kind}/{name}{CAPTURE_SUFFIX[kind]}"


def capture_glob(kind: str) -> str:
    return f"{kind}/*{CAPTURE_SUFFIX[kind]}"


def against_files(cell_id: str) -> tuple[str, str]:
    """explain/against-<cell>.json and .md: two cells' sites side by side (`explain --against`)."""
    return f"against-{cell_id}.json", f"against-{cell_id}.md"


def lineprof_file(stem: str) -> str:
    """A line-profiled function's memory_profiler table, inside `lineprof/`."""
    return f"{stem}.txt"


def timeline_chart(cell_id: str) -> str:
    return f"timeline-{cell_id}.png"


def compare_chart(size_label: str) -> str:
    return f"compare-{size_label}.png"


def table_files(stem: str) -> tuple[str, str, str]:
    """A per-function table's Markdown, CSV and JSON files, inside `tables/`."""
    return f"{stem}.md", f"{stem}.csv", f"{stem}.json"
