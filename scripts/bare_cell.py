"""Run one cell's pipeline with no harness at all (no wrapping, no tracker, no sampler), for overhead
comparisons: `python scripts/bare_cell.py CELL_DIR WORKDIR`. Prints the wall time of the whole process
work (corpus read, prepare, run) as JSON on the last line.

The cell spec and the pipeline's context come from the cell's own builders (`runner/cell_main.py` `read_spec`,
`build_context`), so the bare baseline runs exactly what a measured cell runs; nothing else of the cell
(session, tracker, phases) is imported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    t0 = time.monotonic()
    cell_dir, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    from memharness.pipelines import registry
    from memharness.runner.cell_main import build_context, read_spec

    spec = read_spec(cell_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline = registry.get(spec["kind"])
    ctx = build_context(spec, workdir)
    pipeline.prepare(ctx)
    t_run = time.monotonic()
    pipeline.run(ctx)
    t1 = time.monotonic()
    print(json.dumps({"wall_seconds": t1 - t0, "run_seconds": t1 - t_run}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
