"""Per (pipeline, size, function) figures of a run, aggregated over calls and repeats.

This is the one place that turns call records into table numbers; the report tables and `compare` both
read `collect()`.

Within one cell, a function called several times is folded into one row the way memory_profiler's
line report reads: `start` is the RSS at the first call's entry, `final` the RSS at the last call's exit,
`increment` the sum of the calls' increments, `peak` the highest peak RSS of any call, `peak_over_start`
the largest (peak - entry RSS) of any call, `duration_s` the summed time inside the function, `calls`
their count. Across repeats each metric is summarised by median, min and max.

The pseudo-target `TREE` holds the whole process tree over the `run` phase (see `phases`): tree RSS when
`run` began and ended, the highest tree RSS during it, and its duration; `TREE_PREPARE` the same over the
`prepare` phase. Runs without phase records give the whole cell under `TREE`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.core import peaks
from memharness.core.records import CallRecord
from memharness.results.gpu import tree_gpu_figures
from memharness.results.phases import TREE, TREE_PREPARE, cell_tree_figures
from memharness.results.run import CellFolder, Run

__all__ = ["TREE", "TREE_PREPARE", "Row", "Stat", "cell_figures", "collect", "fold_calls"]


@dataclass
class Stat:
    values: list[float]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def min(self) -> float:
        return float(min(self.values))

    @property
    def max(self) -> float:
        return float(max(self.values))

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "values": self.values}


@dataclass
class Row:
    pipeline: str
    kind: str
    size: int
    target: str
    metrics: dict[str, Stat] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        return max((len(s.values) for s in self.metrics.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "kind": self.kind,
            "size": self.size,
            "target": self.target,
            "repeats": self.repeats,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
        }


def _gpu_value(gpu: dict[str, Any] | None, key: str) -> int | None:
    if not gpu:
        return None
    vals = [d.get(key) for d in gpu.values() if isinstance(d, dict) and d.get(key) is not None]
    return int(sum(vals)) if key in ("allocated", "reserved") and vals else (int(max(vals)) if vals else None)


def fold_calls(calls: list[CallRecord]) -> dict[str, float]:
    """One cell's figures for one function (calls of that function, in start order)."""
    done = [c for c in calls if c.complete]
    if not done:
        return {}
    out: dict[str, float] = {
        "start": done[0].rss_start,
        "final": done[-1].rss_end or 0,
        "increment": sum(c.increment or 0 for c in done),
        "peak": max(c.peak_rss or 0 for c in done),
        "peak_over_start": max(c.peak_over_start or 0 for c in done),
        "duration_s": sum(c.duration_s or 0.0 for c in done),
        "calls": len(done),
    }
    out.update(peaks.call_figures(done))  # descendants' / tree peak during the call, private / file-backed
    g_start = _gpu_value(done[0].gpu_start, "allocated")
    if g_start is not None:
        out["gpu_start"] = g_start
    own = [p - (_gpu_value(c.gpu_start, "allocated") or 0) for c in done
           if (p := _gpu_value(c.gpu_end, "peak_allocated")) is not None]
    if own:  # torch's peak allocated over its allocated at entry: the GPU figure of the `gpu_own` metric
        out["gpu_own"] = max(own)
    final = _gpu_value(done[-1].gpu_end, "allocated")
    if final is not None:
        out["gpu_final"] = final
    for metric, key in (  # peaks need no reading at entry (CUDA may come up inside the call)
        ("gpu_peak", "peak_allocated"),
        ("gpu_peak_reserved", "peak_reserved"),
        ("gpu_nvml_tree", "nvml_tree_used"),  # NVML, the calling process and its descendants, at exit
        ("gpu_nvml_device", "nvml_used"),  # NVML, the whole device, at exit
    ):
        vals = [v for c in done if (v := _gpu_value(c.gpu_end, key)) is not None]
        if vals:
            out[metric] = max(vals)
    return out


def cell_figures(cell: CellFolder | Path) -> dict[str, dict[str, float]]:
    """target -> folded figures for one cell (a `memharness.results.Cell`, or a cell folder), plus the TREE
    pseudo-target."""
    cell = cell if isinstance(cell, CellFolder) else CellFolder.at(cell)
    by_target: dict[str, list[CallRecord]] = {}
    for rec in cell.peak_calls:
        if rec.target.startswith("phase:"):
            continue
        by_target.setdefault(rec.target, []).append(rec)
    out = {t: f for t, calls in by_target.items() if (f := fold_calls(calls))}
    out.update(cell_tree_figures(cell))
    if TREE in out:  # the tree row's GPU figures are the summary's
        out[TREE].update(tree_gpu_figures(cell))
    return out


def collect(run: Run | Path, statuses: tuple[str, ...] = ("done",), prepare: bool = False) -> list[Row]:
    """Aggregated rows of a run (a `memharness.results.Run`, or a run folder, opened here), ordered by
    pipeline (scenario order), size, target. `prepare`: include the prepare-phase tree rows
    (`TREE_PREPARE`), which the report shows and `compare` leaves out."""
    run = run if isinstance(run, Run) else Run.open(run)
    pipeline_order = {p["name"]: i for i, p in enumerate(run.scenario_spec.get("pipelines", []))}
    rows: dict[tuple[str, int, str], Row] = {}
    for cell in run.cells:
        if cell.status not in statuses:
            continue
        for target, fig in cell_figures(cell).items():
            if target == TREE_PREPARE and not prepare:
                continue
            key = (cell.pipeline, cell.size, target)
            row = rows.setdefault(key, Row(cell.pipeline, cell.kind, cell.size, target))
            for metric, value in fig.items():
                row.metrics.setdefault(metric, Stat([])).values.append(float(value))
    return sorted(
        rows.values(),
        key=lambda r: (pipeline_order.get(r.pipeline, 1 << 30), r.pipeline, r.size, r.target),
    )
