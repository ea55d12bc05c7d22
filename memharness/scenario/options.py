"""Kind-specific `options` of pipelines, checked against the kind's own table.

Each kind declares its options as plain data next to its code (`OPTIONS` in memharness/pipelines/<kind>.py,
see memharness/pipelines/options.py); this module only applies that table, with the same check preflight
runs in the pipeline's interpreter, and derives the JSON Schema from it. A kind without a table takes any
options mapping. For `callable`, `function` is called as `function(ids, texts, options, workdir)` (see
memharness/pipelines/callable.py).
"""

from __future__ import annotations

from typing import Any

from memharness.pipelines.options import check, json_schema
from memharness.pipelines.registry import option_set
from memharness.scenario.errors import Loc


def options_json_schema(kind: str) -> dict[str, Any]:
    spec = option_set(kind)
    return json_schema(spec) if spec is not None else {"type": "object"}


def validate_options(kind: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
    """Check `options` for `kind`: (normalised options, [(location inside options, message)]).

    Normalised: unset (null) options dropped, and the defaults the kind records (e.g. ragatouille's
    `split_documents: false`) filled in, so the run manifest shows what the adapter was given."""
    spec = option_set(kind)
    if spec is None:
        return dict(options), []
    normalised, issues = check(spec, options)
    if issues:
        return dict(options), [((key,) if key else (), message) for key, message in issues]
    return normalised, []
