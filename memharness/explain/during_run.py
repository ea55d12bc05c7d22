"""The scenario's `explain:` field: explain a call during the normal run of the chosen cells.

The runner calls `prepare` before starting such a cell (it adds the target to the cell's targets and points
the cell's environment at the explainer's config) and `finish` after it ended. These cells' own figures are
measured with the recorders on (memray slows the call down and adds its own memory), which their
explain.md says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from memharness import names
from memharness.core.explainer import ENV
from memharness.explain.rerun import ExplainRequest, write_config

if TYPE_CHECKING:
    from memharness.scenario import Scenario


def request_for(scenario: Scenario, pipeline: str, size: int) -> ExplainRequest | None:
    for spec in getattr(scenario, "explain", None) or []:
        if (not spec.pipelines or pipeline in spec.pipelines) and (not spec.sizes or size in spec.sizes):
            return ExplainRequest(target=spec.target, host=spec.host or not spec.gpu, gpu=spec.gpu,
                                  native=spec.native, top=spec.top)
    return None


def ensure_target(cell_json: Path, target: str) -> None:
    """The explained call must be wrapped: add it to the cell's targets when the scenario did not name it."""
    spec = json.loads(cell_json.read_text(encoding="utf-8"))
    if target not in spec.get("targets", []) and target not in spec.get("default_targets", []):
        spec["targets"] = list(spec.get("targets", [])) + [target]
        cell_json.write_text(json.dumps(spec, indent=2), encoding="utf-8")


def prepare(scenario: Scenario, pipeline: str, size: int, cell_dir: Path, env: dict[str, str]) -> ExplainRequest | None:
    req = request_for(scenario, pipeline, size)
    if req is None:
        return None
    ensure_target(cell_dir / names.CELL_SPEC, req.target)
    (cell_dir / names.EXPLAIN).mkdir(exist_ok=True)
    env[ENV] = str(write_config(cell_dir / names.EXPLAIN, req))
    return req


def finish(cell_dir: Path, req: ExplainRequest) -> None:
    """Write CELL/explain/ from the captures; never fails the run (a problem is printed and recorded)."""
    try:
        from memharness.explain import missing_extra
        from memharness.explain import result as result_mod

        problem = missing_extra(req.gpu, host=req.host)
        if problem:
            raise RuntimeError(problem)
        res = result_mod.collect(cell_dir, req.target, req.top, cell_dir, cell_dir, second_run=False)
        result_mod.write(cell_dir, res)
    except Exception as exc:  # noqa: BLE001 - the cell's own results stay valid
        (cell_dir / names.EXPLAIN).mkdir(exist_ok=True)
        (cell_dir / names.EXPLAIN / names.EXPLAIN_MD).write_text(f"# Explain: `{req.target}`\n\nNot explained: "
                                                         f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        print(f"memharness: explain of {cell_dir.name} failed: {exc}", file=sys.stderr)
