"""`build(run_dir)`: render `run_dir/report/` (tables, PNGs, summary.json, index.html) from the run folder
alone. Phase timings go into `timings` when given (scripts/bench_report.py prints them)."""

from __future__ import annotations

import errno
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memharness.core.atomic import write_text
from memharness.report import fmt
from memharness.report.aggregate import collect
from memharness.report.runinfo import CellSeries, load_run


@contextmanager
def _phase(timings: dict[str, float], name: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t


def _clear(out_dir: Path) -> None:
    """Remove the charts of an earlier report of this run (cells or sizes may have gone since)."""
    for pattern in ("timeline-*.png", "compare-*.png", "scaling.png"):
        for f in out_dir.glob(pattern):
            f.unlink()


class ReportWriteError(Exception):
    """The report folder could not be written (disk full, read-only, a file in the way). `path` is what
    failed, `disk_full` says whether freeing space would help; files written before stay complete (every
    write is atomic), and no temporary file is left."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = Path(path)
        self.error = error
        self.disk_full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        super().__init__(f"cannot write {self.path}: {error.strerror or error}")


def _is_report_path(filename: Any, out: Path) -> bool:
    """Whether a failed file is the report folder, inside it, or a folder above it that had to be made."""
    if not filename:
        return False
    p = Path(os.path.abspath(filename))
    out = Path(os.path.abspath(out))
    return p == out or out in p.parents or p in out.parents


def build(run_dir: Path, out_dir: Path | None = None, timings: dict[str, float] | None = None) -> Path:
    """Render the report of a run folder into `out_dir` (default `run_dir/report`); return index.html.

    Raises `memharness.results.BrokenRunError` (or its `NotARunError`) for a folder that is not a readable
    run, and `ReportWriteError` when the report folder cannot be written.
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    try:
        return _build(Path(run_dir), out, timings)
    except OSError as exc:
        if _is_report_path(exc.filename, out):
            raise ReportWriteError(Path(exc.filename), exc) from exc
        raise


def _build(run_dir: Path, out: Path, timings: dict[str, float] | None) -> Path:
    from memharness.report.compare_chart import pipeline_colors, render_compare
    from memharness.report.html import Chart, Page, missing_targets, render, unreadable_call_lines
    from memharness.report.lineprof_render import copy_line_tables
    from memharness.report.scaling import render_scaling, scaling_data
    from memharness.report.tables import build_tables, write_tables
    from memharness.report.timeline_chart import render_timeline, target_colors

    timings = timings if timings is not None else {}
    with _phase(timings, "load"):
        run = load_run(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
        order = run.target_order()
    with _phase(timings, "aggregate"):
        rows = collect(run.dir)
    title = f"memharness tables: {run.scenario} / {run.run_id}"
    with _phase(timings, "tables"):
        tables = build_tables(rows, order)
        write_tables(tables, out, title)

    colors = target_colors(order)
    pcolors = pipeline_colors(run.pipelines)
    series: dict[str, CellSeries] = {}
    timelines: list[Chart] = []
    timeline_info: dict[str, dict[str, Any]] = {}
    with _phase(timings, "timelines"):
        for cell in run.cells:
            s = cell.series()
            series[cell.id] = s
            if s.tree is None and not cell.calls:
                continue
            info = render_timeline(cell, s, out / f"timeline-{cell.id}.png", colors)
            timeline_info[cell.id] = {"png": info.path.name, "peak_mib": info.peak_mib, "peak_s": info.peak_s,
                                      "peak_call": info.peak_call, "samples": info.samples, "calls": info.calls}
            cap = f"{info.samples:,} tree samples, {info.calls:,} wrapped calls."
            if info.peak_mib is not None:
                cap += f" Peak {info.peak_mib:.1f} MiB at {info.peak_s:.1f} s"
                cap += f", inside {info.peak_call}." if info.peak_call else ", outside any wrapped call."
            timelines.append(Chart(f"{cell.id} ({cell.status})", info.path, cap, f"timeline-{cell.id}"))

    compares: list[Chart] = []
    with _phase(timings, "compare"):
        for size in run.sizes:
            panels = []
            for p in run.pipelines:
                cs = [(c, series[c.id]) for c in run.cells if c.pipeline == p and c.size == size
                      and series[c.id].tree is not None]
                if cs:
                    panels.append((p, cs))
            if len(panels) < 2:
                continue
            path = out / f"compare-{fmt.size_label(size)}.png"
            peaks = render_compare(size, panels, path, pcolors)
            cap = "; ".join(f"{p}: peak {v:.1f} MiB" for p, v in peaks.items())
            compares.append(Chart(f"{fmt.size_label(size)} documents: pipelines side by side", path, cap))

    scaling_chart = None
    with _phase(timings, "scaling"):
        scaling = scaling_data(rows, run.pipelines)
        if any(len(set(d["sizes"])) >= 2 for d in scaling.values()):
            path = out / "scaling.png"
            render_scaling(scaling, path, pcolors)
            cap = "; ".join(f"{p}: peak {fmt.signed(d['peak_slope_mib_per_100k'])}, final "
                            f"{fmt.signed(d['final_slope_mib_per_100k'])} MiB per 100k documents"
                            for p, d in scaling.items() if d["peak_slope_mib_per_100k"] is not None)
            scaling_chart = Chart("Memory against collection size", path, cap)

    with _phase(timings, "lineprof"):
        line_tables = copy_line_tables(run, out)

    with _phase(timings, "html"):
        from memharness.report.explain_render import explained

        explain_entries = explained(run.dir, out)
        page = Page(run, tables, scaling_chart, compares, timelines, line_tables,
                    extra={"explain": explain_entries})
        index = out / "index.html"
        write_text(index, render(page))

    with _phase(timings, "summary"):
        failed = [{"id": c.id, "pipeline": c.pipeline, "size": c.size, "repeat": c.repeat,
                   "status": c.status_json.get("status") or c.status, "cause": c.status_json.get("cause") or c.cause,
                   "message": c.status_json.get("message"), "exit_code": c.status_json.get("exit_code")}
                  for c in run.cells if c.status != "done"]
        summary = {
            "format": "memharness-report", "version": 1, "scenario": run.scenario, "run_id": run.run_id,
            "units": "rows: bytes and seconds; scaling: MiB and MiB per 100k documents",
            "rows": [r.to_dict() for r in rows],
            "tables": [{"target": t.target, "files": [f"tables/{t.file_stem}.{x}" for x in ("md", "csv", "json")]}
                       for t in tables],
            "failed_cells": failed,
            "missing_targets": missing_targets(run.cells),
            "unreadable_call_lines": unreadable_call_lines(run.cells),
            "scaling": scaling,
            "timelines": timeline_info,
            "compare": [c.path.name for c in compares],
            "line_profiles": [str(lt.copy.relative_to(out)) for lt in line_tables],
            "explain": explain_entries,
        }
        write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    return index
