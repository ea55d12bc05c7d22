"""`memharness explain RUN_DIR CELL_ID`: which allocation sites hold a call's peak, from a second run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("explain")
    def explain(
        run_dir: Path = typer.Argument(..., help="A run folder: results/<scenario>/<run-id>."),
        cell_id: str = typer.Argument(..., help="A cell of that run, e.g. ragatouille-nofaiss__400__r0."),
        target: str | None = typer.Option(None, "--target", help="Dotted path of the call to explain "
                                          "(default: the innermost wrapped call open at the run-phase peak)."),
        host: bool = typer.Option(False, "--host", help="Host memory (memray); the default when --gpu is absent."),
        gpu: bool = typer.Option(False, "--gpu", help="CUDA memory (torch's allocator history)."),
        top: int = typer.Option(10, "--top", min=1, help="How many allocation sites to list."),
        native: bool = typer.Option(False, "--native", help="memray native (C/C++) stacks too; slower."),
    ) -> None:
        """Run one cell again (same spec, corpus slice and interpreter) with memray and/or torch's allocator
        history on only while TARGET runs, in whichever process runs it; write the top allocation sites at
        the call's peak to CELL/explain/ (explain.md, explain.json, flame graph, GPU snapshot)."""
        from memharness.explain import missing_extra

        problem = missing_extra(gpu)
        if problem:
            typer.echo(f"memharness explain: {problem}", err=True)
            raise typer.Exit(2)
        from memharness.explain import result as result_mod
        from memharness.explain.peakcall import default_target
        from memharness.explain.rerun import ExplainError, ExplainRequest, find_cell, rerun

        try:
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
        except ExplainError as exc:
            typer.echo(f"memharness explain: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(md.read_text(encoding="utf-8"))
        typer.echo(f"written: {md} and {md.with_suffix('.json')}")
        if res.get("error"):
            typer.echo(f"memharness explain: {res['error']} (second run exit code {second['exit_code']}; "
                       f"see {second['dir']}/stderr.log)", err=True)
            raise typer.Exit(1)
