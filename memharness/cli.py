"""The `memharness` command line.

One module per command under `memharness.commands`, found here by name, so a new command is one new module:
`commands/NAME.py` defines the command as a module-level function `NAME` (parameters annotated with
`typer.Argument` / `typer.Option`, help from its docstring), or a group of sub-commands as a module-level
`typer.Typer` named `app`; a module with `register(app)` registers itself. The modules import their heavy
dependencies inside the command functions so `memharness --help` is fast.

Errors: a command raises `MemharnessError` (or a subclass) and this module prints it, once for all commands,
as `error: <message>` on stderr (`<ERROR_PREFIX>: <message>` where the command's module sets `ERROR_PREFIX`)
and exits with the error's `exit_code`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import click
import typer
from typer.core import TyperGroup

import memharness.commands
from memharness.errors import MemharnessError

_error_prefixes: dict[str, str] = {}  # command name -> the prefix of its error lines


class _Commands(TyperGroup):
    """The top-level group: prints a command's `MemharnessError` and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemharnessError as exc:
            prefix = _error_prefixes.get(ctx.invoked_subcommand or "", "error")
            typer.echo(f"{prefix}: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="memharness",
    cls=_Commands,
    help="Memory profiling for retrieval indexing pipelines: per-function tables, timelines, regressions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from memharness import __version__

        typer.echo(f"memharness {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print memharness's version and exit.",
                                       callback=_version, is_eager=True)) -> None:
    """Memory profiling for retrieval indexing pipelines: per-function tables, timelines, regressions."""


def register(module: ModuleType) -> None:
    """Add the command (or group) that `module` defines, named after the module."""
    name = module.__name__.rsplit(".", 1)[-1]
    group, command = getattr(module, "app", None), getattr(module, name, None)
    if isinstance(group, typer.Typer):
        app.add_typer(group, name=name)
    elif callable(command):
        app.command(name)(command)
    elif callable(getattr(module, "register", None)):
        module.register(app)
    else:
        raise TypeError(f"{module.__name__} defines no command: a function {name}() or a typer.Typer `app`")
    _error_prefixes[name] = getattr(module, "ERROR_PREFIX", "error")


for _info in sorted(pkgutil.iter_modules(memharness.commands.__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        register(importlib.import_module(f"memharness.commands.{_info.name}"))


def main() -> None:
    app()
