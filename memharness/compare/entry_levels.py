"""What one cell's main process held at each step before its wrapped calls, and who calls whom.

A call's peak is what it inherited (the process's memory at its entry) plus its own part (peak over
entry). `compare` judges functions on their own part and reports a move of the inherited level once, at
the earliest step it shows: process start, each measured import (`imports.json`), importing the wrapped
functions' modules, `load_corpus`, `prepare`, then the entry of each wrapped function (first call, in
time order). The same levels on the GPU are torch's allocated bytes at those entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.core.records import CallRecord
from memharness.results.run import CellFolder

CALL = "call:"
IMPORTS = "imports"  # the checkpoint after the last measured import
PHASE = "phase:"
START = "start"


@dataclass
class Checkpoint:
    key: str  # "start", "imports", "phase:prepare", "call:pkg.mod.func"
    rss: float
    gpu: float | None = None
    t_ns: int = 0  # when it was passed (0 for the import checkpoints, which come first)


@dataclass
class ImportStep:
    module: str
    delta: float  # RSS after - before importing it
    package: str | None  # "faiss-cpu 1.15.1"


@dataclass
class CellLevels:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    imports: dict[str, ImportStep] = field(default_factory=dict)  # module -> its measured import
    descendants: dict[str, set[str]] = field(default_factory=dict)  # target -> wrapped targets it calls
    gpu_own: dict[str, float] = field(default_factory=dict)  # target -> max(peak allocated - allocated at entry)
    # target -> (end time, RSS kept: exit - entry, GPU allocated kept) of its first call in the main process
    kept: dict[str, tuple[int, float, float | None]] = field(default_factory=dict)


def gpu_sum(gpu: dict[str, Any] | None, key: str) -> float | None:
    """Sum of one torch counter over the devices of a call record's `gpu` field."""
    if not isinstance(gpu, dict):
        return None
    vals = [d.get(key) for d in gpu.values() if isinstance(d, dict) and d.get(key) is not None]
    return float(sum(vals)) if vals else None


def _main_pid(calls: list[CallRecord]) -> int | None:
    for c in calls:
        if c.target.startswith(PHASE):
            return c.pid
    tops = [c.pid for c in calls if c.depth == 0]
    return tops[0] if tops else (calls[0].pid if calls else None)


def cell_levels(cell: CellFolder | Path) -> CellLevels:
    """The levels of one cell (a `memharness.results.Cell`, or a cell folder)."""
    cell = cell if isinstance(cell, CellFolder) else CellFolder.at(cell)
    out = CellLevels()
    imports = cell.imports
    if isinstance(imports, dict) and imports.get("rss_start") is not None:
        out.checkpoints.append(Checkpoint(START, float(imports["rss_start"])))
        for step in imports.get("steps") or []:
            if not isinstance(step, dict) or step.get("delta") is None or step.get("error"):
                continue
            package = " ".join(str(x) for x in (step.get("package"), step.get("version")) if x) or None
            out.imports[str(step["module"])] = ImportStep(str(step["module"]), float(step["delta"]), package)
        if imports.get("rss_end") is not None:
            out.checkpoints.append(Checkpoint(IMPORTS, float(imports["rss_end"])))
    calls = cell.calls
    main = _main_pid(calls)
    seen: set[str] = set()
    for c in calls:
        if c.pid != main or c.target in seen:
            continue
        seen.add(c.target)
        key = c.target if c.target.startswith(PHASE) else CALL + c.target
        g0 = gpu_sum(c.gpu_start, "allocated")
        out.checkpoints.append(Checkpoint(key, float(c.rss_start), g0, c.t_start_ns))
        if c.complete and c.rss_end is not None and not c.target.startswith(PHASE):
            g1 = gpu_sum(c.gpu_end, "allocated")
            out.kept[c.target] = (int(c.t_end_ns or 0), float(c.rss_end - c.rss_start),
                                  None if g0 is None or g1 is None else g1 - g0)
    by_id = {c.call_id: c for c in calls}
    for c in calls:
        if c.target.startswith(PHASE):
            continue
        parent = by_id.get(c.parent_id) if c.parent_id else None
        hops = 0
        while parent is not None and hops < 1000:
            if not parent.target.startswith(PHASE) and parent.target != c.target:
                out.descendants.setdefault(parent.target, set()).add(c.target)
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
            hops += 1
        entry, peak = gpu_sum(c.gpu_start, "allocated"), gpu_sum(c.gpu_end, "peak_allocated")
        if c.complete and entry is not None and peak is not None:
            out.gpu_own[c.target] = max(out.gpu_own.get(c.target, 0.0), peak - entry)
    return out


def short(target: str) -> str:
    """`pkg.mod.Class.method` -> `Class.method`, `pkg.mod.func` -> `func` (names in verdict sentences)."""
    parts = target.split(".")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return ".".join(parts[-2:])
    return parts[-1]


def label(key: str) -> str:
    """How a checkpoint reads in a sentence."""
    if key.startswith(CALL):
        return f"`{short(key[len(CALL):])}`"
    if key == IMPORTS:
        return "the end of the measured imports"
    if key.startswith(PHASE):
        return key[len(PHASE):]
    return "process start"


def segment_label(prev: str, key: str) -> str:
    """What ran between checkpoint PREV and checkpoint KEY."""
    if key == IMPORTS:
        return "imports"
    if key == "phase:load_corpus":
        return "importing the wrapped functions' modules"
    if key == "phase:prepare":
        return "load_corpus"
    if key == "phase:run":
        return "prepare (model load, warm-up)"
    if prev.startswith(CALL):
        return f"what ran from the entry of {label(prev)} to that of {label(key)}"
    if prev == "phase:run":
        return f"run, before {label(key)}"
    return f"what ran from {label(prev)} to {label(key)}"
