"""The command line's shape: every module of memharness.commands is a command named after it, and a
MemharnessError raised by any command is printed once, by cli.py, with the command's prefix and exit code."""

from __future__ import annotations

import pkgutil
import types
from contextlib import contextmanager

import typer
from typer.testing import CliRunner

import memharness.commands
from memharness import cli
from memharness.errors import MemharnessError


def _names() -> set[str]:
    return {c.name for c in cli.app.registered_commands} | {g.name for g in cli.app.registered_groups}


@contextmanager
def added(module: types.ModuleType):
    """Register a stand-in command module for one test, then take it away again."""
    commands, groups = list(cli.app.registered_commands), list(cli.app.registered_groups)
    prefixes = dict(cli._error_prefixes)
    cli.register(module)
    try:
        yield
    finally:
        cli.app.registered_commands[:], cli.app.registered_groups[:] = commands, groups
        cli._error_prefixes.clear()
        cli._error_prefixes.update(prefixes)


def test_every_command_module_is_a_command_of_its_name():
    modules = {m.name for m in pkgutil.iter_modules(memharness.commands.__path__) if not m.name.startswith("_")}
    assert modules and modules == _names()


def test_a_new_module_with_a_function_of_its_name_is_a_command():
    def hello(name: str = typer.Option("world", "--name")) -> None:
        """Say hello."""
        typer.echo(f"hello {name}")

    module = types.ModuleType("memharness.commands.hello")
    module.hello = hello
    with added(module):
        res = CliRunner().invoke(cli.app, ["hello", "--name", "you"])
        assert (res.exit_code, res.stdout) == (0, "hello you\n")


def test_an_error_is_printed_once_with_the_modules_prefix_and_exit_code():
    def broken() -> None:
        raise MemharnessError("the disk is full", exit_code=3)

    def plain() -> None:
        raise MemharnessError("bad input")

    prefixed = types.ModuleType("memharness.commands.broken")
    prefixed.broken, prefixed.ERROR_PREFIX = broken, "memharness broken"
    default = types.ModuleType("memharness.commands.plain")
    default.plain = plain
    with added(prefixed), added(default):
        res = CliRunner().invoke(cli.app, ["broken"])
        assert (res.exit_code, res.stdout, res.stderr) == (3, "", "memharness broken: the disk is full\n")
        res = CliRunner().invoke(cli.app, ["plain"])
        assert (res.exit_code, res.stderr) == (2, "error: bad input\n")


def test_a_module_that_registers_itself_still_works():
    module = types.ModuleType("memharness.commands.legacy")

    def register(app: typer.Typer) -> None:
        @app.command("legacy")
        def legacy() -> None:
            typer.echo("registered by the module")

    module.register = register
    with added(module):
        res = CliRunner().invoke(cli.app, ["legacy"])
        assert (res.exit_code, res.stdout) == (0, "registered by the module\n")
