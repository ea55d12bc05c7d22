"""`memharness schema`: the JSON Schema of scenario files (for editors and CI checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness schema"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scenario_json_schema() -> dict:
    from memharness.scenario import Scenario

    return {"$schema": JSON_SCHEMA_DIALECT, **Scenario.model_json_schema()}


def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
) -> None:
    """Print the JSON Schema of scenario files."""
    import json

    text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MemharnessError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)
