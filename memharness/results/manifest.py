"""One reader of a run folder's `manifest.json` and one error class for a run that cannot be read.

`read_manifest(run_dir)` returns the manifest as a dict once it has checked what readers rely on (a JSON
object of format `memharness-run` whose `cells` is a list of objects with a string `id`, `pipeline` and
`status` and an integer `size`); anything else raises `BrokenRunError` naming the file and why, in a few words
a user can act on (`manifest.json: truncated JSON (a half-written file?)`). Optional fields of another JSON
type read as absent (`results/shapes.py`). A folder without a manifest raises its subclass
`NotARunError`. Callers catch `BrokenRunError` for both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memharness.errors import MemharnessError
from memharness.names import MANIFEST, cell_dir_name
from memharness.results.shapes import (
    CELL_ENTRY_FIELDS,
    MANIFEST_FIELDS,
    REVISION_FIELDS,
    clean,
    clean_list,
    kind_of,
)

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


def check_manifest(data: Any) -> str | None:
    """Why `data` is not a usable run manifest, or None when it is."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {kind_of(data)}"
    if data.get("format") != RUN_FORMAT:
        return f"not a memharness run manifest (format {data.get('format')!r}, expected {RUN_FORMAT!r})"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "no 'cells' list" if cells is None else f"'cells' is {kind_of(cells)}, expected a list"
    return check_cells(cells)


def check_cells(cells: list[Any]) -> str | None:
    """Why a manifest's `cells` cannot be read (the first cell field of a type readers cannot use), or None."""
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cells[{i}] is {kind_of(cell)}, expected an object"
        missing = [k for k in CELL_KEYS if k not in cell]
        if missing:
            return f"cells[{i}] has no {', '.join(repr(k) for k in missing)}"
        if not isinstance(cell["id"], str) or not cell["id"]:
            return f"cells[{i}].id is {kind_of(cell['id'])}, expected a cell id string"
        if isinstance(cell["size"], bool) or not isinstance(cell["size"], int):
            return f"cells[{i}].size is {kind_of(cell['size'])}, expected an integer of 0 or more"
        if cell["size"] < 0:
            return f"cells[{i}].size is {cell['size']}, expected an integer of 0 or more"
        for key in ("pipeline", "status"):
            if not isinstance(cell[key], str):
                return f"cells[{i}].{key} is {kind_of(cell[key])}, expected a string"
    return None


def cleaned(data: dict[str, Any]) -> dict[str, Any]:
    """A checked manifest with every optional field of an unexpected JSON type left out (read as absent),
    at the top, in each cell entry and in each scenario revision (see `results/shapes.py`)."""
    out, _ = clean(data, MANIFEST_FIELDS)
    out["cells"] = [clean(c, CELL_ENTRY_FIELDS)[0] for c in data["cells"]]
    if "scenario_revisions" in out:
        revisions, dropped = clean_list(out["scenario_revisions"], REVISION_FIELDS, "scenario_revisions",
                                        ("rev",))
        if dropped or not revisions:
            out.pop("scenario_revisions")  # a history that cannot be followed is no history
    return out


def inside_run(rel: object) -> bool:
    """Whether a path a manifest names is a relative path inside the run folder (a string, not blank, not
    absolute, not climbing out with `..`)."""
    return isinstance(rel, str) and bool(rel.strip()) and not Path(rel).is_absolute() and ".." not in Path(rel).parts


def entry_dir(entry: dict[str, Any]) -> str:
    """A manifest cell entry's folder, relative to its run: its `dir` when that is a relative path inside the
    run, else the default `cells/<id>` (a `dir` of another JSON type, absolute or climbing out is ignored)."""
    rel = entry.get("dir")
    if inside_run(rel):
        return rel
    return cell_dir_name(str(entry["id"]))


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The checked manifest of `run_dir`; raises `NotARunError` or `BrokenRunError` (one line, no traceback
    needed by the caller)."""
    path, data = parse_manifest(run_dir)
    problem = check_manifest(data)
    if problem is not None:
        raise BrokenRunError(path, problem)
    return cleaned(data)


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
