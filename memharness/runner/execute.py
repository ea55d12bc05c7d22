"""`memharness run`: expand the matrix, preflight, run the cells with progress, render the report."""

from __future__ import annotations

import sys
from pathlib import Path

from memharness.runner.matrix import CellPlan, expand
from memharness.runner.preflight import PreflightError, run_preflight
from memharness.runner.rundir import Manifest, new_run_dir
from memharness.runner.supervisor import Interrupted, describe_plan, run_cell, summarize

__all__ = ["CellPlan", "PreflightError", "Interrupted", "RunRequest", "execute", "expand"]


class RunRequest:
    def __init__(self, scenario_path: Path, sizes: list[int] | None = None, pipelines: list[str] | None = None,
                 repeats: int | None = None, resume: Path | None = None, dry_run: bool = False,
                 retry_failed: bool = False, report: bool = True) -> None:
        self.scenario_path = Path(scenario_path)
        self.sizes = sizes
        self.pipelines = pipelines
        self.repeats = repeats
        self.resume = resume
        self.dry_run = dry_run
        self.retry_failed = retry_failed
        self.report = report


def execute(req: RunRequest, console) -> tuple[int, Path | None]:
    """Run a scenario; returns (exit code, run folder). Exit 0: all cells done; 1: some failed;
    130: interrupted; 2: nothing ran (bad input or preflight)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from memharness.scenario import load

    scenario = load(req.scenario_path)
    plans = expand(scenario, req.sizes, req.pipelines, req.repeats)
    manifest: Manifest | None = None
    if req.resume is not None:
        manifest = Manifest.load(req.resume)
        if manifest.data.get("scenario") != scenario.name:
            console.print(f"[red]error:[/red] {req.resume} is a run of scenario {manifest.data.get('scenario')!r}, "
                          f"not {scenario.name!r}", highlight=False)
            return 2, None
    output = Path(scenario.output)
    console.print(f"scenario {scenario.name}: {len(plans)} cells", highlight=False)
    if req.dry_run:
        for line in describe_plan(plans):
            console.print(f"  {line}", highlight=False)
    pre = run_preflight(scenario, plans, req.scenario_path.resolve().parent, output,
                        say=lambda m: console.print(m, highlight=False), materialize=not req.dry_run)
    if req.dry_run:
        for name, check in pre.pipelines.items():
            missing = [m["path"] for m in check.probe.get("missing_defaults", [])]
            console.print(f"  {name}: python {check.python}, device {check.device}, "
                          f"{len(check.probe.get('resolved', []))} targets resolve"
                          + (f", default targets missing here: {', '.join(missing)}" if missing else ""),
                          highlight=False)
        console.print("dry run: preflight passed, nothing was run", highlight=False)
        return 0, None

    if manifest is None:
        run_dir = new_run_dir(output, scenario.name)
        manifest = Manifest.create(run_dir, scenario, req.scenario_path.read_text(encoding="utf-8"), plans)
    else:
        run_dir = manifest.run_dir
        manifest.add_cells(plans)
        manifest.save()
    console.print(f"run folder: {run_dir}", highlight=False)
    todo_status = {"pending", "running", "interrupted"} | ({"failed"} if req.retry_failed else set())
    todo = [p for p in plans if manifest.cell(p.id)["status"] in todo_status]
    skipped = len(plans) - len(todo)
    if skipped:
        console.print(f"resuming: {skipped} cells already finished, {len(todo)} to run", highlight=False)

    code = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[live]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("cells", total=len(todo), live="")
        try:
            for i, plan in enumerate(todo, 1):
                progress.update(task, description=f"[{i}/{len(todo)}] {plan.id}")
                manifest.set_status(plan.id, "running")

                def tick(elapsed: float, rss: int) -> None:
                    progress.update(task, live=f"cell {elapsed:6.1f} s  RSS {rss / 2**20:8.0f} MiB")

                outcome = run_cell(plan, run_dir / "cells" / plan.id, scenario, pre, on_tick=tick)
                manifest.set_status(plan.id, outcome.status, outcome.cause)
                progress.console.print(summarize(outcome, plan), highlight=False)
                progress.advance(task)
                if outcome.status != "done":
                    code = 1
        except Interrupted:
            for plan in todo:
                if manifest.cell(plan.id)["status"] == "running":
                    manifest.set_status(plan.id, "interrupted", "interrupted")
            console.print(f"interrupted; finish the run with: memharness run {req.scenario_path} "
                          f"--resume {run_dir}", highlight=False)
            return 130, run_dir
    counts = manifest.counts()
    console.print("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)
    if req.report:
        try:
            from memharness.report import build

            index = build(run_dir)
            console.print(f"report: {index}", highlight=False)
            from memharness.core.atomic import read_json

            for line in ((read_json(index.parent / "summary.json", {}) or {}).get("answer") or {}).get("sizes", []):
                console.print(f"  {line['sentence']}", highlight=False)  # the report's lead, run phase
        except Exception as exc:  # noqa: BLE001 - the measurements are on disk; the report can be redone
            print(f"warning: the report could not be built ({type(exc).__name__}: {exc}); "
                  f"retry with: memharness report {run_dir}", file=sys.stderr)
    return code, run_dir
