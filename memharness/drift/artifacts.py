"""Compare two index folders artifact by artifact (`memharness artifacts diff`).

Pure functions that return a `DiffResult` of `ArtifactRow`s; formatting lives in `drift.report`. This module
finds the folders and files and pairs them up; `drift.leaves` reads a file into named leaves and
`drift.leafdiff` compares two leaves. Files are loaded one pair at a time, so memory stays near the size of
the two loaded artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness import names
from memharness.drift.leafdiff import ArtifactRow, compare_leaf, ignored, one_sided
from memharness.drift.leaves import LoadError, load_leaves
from memharness.errors import MemharnessError

SUPPORTED_SUFFIXES = (".pt", ".npy", ".json")

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


def _load_error_row(rel: str, leaves_a: dict[str, Any], leaves_b: dict[str, Any]) -> ArtifactRow | None:
    """One `error` row for a file that is on both sides but failed to load on one or both, naming the side
    and the error (rather than one "missing" row per leaf of the side that loaded)."""
    if not leaves_a or not leaves_b:
        return None
    errors = {side: next((v for v in leaves.values() if isinstance(v, LoadError)), None)
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
        if ignored(rel, patterns):
            result.ignored.append(rel)
            continue
        leaves_a = dict(load_leaves(rel, files_a[rel])) if rel in files_a else {}
        leaves_b = dict(load_leaves(rel, files_b[rel])) if rel in files_b else {}
        error_row = _load_error_row(rel, leaves_a, leaves_b)
        if error_row is not None:
            result.rows.append(error_row)
            continue
        for name in dict.fromkeys([*leaves_a, *leaves_b]):
            if name != rel and ignored(name, patterns):
                result.ignored.append(name)
                continue
            if name in leaves_a and name in leaves_b:
                row = compare_leaf(name, leaves_a[name], leaves_b[name], rtol, atol, patterns)
            elif name in leaves_a:
                row = one_sided(name, "A", leaves_a[name])
            else:
                row = one_sided(name, "B", leaves_b[name])
            result.rows.append(row)
            result.ignored.extend(row.ignored_keys)
        del leaves_a, leaves_b
    return result
