"""Scenario errors and the translation of pydantic's errors into field paths and plain messages."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from memharness.errors import MemharnessError
from memharness.pipelines.options import describe, did_you_mean  # the words of every message

Loc = tuple[str | int, ...]


class ScenarioIssue(NamedTuple):
    """One problem in a scenario file: dotted field path ("" for the whole file), 1-based line, message."""

    field: str
    line: int | None
    message: str

    def format(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(MemharnessError):
    """A scenario file that cannot be used; `str()` is one `FILE:LINE: field.path: message` line per issue."""

    def __init__(self, filename: str, errors: Sequence[ScenarioIssue]):
        self.filename = filename
        self.errors: list[ScenarioIssue] = list(errors)
        super().__init__("\n".join(issue.format(filename) for issue in self.errors))

    def __reduce__(self):
        return (type(self), (self.filename, self.errors))


class LocatedErrors(ValueError):
    """Raised by validators to report errors at paths below the model being validated.

    pydantic puts a validator's `ValueError` at the model's own location; `translate` appends each
    item's sub-location, so a duplicate size can point at `sizes[3]` rather than at `sizes`.
    """

    def __init__(self, items: Iterable[tuple[Loc, str]]):
        self.items = [(tuple(loc), message) for loc, message in items]
        super().__init__("; ".join(message for _, message in self.items))


def format_path(loc: Loc) -> str:
    """('pipelines', 1, 'options', 'nbits') -> 'pipelines[1].options.nbits'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part) if str(part).isprintable() else repr(part)  # a key holding NUL or a newline
            out += f".{text}" if out else text
    return out


# --- walking the model types along an error location -------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _union_tags(tp: Any) -> dict[str, type[BaseModel]]:
    """For a discriminated union of models: tag value -> model.

    The discriminator is the field that every member declares as a one-value Literal.
    """
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return {}
    members = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
    if not members:
        return {}

    def tag_fields(model: type[BaseModel]) -> dict[str, str]:
        out = {}
        for name, field in model.model_fields.items():
            args = typing.get_args(field.annotation)
            if typing.get_origin(field.annotation) is typing.Literal and len(args) == 1:
                out[name] = str(args[0])
        return out

    per_member = [tag_fields(m) for m in members]
    common = set(per_member[0]).intersection(*per_member[1:])
    if len(common) != 1:
        return {}
    key = common.pop()
    return {fields[key]: model for fields, model in zip(per_member, members, strict=True)}


def walk(root: type[BaseModel], loc: Loc) -> tuple[Loc, list[Any]]:
    """Drop discriminator tags from `loc` and return the types met along it.

    `types_[i]` is the (unwrapped) type of the value that `clean[:i]` designates, so `types_[-1]` is the
    type holding the last element; None where the path leaves the known schema.
    """
    clean: list[str | int] = []
    types_: list[Any] = [root]
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp) if tp is not None else None
        tags = _union_tags(tp) if tp is not None else {}
        if tags and isinstance(part, str) and part in tags:
            tp = tags[part]
            types_[-1] = tp
            continue
        clean.append(part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
        elif typing.get_origin(tp) in (list, tuple, Sequence) and isinstance(part, int):
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else None
        elif typing.get_origin(tp) is dict:
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else None
        else:
            tp = None
        types_.append(_unwrap(tp) if tp is not None else None)
    return tuple(clean), types_


# --- messages -----------------------------------------------------------------------------------------


def _fields_of(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _message(err: dict[str, Any], clean: Loc, types_: list[Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = _fields_of(types_[-2] if len(types_) >= 2 else None)
        hint = did_you_mean(str(clean[-1]), allowed)
        if hint:
            return "unknown key" + hint
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {describe(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe(value)}"
    if kind in ("string_type", "str_type"):
        return f"expected a string, got {describe(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {describe(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {describe(value)}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}, got {value!r}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",")]
        return f"expected one of {expected}, got {describe(value)}" + did_you_mean(str(value), choices)
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def translate(exc: ValidationError, root: type[BaseModel]) -> list[tuple[Loc, str]]:
    """pydantic errors of `root.model_validate` -> [(clean location, message)], tags stripped."""
    out: list[tuple[Loc, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(error, LocatedErrors):
            for sub, message in error.items:
                clean, _ = walk(root, loc + sub)
                out.append((clean, message))
            continue
        clean, types_ = walk(root, loc)
        if err["type"] == "invalid_key":  # a YAML key that is not a string, e.g. `1: x`
            out.append((clean[:-1] + (str(clean[-1]),), f"keys must be strings, got {describe(clean[-1])}"))
            continue
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            key = str((err.get("ctx") or {}).get("discriminator", "")).strip("'\"")
            expected = ", ".join(_union_tags(types_[-1]))
            if err["type"] == "union_tag_not_found":
                message = f"required field is missing (one of: {expected})"
            else:
                tag = (err.get("ctx") or {}).get("tag")
                message = (
                    f"unknown {clean[-1] if clean else 'value'} {key} {tag!r}"
                    + did_you_mean(str(tag), expected.split(", "))
                    + f" (known: {expected})"
                )
            out.append((clean + (key,), message))
            continue
        out.append((clean, _message(err, clean, types_)))
    return out
