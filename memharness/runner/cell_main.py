"""One cell, in a fresh interpreter: `python -m memharness.runner.cell_main CELL_DIR`.

Reads `CELL_DIR/cell.json`, wraps the targets, loads the corpus slice, warms the pipeline up and runs it,
each step recorded as a `phase:` call so it shows on the timeline. The supervisor watches from outside
(sampler, guard, timeout) and writes `status.json`; this process only adds `error.json` when the pipeline
raises, `cell_info.json` with the facts the pipeline reported (k-means backend, ...), and `notes.json` when the
pipeline closed its stdout or stderr (what it prints after that is lost; the cell itself is not at fault).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memharness import names
from memharness.core.atomic import write_json

if TYPE_CHECKING:
    from memharness.pipelines.base import CellContext


def read_spec(cell_dir: Path) -> dict[str, Any]:
    """The cell's `cell.json`; its `sys_path` folders (cwd, the scenario's folder) go in front of sys.path so
    `callable` modules import."""
    spec = json.loads((cell_dir / names.CELL_SPEC).read_text(encoding="utf-8"))
    for path in spec.get("sys_path", []):
        if path not in sys.path:
            sys.path.insert(0, path)
    return spec


def build_context(spec: dict[str, Any], workdir: Path) -> CellContext:
    """The pipeline's `CellContext` for a cell spec: its corpus slice read, `workdir` for its files.

    Shared with scripts/bare_cell.py, which runs the same pipeline with no harness around it."""
    from memharness.corpus.reader import read_slice  # the reader alone: no corpus source is loaded here
    from memharness.pipelines.base import CellContext

    size = int(spec["size"])
    ids, texts = read_slice(Path(spec["corpus_file"]), size)
    return CellContext(pipeline=spec["pipeline"], kind=spec["kind"], size=size, ids=ids, texts=texts,
                       options=dict(spec.get("options", {})), model=spec.get("model") or "",
                       device=spec["device"], workdir=workdir)


@contextmanager
def phase(name: str):
    from memharness.core import tracker as tracker_mod  # imported here: scripts/bare_cell.py loads no harness

    frame = tracker_mod.enter(f"phase:{name}")
    try:
        yield
    except BaseException as exc:
        tracker_mod.exit_(frame, f"{type(exc).__name__}: {exc}"[:500])
        raise
    tracker_mod.exit_(frame, None)


def _probe(device: str):
    if device != "cuda":
        return None
    from memharness.core.gpuprobe import make_probe

    return make_probe()


def _measure_imports(cell_dir: Path, spec: dict) -> None:
    """`imports.json`: RSS before/after importing each package the pipeline uses (before the session)."""
    from memharness.core.imports import measure, steps_for
    from memharness.pipelines import registry

    try:
        pipeline = registry.get(spec["kind"])
        options = dict(spec.get("options", {}))
        steps = steps_for(list(pipeline.packages), pipeline.import_modules(options))
    except Exception as exc:  # noqa: BLE001 - never fails the cell; the pipeline reports the real error
        write_json(cell_dir / names.IMPORTS, {"error": f"{type(exc).__name__}: {exc}"[:500]})
        return
    write_json(cell_dir / names.IMPORTS, measure(steps))


def run_cell(cell_dir: Path) -> int:
    from memharness.core.explainer import start_at_entry

    start_at_entry()  # `memharness explain --at-entry`: memray from the cell's start (a no-op otherwise)
    spec = read_spec(cell_dir)
    # The harness's own imports come first, so neither imports.json's steps nor the load_corpus phase count
    # them. numpy among them (the harness's readers use it), as before the corpus package loaded lazily:
    # otherwise whichever pipeline module imports numpy first is charged with numpy's ~14 MiB, and two
    # variants whose modules import it in a different order show a move that is not theirs.
    import numpy  # noqa: F401

    import memharness.corpus.reader  # noqa: F401
    from memharness.core.session import Session
    from memharness.pipelines import registry

    workdir = cell_dir / names.WORK
    workdir.mkdir(parents=True, exist_ok=True)
    _measure_imports(cell_dir, spec)
    session = Session(cell_dir, spec["targets"], optional_targets=spec["default_targets"],
                      sample_interval=None, probe=_probe(spec["device"]))
    line_profiles = None
    ctx = None
    try:
        session.start()
        if spec.get("line_profile"):
            from memharness.core.lineprof import LineProfiles

            line_profiles = LineProfiles(spec["line_profile"])  # wraps on construction
        pipeline = registry.get(spec["kind"])
        with phase("load_corpus"):
            ctx = build_context(spec, workdir)
        with phase("prepare"):
            pipeline.prepare(ctx)
        with phase("run"):
            pipeline.run(ctx)
        return 0
    except Exception as exc:  # noqa: BLE001 - any pipeline failure becomes a recorded cause
        write_json(cell_dir / names.ERROR, {"type": type(exc).__name__, "message": str(exc)[:2000],
                                             "traceback": traceback.format_exc()[-20000:]})
        try:
            traceback.print_exc()
        except (OSError, ValueError):  # the pipeline closed stderr: error.json holds the traceback
            pass
        return 1
    finally:
        if ctx is not None:
            write_json(cell_dir / names.CELL_INFO, ctx.info)
        if line_profiles is not None:
            line_profiles.uninstall()
            line_profiles.write(cell_dir / names.LINEPROF)
        session.stop()
        _record_modules(cell_dir)


def _record_modules(cell_dir: Path) -> None:
    """`modules.json`: the distributions (and versions) whose modules this process imported, after the
    measurement ended: the environment a report and `compare` list is what the cell used, not a fixed list."""
    from importlib import metadata

    try:
        provided = metadata.packages_distributions()
        tops = {m.split(".")[0] for m in list(sys.modules)}
        found = {}
        for dist in sorted({d for t in tops if not t.startswith("_") for d in provided.get(t, [])}):
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        write_json(cell_dir / names.MODULES, {"distributions": found})
    except Exception as exc:  # noqa: BLE001 - never fails a cell that ran
        write_json(cell_dir / names.MODULES, {"error": f"{type(exc).__name__}: {exc}"[:300]})


STDIO = ((1, "stdout"), (2, "stderr"))


def _stdio_files() -> dict[int, tuple[int, int] | None]:
    """The file behind fds 1 and 2 (device, inode), None for a closed one."""
    out: dict[int, tuple[int, int] | None] = {}
    for fd, _ in STDIO:
        try:
            st = os.fstat(fd)
            out[fd] = (st.st_dev, st.st_ino)
        except OSError:
            out[fd] = None
    return out


def _closed_stdio(at_start: dict[int, tuple[int, int] | None]) -> list[str]:
    """Which of stdout and stderr the pipeline closed (the Python stream, or the fd, which may have been
    reused for another file since)."""
    now = _stdio_files()
    streams = {1: sys.stdout, 2: sys.stderr}
    return [name for fd, name in STDIO
            if streams[fd] is None or streams[fd].closed or now[fd] is None or now[fd] != at_start[fd]]


def _note_closed_stdio(cell_dir: Path, closed: list[str]) -> None:
    """Say that the pipeline closed stdout/stderr where the supervisor (notes.json) and a reader of stderr.log
    will see it: the cell's last words cannot go through the closed streams."""
    write_json(cell_dir / names.CELL_NOTES, {"stdio_closed": closed})
    try:
        with open(cell_dir / names.STDERR, "a", encoding="utf-8") as fh:
            fh.write(f"memharness: the pipeline closed its {' and '.join(closed)}; what it printed after that "
                     f"is lost\n")
    except OSError:
        pass


def main() -> int:
    cell_dir = Path(sys.argv[1]).resolve()
    (cell_dir / names.WORK).mkdir(parents=True, exist_ok=True)
    os.chdir(cell_dir / names.WORK)  # libraries that write relative to the cwd write into the cell
    at_start = _stdio_files()
    code = run_cell(cell_dir)
    closed = _closed_stdio(at_start)
    if closed:
        _note_closed_stdio(cell_dir, closed)
    for fd, name in STDIO:
        if name not in closed:  # a closed stream's buffer has nowhere to go (its fd may be another file now)
            try:
                (sys.stdout if fd == 1 else sys.stderr).flush()
            except (OSError, ValueError):
                pass
    # Leave without running library atexit hooks that may hang (e.g. a stuck worker pool).
    os._exit(code)


if __name__ == "__main__":
    main()
