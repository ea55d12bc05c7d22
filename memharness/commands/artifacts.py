"""`memharness artifacts diff DIR_A DIR_B`: compare two index folders artifact by artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.commands._common import Format
from memharness.errors import MemharnessError

app = typer.Typer(
    help="Index artifacts: compare two index folders (numeric drift between releases).",
    no_args_is_help=True,
)


DIFF_HELP = (
    "Compare every .pt / .npy / .json artifact of two folders: presence, shape, dtype, torch.allclose, max and "
    "mean abs diff, fraction exactly equal, fraction changed (integer tensors). A memharness cell folder stands "
    "for the index folder inside its work/. Exit 0 when all are equal within tolerance, 1 when anything differs, "
    "is missing on one side or fails to load, 2 for bad input (a folder with no artifacts at all included)."
)


@app.command("diff", help=DIFF_HELP)
def diff(
    dir_a: Annotated[Path, typer.Argument(help="index folder, any folder, or a memharness cell folder")],
    dir_b: Annotated[Path, typer.Argument(help="the folder to compare it with")],
    rtol: Annotated[float, typer.Option("--rtol", help="relative tolerance of torch.allclose")] = 1e-5,
    atol: Annotated[float, typer.Option("--atol", help="absolute tolerance of torch.allclose")] = 1e-8,
    fmt: Annotated[Format, typer.Option("--format", help="md (a table) or json")] = Format.md,
    ignore: Annotated[list[str] | None, typer.Option(
        "--ignore",
        help="fnmatch pattern of artifacts (`sample.*.pt`) or JSON keys (`plan.json:config.bsize`) to skip; repeatable",
    )] = None,
    no_default_ignores: Annotated[bool, typer.Option(
        "--no-default-ignores",
        help="also compare ColBERT's location/timestamp config keys and the index name memharness gives "
        "(root, name, index_name, ...)",
    )] = False,
) -> None:
    from memharness.drift.artifacts import DEFAULT_IGNORES, diff_dirs
    from memharness.drift.report import artifacts_json, artifacts_markdown

    for d in (dir_a, dir_b):
        if not d.is_dir():
            raise MemharnessError(f"not a folder: {d}")
    patterns = list(ignore or ()) + ([] if no_default_ignores else list(DEFAULT_IGNORES))
    result = diff_dirs(dir_a, dir_b, rtol=rtol, atol=atol, ignore=patterns)
    typer.echo(artifacts_json(result) if fmt is Format.json else artifacts_markdown(result), nl=False)
    raise typer.Exit(0 if result.ok else 1)
