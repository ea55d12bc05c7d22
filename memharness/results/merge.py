"""Merging run folders of one scenario into one, e.g. the sizes of one study run on two GPU machines.

`merge(runs, into)` writes a new run folder: each cell's folder copied from the last run that holds that cell
id (without its `work/` index artifacts) with the earlier attempts its manifest entry lists, and a manifest
that keeps the first run's scenario, lists every cell (by size, repeat, pipeline) and records where each came
from: the run's `merged_from` lists every run folder merged into it, those of earlier merges first (a sample
merged session by session keeps its whole lineage), and each cell's `from_run` names the run it ran in (kept
through later merges; absent for cells of a merge made before this was recorded).
`memharness report INTO` renders them together.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memharness import names
from memharness.core.atomic import write_json
from memharness.errors import MemharnessError
from memharness.numeric import is_int
from memharness.results.manifest import entry_dir, inside_run

if TYPE_CHECKING:
    from memharness.results.run import Run


class MergeError(MemharnessError):
    """Runs that cannot be merged (other scenarios), or an output folder that is in the way or cannot be
    written."""


def _check(runs: list[Run], into: Path) -> None:
    if not runs:
        raise MergeError("nothing to merge: give one or more run folders")
    scenarios = {r.scenario for r in runs}
    if len(scenarios) != 1:
        which = ", ".join(f"{r.dir} ({r.scenario!r})" for r in runs)
        raise MergeError(f"every run folder must be a run of the same scenario: {which}")
    for r in runs:
        if into.resolve() == r.dir.resolve() or into.resolve() in r.dir.resolve().parents:
            raise MergeError(f"--output {into} holds the run {r.dir}; merge into a new folder")
    try:
        in_the_way = into.exists() and (not into.is_dir() or any(into.iterdir()))
    except OSError as exc:
        raise MergeError(f"--output {into}: cannot read it ({exc.strerror or exc})") from None
    if in_the_way:
        raise MergeError(f"--output {into} exists and is not an empty folder; merge writes a new run folder")


def _scenario_files(run: Run) -> list[str]:
    """The scenario files the run's manifest refers to (scenario.yaml and any revision)."""
    files = [names.SCENARIO]
    for rev in run.manifest.get("scenario_revisions") or []:
        if isinstance(rev, dict) and isinstance(rev.get("file"), str) and rev["file"] not in files:
            files.append(rev["file"])
    return files


def merge(runs: list[Run], into: Path | str) -> Path:
    """Merge `runs` (of one scenario) into the new run folder `into` and return its path. Raises
    `MergeError` for runs of other scenarios or an `into` that exists and is not empty."""
    into = Path(into)
    _check(runs, into)
    entries: dict[str, tuple[Run, dict[str, Any]]] = {}
    for run in runs:
        for entry in run.manifest["cells"]:
            entries[entry["id"]] = (run, entry)  # a later run wins
    made = not into.exists()
    try:
        _write(runs, entries, into)
    except OSError as exc:  # a read-only or pseudo file system, an immutable parent, a full disk
        if made:
            shutil.rmtree(into, ignore_errors=True)  # leave no half-merged run folder
        where, why = exc.filename or into, exc.strerror or str(exc)
        if isinstance(exc, shutil.Error) and exc.args and exc.args[0]:  # copytree's list of (src, dst, why)
            _, where, why = exc.args[0][0]
        raise MergeError(f"--output {into}: cannot write {where} ({why}); choose a writable --output") from None
    return into


def _write(runs: list[Run], entries: dict[str, tuple[Run, dict[str, Any]]], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for run, entry in entries.values():
        rel = entry_dir(entry)
        source = run.dir / rel
        if source.is_dir():  # a pending cell may have no folder yet
            shutil.copytree(source, into / rel, ignore=shutil.ignore_patterns(names.WORK))
        for aside in _attempts(entry):  # the earlier attempts the entry lists (a killed try, a timeout)
            if (run.dir / aside).is_dir():
                shutil.copytree(run.dir / aside, into / aside, ignore=shutil.ignore_patterns(names.WORK))
    first = runs[0]
    for name in _scenario_files(first):
        if (first.dir / name).is_file():
            shutil.copy(first.dir / name, into / name)
    manifest = dict(first.manifest)
    manifest["run_id"] = into.name
    manifest["merged_from"] = _lineage(runs)
    manifest["cells"] = sorted((_with_origin(run, e) for run, e in entries.values()), key=_cell_order)
    write_json(into / names.MANIFEST, manifest)


def _lineage(runs: list[Run]) -> list[str]:
    """Every run folder merged so far: each input's own `merged_from` (an earlier merge), then the input."""
    seen: list[str] = []
    for run in runs:
        earlier = run.manifest.get("merged_from")
        for source in [*(earlier if isinstance(earlier, list) else []), str(run.dir)]:
            if isinstance(source, str) and source not in seen:
                seen.append(source)
    return seen


def _with_origin(run: Run, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with `from_run`: kept from an earlier merge, else the run it is read from unless that run is
    itself a merge (then where the cell ran is not known)."""
    if isinstance(entry.get("from_run"), str) or "merged_from" in run.manifest:
        return entry
    run_id = run.manifest.get("run_id")
    return {**entry, "from_run": run_id if isinstance(run_id, str) else run.dir.name}


def _attempts(entry: dict[str, Any]) -> list[str]:
    """The entry's earlier attempts (`attempts/<cell-id>/<n>`), relative paths inside the run folder only."""
    listed = entry.get("attempts")
    return [a for a in (listed if isinstance(listed, list) else []) if inside_run(a)]


def _cell_order(entry: dict[str, Any]) -> tuple[int, int, str]:
    repeat = entry.get("repeat", 0)
    return (entry["size"], repeat if is_int(repeat) else 0,
            str(entry.get("pipeline", "")))
