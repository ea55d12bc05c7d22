"""How a scenario differs from the one a run recorded (`--resume` refuses a changed scenario unless `--force`)."""

from __future__ import annotations

import json
from typing import Any


def scenario_changes(old_spec: Any, scenario) -> list[str]:
    """How `scenario` differs from a run's recorded `scenario_spec`, one `field: old -> new` each.

    Both sides are normalised through the schema (defaults filled in), so a spec recorded before a field
    existed does not differ by that field alone. `output` is left out: the run folder is given explicitly.
    """
    from pydantic import ValidationError

    new = scenario.model_dump(mode="json")
    try:
        old = type(scenario).model_validate(old_spec).model_dump(mode="json")
    except (ValidationError, TypeError):
        old = old_spec if isinstance(old_spec, dict) else {}
    changes: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(dict.fromkeys([*a, *b])):
                if path == "" and key == "output":
                    continue
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        elif a != b:
            changes.append(f"{path}: {json.dumps(a, default=str)[:60]} -> {json.dumps(b, default=str)[:60]}")

    walk(old, new, "")
    return changes
