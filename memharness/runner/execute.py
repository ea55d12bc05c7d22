"""`memharness run`: expand the matrix, preflight, run the cells with progress, render the report."""

from __future__ import annotations

import errno
import shutil
import signal
import sys
from pathlib import Path

from memharness.core.atomic import read_json, write_json
from memharness.runner import diskspace
from memharness.runner.executors.node import local_placement
from memharness.runner.lock import RunLock, RunLocked
from memharness.runner.matrix import CellPlan, expand
from memharness.runner.preflight import PreflightError, remove_empty, run_preflight
from memharness.runner.rundir import Manifest, ManifestError, new_run_dir, scenario_changes
from memharness.runner.signals import Interrupted, StopSignals, signal_name
from memharness.runner.supervisor import describe_plan, run_cell, summarize

__all__ = ["CellPlan", "PreflightError", "Interrupted", "ManifestError", "RunLocked", "RunRequest",
           "ScenarioChanged", "EXIT_WRITE_FAILED", "execute", "expand"]

EXIT_WRITE_FAILED = 74  # sysexits' EX_IOERR: the run folder could not be written (disk full); resumable


class ScenarioChanged(ValueError):
    """--resume with a scenario whose content differs from the run's (without --force)."""


class RunRequest:
    def __init__(self, scenario_path: Path, sizes: list[int] | None = None, pipelines: list[str] | None = None,
                 repeats: int | None = None, resume: Path | None = None, dry_run: bool = False,
                 retry_failed: bool = False, report: bool = True, force: bool = False,
                 executor: str | None = None, ray_address: str | None = None) -> None:
        self.scenario_path = Path(scenario_path)
        self.sizes = sizes
        self.pipelines = pipelines
        self.repeats = repeats
        self.resume = resume
        self.dry_run = dry_run
        self.retry_failed = retry_failed
        self.report = report
        self.force = force
        self.executor = executor  # None: the scenario's `executor`
        self.ray_address = ray_address


def execute(req: RunRequest, console) -> tuple[int, Path | None]:
    """Run a scenario; returns (exit code, run folder). Exit 0: all cells done; 1: some failed;
    2: nothing ran (bad input or preflight); 74: the run folder could not be written (disk full), resumable;
    128 + the signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP): stopped, resumable.

    SIGINT, SIGTERM and SIGHUP are handled alike (`runner/signals.py`) from the first line to the last."""
    held: list[RunLock] = []  # the run folder's lock, kept until the report is written
    with StopSignals() as stops:
        try:
            return _execute(req, console, stops, held.append)
        except Interrupted as exc:  # before preflight: loading the scenario or the run folder
            tail = f"; finish the run with: {_resume_hint(req, req.resume)}" if req.resume is not None else \
                ", nothing was run"
            console.print(f"interrupted by {signal_name(exc.signum)}{tail}", highlight=False)
            return exc.exit_code, req.resume
        finally:
            for lock in held:
                lock.release()


def _resume_hint(req: RunRequest, run_dir: Path) -> str:
    return f"memharness run {req.scenario_path} --resume {run_dir}"


def _execute(req: RunRequest, console, stops: StopSignals, hold) -> tuple[int, Path | None]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from memharness.scenario import load

    def say(message: str) -> None:
        console.print(message, highlight=False)

    scenario = load(req.scenario_path)
    if (req.executor or scenario.executor) == "ray":
        from memharness.runner.executors.ray import import_ray

        import_ray()  # no Ray: one line naming the extra, before any work
    plans = expand(scenario, req.sizes, req.pipelines, req.repeats)
    manifest: Manifest | None = None
    changes: list[str] = []
    if req.resume is not None:
        lock = RunLock(req.resume)
        lock.acquire()
        hold(lock)
        manifest = Manifest.load(req.resume)
        if req.sizes is None and manifest.data.get("sizes"):  # finish the run with the sizes it started with
            plans = expand(scenario, manifest.data["sizes"], req.pipelines, req.repeats)
        if manifest.data.get("scenario") != scenario.name:
            console.print(f"[red]error:[/red] {req.resume} is a run of scenario {manifest.data.get('scenario')!r}, "
                          f"not {scenario.name!r}", highlight=False)
            return 2, None
        changes = scenario_changes(manifest.data.get("scenario_spec"), scenario)
        if changes and not req.force:
            more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
            raise ScenarioChanged(
                f"{req.scenario_path} differs from the scenario {req.resume} was run with: "
                f"{'; '.join(changes[:3])}{more}; resume with the same scenario, or pass --force to run the "
                f"remaining cells under the edited one (both are recorded)")
    output = Path(scenario.output)
    say(f"scenario {scenario.name}: {len(plans)} cells")
    if req.dry_run:
        for line in describe_plan(plans):
            say(f"  {line}")
    try:
        pre = run_preflight(scenario, plans, req.scenario_path.resolve().parent, output / scenario.name,
                            say=say, materialize=not req.dry_run)
    except Interrupted as exc:
        tail = f"; finish the run with: {_resume_hint(req, req.resume)}" if req.resume is not None else \
            ", nothing was run"
        say(f"interrupted by {signal_name(exc.signum)} during preflight{tail}")
        return exc.exit_code, req.resume
    if req.dry_run:
        for name, check in pre.pipelines.items():
            missing = [m["path"] for m in check.probe.get("missing_defaults", [])]
            say(f"  {name}: python {check.python}, device {check.device}, "
                f"{len(check.probe.get('resolved', []))} targets resolve"
                + (f", default targets missing here: {', '.join(missing)}" if missing else ""))
        say("dry run: preflight passed, nothing was run")
        remove_empty(pre.created)
        return 0, None

    # From here on signals only set a flag; the loop below and run_cell act on it at safe points.
    with stops.deferred():
        return _run_cells(req, console, stops, hold, scenario, plans, pre, manifest, changes,
                          (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn))


def _record_sizes(manifest: Manifest) -> None:
    """The manifest's `sizes`: the sizes of its cells (`--sizes` may name sizes the scenario does not list);
    `--resume` without `--sizes` runs these."""
    manifest.data["sizes"] = sorted({c["size"] for c in manifest.data["cells"]})
    manifest.save()


def _run_cells(req, console, stops: StopSignals, hold, scenario, plans: list[CellPlan], pre, manifest,
               changes: list[str], rich_parts) -> tuple[int, Path | None]:
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn = rich_parts

    def say(message: str) -> None:
        console.print(message, highlight=False)

    output = Path(scenario.output)
    if manifest is None:
        try:
            run_dir = new_run_dir(output, scenario.name)
        except OSError as exc:
            say(f"error: cannot create a run folder under {output / scenario.name}: {exc.strerror}")
            return (EXIT_WRITE_FAILED if diskspace.is_disk_full(exc) else 2), None
        lock = RunLock(run_dir)
        lock.acquire()
        hold(lock)
        try:
            manifest = Manifest.create(run_dir, scenario, req.scenario_path.read_text(encoding="utf-8"), plans)
            _record_sizes(manifest)
        except OSError as exc:
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no half-made run folder
            what = "disk full" if diskspace.is_disk_full(exc) else f"cannot write ({exc.strerror})"
            say(f"error: {what} creating the run folder {run_dir}: free space and run again")
            return EXIT_WRITE_FAILED, None
    else:
        run_dir = manifest.run_dir
        if changes:
            rev = manifest.add_revision(scenario, req.scenario_path.read_text(encoding="utf-8"),
                                        [c["id"] for c in manifest.data["cells"] if c["status"] in ("done", "failed")])
            say(f"scenario changed since the run started (--force): the remaining cells run under revision {rev}, "
                f"kept in {run_dir / f'scenario.r{rev}.yaml'}")
        manifest.add_cells(plans)
        _record_sizes(manifest)
    reserve = diskspace.Reserve(run_dir)
    reserve.create()
    say(f"run folder: {run_dir}")
    todo_status = {"pending", "running", "interrupted"} | ({"failed"} if req.retry_failed else set())
    todo = [p for p in plans if manifest.cell(p.id)["status"] in todo_status]
    skipped = len(plans) - len(todo)
    if skipped:
        say(f"resuming: {skipped} cells already finished, {len(todo)} to run")

    def disk_low() -> bool:
        return diskspace.free_bytes(run_dir) < diskspace.LOW_WATER

    code = 0
    current: CellPlan | None = None
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[live]}")]
    executor = req.executor or scenario.executor
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("cells", total=len(todo), live="")
            if executor == "ray" and todo:
                from memharness.runner.executors import ray as ray_executor

                code = ray_executor.run_cells(todo, run_dir, manifest, scenario, pre, req.ray_address,
                                              stops.requested, progress, task, say, disk_low)
                todo = []
            for i, plan in enumerate(todo, 1):
                stops.check()
                if disk_low():
                    raise OSError(errno.ENOSPC, "No space left on device", str(run_dir))
                progress.update(task, description=f"[{i}/{len(todo)}] {plan.id}")
                current = plan
                manifest.cell(plan.id).update(local_placement(pre.pipelines[plan.pipeline].probe.get("fingerprint")))
                manifest.set_status(plan.id, "running")

                def tick(elapsed: float, rss: int) -> None:
                    progress.update(task, live=f"cell {elapsed:6.1f} s  RSS {rss / 2**20:8.0f} MiB")

                cell_dir = run_dir / "cells" / plan.id
                outcome = run_cell(plan, cell_dir, scenario, pre, on_tick=tick, stop_requested=stops.requested,
                                   disk_low=disk_low)
                if outcome.cause == "disk_full" or (
                        outcome.status == "failed" and ("[Errno 28]" in outcome.message or disk_low())):
                    raise OSError(errno.ENOSPC, "No space left on device", str(cell_dir))
                manifest.set_status(plan.id, outcome.status, outcome.cause)
                current = None
                progress.console.print(summarize(outcome, plan), highlight=False)
                progress.advance(task)
                if outcome.status != "done":
                    code = 1
    except Interrupted as exc:
        try:
            for plan in todo:
                if manifest.cell(plan.id)["status"] == "running":
                    manifest.set_status(plan.id, "interrupted", "interrupted")
        except OSError:
            reserve.release()
            manifest.save()
        name = "Ctrl-C" if exc.signum == signal.SIGINT else signal_name(exc.signum)
        say(f"interrupted ({name}); finish the run with: {_resume_hint(req, run_dir)}")
        return exc.exit_code, run_dir
    except OSError as exc:
        if not (diskspace.is_disk_full(exc) or str(exc.filename or "").startswith(str(run_dir))):
            raise  # not a write into the run folder (e.g. a closed stdout): not ours to explain
        reserve.release()  # room for the bookkeeping below
        full = diskspace.is_disk_full(exc)
        cause = "disk_full" if full else "write_error"
        if current is not None:
            cell_dir = run_dir / "cells" / current.id
            message = "the run folder's disk is full" if full else f"cannot write the run folder: {exc.strerror}"
            try:
                status = read_json(cell_dir / "status.json", {}) or {}
            except ValueError:
                status = {}
            status.update({"status": "interrupted", "cause": cause, "message": message})
            try:
                write_json(cell_dir / "status.json", status)
            except OSError:
                pass
        try:
            for plan in todo:
                if manifest.cell(plan.id)["status"] == "running":
                    manifest.set_status(plan.id, "interrupted", cause)
        except OSError:
            pass
        where = exc.filename or run_dir
        what = "disk full writing" if full else f"cannot write ({exc.strerror})"
        say(f"{what} {where}: free space and resume with: {_resume_hint(req, run_dir)}")
        return EXIT_WRITE_FAILED, run_dir
    finally:
        reserve.release()
    counts = manifest.counts()
    say("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if req.report:
        try:
            from memharness.report import build

            index = build(run_dir)
            say(f"report: {index}")
            for line in ((read_json(index.parent / "summary.json", {}) or {}).get("answer") or {}).get("sizes", []):
                say(f"  {line['sentence']}")  # the report's lead, run phase
        except Exception as exc:  # noqa: BLE001 - the measurements are on disk; the report can be redone
            print(f"warning: the report could not be built ({type(exc).__name__}: {exc}); "
                  f"retry with: memharness report {run_dir}", file=sys.stderr)
    if stops.requested() is not None:  # a signal after the last cell: everything is recorded
        signum = stops.requested()
        say(f"stopped by {signal_name(signum)} after the last cell; every cell is recorded")
        return 128 + signum, run_dir
    return code, run_dir
