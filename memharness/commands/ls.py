"""`memharness ls [DIR]`: the runs under a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.errors import MemharnessError
from memharness.names import MANIFEST
from memharness.numeric import is_number


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding manifest.json) at most three levels under root, root itself included."""
    found = []
    for depth in range(0, 4):
        pattern = "/".join(["*"] * depth + [MANIFEST])
        found.extend(p.parent for p in root.glob(pattern))
    return sorted(set(found))


def ls(root: Annotated[Path, typer.Argument(help="Results folder.")] = Path("results")) -> None:
    """List runs: scenario, run id, cells done / failed / total, when. A run whose manifest.json cannot
    be read is listed as broken, with the reason; the exit code stays 0."""
    import datetime

    from rich.console import Console
    from rich.table import Table

    from memharness.results import BrokenRunError, read_manifest

    if not root.exists():
        raise MemharnessError(f"{root} does not exist")
    if not root.is_dir():
        raise MemharnessError(f"{root} is a file, not a folder: give the results folder (or a run folder)")
    table = Table("scenario", "run", "done", "failed", "other", "total", "created", "path", "note")
    for run_dir in find_runs(root):
        try:
            m = read_manifest(run_dir)
        except BrokenRunError as exc:
            short = exc.reason.split(": ", 1)[0]  # the kind of damage; `report RUN` prints all of it
            table.add_row("?", run_dir.name, "-", "-", "-", "-", "?", str(run_dir), f"broken: {short}")
            continue
        cells = m["cells"]
        done = sum(c.get("status") == "done" for c in cells)
        failed = sum(c.get("status") == "failed" for c in cells)
        created = m.get("created_wall_ns")
        when = "?"
        if is_number(created):
            try:
                when = datetime.datetime.fromtimestamp(created / 1e9).strftime("%Y-%m-%d %H:%M")
            except (OverflowError, OSError, ValueError):
                pass
        table.add_row(str(m.get("scenario", "?")), str(m.get("run_id", run_dir.name)), str(done), str(failed),
                      str(len(cells) - done - failed), str(len(cells)), when, str(run_dir), "")
    if not table.rows:
        typer.echo(f"no runs under {root}")
        return
    Console(width=240).print(table)
