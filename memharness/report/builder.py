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

from memharness import names
from memharness.core.atomic import write_text
from memharness.errors import MemharnessError
from memharness.report.answer import answer, gpu_used
from memharness.report.calltree import pipeline_tree
from memharness.report.charts.base import Chart, ChartContext
from memharness.report.lead import lead_markdown
from memharness.report.predict import predictions
from memharness.report.scaling import scaling_data
from memharness.report.series import cell_series, target_order
from memharness.results.figures import Row, collect
from memharness.results.gpu import cell_gpu
from memharness.results.phases import CAPTIONS, CELL, RUN, run_window, sampled_run_peak
from memharness.results.run import Run


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


def _window_note(run: Run) -> str:
    phases = {run_window(c.calls).phase for c in run.cells if c.status == "done"}
    return CAPTIONS[RUN] if phases == {RUN} else CAPTIONS[CELL] if phases == {CELL} else "mixed"


def _wanted_sizes(run: Run) -> dict[str, list[int]]:
    """Per pipeline, the scenario's sizes it has no finished cell for (failed, or not run)."""
    from memharness.scenario import parse_size

    listed = run.scenario_spec.get("sizes")  # the recorded scenario's sizes, whatever JSON a hand left there
    sizes = set(run.sizes)
    for s in listed if isinstance(listed, list) else []:
        try:
            sizes.add(parse_size(s))
        except (ValueError, TypeError):
            continue
    done = {(c.pipeline, c.size) for c in run.cells if c.status == "done"}
    return {p: sorted(s for s in sizes if (p, s) not in done) for p in run.pipelines}


def build(run_dir: Path, out_dir: Path | None = None, timings: dict[str, float] | None = None,
          budgets: dict[str, int | None] | None = None) -> Path:
    """Render the report of a run folder into `out_dir` (default `run_dir/report`); return index.html.

    Raises `memharness.results.BrokenRunError` (or its `NotARunError`) for a folder that is not a readable
    run, and `ReportWriteError` when the report folder cannot be written.
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / names.REPORT
    try:
        return _build(Path(run_dir), out, timings, budgets)
    except OSError as exc:
        if _is_report_path(exc.filename, out):
            raise ReportWriteError(Path(exc.filename), exc) from exc
        raise


@dataclass
class _Parts:
    """Everything the report is made of, computed once; the HTML page and summary.json are written from it."""

    run: Run
    out: Path
    rows: list[Row]
    summary_rows: list[dict[str, Any]]
    tables: list[Any]
    scaling: dict[str, dict[str, Any]]
    predictions: dict[str, dict[str, Any]]
    answer: dict[str, Any]
    trees: dict[str, list[Any]]
    charts: dict[str, list[Chart]] = field(default_factory=dict)  # renderer name -> its charts
    line_tables: list[Any] = field(default_factory=list)
    explain: list[dict[str, Any]] = field(default_factory=list)


def _figures(run: Run, out: Path, budgets: dict[str, int | None] | None) -> tuple[_Parts, ChartContext]:
    """The figures of the report (rows, tables, scaling, predictions, the answer, call trees) and what the
    charts draw (each cell's lines and sampled run-phase peak)."""
    from memharness.report.charts.compare import pipeline_colors
    from memharness.report.charts.timeline import target_colors
    from memharness.report.tables import build_tables

    order = target_order(run)
    rows = collect(run, prepare=True)
    summary_rows = [r.to_dict() for r in rows]
    series = {c.id: cell_series(c) for c in run.cells}
    peaks = {c.id: sampled_run_peak(c) for c in run.cells if series[c.id].tree is not None or c.calls}
    scaling = scaling_data(rows, run.pipelines)
    preds = predictions(summary_rows, run.pipelines, _wanted_sizes(run), budgets)
    gpu = {c.id: cell_gpu(c) for c in run.cells}
    ans = answer(run, rows, peaks, gpu)
    parts = _Parts(run, out, rows, summary_rows, build_tables(rows, order), scaling, preds, ans, _call_trees(run))
    marks = {s["size"]: {e["pipeline"]: {"host": e["peak"], "gpu": gpu_used(e) if e.get("gpu") else None}
                         for e in s["pipelines"]} for s in ans["sizes"]}
    ctx = ChartContext(run, out, series, peaks, target_colors(order), pipeline_colors(run.pipelines), gpu, marks,
                       scaling, preds)
    return parts, ctx


def _build(run_dir: Path, out: Path, timings: dict[str, float] | None,
           budgets: dict[str, int | None] | None = None) -> Path:
    from memharness.report.charts import by_section, render_all
    from memharness.report.explain_render import explained
    from memharness.report.html import Page, render
    from memharness.report.lineprof_render import copy_line_tables
    from memharness.report.tables import write_tables

    timings = timings if timings is not None else {}
    with _phase(timings, "load"):
        run = Run.open(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        _clear(out)
    with _phase(timings, "figures"):
        parts, ctx = _figures(run, out, budgets)
    with _phase(timings, "charts"):
        parts.charts = render_all(ctx)
    with _phase(timings, "tables"):
        lead = lead_markdown(parts.answer, parts.trees, run, parts.predictions)
        write_tables(parts.tables, out, f"memharness tables: {run.scenario} / {run.run_id}", lead)
        parts.line_tables = copy_line_tables(run, out)
    with _phase(timings, "html"):
        parts.explain = explained(run.dir, out)
        page = Page(run, parts.tables, by_section(parts.charts), parts.line_tables,
                    extra={"answer": parts.answer, "trees": parts.trees, "predictions": parts.predictions,
                           "explain": parts.explain})
        index = out / names.REPORT_INDEX
        write_text(index, render(page))
    with _phase(timings, "summary"):
        write_text(out / names.REPORT_SUMMARY, json.dumps(_summary(parts), indent=2, default=str) + "\n")
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    return index


def _call_trees(run: Run) -> dict[str, list[Any]]:
    """Per pipeline with calls, its call tree."""
    trees = {p: pipeline_tree([c for c in run.cells if c.pipeline == p]) for p in run.pipelines}
    return {p: t for p, t in trees.items() if t}


def _failed_cells(run: Run) -> list[dict[str, Any]]:
    return [{"id": c.id, "pipeline": c.pipeline, "size": c.size, "repeat": c.repeat,
             "status": c.status_json.get("status") or c.status, "cause": c.status_json.get("cause") or c.cause,
             "message": c.status_json.get("message"), "exit_code": c.status_json.get("exit_code")}
            for c in run.cells if c.status != "done"]


def _summary(parts: _Parts) -> dict[str, Any]:
    """summary.json: every figure of the report, for tools."""
    from memharness.report.html import missing_targets, sampler_gaps, unreadable_call_lines, unreadable_files

    run, out = parts.run, parts.out
    return {
        "format": "memharness-report", "version": 1, "scenario": run.scenario, "run_id": run.run_id,
        "units": "rows, answer, call_trees: bytes and seconds; scaling, predictions: MiB (scaling slopes per 100k "
                 "documents)",
        "window": _window_note(run),
        "answer": parts.answer,
        "rows": parts.summary_rows,
        "tables": [{"target": t.target, "files": [f"{names.REPORT_TABLES}/{f}" for f in names.table_files(t.file_stem)]}
                   for t in parts.tables],
        "failed_cells": _failed_cells(run),
        "missing_targets": missing_targets(run.cells),
        "unreadable_call_lines": unreadable_call_lines(run.cells),
        "unreadable_files": unreadable_files(run.cells),
        "sampler_gaps": sampler_gaps(run.cells),
        "scaling": parts.scaling,
        "predictions": parts.predictions,
        "call_trees": {p: [n.to_dict() for n in t] for p, t in parts.trees.items()},
        "timelines": {c.anchor.removeprefix("timeline-"): c.facts for c in parts.charts.get("timelines", [])},
        "compare": [c.path.name for c in parts.charts.get("compare", [])],
        "line_profiles": [str(lt.copy.relative_to(out)) for lt in parts.line_tables],
        "explain": parts.explain,
    }
