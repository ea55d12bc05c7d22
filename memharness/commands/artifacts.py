"""`memharness artifacts diff DIR_A DIR_B`: compare two index folders artifact by artifact."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class Format(str, Enum):
    md = "md"
    json = "json"


artifacts_app = typer.Typer(
    help="Index artifacts: compare two index folders (numeric drift between releases).",
    no_args_is_help=True,
)


DIFF_HELP = (
    "Compare every .pt / .npy / .json artifact of two folders: presence, shape, dtype, torch.allclose, max and "
    "mean abs diff, fraction exactly equal, fraction changed (integer tensors). A memharness cell folder stands "
    "for the index folder inside its work/. Exit 0 when all are equal within tolerance, 1 when anything differs, "
    "is missing on one side or fails to load, 2 for bad input (a folder with no artifacts at all included)."
)


@artifacts_app.command("diff", help=DIFF_HELP)
def diff(
    dir_a: Path = typer.Argument(..., help="index folder, any folder, or a memharness cell folder"),
    dir_b: Path = typer.Argument(..., help="the folder to compare it with"),
    rtol: float = typer.Option(1e-5, "--rtol", help="relative tolerance of torch.allclose"),
    atol: float = typer.Option(1e-8, "--atol", help="absolute tolerance of torch.allclose"),
    fmt: Format = typer.Option(Format.md, "--format", help="md (a table) or json"),
    ignore: list[str] = typer.Option(
        [],
        "--ignore",
        help="fnmatch pattern of artifacts (`sample.*.pt`) or JSON keys (`plan.json:config.bsize`) to skip; repeatable",
    ),
    no_default_ignores: bool = typer.Option(
        False,
        "--no-default-ignores",
        help="also compare ColBERT's location/timestamp config keys and the index name memharness gives "
        "(root, name, index_name, ...)",
    ),
) -> None:
    from memharness.drift.artifacts import DEFAULT_IGNORES, ArtifactError, diff_dirs
    from memharness.drift.report import artifacts_json, artifacts_markdown

    for d in (dir_a, dir_b):
        if not d.is_dir():
            typer.echo(f"error: not a folder: {d}", err=True)
            raise typer.Exit(2)
    patterns = list(ignore) + ([] if no_default_ignores else list(DEFAULT_IGNORES))
    try:
        result = diff_dirs(dir_a, dir_b, rtol=rtol, atol=atol, ignore=patterns)
    except ArtifactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(artifacts_json(result) if fmt is Format.json else artifacts_markdown(result), nl=False)
    raise typer.Exit(0 if result.ok else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(artifacts_app, name="artifacts")
