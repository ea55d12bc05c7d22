"""`memharness report RUN_DIR`: render a run folder's tables, charts and index.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness import names
from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness report"
DISK_FULL = 3  # exit code: the disk filled while the report was written (2 is bad input)


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder: results/<scenario>/<run-id>.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of "
                                                "RUN_DIR/report.")] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="RAM budget (24GiB): the largest size each "
                                               "pipeline is predicted to fit, with its band; printed and "
                                               "written into the report's Predicted sizes.")] = None,
    gpu_budget: Annotated[str | None, typer.Option("--gpu-budget", help="GPU memory budget (80GiB), "
                                                   "likewise.")] = None,
) -> None:
    """Render per-function tables (Markdown, CSV, JSON), timelines, pipeline comparison and scaling
    charts, and one self-contained index.html from what is on disk in RUN_DIR."""
    from memharness.report import build
    from memharness.report.builder import ReportWriteError
    from memharness.results import BrokenRunError

    b, g = _budgets(budget, gpu_budget)  # a bad budget fails before rendering

    try:
        index = build(run_dir, output, budgets={"peak": b, "gpu_nvml_peak": g})
    except BrokenRunError as exc:
        raise MemharnessError(str(exc)) from None
    except ReportWriteError as exc:
        again = f"memharness report {run_dir}" + (f" --output {output}" if output is not None else "")
        if exc.disk_full:
            raise MemharnessError(f"disk full writing {exc.path}: free space and rerun {again}",
                                  exit_code=DISK_FULL) from None
        raise MemharnessError(f"{exc}; choose a writable --output") from None
    typer.echo(summary_text(index))
    if budget is not None or gpu_budget is not None:
        typer.echo(budget_text(index, budget, gpu_budget))


def _budgets(*values: str | None) -> list[int | None]:
    """The budgets in bytes; a bad one exits with code 2 before anything is rendered."""
    from memharness.scenario import parse_memory

    out = []
    for flag, value in zip(("--budget", "--gpu-budget"), values, strict=True):
        try:
            out.append(None if value is None else parse_memory(value))
        except ValueError as exc:
            raise MemharnessError(f"{flag}: {exc}") from None
    return out


def budget_text(index: Path, budget: str | None, gpu_budget: str | None) -> str:
    """What `report --budget/--gpu-budget` adds: per pipeline, the largest size predicted to fit."""
    import json

    from memharness.report.predict import budget_lines

    summary = json.loads((index.parent / names.REPORT_SUMMARY).read_text(encoding="utf-8"))
    pipelines = list(dict.fromkeys(r["pipeline"] for r in summary["rows"]))
    b, g = _budgets(budget, gpu_budget)
    return "\n".join(["", *budget_lines(summary["rows"], pipelines, b, g)])


def unfinished_lines(cells: list[dict]) -> list[str]:
    """One line per status of the cells that did not finish: `failed cells: a (exception)`, `pending cells:
    b`, `missing cells: c (...)`; a cause is shown where there is one."""
    by_status: dict[str, list[str]] = {}
    for c in cells:
        status = c.get("status") if isinstance(c.get("status"), str) and c.get("status") else "unknown"
        cause = c.get("cause")
        shown = f"{c['id']} ({cause})" if isinstance(cause, str) and cause and cause != status else str(c["id"])
        by_status.setdefault(status, []).append(shown)
    lines = []
    for status, ids in by_status.items():
        tail = " (recorded done, but the cell folder is gone; `run --resume` runs them again)" \
            if status == "missing" else ""
        lines.append(f"{status} cells: {', '.join(ids)}{tail}")
    return lines


def summary_text(index: Path) -> str:
    """What `report` prints: where the page is, and what tables.md holds."""
    import json

    out = index.parent
    summary = json.loads((out / names.REPORT_SUMMARY).read_text(encoding="utf-8"))
    lines = [f"report: {index}", f"tables: {out / names.REPORT_TABLES_MD}"]
    answer = summary.get("answer") or {}
    if answer.get("sizes"):  # the report's lead: one sentence per size, run-phase figures
        lines += ["", "summary (run phase):"] + [f"  {s['sentence']}" for s in answer["sizes"]] + [""]
    rows_by_target: dict[str, list[dict]] = {}
    for r in summary["rows"]:
        rows_by_target.setdefault(r["target"], []).append(r)
    for t in summary["tables"]:
        rows = rows_by_target.get(t["target"], [])
        pipes = list(dict.fromkeys(r["pipeline"] for r in rows))
        peak = max((r["metrics"]["peak"]["median"] for r in rows if "peak" in r["metrics"]), default=None)
        peak_text = f", highest peak {peak / (1 << 20):.1f} MiB" if peak is not None else ""
        lines.append(f"  {t['target']}: {len(rows)} rows ({', '.join(pipes)}){peak_text}")
    tree_md = out / names.REPORT_TABLES / names.table_files("process_tree")[0]
    if tree_md.exists():
        lines += ["", tree_md.read_text(encoding="utf-8").rstrip(), ""]
    charts = sorted(p.name for pattern in names.CHART_GLOBS for p in out.glob(pattern))
    lines.append(f"charts: {len(charts)} PNGs in {out}")
    lines += unfinished_lines(summary["failed_cells"])
    if summary["missing_targets"]:
        lines.append(f"missing targets: {', '.join(m['path'] for m in summary['missing_targets'])}")
    if summary.get("unreadable_call_lines"):
        from memharness.report.html import unreadable_calls_warning

        lines.append(f"warning: {unreadable_calls_warning(summary['unreadable_call_lines'])}")
    if summary.get("unreadable_files"):
        from memharness.report.html import unreadable_files_warning

        lines.append(f"warning: {unreadable_files_warning(summary['unreadable_files'])}")
    if summary.get("sampler_gaps"):
        from memharness.report.html import sampler_gaps_warning

        lines.append(f"warning: {sampler_gaps_warning(summary['sampler_gaps'])}")
    return "\n".join(lines)
