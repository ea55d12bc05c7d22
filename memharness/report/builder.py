"""`build(run_dir)`: render `run_dir/report/` (tables, PNGs, summary.json, index.html) from the run folder
alone. Phase timings go into `timings` when given (scripts/bench_report.py prints them)."""

from __future__ import annotations

import errno
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.core.atomic import write_text
from memharness.errors import MemharnessError
from memharness.report import fmt
from memharness.report.answer import answer
from memharness.report.calltree import pipeline_tree
from memharness.report.html import Chart
from memharness.report.lead import lead_markdown
from memharness.report.predict import predictions
from memharness.report.series import CellSeries, Series, cell_series, target_order
from memharness.results import names
from memharness.results.figures import Row, collect
from memharness.results.phases import CAPTIONS, CELL, RUN, run_window
from memharness.results.run import CellFolder, Run


@contextmanager
def _phase(timings: dict[str, float], name: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t


def _clear(out_dir: Path) -> None:
    """Remove the charts of an earlier report of this run (cells or sizes may have gone since)."""
    for pattern in names.CHART_GLOBS:
        for f in out_dir.glob(pattern):
            f.unlink()


class ReportWriteError(MemharnessError):
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


def _run_seconds(cell: CellFolder) -> tuple[float, float] | None:
    """The cell's `run` phase in seconds from its start (None: no phase records, use the whole cell)."""
    w = run_window(cell.calls)
    t0 = cell.t0_ns
    if w.phase != RUN or t0 is None or w.start_ns is None:
        return None
    end = w.end_ns if w.end_ns is not None else (cell.end_ns() or w.start_ns)
    return (w.start_ns - t0) / 1e9, (end - t0) / 1e9


def run_part(cell: CellFolder, s: CellSeries) -> CellSeries:
    """The tree line of a cell over its `run` phase, in seconds from the phase's start (the whole line when
    the cell recorded no phases)."""
    window = _run_seconds(cell)
    if window is None or s.tree is None:
        return s
    a, b = window
    keep = (s.tree.t >= a) & (s.tree.t <= b)
    return CellSeries(Series(s.tree.label, s.tree.t[keep] - a, s.tree.v[keep]), samples=int(keep.sum()))


def _compare_xlabel(run: Run) -> str:
    if any(_run_seconds(c) is not None for c in run.cells):
        return "seconds from the start of the run phase"
    return "seconds from cell start"


def _window_note(run: Run) -> str:
    phases = {run_window(c.calls).phase for c in run.cells if c.status == "done"}
    return CAPTIONS[RUN] if phases == {RUN} else CAPTIONS[CELL] if phases == {CELL} else "mixed"


def _wanted_sizes(run: Run) -> dict[str, list[int]]:
    """Per pipeline, the scenario's sizes it has no finished cell for (failed, or not run)."""
    from memharness.scenario import parse_size

    spec = run.manifest.get("scenario_spec") or {}
    sizes = set(run.sizes)
    for s in spec.get("sizes", []) or []:
        try:
            sizes.add(parse_size(s))
        except (ValueError, TypeError):
            continue
    done = {(c.pipeline, c.size) for c in run.cells if c.status == "done"}
    return {p: sorted(s for s in sizes if (p, s) not in done) for p in run.pipelines}


def build(run_dir: Path, out_dir: Path | None = None, timings: dict[str, float] | None = None) -> Path:
    """Render the report of a run folder into `out_dir` (default `run_dir/report`); return index.html.

    Raises `memharness.results.BrokenRunError` (or its `NotARunError`) for a folder that is not a readable
    run, and `ReportWriteError` when the report folder cannot be written.
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / names.REPORT
    try:
        return _build(Path(run_dir), out, timings)
    except OSError as exc:
        if _is_report_path(exc.filename, out):
            raise ReportWriteError(Path(exc.filename), exc) from exc
        raise


@dataclass
class _Timelines:
    """What the timeline step leaves for the later steps: each cell's chart lines, the charts, and per cell
    the figures summary.json keeps."""

    series: dict[str, CellSeries] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def _build(run_dir: Path, out: Path, timings: dict[str, float] | None) -> Path:
    from memharness.report.html import Page, render
    from memharness.report.lineprof_render import copy_line_tables
    from memharness.report.tables import build_tables, write_tables
    from memharness.report.timeline_chart import target_colors

    timings = timings if timings is not None else {}
    with _phase(timings, "load"):
        run = Run.open(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
        order = target_order(run)
    with _phase(timings, "aggregate"):
        rows = collect(run, prepare=True)
        summary_rows = [r.to_dict() for r in rows]
    with _phase(timings, "tables"):
        tables = build_tables(rows, order)
    with _phase(timings, "timelines"):
        timelines = _render_timelines(run, out, target_colors(order))
    with _phase(timings, "compare"):
        compares = _render_compares(run, timelines.series, out)
    with _phase(timings, "scaling"):
        scaling, preds, scaling_chart = _render_scaling(run, rows, summary_rows, out)
    with _phase(timings, "answer"):
        ans = answer(run, rows, timelines.info)
        trees = _call_trees(run)
        lead = lead_markdown(ans, trees, run, preds)
        write_tables(tables, out, f"memharness tables: {run.scenario} / {run.run_id}", lead)
    with _phase(timings, "lineprof"):
        line_tables = copy_line_tables(run, out)
    with _phase(timings, "html"):
        from memharness.report.explain_render import explained

        explain_entries = explained(run.dir, out)
        page = Page(run, tables, scaling_chart, compares, timelines.charts, line_tables,
                    extra={"answer": ans, "trees": trees, "predictions": preds, "explain": explain_entries})
        index = out / names.REPORT_INDEX
        write_text(index, render(page))
    with _phase(timings, "summary"):
        summary = _summary(run, out, ans, summary_rows, tables, scaling, preds, trees, timelines, compares,
                           line_tables, explain_entries)
        write_text(out / names.REPORT_SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    return index


def _render_timelines(run: Run, out: Path, colors: dict[str, str]) -> _Timelines:
    """One timeline chart per cell that recorded anything."""
    from memharness.report.timeline_chart import render_timeline

    done = _Timelines()
    for cell in run.cells:
        s = cell_series(cell)
        done.series[cell.id] = s
        if s.tree is None and not cell.calls:
            continue
        info = render_timeline(cell, s, out / names.timeline_chart(cell.id), colors, _run_seconds(cell))
        done.info[cell.id] = {"png": info.path.name, "peak_mib": info.peak_mib, "peak_s": info.peak_s,
                              "peak_call": info.peak_call, "samples": info.samples, "calls": info.calls}
        cap = f"{info.samples:,} tree samples, {info.calls:,} wrapped calls."
        if info.peak_mib is not None:
            cap += f" Peak {info.peak_mib:.1f} MiB at {info.peak_s:.1f} s"
            cap += f", inside {info.peak_call}." if info.peak_call else ", outside any wrapped call."
        done.charts.append(Chart(f"{cell.id} ({cell.status})", info.path, cap, f"timeline-{cell.id}"))
    return done


def _render_compares(run: Run, series: dict[str, CellSeries], out: Path) -> list[Chart]:
    """Per size with two or more pipelines: their `run` phases side by side."""
    from memharness.report.compare_chart import pipeline_colors, render_compare

    pcolors = pipeline_colors(run.pipelines)
    charts: list[Chart] = []
    for size in run.sizes:
        panels = []
        for p in run.pipelines:
            cs = [(c, run_part(c, series[c.id])) for c in run.cells if c.pipeline == p and c.size == size
                  and series[c.id].tree is not None]
            if cs:
                panels.append((p, cs))
        if len(panels) < 2:
            continue
        path = out / names.compare_chart(fmt.size_label(size))
        peaks = render_compare(size, panels, path, pcolors, xlabel=_compare_xlabel(run))
        cap = "; ".join(f"{p}: peak {v:.1f} MiB" for p, v in peaks.items())
        charts.append(Chart(f"{fmt.size_label(size)} documents: pipelines side by side", path, cap))
    return charts


def _render_scaling(run: Run, rows: list[Row], summary_rows: list[dict[str, Any]], out: Path
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], Chart | None]:
    """(scaling figures, predictions, the scaling chart when some pipeline ran two sizes or more)."""
    from memharness.report.compare_chart import pipeline_colors
    from memharness.report.scaling import render_scaling, scaling_data

    scaling = scaling_data(rows, run.pipelines)
    preds = predictions(summary_rows, run.pipelines, _wanted_sizes(run))
    if not any(len(set(d["sizes"])) >= 2 for d in scaling.values()):
        return scaling, preds, None
    path = out / names.SCALING_CHART
    render_scaling(scaling, path, pipeline_colors(run.pipelines), preds)
    cap = "; ".join(f"{p}: peak {fmt.signed(d['peak_slope_mib_per_100k'])}, final "
                    f"{fmt.signed(d['final_slope_mib_per_100k'])} MiB per 100k documents"
                    for p, d in scaling.items() if d["peak_slope_mib_per_100k"] is not None)
    return scaling, preds, Chart("Memory against collection size", path, cap)


def _call_trees(run: Run) -> dict[str, list[Any]]:
    """Per pipeline with calls, its call tree."""
    trees = {p: pipeline_tree([c for c in run.cells if c.pipeline == p]) for p in run.pipelines}
    return {p: t for p, t in trees.items() if t}


def _failed_cells(run: Run) -> list[dict[str, Any]]:
    return [{"id": c.id, "pipeline": c.pipeline, "size": c.size, "repeat": c.repeat,
             "status": c.status_json.get("status") or c.status, "cause": c.status_json.get("cause") or c.cause,
             "message": c.status_json.get("message"), "exit_code": c.status_json.get("exit_code")}
            for c in run.cells if c.status != "done"]


def _summary(run: Run, out: Path, ans: dict[str, Any], summary_rows: list[dict[str, Any]], tables: list[Any],
             scaling: dict[str, Any], preds: dict[str, Any], trees: dict[str, list[Any]], timelines: _Timelines,
             compares: list[Chart], line_tables: list[Any], explain_entries: Any) -> dict[str, Any]:
    """summary.json: every figure of the report, for tools."""
    from memharness.report.html import missing_targets, unreadable_call_lines, unreadable_files

    return {
        "format": "memharness-report", "version": 1, "scenario": run.scenario, "run_id": run.run_id,
        "units": "rows, answer, call_trees: bytes and seconds; scaling, predictions: MiB (scaling slopes per 100k "
                 "documents)",
        "window": _window_note(run),
        "answer": ans,
        "rows": summary_rows,
        "tables": [{"target": t.target, "files": [f"tables/{t.file_stem}.{x}" for x in ("md", "csv", "json")]}
                   for t in tables],
        "failed_cells": _failed_cells(run),
        "missing_targets": missing_targets(run.cells),
        "unreadable_call_lines": unreadable_call_lines(run.cells),
        "unreadable_files": unreadable_files(run.cells),
        "scaling": scaling,
        "predictions": preds,
        "call_trees": {p: [n.to_dict() for n in t] for p, t in trees.items()},
        "timelines": timelines.info,
        "compare": [c.path.name for c in compares],
        "line_profiles": [str(lt.copy.relative_to(out)) for lt in line_tables],
        "explain": explain_entries,
    }
