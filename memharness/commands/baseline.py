"""`memharness baseline set RUN_DIR` and `memharness baseline show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.commands._common import BASELINE_STORE
from memharness.names import MANIFEST

ERROR_PREFIX = "memharness baseline"
STORE_HELP = "baseline store file"

app = typer.Typer(help="Record and show the baseline runs `compare --baseline` compares against.",
                  no_args_is_help=True)


@app.command("set")
def baseline_set(
    run: Annotated[str, typer.Argument(metavar="RUN_DIR", help="run folder, or RUN_DIR:variant")],
    name: Annotated[str | None, typer.Option("--name", help="record under this name instead of the run's "
                                                            "scenario")] = None,
    store: Annotated[Path, typer.Option("--store", help=STORE_HELP)] = BASELINE_STORE,
) -> None:
    """Record RUN_DIR as the baseline of its scenario."""
    from memharness.compare.baselines import set_baseline

    b = set_baseline(run, store, name)
    typer.echo(f"baseline {b.name!r} -> {b.spec} (run {b.run_id}) recorded in {store}")


@app.command("show")
def baseline_show(
    store: Annotated[Path, typer.Option("--store", help=STORE_HELP)] = BASELINE_STORE,
    fmt: Annotated[str, typer.Option("--format", help="text | json")] = "text",
) -> None:
    """List the recorded baselines."""
    from memharness.compare.baselines import dumps, list_baselines

    baselines = list_baselines(store)
    if fmt == "json":
        typer.echo(dumps(baselines))
        return
    if not baselines:
        typer.echo(f"no baselines recorded in {store}")
        return
    for b in baselines:
        exists = "" if (b.run_dir / MANIFEST).exists() else "  (missing!)"
        typer.echo(f"{b.name}: {b.spec}  run {b.run_id}{exists}")
