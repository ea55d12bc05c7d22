"""`memharness validate FILE...`: check scenario files without running anything."""

from __future__ import annotations

from typing import Annotated

import typer


def validate(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Scenario YAML files to check.")],
) -> None:
    """Check scenario files: every error names the file, line and field path. Exit 2 on any error."""
    from memharness.scenario import ScenarioError, load

    failed = False
    for name in files:
        try:
            scenario = load(name)
        except ScenarioError as exc:
            typer.echo(str(exc), err=True)
            failed = True
            continue
        typer.echo(
            f"OK {name}: {len(scenario.pipelines)} pipelines x {len(scenario.sizes)} sizes"
            f" x {scenario.repeats} repeats = {scenario.n_cells} cells"
        )
    if failed:
        raise typer.Exit(2)
