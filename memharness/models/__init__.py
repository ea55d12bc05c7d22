"""Model resolution: a scenario's `model` becomes a hub id or a local checkpoint path.

- a hub id (`answerdotai/answerai-colbert-small-v1`) is returned unchanged; the libraries load it;
- an existing local path is returned absolute;
- `builtin:NAME` is built once, offline, into `<cache_dir>/models/<NAME>-<recipe hash>/` and reused.

Builds are atomic: the checkpoint is written to a temporary sibling folder and renamed into place, so a
reader never sees half a checkpoint and two concurrent builders both end with the same folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from memharness.core.atomic import write_json
from memharness.errors import MemharnessError
from memharness.models.recipes import BUILTINS, Recipe

PREFIX = "builtin:"
MARKER = "memharness-model.json"

__all__ = ["BUILTINS", "MARKER", "ModelSpecError", "Recipe", "builtin_path", "is_builtin", "resolve"]


class ModelSpecError(MemharnessError, ValueError):
    """The model spec names no builtin, no existing path and does not look like a hub id."""


def is_builtin(spec: str) -> bool:
    return spec.startswith(PREFIX)


def _recipe(spec: str) -> Recipe:
    name = spec[len(PREFIX):]
    try:
        return BUILTINS[name]
    except KeyError:
        known = ", ".join(PREFIX + n for n in BUILTINS)
        raise ModelSpecError(f"unknown builtin model {spec!r}; known: {known}") from None


def builtin_path(spec: str, cache_dir: Path) -> Path:
    """Where `builtin:NAME` lives (or will live) under `cache_dir`."""
    from memharness.models.build import source_facts

    recipe = _recipe(spec)
    return Path(cache_dir).resolve() / "models" / f"{recipe.name}-{recipe.digest(source_facts(recipe))}"


def _is_complete(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / "artifact.metadata").is_file()


def _make_readable(folder: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; a shared model cache should be readable by all."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _build(spec: str, final: Path) -> None:
    from memharness.models.build import build_checkpoint, source_facts

    recipe = _recipe(spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        t0 = time.monotonic()
        build_checkpoint(recipe, tmp, final_path=final)
        write_json(tmp / MARKER, {
            "spec": spec,
            **recipe.key(source_facts(recipe)),
            "description": recipe.description,
            "build_seconds": round(time.monotonic() - t0, 3),
        })
        _make_readable(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Someone else renamed a complete build into place first: keep theirs.
            if not _is_complete(final):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve(spec: str, cache_dir: Path) -> str:
    """Return a hub id or an absolute local path for `spec`, building `builtin:` checkpoints once."""
    if is_builtin(spec):
        final = builtin_path(spec, cache_dir)
        if not _is_complete(final):
            _build(spec, final)
        return str(final)
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not spec.strip():
        raise ModelSpecError(f"model {spec!r} is neither an existing path nor a hub id (owner/name)")
    return spec
