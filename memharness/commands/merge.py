"""`memharness merge RUN_DIR... --output DIR`: merge run folders of one scenario into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def merge(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Run folders of one scenario.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR",
                                         help="The new run folder (must not exist, or be empty).")],
) -> None:
    """Merge run folders of one scenario (e.g. sizes run on two machines) into a new run folder: each cell
    is copied from the last run that holds it (without its work/ folder), the manifest keeps the first
    run's scenario and lists every cell. `memharness report DIR` renders them together. Exit 2: a folder
    that is not a run, runs of other scenarios, or an output folder in the way."""
    from memharness.results import Run
    from memharness.results.merge import merge as merge_runs

    opened = [Run.open(r) for r in runs]
    merged = Run.open(merge_runs(opened, output))
    typer.echo(f"{merged.dir}: {len(merged.cells)} cells from {len(opened)} runs")


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
