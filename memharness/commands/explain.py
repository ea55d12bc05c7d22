"""`memharness explain RUN_DIR CELL_ID`: which allocation sites hold a call's peak, from a second run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness explain"


def explain(
    run_dir: Annotated[Path, typer.Argument(help="A run folder: results/<scenario>/<run-id>.")],
    cell_id: Annotated[str, typer.Argument(help="A cell of that run, e.g. ragatouille-nofaiss__400__r0.")],
    target: Annotated[str | None, typer.Option("--target", help="Dotted path of the call to explain "
                                               "(default: the innermost wrapped call open at the run-phase "
                                               "peak).")] = None,
    host: Annotated[bool, typer.Option("--host", help="Host memory (memray); the default when --gpu is "
                                       "absent.")] = False,
    gpu: Annotated[bool, typer.Option("--gpu", help="CUDA memory (torch's allocator history).")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="How many allocation sites to list.")] = 10,
    native: Annotated[bool, typer.Option("--native", help="memray native (C/C++) stacks too; slower.")] = False,
) -> None:
    """Run one cell again (same spec, corpus slice and interpreter) with memray and/or torch's allocator
    history on only while TARGET runs, in whichever process runs it; write the top allocation sites at
    the call's peak to CELL/explain/ (explain.md, explain.json, flame graph, GPU snapshot)."""
    from memharness.explain import missing_extra

    problem = missing_extra(gpu)
    if problem:
        raise MemharnessError(problem)
    from memharness.explain import result as result_mod
    from memharness.explain.peakcall import default_target
    from memharness.explain.rerun import ExplainError, ExplainRequest, find_cell, rerun

    cell_dir = find_cell(run_dir, cell_id)
    name = target or default_target(run_dir, cell_id, cell_dir)
    if not name:
        raise ExplainError(f"{cell_dir}: no wrapped call recorded; name one with --target")
    if target is None:
        typer.echo(f"explain: target {name} (the innermost call open at the run-phase peak)")
    req = ExplainRequest(target=name, host=host or not gpu, gpu=gpu, native=native, top=top)
    second = rerun(run_dir, cell_dir, req, say=typer.echo)
    res = result_mod.collect(cell_dir, name, top, cell_dir, Path(second["dir"]), second_run=True)
    res["second_run_exit_code"] = second["exit_code"]
    md = result_mod.write(cell_dir, res)
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"written: {md} and {md.with_suffix('.json')}")
    if res.get("error"):
        raise MemharnessError(f"{res['error']} (second run exit code {second['exit_code']}; "
                              f"see {second['dir']}/stderr.log)", exit_code=1)
