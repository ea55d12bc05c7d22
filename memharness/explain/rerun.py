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

from memharness.core.explainer import ENV
from memharness.errors import MemharnessError


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
    for cand in (run_dir / "cells" / cell_id, run_dir / cell_id):
        if (cand / "cell.json").is_file():
            return cand
    known = sorted(p.name for p in (run_dir / "cells").glob("*") if (p / "cell.json").is_file())
    hint = f"; cells: {', '.join(known)}" if known else ""
    raise ExplainError(f"{run_dir}: no cell {cell_id!r} with a cell.json{hint}")


def scenario_env(run_dir: Path) -> dict[str, str]:
    try:
        manifest = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))
        env = manifest.get("scenario_spec", {}).get("env") or {}
        return {str(k): str(v) for k, v in env.items()}
    except (OSError, ValueError):
        return {}


def write_config(explain_dir: Path, req: ExplainRequest) -> Path:
    explain_dir = explain_dir.resolve()  # read by processes whose working folder is the cell's work/
    capture = explain_dir / "capture"
    if capture.exists():
        shutil.rmtree(capture)
    capture.mkdir(parents=True)
    path = explain_dir / "config.json"
    path.write_text(json.dumps({"target": req.target, "out_dir": str(capture), "host": req.host, "gpu": req.gpu,
                                "native": req.native, "at_entry": req.at_entry}, indent=2), encoding="utf-8")
    return path


def rerun(run_dir: Path, cell_dir: Path, req: ExplainRequest,
          say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the cell again under the explainer; returns facts about the second run."""
    from memharness.core.launch import cell_env, start_cell_process

    spec = json.loads((cell_dir / "cell.json").read_text(encoding="utf-8"))
    if req.target not in spec.get("targets", []) and req.target not in spec.get("default_targets", []):
        spec["targets"] = list(spec.get("targets", [])) + [req.target]  # the explained call must be wrapped
    explain_dir = cell_dir / "explain"
    explain_dir.mkdir(exist_ok=True)
    second = explain_dir / "rerun"
    if second.exists():
        shutil.rmtree(second)
    second.mkdir()
    (second / "cell.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
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
    shutil.rmtree(second / "work", ignore_errors=True)  # the index the pipeline wrote: not needed
    return {"exit_code": rc, "seconds": time.monotonic() - t0, "dir": str(second)}
