"""Field types shared by the scenario models: names, sizes, durations, memory amounts, dotted paths."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, WithJsonSchema

from memharness.models.recipes import BUILTINS
from memharness.pipelines.options import IDENTIFIER
from memharness.scenario.errors import describe, did_you_mean
from memharness.scenario.units import parse_duration, parse_memory, parse_size

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DOTTED_PATTERN = rf"^{IDENTIFIER}(\.{IDENTIFIER})+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Checkpoints that memharness.models builds offline (its recipes); `builtin:NAME` must name one of them.
BUILTIN_MODELS = tuple(BUILTINS)


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def require_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    return value


def _matching(pattern: str, complaint: str):
    """A check that the value is a string matching `pattern`; `complaint` is formatted with the text."""

    def check(value: Any) -> str:
        text = require_string(value)
        if not re.match(pattern, text):
            raise ValueError(complaint.format(text=text))
        return text

    return check


check_name = _matching(
    NAME_PATTERN,
    "invalid name {text!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit",
)
check_dotted = _matching(
    DOTTED_PATTERN,
    "invalid target {text!r}: expected a dotted path of identifiers with at least two parts, "
    "such as package.module.function or package.module.Class.method",
)


def check_model(value: Any) -> str:
    text = require_string(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        if name not in BUILTIN_MODELS:
            raise ValueError(
                f"unknown builtin model {name!r}{did_you_mean(name, BUILTIN_MODELS)} "
                f"(builtin models: {', '.join(BUILTIN_MODELS)})"
            )
    return text


def _positive(parse):
    def check(value: Any) -> Any:
        result = parse(value)
        if result <= 0:
            raise ValueError(f"must be > 0, got {value!r}")
        return result

    return check


_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^\s*[0-9][0-9_]*(\.[0-9]+)?\s*[kKmMgG]?\s*$"},
    ],
    "description": "records: 100000, 100_000, 100k, 1.5k, 2M (k, M, G = 10**3, 10**6, 10**9)",
}
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*(us|ms|s|m|min|h)?\s*$"},
    ],
    "description": "seconds, or a number with a unit: 500us, 50ms, 30s, 30m, 2h",
}
_MEMORY_SCHEMA = {
    "anyOf": [
        {"type": "integer", "exclusiveMinimum": 0},
        {
            "type": "string",
            "pattern": r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGtT]([iI]?[bB])?|[bB])?\s*$",
        },
    ],
    "description": "bytes, or a number with a unit: K/M/G/T and KiB/MiB/GiB/TiB are powers of 2, "
    "KB/MB/GB/TB powers of 10",
}

Name = Annotated[
    str, BeforeValidator(check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})
]
DottedPath = Annotated[
    str, BeforeValidator(check_dotted), WithJsonSchema({"type": "string", "pattern": DOTTED_PATTERN})
]
ModelRef = Annotated[
    str,
    BeforeValidator(check_model),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "hub id, local path, or builtin:NAME (" + ", ".join(BUILTIN_MODELS) + ")",
        }
    ),
]
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
PositiveDuration = Annotated[
    float, BeforeValidator(_positive(parse_duration)), WithJsonSchema(_DURATION_SCHEMA)
]
Memory = Annotated[int, BeforeValidator(_positive(parse_memory)), WithJsonSchema(_MEMORY_SCHEMA)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
