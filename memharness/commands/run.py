"""`memharness run SCENARIO.yaml`: run the scenario's matrix, one fresh interpreter per cell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.errors import MemharnessError
from memharness.names import MANIFEST


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _located(scenario: Path, exc) -> list[str]:
    """Each preflight problem prefixed with `FILE:LINE:` of the scenario field it is about, as validate does."""
    from memharness.scenario.errors import ScenarioError
    from memharness.scenario.loader import line_of, parse_yaml

    try:
        _, lines = parse_yaml(scenario.read_text(encoding="utf-8"), str(scenario))
    except (OSError, ValueError, ScenarioError):
        lines = {}
    out = []
    for problem, loc in zip(exc.problems, exc.locs, strict=True):
        line = line_of(lines, loc) if loc else None
        out.append(f"{scenario}:{line}: {problem}" if line else f"{scenario}: {problem}")
    return out


def run(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO.yaml", help="Scenario file.")],
    sizes: Annotated[list[str] | None, typer.Option(
        "--sizes", help="Run these sizes (100k,250k) instead of the scenario's; unlisted ones too.")] = None,
    pipelines: Annotated[list[str] | None, typer.Option("--pipelines", help="Only these pipelines.")] = None,
    repeats: Annotated[int | None, typer.Option("--repeats", min=1, help="Override repeats.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="RUN_DIR",
                                                help="Finish an interrupted run.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="With --resume: redo failed cells.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Expand and preflight only.")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Render the report at the end.")] = True,
    force: Annotated[bool, typer.Option("--force", help="With --resume: run the remaining cells under an "
                                                        "edited scenario (both are recorded).")] = False,
    executor: Annotated[str | None, typer.Option("--executor", metavar="local|ray",
                                                 help="Where cells run (default: the scenario's "
                                                      "`executor`, else local).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", metavar="ADDRESS",
                                                    help="With --executor ray: join this Ray cluster "
                                                         "(default: start a local Ray).")] = None,
) -> None:
    """Run every cell of a scenario. Exit 0: all cells done; 1: some failed; 2: nothing ran (bad input,
    preflight, run folder in use); 74: the run folder could not be written (disk full, read-only or immutable;
    fix it and --resume); 130/143/129: stopped by SIGINT/SIGTERM/SIGHUP (--resume finishes the run)."""
    from rich.console import Console

    from memharness.runner.execute import PreflightError, RunRequest, execute
    from memharness.runner.plainprogress import every_from_env
    from memharness.scenario import ScenarioError, parse_size
    from memharness.scenario.executors import executor_names

    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        size_list = [parse_size(s) for s in _split(sizes)] if sizes else None
    except ValueError as exc:
        raise MemharnessError(f"--sizes: {exc}") from None
    if resume is not None and not (resume / MANIFEST).exists():
        raise MemharnessError(f"--resume {resume}: not a memharness run folder (no {MANIFEST})")
    if executor is not None and executor not in executor_names():
        raise MemharnessError(f"--executor {executor}: expected {' or '.join(executor_names())}")
    if ray_address is not None and executor is None:
        executor = "ray"
    try:
        progress_every = every_from_env()
    except ValueError as exc:
        raise MemharnessError(str(exc)) from None
    req = RunRequest(scenario, sizes=size_list, pipelines=_split(pipelines), repeats=repeats, resume=resume,
                     dry_run=dry_run, retry_failed=retry_failed, report=report, force=force,
                     executor=executor, ray_address=ray_address, progress_every=progress_every)
    try:
        code, _ = execute(req, console)
    except ScenarioError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    except PreflightError as exc:
        err.print("preflight failed, nothing was run:", markup=False)
        for line in _located(scenario, exc):
            err.print(f"  {line}", markup=False)
        raise typer.Exit(2) from None
    except MemharnessError:
        raise
    except (ValueError, FileNotFoundError) as exc:  # a bad value deep in the scenario, a missing file
        raise MemharnessError(str(exc)) from None
    raise typer.Exit(code)
