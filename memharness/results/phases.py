"""The time windows a process-tree figure covers, and the figures over one window.

A cell runs `phase:load_corpus`, `phase:prepare` (imports, extension compile, model load) and `phase:run`
(the measured indexing), each recorded as a call in `calls/<pid>.jsonl`. Every process-tree figure the
report, `compare` and the runner's `status.json` give is taken over the `run` window: Start = tree RSS when
`run` began, Final = when it ended, Peak = the highest tree RSS during it. `prepare` gets its own figures.
Runs without phase records (older runs, hand-made folders) fall back to the whole cell.

This is the one place that windows the timeline; everything else calls `run_window` / `tree_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memharness.core import peaks
from memharness.core.records import KIND_GPU_TREE_USED, KIND_GPU_USED, KIND_PROC_RSS, KIND_TREE_RSS, CallRecord
from memharness.results.run import CellFolder

TREE = "(process tree)"
TREE_PREPARE = "(process tree: prepare)"
RUN, PREPARE, CELL = "run", "prepare", "cell"

CAPTIONS = {
    RUN: "run phase only (from `run` starting to `run` ending; imports, extension compiles and model loads "
         "happen in `prepare` and are not included)",
    PREPARE: "prepare phase (imports, extension compiles, model loads)",
    CELL: "whole cell (this run recorded no `run` phase)",
}


@dataclass(frozen=True)
class Window:
    """A span of a cell. `start_ns`/`end_ns` None mean the timeline's first/last sample. The exact readings
    come from the phase's call record: tree RSS (process + live descendants) at its start and end, and the
    root process's kernel high-water mark during it (a lower bound of the tree peak that no sample misses)."""

    phase: str  # RUN, PREPARE or CELL
    start_ns: int | None = None
    end_ns: int | None = None
    start_rss: int | None = None
    end_rss: int | None = None
    peak_rss: int | None = None


def phase_window(calls: list[CallRecord], name: str) -> Window | None:
    """The window of `phase:<name>` of the cell's root process (the first one recorded), or None."""
    for c in calls:
        if c.target == f"phase:{name}" and c.depth == 0:
            end_rss = None if c.rss_end is None else c.rss_end + int(c.children_rss_end or 0)
            return Window(name, c.t_start_ns, c.t_end_ns, c.rss_start + int(c.children_rss_start or 0),
                          end_rss, c.peak_rss)
    return None


def run_window(calls: list[CallRecord]) -> Window:
    """The window the report's process-tree figures cover: the `run` phase, else the whole cell."""
    return phase_window(calls, RUN) or Window(CELL)


SHARED_MIN = 1 << 20  # equal readings below this are not taken for a shared address space


def tree_rows(rows: np.ndarray) -> np.ndarray:
    """The whole-tree RSS rows (kind 1) in time order, each process's memory counted once.

    A child started with `vfork` (Python's subprocess and multiprocessing's helpers start theirs so)
    shares its parent's address space until it execs, and reads the parent's RSS to the byte; a plain
    `fork` child starts with the same. The sampler's sum counts that memory twice, a spike that is not
    there (a 790 MiB process read as 1580 MiB for one tick). Processes with exactly equal RSS (above
    1 MiB) in one tick are counted once here."""
    tree = rows[rows["kind"] == KIND_TREE_RSS]
    if len(tree) and np.any(np.diff(tree["t_ns"]) < 0):
        tree = tree[np.argsort(tree["t_ns"], kind="stable")]
    procs = rows[(rows["kind"] == KIND_PROC_RSS) & (rows["value"] >= SHARED_MIN)]
    if len(procs) < 2 or not len(tree):
        return tree
    pairs, counts = np.unique(np.stack([procs["t_ns"], procs["value"]], axis=1), axis=0, return_counts=True)
    dup = counts > 1
    if not dup.any():
        return tree
    extra_t = pairs[dup, 0]
    extra_v = pairs[dup, 1] * (counts[dup] - 1)
    tree = tree.copy()
    idx = np.searchsorted(tree["t_ns"], extra_t)
    ok = (idx < len(tree)) & (tree["t_ns"][np.minimum(idx, len(tree) - 1)] == extra_t)
    np.subtract.at(tree["value"], idx[ok], extra_v[ok])
    return tree


def _between(t: np.ndarray, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    sel = np.ones(len(t), dtype=bool)
    if start_ns is not None:
        sel &= t >= start_ns
    if end_ns is not None:
        sel &= t <= end_ns
    return sel


def _select(t: np.ndarray, window: Window) -> np.ndarray:
    return _between(t, window.start_ns, window.end_ns)


def sampled_sum_peak(rows: np.ndarray, kind: int, start_ns: int | None = None,
                     end_ns: int | None = None) -> int | None:
    """The highest sum, at one sampling instant, of the timeline's `kind` readings (one per device or
    process) between `start_ns` and `end_ns` (open ends: None); None when no reading falls there."""
    if not len(rows):
        return None
    sub = rows[rows["kind"] == kind]
    sub = sub[_between(sub["t_ns"], start_ns, end_ns)]
    if not len(sub):
        return None
    _, inverse = np.unique(sub["t_ns"], return_inverse=True)
    return int(np.bincount(inverse, weights=sub["value"].astype(np.float64)).max())


def _gpu_tree_peak(rows: np.ndarray, window: Window) -> int | None:
    """Highest NVML used memory of the tree's processes (summed over devices) in the window; the
    device-wide figure when per-process figures were not sampled."""
    for kind in (KIND_GPU_TREE_USED, KIND_GPU_USED):
        if (peak := sampled_sum_peak(rows, kind, window.start_ns, window.end_ns)) is not None:
            return peak
    return None


def tree_figures(rows: np.ndarray, window: Window, wall_seconds: float | None = None,
                 floor: int | None = None) -> dict[str, float]:
    """Process-tree figures over `window` from timeline rows (`read_timeline`): start, final, increment,
    peak, peak_over_start, duration_s (and gpu_nvml_peak when GPU memory was sampled). `floor`: an exact
    reading the tree's peak cannot be below (a wrapped call's peak in one of its processes). Empty when the
    window holds no sample and no exact reading."""
    tree = tree_rows(rows)
    t, v = tree["t_ns"], tree["value"].astype(np.int64)
    inside = _select(t, window)
    tv, vv = t[inside], v[inside]
    start = window.start_rss if window.start_rss is not None else (int(vv[0]) if len(vv) else None)
    final = window.end_rss if window.end_rss is not None else (int(vv[-1]) if len(vv) else None)
    if start is None and final is None:
        return {}
    start = final if start is None else start
    final = start if final is None else final
    peak = max([start, final] + ([int(vv.max())] if len(vv) else [])
               + ([window.peak_rss] if window.peak_rss is not None else []) + ([floor] if floor else []))
    if window.start_ns is not None and window.end_ns is not None:
        duration = (window.end_ns - window.start_ns) / 1e9
    elif window.phase == CELL and wall_seconds:
        duration = float(wall_seconds)
    elif len(tv) >= 2:
        duration = (int(tv[-1]) - int(tv[0])) / 1e9
    else:
        duration = 0.0
    out: dict[str, float] = {"start": float(start), "final": float(final), "increment": float(final - start),
                             "peak": float(peak), "peak_over_start": float(peak - start), "duration_s": duration}
    gpu = _gpu_tree_peak(rows, window)
    if gpu is not None:
        out["gpu_nvml_peak"] = float(gpu)
    return out


def cell_tree_figures(cell: CellFolder) -> dict[str, dict[str, float]]:
    """{TREE: run-window figures, TREE_PREPARE: prepare-window figures (when recorded)} of one cell, from
    its calls, timeline, memory timeline and status.json as the cell has read them."""
    calls, rows, status = cell.calls, cell.timeline, cell.status_json
    out: dict[str, dict[str, float]] = {}
    run = run_window(calls)
    if run.end_ns is None and run.phase == RUN and status.get("t_end_ns"):  # killed inside run
        run = Window(RUN, run.start_ns, int(status["t_end_ns"]), run.start_rss, None, run.peak_rss)

    def split(window: Window) -> dict[str, float]:
        """The tree's private / file-backed peaks within the window (version-2 runs)."""
        return peaks.tree_split(cell.memory_timeline, window.start_ns, window.end_ns)

    if figs := tree_figures(rows, run, status.get("wall_seconds"), _calls_peak(calls, run)):
        out[TREE] = {**figs, **split(run)}
    prep = phase_window(calls, PREPARE)
    if prep is not None and (figs := tree_figures(rows, prep, floor=_calls_peak(calls, prep))):
        out[TREE_PREPARE] = {**figs, **split(prep)}
    return out


def _calls_peak(calls: list[CallRecord], window: Window) -> int | None:
    """The highest exact peak of any wrapped call (any process) inside `window`: the tree held at least that."""
    lo = window.start_ns if window.start_ns is not None else -1
    hi = window.end_ns if window.end_ns is not None else float("inf")
    vals = [c.peak_rss for c in calls if c.peak_rss is not None and not c.target.startswith("phase:")
            and lo <= c.t_start_ns <= hi]
    return max(vals) if vals else None


def exact_peak_call(calls: list[CallRecord], tree_peak: float, share: float = 0.95) -> str | None:
    """The innermost wrapped call of the main process during which that process reached its `run`-phase
    peak (from the calls' exact peaks, so no sampling interval blurs it); None when the run recorded no
    phase or when the main process held less than `share` of the tree's peak (a worker held it)."""
    run = phase_window(calls, RUN)
    if run is None or run.peak_rss is None or run.peak_rss < share * tree_peak:
        return None
    phase = next(c for c in calls if c.target == f"phase:{RUN}" and c.depth == 0)
    end = run.end_ns if run.end_ns is not None else float("inf")
    held = [c for c in calls if c.pid == phase.pid and not c.target.startswith("phase:") and c.peak_rss is not None
            and run.start_ns <= c.t_start_ns <= end and c.peak_rss >= run.peak_rss - (1 << 20)]
    return max(held, key=lambda c: (c.depth, c.t_start_ns)).target if held else None


def run_peak_call(cell: CellFolder, sampled: SampledPeak | None = None) -> str | None:
    """The call the report names for a cell's run-phase peak: from the calls' exact peaks when the main process
    held it (`exact_peak_call`), else the innermost call open at the highest timeline sample. `sampled`: the
    cell's `sampled_run_peak`, when the caller has it already."""
    sampled = sampled if sampled is not None else sampled_run_peak(cell)
    if sampled is None:
        return None
    return exact_peak_call(cell.calls, sampled.bytes) or sampled.call


def run_tree_peak(cell_dir: Path) -> int | None:
    """The tree peak over the `run` phase (None when the cell recorded no `run` phase or no sample):
    what `status.json`'s `peak_tree_rss` holds."""
    cell = CellFolder.at(cell_dir)
    try:
        if phase_window(cell.calls, RUN) is None:
            return None
        figs = cell_tree_figures(cell).get(TREE)
    except (OSError, ValueError, KeyError):  # unreadable records: the caller keeps the sampler's figure
        return None
    return None if not figs else int(figs["peak"])


def run_seconds(cell: CellFolder) -> tuple[float, float] | None:
    """The cell's `run` phase in seconds from its start (None: no phase records, use the whole cell)."""
    w = run_window(cell.calls)
    t0 = cell.t0_ns
    if w.phase != RUN or t0 is None or w.start_ns is None:
        return None
    end = w.end_ns if w.end_ns is not None else (cell.end_ns() or w.start_ns)
    return (w.start_ns - t0) / 1e9, (end - t0) / 1e9


def tree_series(cell: CellFolder) -> tuple[np.ndarray, np.ndarray]:
    """The sampled whole-tree RSS: (seconds from the cell's start, bytes), memory shared by a vfork/fork child
    counted once (`tree_rows`). Empty arrays when nothing was sampled."""
    rows = cell.timeline
    if len(rows) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    tree = tree_rows(rows)
    t0 = cell.t0_ns if cell.t0_ns is not None else int(np.min(rows["t_ns"]))
    return (tree["t_ns"] - t0) / 1e9, tree["value"].astype(np.int64)


@dataclass(frozen=True)
class SampledPeak:
    """The highest tree sample of a cell's `run` phase (the whole timeline when the cell recorded no phases)
    and the innermost wrapped call open at that moment (None: none was)."""

    t_s: float
    bytes: int
    call: str | None


def sampled_run_peak(cell: CellFolder) -> SampledPeak | None:
    """The cell's highest sampled tree RSS in its run phase and the call open then; None without samples."""
    from memharness.results.spans import assign_lanes, innermost_at

    t, v = tree_series(cell)
    if not len(v):
        return None
    window = run_seconds(cell)
    inside = np.ones(len(t), dtype=bool) if window is None else (t >= window[0]) & (t <= window[1])
    k = int(np.flatnonzero(inside)[np.argmax(v[inside])]) if inside.any() else int(np.argmax(v))
    t0 = cell.t0_ns or 0
    inner = innermost_at(assign_lanes(cell.calls, t0, cell.end_ns() or t0), float(t[k]))
    return SampledPeak(float(t[k]), int(v[k]), inner.call.target if inner else None)
