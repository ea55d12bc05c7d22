"""Run one cell of a run folder again with the explainer on, and collect what it recorded.

The second run uses the cell's own spec (`cell.json`: pipeline, options, corpus slice, model, interpreter,
targets) in `CELL/explain/rerun/`, the scenario's environment from the run manifest, and
`MEMHARNESS_EXPLAIN` pointing at `CELL/explain/config.json`; its own call records (`rerun/calls/`) give the
harness's figures for the same call under the explainer, to state the overhead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import write_json
from memharness.core.explainer import ENV
from memharness.errors import MemharnessError
from memharness.results import BrokenRunError
from memharness.results.run import CellFolder, Run


class ExplainError(MemharnessError):
    """Bad input or a second run that could not explain the call; the message is one line."""


@dataclass
class ExplainRequest:
    target: str
    host: bool = True
    gpu: bool = False
    native: bool = False
    top: int = 10
    retained: bool = False  # analysis only: the capture of the call already holds what is alive at exit
    at_entry: bool = False  # memray from the cell's start to the target's first entry
    frames: str = "user"  # analysis only: frames.USER or frames.ALL


def find_cell(run_dir: Path, cell_id: str) -> Path:
    """The cell's folder, absolute: the cell process runs in its work folder, so every path it reads must be."""
    run_dir = Path(run_dir).resolve()
    try:
        run: Run | None = Run.open(run_dir)
    except BrokenRunError:
        run = None  # a folder of cell folders without a readable manifest: look for the cell by name
    cells = run.cells if run is not None else [CellFolder.at(p) for p in sorted((run_dir / names.CELLS).glob("*"))]
    for cand in [c for c in cells if c.id == cell_id] + [CellFolder.at(run_dir / cell_id)]:
        if cand.cell_spec:
            return cand.dir.resolve()
    known = sorted(c.id for c in cells if c.cell_spec)
    hint = f"; cells: {', '.join(known)}" if known else ""
    raise ExplainError(f"{run_dir}: no cell {cell_id!r} with a {names.CELL_SPEC}{hint}")


def scenario_env(run_dir: Path) -> dict[str, str]:
    """The scenario's `env` the run recorded, for the second run (empty when the manifest is unreadable)."""
    try:
        env = Run.open(run_dir).scenario_spec.get("env") or {}
    except BrokenRunError:
        return {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


def write_config(explain_dir: Path, req: ExplainRequest) -> Path:
    explain_dir = explain_dir.resolve()  # read by processes whose working folder is the cell's work/
    capture = explain_dir / names.EXPLAIN_CAPTURE
    if capture.exists():
        shutil.rmtree(capture)
    capture.mkdir(parents=True)
    path = explain_dir / names.EXPLAIN_CONFIG
    path.write_text(json.dumps({"target": req.target, "out_dir": str(capture), "host": req.host, "gpu": req.gpu,
                                "native": req.native, "at_entry": req.at_entry}, indent=2), encoding="utf-8")
    return path


def rerun(run_dir: Path, cell_dir: Path, req: ExplainRequest,
          say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the cell again under the explainer; returns facts about the second run."""
    from memharness.core.launch import cell_env, start_cell_process

    spec = dict(CellFolder.at(cell_dir).cell_spec)
    if req.target not in spec.get("targets", []) and req.target not in spec.get("default_targets", []):
        spec["targets"] = list(spec.get("targets", [])) + [req.target]  # the explained call must be wrapped
    explain_dir = cell_dir / names.EXPLAIN
    explain_dir.mkdir(exist_ok=True)
    second = explain_dir / names.EXPLAIN_RERUN
    if second.exists():
        shutil.rmtree(second)
    second.mkdir()
    write_json(second / names.CELL_SPEC, spec)
    env = cell_env(scenario_env(run_dir), spec["python"], spec.get("device", "cpu"))  # as the measured cell had
    env[ENV] = str(write_config(explain_dir, req))
    say(f"explain: running {cell_dir.name} again with the explainer on {req.target}")
    t0 = time.monotonic()
    proc = start_cell_process(spec["python"], second, env)
    try:
        while True:
            try:
                rc = proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                say(f"explain: second run at {time.monotonic() - t0:.0f} s")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    shutil.rmtree(second / names.WORK, ignore_errors=True)  # the index the pipeline wrote: not needed
    return {"exit_code": rc, "seconds": time.monotonic() - t0, "dir": str(second)}
