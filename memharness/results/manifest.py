"""One reader of a run folder's `manifest.json` and one error class for a run that cannot be read.

`read_manifest(run_dir)` returns the manifest as a dict once it has checked what readers rely on (a JSON
object of format `memharness-run` whose `cells` is a list of objects with `id`, `pipeline`, `size` and
`status`); anything else raises `BrokenRunError` naming the file and why, in a few words a user can act on
(`manifest.json: truncated JSON (a half-written file?)`). A folder without a manifest raises its subclass
`NotARunError`. Callers catch `BrokenRunError` for both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memharness.errors import MemharnessError
from memharness.names import MANIFEST

RUN_FORMAT = "memharness-run"
CELL_KEYS = ("id", "pipeline", "size", "status")


class BrokenRunError(MemharnessError):
    """A run folder whose manifest cannot be used. `path` is the file (or folder) at fault, `reason` why;
    `str()` is one line, `<path>: <reason>`. `error` is the exception behind it, where there is one (the
    `OSError`, `UnicodeDecodeError` or `json.JSONDecodeError`), for callers that word it their own way."""

    def __init__(self, path: Path | str, reason: str, message: str | None = None,
                 error: BaseException | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.error = error
        super().__init__(message or f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, str(self)))


class NotARunError(BrokenRunError):
    """The folder holds no manifest.json (or is no folder at all): not a memharness run folder."""


def _run_folders_below(folder: Path) -> list[Path]:
    try:
        found = sorted(folder.glob(f"*/{MANIFEST}")) + sorted(folder.glob(f"*/*/{MANIFEST}"))
    except OSError:
        return []
    return [p.parent for p in found]


def _not_a_run(run_dir: Path, what: str) -> NotARunError:
    hint = ""
    below = _run_folders_below(run_dir) if run_dir.is_dir() else []
    if below:
        hint = f"; run folders below it: {', '.join(str(p) for p in below[-3:])}"
    return NotARunError(run_dir, what, f"{run_dir} is not a memharness run folder ({what}){hint}")


def _json_reason(text: str, exc: json.JSONDecodeError) -> str:
    if not text.strip():
        return "empty file (a run killed while it was created?)"
    where = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):  # the text ends too soon
        return f"truncated JSON (a half-written file?): {where}"
    return f"not valid JSON: {where}"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def check_manifest(data: Any) -> str | None:
    """Why `data` is not a usable run manifest, or None when it is."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {_kind(data)}"
    if data.get("format") != RUN_FORMAT:
        return f"not a memharness run manifest (format {data.get('format')!r}, expected {RUN_FORMAT!r})"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "no 'cells' list" if cells is None else f"'cells' is {_kind(cells)}, expected a list"
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cells[{i}] is {_kind(cell)}, expected an object"
        missing = [k for k in CELL_KEYS if k not in cell]
        if missing:
            return f"cells[{i}] has no {', '.join(repr(k) for k in missing)}"
        if not isinstance(cell["id"], str) or not cell["id"]:
            return f"cells[{i}].id is {_kind(cell['id'])}, expected a cell id string"
        if isinstance(cell["size"], bool) or not isinstance(cell["size"], int):
            return f"cells[{i}].size is {_kind(cell['size'])}, expected an integer"
    return None


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The checked manifest of `run_dir`; raises `NotARunError` or `BrokenRunError` (one line, no traceback
    needed by the caller)."""
    path, data = parse_manifest(run_dir)
    problem = check_manifest(data)
    if problem is not None:
        raise BrokenRunError(path, problem)
    return data


def parse_manifest(run_dir: Path | str) -> tuple[Path, Any]:
    """(path, parsed JSON) of `run_dir`'s manifest, not yet checked for its shape; raises `NotARunError`
    (no folder, no manifest) or `BrokenRunError` (unreadable, not UTF-8, not JSON)."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise NotARunError(run_dir, "no such folder", f"{run_dir} is not a folder")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _not_a_run(run_dir, f"no {MANIFEST}") from None
    except IsADirectoryError as exc:
        raise BrokenRunError(path, "is a folder, not a file", error=exc) from None
    except OSError as exc:
        raise BrokenRunError(path, f"cannot read: {exc.strerror or exc}", error=exc) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenRunError(path, f"not a text file (byte {exc.start} is not UTF-8): binary garbage?",
                             error=exc) from None
    try:
        return path, json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrokenRunError(path, _json_reason(text, exc), error=exc) from None
    except RecursionError as exc:
        raise BrokenRunError(path, "JSON nested too deeply", error=exc) from None
