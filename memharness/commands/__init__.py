"""One module per CLI command, found by `memharness.cli`: `NAME.py` defines a function `NAME` (or a
`typer.Typer` named `app` for a group of sub-commands); modules whose name starts with `_` are helpers."""
