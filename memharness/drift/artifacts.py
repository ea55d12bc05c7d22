"""Compare two index folders artifact by artifact (`memharness artifacts diff`).

Pure functions that return `ArtifactRow`s; formatting lives in `drift.report`. Handles `.pt` files
(tensors, numbers and nested tuples/lists/dicts of them, one row per leaf: `buckets.pt[0]`, `x.pt["key"]`),
`.npy` arrays and `.json` files (lists of numbers are compared like tensors, anything else structurally,
numbers within tolerance). Large tensors are compared in chunks so memory stays near the size of the
two loaded artifacts.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memharness import names
from memharness.errors import MemharnessError
from memharness.numbers import is_number

SUPPORTED_SUFFIXES = (".pt", ".npy", ".json")
CHUNK = 1 << 22  # elements compared at a time

# ColBERT's plan.json / metadata.json carry its RunConfig, whose location and timestamp fields always differ
# between two runs (absolute folders, a timestamped run name). They say where an index was written, not
# what it holds, so they are left out unless --no-default-ignores is given. `config.index_name` is a name
# memharness itself gives the index (the pipeline variant's name), so two variants of one scenario differ in
# it by construction.
DEFAULT_IGNORES: tuple[str, ...] = (
    "*.json:config.root",
    "*.json:config.experiment",
    "*.json:config.name",
    "*.json:config.index_root",
    "*.json:config.index_path",
    "*.json:config.index_name",
)


class ArtifactError(MemharnessError):
    """A problem the user can fix (a folder that does not exist, ...)."""


@dataclass
class ArtifactRow:
    """One compared leaf: a tensor, a number, a JSON file."""

    artifact: str
    present: str  # "both", "A" or "B"
    kind: str = "tensor"  # tensor | scalar | json | value | error
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    shape_match: bool | None = None
    dtype_match: bool | None = None
    allclose: bool | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    frac_equal: float | None = None
    frac_changed: float | None = None  # integer and bool tensors only
    numel: int | None = None
    note: str = ""
    ignored_keys: list[str] = field(default_factory=list)  # JSON key paths left out by --ignore

    @property
    def ok(self) -> bool:
        return bool(self.present == "both" and self.shape_match and self.dtype_match and self.allclose)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class DiffResult:
    dir_a: Path
    dir_b: Path
    index_a: Path
    index_b: Path
    rtol: float
    atol: float
    rows: list[ArtifactRow] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # files of other types
    ignored: list[str] = field(default_factory=list)  # artifacts / JSON keys left out by --ignore

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {
            "rows": len(self.rows),
            "allclose": sum(r.ok for r in self.rows),
            "differ": sum(r.present == "both" and not r.ok for r in self.rows),
            "only_a": sum(r.present == "A" for r in self.rows),
            "only_b": sum(r.present == "B" for r in self.rows),
            "load_errors": sum(r.kind == "error" for r in self.rows),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dir_a": str(self.dir_a),
            "dir_b": str(self.dir_b),
            "index_a": str(self.index_a),
            "index_b": str(self.index_b),
            "rtol": self.rtol,
            "atol": self.atol,
            "ok": self.ok,
            "summary": self.counts(),
            "rows": [r.to_dict() for r in self.rows],
            "not_compared": self.not_compared,
            "ignored": self.ignored,
        }


# ---------------------------------------------------------------- folders


def resolve_index_dir(path: Path) -> Path:
    """The folder to compare: for a memharness cell folder (it has `work/`), the one folder under it that
    holds `plan.json` or `metadata.json` (a ColBERT index); otherwise `path` itself."""
    if not path.is_dir():
        raise ArtifactError(f"not a folder: {path}")
    if not (path / names.WORK).is_dir():
        return path
    found = {p.parent for name in ("plan.json", "metadata.json") for p in path.rglob(name)}
    return found.pop() if len(found) == 1 else path


def collect_files(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Supported files under `root` by relative path (posix), and the relative paths of the others."""
    supported: dict[str, Path] = {}
    others: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.suffix in SUPPORTED_SUFFIXES:
                supported[rel] = p
            else:
                others.append(rel)
    return supported, others


# ---------------------------------------------------------------- loading


def _numeric_list(x: Any) -> bool:
    """A non-empty flat list of numbers (or of bools), compared as one tensor rather than per element."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    return all(is_number(v) for v in x) or all(isinstance(v, bool) for v in x)


def _is_tensor_like(x: Any) -> bool:
    import numpy as np
    import torch

    return torch.is_tensor(x) or (isinstance(x, np.ndarray) and x.dtype != object)


def flatten(obj: Any, prefix: str) -> list[tuple[str, Any]]:
    """(name, leaf) pairs: tensors, arrays, numbers, flat numeric lists; other objects compared by value."""
    if _is_tensor_like(obj) or is_number(obj) or isinstance(obj, bool) or _numeric_list(obj):
        return [(prefix, obj)]
    if isinstance(obj, (list, tuple)) and obj:
        return [pair for i, v in enumerate(obj) for pair in flatten(v, f"{prefix}[{i}]")]
    if isinstance(obj, dict) and obj:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            key = f'"{k}"' if isinstance(k, str) else repr(k)
            out.extend(flatten(v, f"{prefix}[{key}]"))
        return out
    return [(prefix, obj)]


def load_torch(path: Path) -> Any:
    """torch.load onto the CPU. Index files are pickles of tuples and dicts, hence weights_only=False:
    only compare folders you trust. Memory-maps when the file format allows it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=False)


def load_leaves(rel: str, path: Path) -> list[tuple[str, Any]]:
    """The leaves of one file; a file that cannot be read gives one `_LoadError` leaf."""
    import numpy as np

    try:
        if path.suffix == ".pt":
            return flatten(load_torch(path), rel)
        if path.suffix == ".npy":
            return [(rel, np.load(path, allow_pickle=False))]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return [(rel, data if _numeric_list(data) else _Json(data))]
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes a row, not a crash
        return [(rel, _LoadError(f"{type(exc).__name__}: {exc}"))]


@dataclass
class _Json:
    data: Any


@dataclass
class _LoadError:
    message: str


# ---------------------------------------------------------------- comparing


def _dtype_name(x: Any) -> str:
    import numpy as np
    import torch

    if torch.is_tensor(x):
        return str(x.dtype).removeprefix("torch.")
    if isinstance(x, np.ndarray):
        return str(x.dtype)
    if isinstance(x, (list, tuple)):
        return f"list[{type(x[0]).__name__}]"
    return type(x).__name__


def _as_tensor(x: Any):
    import numpy as np
    import torch

    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.tensor(x)


def _is_integral(t) -> bool:
    return not (t.is_floating_point() or t.is_complex())


def tensor_stats(a, b, rtol: float, atol: float) -> dict[str, Any]:
    """allclose / max and mean abs diff / fraction equal of two same-shape tensors, in float64 (int64 for
    two integer tensors), chunk by chunk. NaN == NaN counts as equal; a NaN on one side only is an
    infinite difference."""
    import torch

    fa, fb = a.reshape(-1), b.reshape(-1)
    n = fa.numel()
    integral = _is_integral(a) and _is_integral(b)
    max_d, sum_d, n_eq, close = 0.0, 0.0, 0, True
    for s in range(0, n, CHUNK):
        x, y = fa[s : s + CHUNK], fb[s : s + CHUNK]
        if integral:
            x, y = x.to(torch.int64), y.to(torch.int64)
            eq = x == y
            d = (x - y).abs().to(torch.float64)
        else:
            x, y = x.to(torch.float64), y.to(torch.float64)
            both_nan = torch.isnan(x) & torch.isnan(y)
            eq = (x == y) | both_nan
            d = (x - y).abs()
            d = torch.where(eq, torch.zeros_like(d), d)
            d = torch.nan_to_num(d, nan=math.inf, posinf=math.inf)
        n_eq += int(eq.sum())
        if d.numel():
            max_d = max(max_d, float(d.max()))
            sum_d += float(d.sum())
        close = close and bool(torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))
    return {
        "allclose": close,
        "max_abs_diff": max_d if n else None,
        "mean_abs_diff": sum_d / n if n else None,
        "frac_equal": n_eq / n if n else None,
        "frac_changed": ((n - n_eq) / n if n else None) if integral else None,
        "numel": n,
    }


def compare_leaf(name: str, a: Any, b: Any, rtol: float, atol: float, ignore: list[str]) -> ArtifactRow:
    """Compare one leaf present on both sides."""
    if isinstance(a, _LoadError) or isinstance(b, _LoadError):
        msgs = [f"{side}: {x.message}" for side, x in (("A", a), ("B", b)) if isinstance(x, _LoadError)]
        return ArtifactRow(name, "both", kind="error", allclose=False, note="; ".join(msgs))
    if isinstance(a, _Json) and isinstance(b, _Json):
        return compare_json(name, a.data, b.data, rtol, atol, ignore)
    numeric = [_is_tensor_like(x) or is_number(x) or isinstance(x, bool) or _numeric_list(x) for x in (a, b)]
    if not all(numeric):
        same = type(a) is type(b) and a == b
        return ArtifactRow(
            name,
            "both",
            kind="value",
            dtype_a=_dtype_name(a),
            dtype_b=_dtype_name(b),
            shape_match=True,
            dtype_match=type(a) is type(b),
            allclose=same,
            frac_equal=1.0 if same else 0.0,
            note="" if same else f"{_short(a)} != {_short(b)}",
        )
    ta, tb = _as_tensor(a), _as_tensor(b)
    row = ArtifactRow(
        name,
        "both",
        kind="tensor" if ta.dim() else "scalar",
        shape_a=list(ta.shape),
        shape_b=list(tb.shape),
        dtype_a=_dtype_name(a),
        dtype_b=_dtype_name(b),
    )
    row.shape_match = row.shape_a == row.shape_b
    row.dtype_match = row.dtype_a == row.dtype_b
    if not row.shape_match:
        row.allclose = False
        row.note = f"shape {tuple(row.shape_a)} vs {tuple(row.shape_b)}"
        return row
    for k, v in tensor_stats(ta, tb, rtol, atol).items():
        setattr(row, k, v)
    if not row.dtype_match:
        row.note = f"dtype {row.dtype_a} vs {row.dtype_b}"
    return row


def _short(x: Any, limit: int = 40) -> str:
    s = json.dumps(x) if isinstance(x, (str, int, float, bool, type(None), list, dict)) else repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def json_leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """Key path -> leaf (`config.nbits`, `chunks[2].num_passages`); empty containers are leaves."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(json_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data:
        out = {}
        for i, v in enumerate(data):
            out.update(json_leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix or "$": data}


def compare_json(name: str, a: Any, b: Any, rtol: float, atol: float, ignore: list[str]) -> ArtifactRow:
    """Structural comparison: same key paths, same kinds of values, strings/bools equal, numbers within
    `atol + rtol * |b|`. The note names the first differing key paths."""
    la, lb = json_leaves(a), json_leaves(b)
    skipped = {k for k in set(la) | set(lb) if _ignored(f"{name}:{k}", ignore)}
    keys = [k for k in dict.fromkeys([*la, *lb]) if k not in skipped]
    diffs: list[str] = []
    abs_diffs: list[float] = []
    n_eq = 0
    shape_match = dtype_match = True
    for k in keys:
        if k not in la or k not in lb:
            shape_match = False
            diffs.append(f"{k}: only in {'A' if k in la else 'B'}")
            continue
        x, y = la[k], lb[k]
        if is_number(x) and is_number(y):
            d = abs(float(x) - float(y))
            abs_diffs.append(d)
            n_eq += x == y
            if not d <= atol + rtol * abs(float(y)):
                diffs.append(f"{k}: {_short(x)} -> {_short(y)}")
            continue
        if type(x) is not type(y):
            dtype_match = False
        if x == y and type(x) is type(y):
            n_eq += 1
        else:
            diffs.append(f"{k}: {_short(x)} -> {_short(y)}")
    note = "; ".join(diffs[:3]) + (f"; ... {len(diffs) - 3} more" if len(diffs) > 3 else "")
    if skipped:
        note = (note + "; " if note else "") + f"{len(skipped)} key(s) ignored"
    return ArtifactRow(
        name,
        "both",
        kind="json",
        dtype_a="json",
        dtype_b="json",
        shape_match=shape_match,
        dtype_match=dtype_match,
        allclose=not diffs,
        max_abs_diff=max(abs_diffs) if abs_diffs else None,
        mean_abs_diff=sum(abs_diffs) / len(abs_diffs) if abs_diffs else None,
        frac_equal=n_eq / len(keys) if keys else 1.0,
        numel=len(keys),
        note=note,
        ignored_keys=sorted(f"{name}:{k}" for k in skipped),
    )


def _ignored(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _one_sided(name: str, side: str, value: Any) -> ArtifactRow:
    row = ArtifactRow(name, side, allclose=False, note=f"missing in {'B' if side == 'A' else 'A'}")
    if not isinstance(value, (_LoadError, _Json)) and (_is_tensor_like(value) or _numeric_list(value)):
        t = _as_tensor(value)
        shape, dtype = list(t.shape), _dtype_name(value)
        row.shape_a, row.dtype_a = (shape, dtype) if side == "A" else (None, None)
        row.shape_b, row.dtype_b = (shape, dtype) if side == "B" else (None, None)
    return row


def _load_error_row(rel: str, leaves_a: dict[str, Any], leaves_b: dict[str, Any]) -> ArtifactRow | None:
    """One `error` row for a file that is on both sides but failed to load on one or both, naming the side
    and the error (rather than one "missing" row per leaf of the side that loaded)."""
    if not leaves_a or not leaves_b:
        return None
    errors = {side: next((v for v in leaves.values() if isinstance(v, _LoadError)), None)
              for side, leaves in (("A", leaves_a), ("B", leaves_b))}
    if not any(errors.values()):
        return None
    note = "; ".join(f"{side}: cannot load: {e.message}" for side, e in errors.items() if e is not None)
    return ArtifactRow(rel, "both", kind="error", allclose=False, note=note)


def check_has_artifacts(label: str, folder: Path, index_dir: Path, files: dict[str, Path]) -> None:
    """Refuse a side with no artifact at all: an empty or wrong folder must not compare as identical."""
    if files:
        return
    where = f"{folder}" if index_dir == folder else f"{folder} (index folder {index_dir})"
    kinds = ", ".join(f"*{x}" for x in SUPPORTED_SUFFIXES)
    raise ArtifactError(f"no index artifacts found in {label} {where}: looked for {kinds} files in it and "
                        f"below it (a ColBERT index folder, or a memharness cell folder with the index under work/)")


def diff_dirs(
    dir_a: Path,
    dir_b: Path,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    ignore: list[str] | None = None,
) -> DiffResult:
    """Compare every supported artifact under two folders (or the index folders inside two cell folders)."""
    patterns = list(ignore or [])
    index_a, index_b = resolve_index_dir(Path(dir_a)), resolve_index_dir(Path(dir_b))
    files_a, others_a = collect_files(index_a)
    files_b, others_b = collect_files(index_b)
    check_has_artifacts("A", Path(dir_a), index_a, files_a)
    check_has_artifacts("B", Path(dir_b), index_b, files_b)
    result = DiffResult(Path(dir_a), Path(dir_b), index_a, index_b, rtol, atol)
    result.not_compared = sorted(set(others_a) | set(others_b))
    for rel in sorted(set(files_a) | set(files_b)):
        if _ignored(rel, patterns):
            result.ignored.append(rel)
            continue
        leaves_a = dict(load_leaves(rel, files_a[rel])) if rel in files_a else {}
        leaves_b = dict(load_leaves(rel, files_b[rel])) if rel in files_b else {}
        error_row = _load_error_row(rel, leaves_a, leaves_b)
        if error_row is not None:
            result.rows.append(error_row)
            continue
        for name in dict.fromkeys([*leaves_a, *leaves_b]):
            if name != rel and _ignored(name, patterns):
                result.ignored.append(name)
                continue
            if name in leaves_a and name in leaves_b:
                row = compare_leaf(name, leaves_a[name], leaves_b[name], rtol, atol, patterns)
            elif name in leaves_a:
                row = _one_sided(name, "A", leaves_a[name])
            else:
                row = _one_sided(name, "B", leaves_b[name])
            result.rows.append(row)
            result.ignored.extend(row.ignored_keys)
        del leaves_a, leaves_b
    return result
