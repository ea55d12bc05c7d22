"""`memharness explain RUN_DIR CELL_ID`: which allocation sites hold a call's peak, from a second run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from memharness import names
from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness explain"


class Frames(str, Enum):
    user = "user"
    all = "all"


def _target(run_dir: Path, cell_id: str, cell_dir: Path, host: bool, gpu: bool) -> str:
    """The default call: the GPU peak's with --gpu alone, else the host peak's (printed, with the rule)."""
    from memharness.explain.peakcall import default_gpu_target, default_target
    from memharness.explain.rerun import ExplainError

    gpu_name = default_gpu_target(cell_dir) if gpu else None
    if gpu and not host and gpu_name:
        typer.echo(f"explain: target {gpu_name} (the innermost call open at the GPU peak)")
        return gpu_name
    if gpu and not host:
        typer.echo("explain: the cell's call records have no GPU readings; using the host peak's call")
    name = default_target(run_dir, cell_id, cell_dir)
    if not name:
        raise ExplainError(f"{cell_dir}: no wrapped call recorded; name one with --target")
    typer.echo(f"explain: target {name} (the innermost call open at the run-phase host peak)")
    if gpu_name and gpu_name != name:
        typer.echo(f"explain: the GPU peak is inside {gpu_name}; explain it with --gpu alone or --target {gpu_name}")
    return name


def _against_cell(run_dir: Path, spec: str) -> tuple[Path, str]:
    """`CELL` of the same run, or `RUN:CELL` of another run."""
    run, sep, cell = spec.rpartition(":")
    if sep and run and Path(run).is_dir():
        return Path(run), cell
    return run_dir, spec


def _explain_one(run_dir: Path, cell_id: str, req: Any, say: bool = True) -> tuple[Path, dict[str, Any]]:
    from memharness.explain import result as result_mod
    from memharness.explain.harness import changed_sources
    from memharness.explain.rerun import find_cell, rerun

    cell_dir = find_cell(run_dir, cell_id)
    second = rerun(run_dir, cell_dir, req, say=typer.echo)
    res = result_mod.collect(cell_dir, req.target, req.top, cell_dir, Path(second["dir"]), second_run=True,
                             frames=req.frames, retained=req.retained)
    res["second_run_exit_code"] = second["exit_code"]
    res["changed_sources"] = changed_sources(cell_dir, Path(second["dir"]))
    md = result_mod.write(cell_dir, res)
    if say:
        typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"written: {md} and {md.parent / names.EXPLAIN_JSON}")
    if res.get("error"):
        raise MemharnessError(f"{cell_id}: {res['error']} (second run exit code {second['exit_code']}; "
                              f"see {second['dir']}/stderr.log)", exit_code=1)
    return cell_dir, res


def explain(
    run_dir: Annotated[Path, typer.Argument(help="A run folder: results/<scenario>/<run-id>.")],
    cell_id: Annotated[str, typer.Argument(help="A cell of that run, e.g. ragatouille-nofaiss__400__r0.")],
    target: Annotated[str | None, typer.Option("--target", help="Dotted path of the call to explain "
                                               "(default: the innermost wrapped call open at the run-phase "
                                               "host peak; with --gpu alone, at the GPU peak).")] = None,
    host: Annotated[bool, typer.Option("--host", help="Host memory (memray); the default when --gpu is "
                                       "absent.")] = False,
    gpu: Annotated[bool, typer.Option("--gpu", help="CUDA memory (torch's allocator history).")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="How many allocation sites to list.")] = 10,
    native: Annotated[bool, typer.Option("--native", help="memray native (C/C++) stacks too; slower.")] = False,
    frames: Annotated[Frames, typer.Option("--frames", help="user: a site is the innermost frame outside numpy, "
                                           "torch and the standard library; all: of any file.")] = Frames.user,
    retained: Annotated[bool, typer.Option("--retained", help="Also the allocations made during the call and "
                                           "still alive at its exit (host and GPU).")] = False,
    at_entry: Annotated[bool, typer.Option("--at-entry", help="Also what is alive when the call starts, "
                                           "tracked from the cell's start (host).")] = False,
    against: Annotated[str | None, typer.Option("--against", help="Explain CELL_B (of this run) or RUN:CELL_B "
                                                "the same way and print both cells' host sites side by "
                                                "side.")] = None,
) -> None:
    """Run one cell again (same spec, corpus slice and interpreter) with memray and/or torch's allocator
    history on only while TARGET runs, in whichever process runs it; write the top allocation sites at
    the call's peak to CELL/explain/ (explain.md, explain.json, flame graph, GPU snapshot)."""
    from memharness.explain import missing_extra

    problem = missing_extra(gpu, host=host or not gpu or retained or at_entry or against is not None)
    if problem:
        raise MemharnessError(problem)
    from memharness.explain import against as against_mod
    from memharness.explain.rerun import ExplainRequest, find_cell

    cell_dir = find_cell(run_dir, cell_id)
    other = _against_cell(run_dir, against) if against else None
    if other is not None:
        find_cell(*other)  # a wrong name fails before the first second run
    name = target or _target(run_dir, cell_id, cell_dir, host, gpu)
    req = ExplainRequest(target=name, host=host or not gpu, gpu=gpu, native=native, top=top, retained=retained,
                         at_entry=at_entry, frames=frames.value)
    _, res = _explain_one(run_dir, cell_id, req)
    if other is None:
        return
    cell_b, res_b = _explain_one(*other, req, say=False)
    label_b = other[1] if Path(other[0]).resolve() == Path(run_dir).resolve() else f"{other[0]}:{other[1]}"
    cmp = against_mod.compare((cell_id, cell_dir / names.EXPLAIN, res), (label_b, cell_b / names.EXPLAIN, res_b),
                              top)
    md = against_mod.write(cell_dir / names.EXPLAIN, other[1], cmp)
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"written: {md} and {md.parent / names.against_files(other[1])[0]}")
