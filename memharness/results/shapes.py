"""The JSON type every reader expects of each field of a run folder's JSON files (docs/format.md).

A run folder is edited by hand, copied half-way, written by an older or newer memharness: any field may hold
any JSON type. Readers take each file through `clean(data, FIELDS)`, which returns a copy holding only the
fields of the expected type (a field of another type reads as absent) and one line per field it dropped,
naming it (`field 'exit_code' is a list, expected an integer`), for the report's warning. Fields not listed
are kept as they are (their readers check them where they read them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from memharness.numeric import is_int, is_number

LIMIT = 2**63  # timestamps, byte counts and pids are int64 on disk and in numpy


def _int(v: Any) -> bool:
    return is_int(v) and -LIMIT < v < LIMIT


def _num(v: Any) -> bool:
    return is_number(v) and math.isfinite(v) and -LIMIT < v < LIMIT


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


Kind = tuple[Callable[[Any], bool], str]
INT: Kind = (_int, "an integer")
OPT_INT: Kind = (_opt(_int), "an integer or null")
NUM: Kind = (_num, "a number")
STR: Kind = (_str, "a string")
OPT_STR: Kind = (_opt(_str), "a string or null")
BOOL: Kind = (lambda v: isinstance(v, bool), "true or false")
DICT: Kind = (lambda v: isinstance(v, dict), "an object")
LIST: Kind = (lambda v: isinstance(v, list), "a list")
INT_LIST: Kind = (lambda v: isinstance(v, list) and all(_int(x) for x in v), "a list of integers")
DICT_LIST: Kind = (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of objects")
STR_LIST: Kind = (lambda v: isinstance(v, list) and all(_str(x) for x in v), "a list of strings")

# manifest.json, beyond what `manifest.check_manifest` requires (format, cells with id, pipeline, size, status)
SIZE_LIST: Kind = (lambda v: isinstance(v, list) and all(_int(x) and x > 0 for x in v), "a list of positive integers")

MANIFEST_FIELDS: dict[str, Kind] = {
    "version": INT, "scenario": STR, "run_id": STR, "created_wall_ns": NUM, "clock": DICT, "scenario_spec": DICT,
    "sizes": SIZE_LIST, "executor": DICT, "scenario_revisions": DICT_LIST, "merged_from": STR_LIST,
}
CELL_ENTRY_FIELDS: dict[str, Kind] = {
    "kind": STR, "repeat": INT, "dir": STR, "cause": OPT_STR, "scenario_rev": OPT_INT, "executor": STR,
    "node": DICT, "gpu": DICT, "tries": INT, "attempts": STR_LIST, "from_run": STR,
}
REVISION_FIELDS: dict[str, Kind] = {"rev": INT, "file": STR, "spec": DICT, "created_wall_ns": NUM}
STATUS_FIELDS: dict[str, Kind] = {
    "status": STR, "cause": OPT_STR, "message": STR, "exit_code": OPT_INT, "t_start_ns": INT, "t_end_ns": INT,
    "wall_start_ns": INT, "wall_seconds": NUM, "peak_tree_rss": INT, "size": INT, "pipeline": STR,
    "leftovers": DICT_LIST, "sampler_gaps": DICT_LIST, "stdio_closed": STR_LIST, "node": DICT,
}
GAP_FIELDS: dict[str, Kind] = {"from_ns": INT, "to_ns": OPT_INT, "why": STR}
TIMELINE_HEADER_FIELDS: dict[str, Kind] = {
    "format": STR, "version": INT, "row_bytes": INT, "fields": LIST, "kinds": DICT, "interval_s": NUM,
    "root_pid": INT, "started_ns": INT, "clock": STR, "gpu": BOOL, "max_rss": OPT_INT, "memory_file": STR,
    "memory_kinds": INT_LIST, "stopped_ns": INT, "ticks": INT, "late_ticks": INT, "peak_tree_rss": INT,
}
PROCESSES_FIELDS: dict[str, Kind] = {"root_pid": INT, "written_ns": INT, "processes": DICT_LIST}
PROCESS_FIELDS: dict[str, Kind] = {
    "pid": INT, "ppid": OPT_INT, "first_ns": INT, "last_ns": INT, "hwm": INT, "hwm_t_ns": INT, "name": STR,
}
PROCESS_REQUIRED = ("pid", "first_ns", "last_ns", "hwm")  # a process record without these is left out
CELL_INFO_FIELDS: dict[str, Kind] = {"kmeans": DICT, "index": DICT}
TARGETS_FIELDS: dict[str, Kind] = {"resolved": DICT_LIST, "missing": DICT_LIST}


def kind_of(value: Any) -> str:
    """`value`'s JSON type with its article: 'an object', 'a list', 'an int', 'null'."""
    named = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value))
    if named is not None:
        return named
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def clean(data: dict[str, Any], fields: dict[str, Kind], where: str = "") -> tuple[dict[str, Any], list[str]]:
    """(a copy of `data` without the listed fields whose value has another type, one line per dropped field).
    `where` prefixes the field names (`cells[2].`)."""
    out = dict(data)
    dropped = []
    for name, (check, expected) in fields.items():
        if name in out and not check(out[name]):
            dropped.append(f"field '{where}{name}' is {kind_of(out.pop(name))}, expected {expected}")
    return out, dropped


def clean_list(items: list[Any], fields: dict[str, Kind], where: str,
               required: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], list[str]]:
    """Each object of `items` cleaned; an item that is not an object, or lost a `required` field, is left
    out (and named)."""
    out, dropped = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            dropped.append(f"'{where}[{i}]' is {kind_of(item)}, expected an object")
            continue
        cleaned, why = clean(item, fields, f"{where}[{i}].")
        dropped += why
        missing = [k for k in required if k not in cleaned]
        if missing:
            if not why:
                dropped.append(f"'{where}[{i}]' has no {', '.join(repr(k) for k in missing)}")
            continue
        out.append(cleaned)
    return out, dropped
