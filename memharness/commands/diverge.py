"""`memharness diverge CONFIG.yaml`: trace where two model variants' outputs part, module by module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.commands._common import Format
from memharness.errors import MemharnessError


def diverge(
    config: Annotated[Path | None, typer.Argument(help="diverge config (YAML); see docs/drift.md")] = None,
    save: Annotated[Path | None, typer.Option(
        "--save", help="run only variant a and save its hooked outputs here")] = None,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="compare a file written by --save (another environment) with variant a run here")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="md (a table) or json")] = Format.md,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="write a PNG of abs diff against execution index")] = None,
    make_tiny_llama: Annotated[Path | None, typer.Option(
        "--make-tiny-llama", help="build the tiny random LLaMA-style model into this folder and exit")] = None,
    make_tiny_bert: Annotated[Path | None, typer.Option(
        "--make-tiny-bert", help="build the tiny random BERT model into this folder and exit")] = None,
) -> None:
    (  # one paragraph (no line breaks), as the command list shows it
        "Run the same inputs through variants a and b of a model (dtype and how it is applied, autocast, batch "
        "size, device) with forward hooks on every module; print per-module max/mean abs diff in execution order "
        "and the first module whose output differs beyond rtol/atol. Exit 0 when nothing differs, 1 when "
        "something does, 2 for bad input."
    )
    if make_tiny_llama or make_tiny_bert:
        _make_tiny({"llama": make_tiny_llama, "bert": make_tiny_bert})
    if config is None:
        raise MemharnessError("give a CONFIG.yaml (or --make-tiny-llama DIR)")
    if save and compare:
        raise MemharnessError("--save and --compare exclude each other")
    cfg, cap_a, cap_b = _captures(config, save, compare)

    from memharness.drift.divergence import compare as compare_captures
    from memharness.drift.report import diverge_json, diverge_markdown

    result = compare_captures(cap_a, cap_b, cfg.rtol, cfg.atol)
    typer.echo(diverge_json(result) if fmt is Format.json else diverge_markdown(result), nl=False)
    if chart:
        from memharness.drift.chart import plot_divergence

        typer.echo(f"chart: {plot_divergence(result, chart)}", err=True)
    raise typer.Exit(0 if result.ok else 1)


def _make_tiny(folders: dict[str, Path | None]) -> None:
    """`--make-tiny-llama DIR` / `--make-tiny-bert DIR`: build the tiny random models, then exit."""
    from memharness.drift.tiny import make_tiny

    for kind, out in folders.items():
        if out is not None:
            typer.echo(f"built tiny:{kind} (float32, random init, seed 0) in {make_tiny(kind, out)}")
    raise typer.Exit(0)


def _captures(config: Path, save: Path | None, compare: Path | None):
    """(config, capture a, capture b) of the two variants, or of a saved capture and variant a run here;
    with `--save` variant a is captured, saved, and the command exits."""
    from memharness.drift import config as cfgmod
    from memharness.drift.capture import Capture, DivergeError, build_inputs, require_model_dir, run_variant
    from memharness.drift.tiny import resolve_model

    try:
        cfg = cfgmod.load(config)
    except cfgmod.ConfigError as exc:  # one located line per problem, printed as they are
        typer.echo(str(exc), err=True)
        raise typer.Exit(exc.exit_code) from None
    base = config.resolve().parent
    dir_a = resolve_model(cfg.a.model, base)
    dir_b = resolve_model(cfg.b.model, base)
    for d in dict.fromkeys([dir_a] if save or compare else [dir_a, dir_b]):
        require_model_dir(d)
    ids, mask = build_inputs(cfg.inputs, dir_a, base)

    def run(variant, model_dir, label):
        return run_variant(variant, model_dir, ids, mask, cfg.modules, cfg.max_capture_mb, label)

    if save:
        cap = run(cfg.a, dir_a, cfg.a.label or "A")
        cap.to_file(save)
        typer.echo(
            f"saved {len(cap.order)} module outputs of variant a ({cap.label}) for {ids.shape[0]} inputs x "
            f"{ids.shape[1]} tokens to {save} (torch {cap.env['torch']}, transformers {cap.env['transformers']})"
        )
        raise typer.Exit(0)
    if compare:
        cap_a = Capture.from_file(compare)
        if tuple(cap_a.input_ids.shape) != tuple(ids.shape) or not bool((cap_a.input_ids == ids).all()):
            raise DivergeError(
                f"{compare} was captured on other inputs ({tuple(cap_a.input_ids.shape)} token ids) than "
                f"this config gives ({tuple(ids.shape)}): use the same inputs section"
            )
        cap_a.label = f"saved: {cap_a.label}"
        return cfg, cap_a, run(cfg.a, dir_a, f"here: {cfg.a.label or 'A'}")
    return cfg, run(cfg.a, dir_a, cfg.a.label or "A"), run(cfg.b, dir_b, cfg.b.label or "B")
