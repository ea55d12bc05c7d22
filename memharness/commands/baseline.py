"""`memharness baseline set RUN_DIR` and `memharness baseline show`."""

from __future__ import annotations

from pathlib import Path

import typer

from memharness.results.names import MANIFEST

STORE_HELP = "baseline store file"


def _fail(message: str) -> None:
    typer.echo(f"memharness baseline: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Record and show the baseline runs `compare --baseline` compares against.",
                        no_args_is_help=True)

    @group.command("set")
    def set_cmd(
        run: str = typer.Argument(..., metavar="RUN_DIR", help="run folder, or RUN_DIR:variant"),
        name: str = typer.Option(None, "--name", help="record under this name instead of the run's scenario"),
        store: Path = typer.Option(Path(".memharness/baselines.json"), "--store", help=STORE_HELP),
    ) -> None:
        """Record RUN_DIR as the baseline of its scenario."""
        from memharness.compare.baselines import set_baseline
        from memharness.compare.sides import CompareError

        try:
            b = set_baseline(run, store, name)
        except CompareError as exc:
            _fail(str(exc))
        typer.echo(f"baseline {b.name!r} -> {b.spec} (run {b.run_id}) recorded in {store}")

    @group.command("show")
    def show_cmd(
        store: Path = typer.Option(Path(".memharness/baselines.json"), "--store", help=STORE_HELP),
        fmt: str = typer.Option("text", "--format", help="text | json"),
    ) -> None:
        """List the recorded baselines."""
        from memharness.compare.baselines import dumps, list_baselines
        from memharness.compare.sides import CompareError

        try:
            baselines = list_baselines(store)
        except CompareError as exc:
            _fail(str(exc))
        if fmt == "json":
            typer.echo(dumps(baselines))
            return
        if not baselines:
            typer.echo(f"no baselines recorded in {store}")
            return
        for b in baselines:
            exists = "" if (b.run_dir / MANIFEST).exists() else "  (missing!)"
            typer.echo(f"{b.name}: {b.spec}  run {b.run_id}{exists}")

    app.add_typer(group, name="baseline")
