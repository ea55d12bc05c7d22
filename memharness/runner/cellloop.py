"""The cells of one run handed to an executor under a progress bar, and the run manifest's bookkeeping from
the executor's events (started, finished, interrupted, a failed write): `runner/execute.py` calls it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from memharness import names
from memharness.core.atomic import read_json, write_json
from memharness.results.manifest import entry_dir
from memharness.results.writer import Manifest
from memharness.runner import diskspace, owner
from memharness.runner.executors.base import Executor, Finished, RunContext, Started
from memharness.runner.matrix import CellPlan
from memharness.runner.plainprogress import DEFAULT_EVERY_S, PlainProgress
from memharness.runner.preflight import Preflight
from memharness.runner.signals import StopSignals
from memharness.runner.supervisor import summarize

if TYPE_CHECKING:
    from memharness.scenario import Scenario

__all__ = ["CellLoop", "cells_to_run"]


class CellLoop:
    """The cells of one run, handed to an executor under a progress bar; the manifest's bookkeeping is done
    here, once, from the executor's events. `running` holds the cells started and not yet finished (for the
    bookkeeping when the run folder's disk fills up)."""

    def __init__(self, run_dir: Path, manifest: Manifest, scenario: Scenario, pre: Preflight,
                 stops: StopSignals) -> None:
        self.run_dir, self.manifest, self.scenario, self.pre, self.stops = run_dir, manifest, scenario, pre, stops
        self.running: dict[str, CellPlan] = {}

    def disk_low(self) -> bool:
        return diskspace.free_bytes(self.run_dir) < diskspace.LOW_WATER

    def run(self, todo: list[CellPlan], executor: Executor, console, say: Callable[[str], None],
            progress_every: float = DEFAULT_EVERY_S) -> int:
        """Exit code of the cells: 0 all done, 1 some failed. Raises Interrupted or OSError (disk full).
        Off a terminal the bar's text is also printed as a line every `progress_every` seconds."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[live]}")]
        code = 0
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("cells", total=len(todo), live="")
            if not todo:
                return 0
            plain = None if console.is_terminal else PlainProgress(
                lambda line: progress.console.print(line, highlight=False, markup=False), progress_every)

            def update(**kw) -> None:
                progress.update(task, **kw)
                if plain is not None:
                    plain.update(**kw)

            ctx = RunContext(self.run_dir, self.scenario, self.pre, self.stops.requested, say, update,
                             self.disk_low)
            described = executor.open(ctx)
            if described is not None:
                self.manifest.data["executor"] = described
                self.manifest.save()
            try:
                for event in executor.run(todo, ctx):
                    if isinstance(event, Started):
                        self._started(event)
                        continue
                    self._finished(event)
                    progress.console.print(summarize(event.outcome, event.plan) + event.where, highlight=False)
                    progress.advance(task)
                    if event.outcome.status != "done":
                        code = 1
            finally:
                executor.cancel()
        return code

    def _started(self, event: Started) -> None:
        plan = event.plan
        entry = self.manifest.cell(plan.id)
        aside = owner.set_aside(self.run_dir, plan.id, self.run_dir / entry_dir(entry))  # never two runs in one
        if aside is not None:
            entry["attempts"] = [*entry.get("attempts", []), aside]
        self.running[plan.id] = plan
        entry.update(event.placement)
        self.manifest.set_status(plan.id, "running")

    def _finished(self, event: Finished) -> None:
        plan = event.plan
        entry = self.manifest.cell(plan.id)
        if event.placement is not None:
            entry.update(event.placement)
        if event.tries > 1:
            entry["tries"] = event.tries
        self.manifest.set_status(plan.id, event.outcome.status, event.outcome.cause)
        self.running.pop(plan.id, None)

    def mark_running_cells(self, todo: list[CellPlan], cause: str) -> None:
        """The cells still `running` in the manifest become `interrupted` with `cause`."""
        for plan in todo:
            if self.manifest.cell(plan.id)["status"] == "running":
                self.manifest.set_status(plan.id, "interrupted", cause)

    def record_write_failure(self, todo: list[CellPlan], exc: OSError) -> None:
        """After a failed write into the run folder: the running cell's status.json and the manifest say
        `interrupted` with cause `disk_full` or `write_error` (as far as they can still be written)."""
        full = diskspace.is_disk_full(exc)
        cause = "disk_full" if full else "write_error"
        message = "the run folder's disk is full" if full else f"cannot write the run folder: {exc.strerror}"
        for plan in self.running.values():
            cell_dir = self.run_dir / names.CELLS / plan.id
            if not cell_dir.is_dir():  # a cell running elsewhere (Ray) has no folder here yet
                continue
            try:
                status = read_json(cell_dir / names.STATUS, {})
            except (OSError, ValueError):
                status = {}
            status = status if isinstance(status, dict) else {}
            status.update({"status": "interrupted", "cause": cause, "message": message})
            try:
                write_json(cell_dir / names.STATUS, status)
            except OSError:
                pass
        try:
            self.mark_running_cells(todo, cause)
        except OSError:
            pass


def cells_to_run(manifest: Manifest, plans: list[CellPlan], retry_failed: bool) -> tuple[list[CellPlan], list[str]]:
    """(the cells to run, those among them recorded done whose folder is gone): unfinished cells, failed ones
    with `--retry-failed`, and done cells without their folder (nothing of them is left to report)."""
    todo_status = {"pending", "running", "interrupted"} | ({"failed"} if retry_failed else set())
    todo, missing = [], []
    for plan in plans:
        entry = manifest.cell(plan.id)
        if entry["status"] == "done" and not (manifest.run_dir / entry_dir(entry)).is_dir():
            missing.append(plan.id)
            todo.append(plan)
        elif entry["status"] in todo_status:
            todo.append(plan)
    return todo, missing
