"""A pipeline kind's options as plain data, and the one check of them.

Each kind's module holds an `OPTIONS` table (`OptionSet`) next to its code. Both sides read it:
`memharness validate` (the scenario schema, `memharness/scenario/options.py`, which also derives the JSON
Schema from it) and preflight (`Pipeline.validate_options`, run in the pipeline's interpreter). Both call
`check` below, so they accept and refuse the same names and values. Standard library only: this module
is imported inside measured cells.

None for any option means "unset": the kind's default (or the library's) applies and the key is dropped.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
FUNCTION_PATTERN = rf"^{IDENTIFIER}(\.{IDENTIFIER})*:{IDENTIFIER}(\.{IDENTIFIER})*$"

TYPES = ("int", "bool", "str", "mapping", "function", "choice")

Issue = tuple[str, str]  # (option name, message)


@dataclass(frozen=True)
class Option:
    """One option of a pipeline kind.

    `type`: one of TYPES ("function" is `package.module:function`; "choice" is one of `choices`, which an
    "int" may also have). `default`: what the adapter uses when the option is unset (None: the library's
    own default). `record_default`: the default is written into the validated options (so the run's
    manifest shows it), used where memharness deliberately departs from the library's default.
    """

    name: str
    type: str
    doc: str
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    required: bool = False
    record_default: bool = False


@dataclass(frozen=True)
class OptionSet:
    """The options of one kind; `open`: other keys are allowed and passed on as given (`callable`)."""

    options: tuple[Option, ...]
    open: bool = False

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.options]

    def get(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def defaults(self) -> dict[str, Any]:
        """Every option's default (what the adapter runs with when the scenario leaves it unset)."""
        return {o.name: o.default for o in self.options}


# --- the words of messages (also used by the scenario schema) ---------------------------------------------


def yaml_type(value: Any) -> str:
    """The YAML word for a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def describe(value: Any) -> str:
    """'string 'abc'' / 'integer 3' / 'a list' for messages."""
    if isinstance(value, (list, tuple, dict)):
        return f"a {yaml_type(value)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    return f"{yaml_type(value)} {value!r}"


def did_you_mean(word: str, choices: Any) -> str:
    """Return "; did you mean 'x'?" when a choice is close to `word`, else an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _one_of(choices: tuple[Any, ...]) -> str:
    words = [_literal(c) for c in choices]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _is_choice(value: Any, choices: tuple[Any, ...]) -> bool:
    # type-strict: `true` is not the integer 1 and 1 is not `true`
    return any(type(value) is type(c) and value == c for c in choices)


# --- the check ----------------------------------------------------------------------------------------------


def check_value(option: Option, value: Any) -> str | None:
    """Why `value` is not a valid value of `option`, or None (None itself is always valid: unset)."""
    if value is None:
        return None
    if option.choices and not _is_choice(value, option.choices):
        hint = did_you_mean(value, [c for c in option.choices if isinstance(c, str)]) if isinstance(value, str) \
            else ""
        return f"expected one of {_one_of(option.choices)}, got {describe(value)}{hint}"
    if option.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {describe(value)}"
        if option.minimum is not None and value < option.minimum:
            bound = "> 0" if option.minimum == 1 else f">= {option.minimum}"
            return f"must be {bound}, got {value!r}"
    elif option.type == "bool" and not isinstance(value, bool):
        return f"expected true or false, got {describe(value)}"
    elif option.type in ("str", "function") and not isinstance(value, str):
        return f"expected a string, got {describe(value)}"
    elif option.type == "function" and not re.match(FUNCTION_PATTERN, value):
        return f"invalid function {value!r}: expected package.module:function"
    elif option.type == "mapping" and not isinstance(value, dict):
        return f"expected a mapping, got {describe(value)}"
    return None


def check(spec: OptionSet, options: Any) -> tuple[dict[str, Any], list[Issue]]:
    """(normalised options, [(option name, message)]) for a kind's `options` mapping.

    Normalised: unset (None) options dropped, `record_default` defaults filled in; other keys as given.
    """
    if not isinstance(options, dict):
        return {}, [("", f"expected a mapping, got {describe(options)}")]
    issues: list[Issue] = []
    for option in spec.options:
        if option.required and options.get(option.name) is None:
            issues.append((option.name, f"required field is missing ({option.doc})"))
    for key, value in options.items():
        option = spec.get(key) if isinstance(key, str) else None
        if option is None:
            if not spec.open:
                hint = did_you_mean(str(key), spec.names)
                issues.append((str(key), "unknown key" + (hint or f" (allowed: {', '.join(spec.names)})")))
            continue
        problem = check_value(option, value)
        if problem is not None:
            issues.append((key, problem))
    normalised = {o.name: o.default for o in spec.options if o.record_default}
    normalised.update({k: v for k, v in options.items() if v is not None})
    return normalised, issues


def with_defaults(spec: OptionSet, options: dict[str, Any]) -> dict[str, Any]:
    """The options an adapter runs with: every default, overridden by the options that are set."""
    return {**spec.defaults(), **{k: v for k, v in options.items() if v is not None}}


def json_schema(spec: OptionSet) -> dict[str, Any]:
    """The JSON Schema of the options mapping (for `memharness schema`)."""
    props: dict[str, Any] = {}
    for o in spec.options:
        prop: dict[str, Any]
        if o.choices:
            prop = {"enum": list(o.choices)}
        elif o.type == "int":
            prop = {"type": "integer", **({"minimum": o.minimum} if o.minimum is not None else {})}
        elif o.type == "bool":
            prop = {"type": "boolean"}
        elif o.type == "mapping":
            prop = {"type": "object"}
        elif o.type == "function":
            prop = {"type": "string", "pattern": FUNCTION_PATTERN}
        else:
            prop = {"type": "string"}
        if not o.required:
            prop = {"anyOf": [prop, {"type": "null"}]}
        prop["description"] = o.doc
        if o.default is not None:
            prop["default"] = o.default
        props[o.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": spec.open}
    required = [o.name for o in spec.options if o.required]
    if required:
        schema["required"] = required
    return schema
