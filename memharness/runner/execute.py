"""`memharness run`: expand the matrix, preflight, run the cells with progress, render the report."""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memharness import names
from memharness.core.atomic import read_json
from memharness.errors import MemharnessError
from memharness.results.writer import Manifest, ManifestError, new_run_dir
from memharness.runner import diskspace, executors, owner
from memharness.runner.cellloop import CellLoop, cells_to_run
from memharness.runner.lock import RunLock, RunLocked
from memharness.runner.matrix import CellPlan, expand
from memharness.runner.plainprogress import DEFAULT_EVERY_S
from memharness.runner.preflight import Preflight, PreflightError, remove_empty, run_preflight
from memharness.runner.signals import Interrupted, StopSignals, signal_name
from memharness.runner.supervisor import describe_plan
from memharness.scenario.changes import scenario_changes

if TYPE_CHECKING:
    from memharness.scenario import Scenario

__all__ = ["CellPlan", "PreflightError", "Interrupted", "ManifestError", "RunLocked", "RunRequest",
           "ScenarioChanged", "EXIT_WRITE_FAILED", "execute", "expand"]

EXIT_WRITE_FAILED = 74  # sysexits' EX_IOERR: the run folder could not be written (disk full, read-only); resumable


class ScenarioChanged(MemharnessError, ValueError):
    """--resume with a scenario whose content differs from the run's (without --force)."""


@dataclass
class RunRequest:
    """What `memharness run` was asked to do (the command line, parsed)."""

    scenario_path: Path
    sizes: list[int] | None = None
    pipelines: list[str] | None = None
    repeats: int | None = None
    resume: Path | None = None
    dry_run: bool = False
    retry_failed: bool = False
    report: bool = True
    force: bool = False
    executor: str | None = None  # None: the scenario's `executor`
    ray_address: str | None = None
    progress_every: float = DEFAULT_EVERY_S  # seconds between plain progress lines off a terminal (0: none)

    def __post_init__(self) -> None:
        self.scenario_path = Path(self.scenario_path)


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
            return _interrupted_before_cells(req, exc, lambda m: console.print(m, highlight=False))
        finally:
            for lock in held:
                lock.release()


def _resume_hint(req: RunRequest, run_dir: Path) -> str:
    return f"memharness run {req.scenario_path} --resume {run_dir}"


def _interrupted_before_cells(req: RunRequest, exc: Interrupted, say: Callable[[str], None],
                              where: str = "") -> tuple[int, Path | None]:
    tail = f"; finish the run with: {_resume_hint(req, req.resume)}" if req.resume is not None else \
        ", nothing was run"
    say(f"interrupted by {signal_name(exc.signum)}{where}{tail}")
    return exc.exit_code, req.resume


def _open_resumed(req: RunRequest, scenario: Scenario, hold: Callable[[RunLock], None],
                  say: Callable[[str], None]) -> tuple[Manifest, list[str]] | None:
    """Lock and load the run folder of `--resume`; None (said why) when it is a run of another scenario.
    Raises ScenarioChanged when the scenario was edited since and `--force` was not given."""
    assert req.resume is not None
    lock = RunLock(req.resume)
    lock.acquire()
    hold(lock)
    manifest = Manifest.load(req.resume)
    for line in manifest.dropped:
        say(f"warning: {line}; read as absent")
    if manifest.data.get("scenario") != scenario.name:
        say(f"[red]error:[/red] {req.resume} is a run of scenario {manifest.data.get('scenario')!r}, "
            f"not {scenario.name!r}")
        return None
    changes = scenario_changes(manifest.data.get("scenario_spec"), scenario)
    if changes and not req.force:
        more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
        raise ScenarioChanged(
            f"{req.scenario_path} differs from the scenario {req.resume} was run with: "
            f"{'; '.join(changes[:3])}{more}; resume with the same scenario, or pass --force to run the "
            f"remaining cells under the edited one (both are recorded)")
    return manifest, changes


def _say_dry_run(pre: Preflight, say: Callable[[str], None]) -> None:
    for name, check in pre.pipelines.items():
        missing = [m["path"] for m in check.probe.get("missing_defaults", [])]
        say(f"  {name}: python {check.python}, device {check.device}, "
            f"{len(check.probe.get('resolved', []))} targets resolve"
            + (f", default targets missing here: {', '.join(missing)}" if missing else ""))
    say("dry run: preflight passed, nothing was run")


def _execute(req: RunRequest, console, stops: StopSignals, hold) -> tuple[int, Path | None]:
    from memharness.scenario import load

    def say(message: str) -> None:
        console.print(message, highlight=False)

    scenario = load(req.scenario_path)
    executors.get(req.executor or scenario.executor, req.ray_address).check()  # e.g. Ray missing: one line, now
    plans = expand(scenario, req.sizes, req.pipelines, req.repeats)
    manifest: Manifest | None = None
    changes: list[str] = []
    if req.resume is not None:
        resumed = _open_resumed(req, scenario, hold, say)
        if resumed is None:
            return 2, None
        manifest, changes = resumed
        if req.sizes is None and manifest.data.get("sizes"):  # finish the run with the sizes it started with
            plans = expand(scenario, manifest.data["sizes"], req.pipelines, req.repeats)
    output = Path(scenario.output)
    say(f"scenario {scenario.name}: {len(plans)} cells")
    if req.dry_run:
        for line in describe_plan(plans):
            say(f"  {line}")
    try:
        pre = run_preflight(scenario, plans, req.scenario_path.resolve().parent, output / scenario.name,
                            say=say, materialize=not req.dry_run)
    except Interrupted as exc:
        return _interrupted_before_cells(req, exc, say, " during preflight")
    if req.dry_run:
        _say_dry_run(pre, say)
        remove_empty(pre.created)
        return 0, None

    # From here on signals only set a flag; the loop below and run_cell act on it at safe points.
    with stops.deferred():
        return _run_cells(req, console, stops, hold, scenario, plans, pre, manifest, changes)


def _record_sizes(manifest: Manifest) -> None:
    """The manifest's `sizes`: the sizes of its cells (`--sizes` may name sizes the scenario does not list);
    `--resume` without `--sizes` runs these."""
    manifest.data["sizes"] = sorted({c["size"] for c in manifest.data["cells"]})
    manifest.save()


def _open_run_folder(req: RunRequest, scenario: Scenario, plans: list[CellPlan], manifest: Manifest | None,
                     changes: list[str], hold: Callable[[RunLock], None],
                     say: Callable[[str], None]) -> Manifest | int:
    """A new run folder (locked, its manifest written), or the resumed one with the new cells and any
    scenario revision added; an exit code (said why) when the folder cannot be written."""
    output = Path(scenario.output)
    if manifest is None:
        try:
            run_dir = new_run_dir(output, scenario.name)
        except OSError as exc:
            say(f"error: cannot create a run folder under {output / scenario.name}: {exc.strerror}")
            return EXIT_WRITE_FAILED if diskspace.is_disk_full(exc) else 2
        lock = RunLock(run_dir)
        lock.acquire()
        hold(lock)
        try:
            manifest = Manifest.create(run_dir, scenario.name, scenario.model_dump(mode="json"),
                                       req.scenario_path.read_text(encoding="utf-8"), plans)
            _record_sizes(manifest)
            return manifest
        except OSError as exc:
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: leave no half-made run folder
            what = "disk full" if diskspace.is_disk_full(exc) else f"cannot write ({exc.strerror})"
            say(f"error: {what} creating the run folder {run_dir}: free space and run again")
            return EXIT_WRITE_FAILED
    run_dir = manifest.run_dir
    if changes:
        rev = manifest.add_revision(scenario.model_dump(mode="json"), req.scenario_path.read_text(encoding="utf-8"),
                                    [c["id"] for c in manifest.data["cells"] if c["status"] in ("done", "failed")])
        say(f"scenario changed since the run started (--force): the remaining cells run under revision {rev}, "
            f"kept in {run_dir / f'scenario.r{rev}.yaml'}")
    manifest.add_cells(plans)
    _record_sizes(manifest)
    return manifest


def _write_failure_line(exc: OSError, run_dir: Path, hint: str) -> str:
    """The one line a failed write into the run folder ends with: free space for a full disk; for anything
    else (permissions, an immutable folder, a read-only mount) make it writable."""
    where = exc.filename or run_dir
    if diskspace.is_disk_full(exc):
        return f"disk full writing {where}: free space and resume with: {hint}"
    return (f"cannot write {where} ({exc.strerror or exc}): make the run folder writable again (permissions, "
            f"chattr -i, a read-only mount) and resume with: {hint}")


def _build_report(run_dir: Path, say: Callable[[str], None]) -> None:
    try:
        from memharness.report import build

        index = build(run_dir)
        say(f"report: {index}")
        for line in ((read_json(index.parent / names.REPORT_SUMMARY, {}) or {}).get("answer") or {}).get("sizes", []):
            say(f"  {line['sentence']}")  # the report's lead, run phase
    except Exception as exc:  # noqa: BLE001 - the measurements are on disk; the report can be redone
        print(f"warning: the report could not be built ({type(exc).__name__}: {exc}); "
              f"retry with: memharness report {run_dir}", file=sys.stderr)


def _run_cells(req: RunRequest, console, stops: StopSignals, hold, scenario: Scenario, plans: list[CellPlan],
               pre: Preflight, manifest: Manifest | None, changes: list[str]) -> tuple[int, Path | None]:
    def say(message: str) -> None:
        console.print(message, highlight=False)

    opened = _open_run_folder(req, scenario, plans, manifest, changes, hold, say)
    if isinstance(opened, int):
        return opened, None
    manifest = opened
    run_dir = manifest.run_dir
    say(f"run folder: {run_dir}")
    if req.resume is not None:
        for line in owner.stop_orphans(run_dir):  # the lock is ours: whatever still runs here is an orphan
            say(f"resuming: {line}")
    reserve = diskspace.Reserve(run_dir)
    reserve.create()
    todo, missing = cells_to_run(manifest, plans, req.retry_failed)
    for cid in missing:
        say(f"resuming: cell {cid} is recorded done but its folder is missing: it runs again")
    skipped = len(plans) - len(todo)
    if skipped:
        say(f"resuming: {skipped} cells already finished, {len(todo)} to run")
    loop = CellLoop(run_dir, manifest, scenario, pre, stops)
    try:
        code = loop.run(todo, executors.get(req.executor or scenario.executor, req.ray_address), console, say,
                        req.progress_every)
    except Interrupted as exc:
        try:
            loop.mark_running_cells(todo, "interrupted")
        except OSError:
            reserve.release()
            try:
                manifest.save()
            except OSError:
                pass  # the run folder cannot be written at all: the manifest says `running`, which resumes too
        name = "Ctrl-C" if exc.signum == signal.SIGINT else signal_name(exc.signum)
        say(f"interrupted ({name}); finish the run with: {_resume_hint(req, run_dir)}")
        return exc.exit_code, run_dir
    except OSError as exc:
        if not (diskspace.is_disk_full(exc) or str(exc.filename or "").startswith(str(run_dir))):
            raise  # not a write into the run folder (e.g. a closed stdout): not ours to explain
        reserve.release()  # room for the bookkeeping below
        loop.record_write_failure(todo, exc)
        say(_write_failure_line(exc, run_dir, _resume_hint(req, run_dir)))
        return EXIT_WRITE_FAILED, run_dir
    finally:
        reserve.release()
    counts = manifest.counts()
    say("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if req.report:
        _build_report(run_dir, say)
    if stops.requested() is not None:  # a signal after the last cell: everything is recorded
        signum = stops.requested()
        say(f"stopped by {signal_name(signum)} after the last cell; every cell is recorded")
        return 128 + signum, run_dir
    return code, run_dir
