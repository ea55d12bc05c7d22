"""`memharness compare BASE CURRENT` and `memharness compare --baseline CURRENT`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness import metrics
from memharness.commands._common import BASELINE_STORE
from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness compare"
THRESHOLD_HELP = "relative change of the median that can count: 10% or 0.1"
RUNS_HELP = "two run folders (or RUN_DIR:variant); only CURRENT with --baseline"
BASELINE_HELP = "compare CURRENT against the baseline recorded for its scenario"
BASELINE_NAME_HELP = "baseline name to use instead of CURRENT's scenario"
MIN_MIB_HELP = "absolute floor in MiB (the floor is the larger of this and --floor-share; docs/compare.md)"
FLOOR_SHARE_HELP = "the floor as a share of the cell's BASE process-tree peak: 2% or 0.02"
METRIC_HELP = metrics.cli_help()
ALPHA_HELP = "significance level of the Mann-Whitney U test"


def parse_threshold(text: str, flag: str = "--threshold") -> float:
    """'10%' -> 0.10, '0.1' -> 0.1; a bare number above 1 is refused as ambiguous."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected a percentage (10%) or a fraction (0.1)") from None
    if not raw.endswith("%") and value > 1:
        raise ValueError(f"{flag} {text!r}: a bare number is a fraction (0.1); write {raw}% for percent")
    if not 0 <= value:
        raise ValueError(f"{flag} {text!r}: must not be negative")
    return value


def compare(
    runs: Annotated[list[str], typer.Argument(metavar="BASE CURRENT", help=RUNS_HELP)],
    baseline: Annotated[bool, typer.Option("--baseline", help=BASELINE_HELP)] = False,
    baseline_name: Annotated[str | None, typer.Option("--baseline-name", help=BASELINE_NAME_HELP)] = None,
    store: Annotated[Path, typer.Option("--store", help="baseline store file")] = BASELINE_STORE,
    threshold: Annotated[str, typer.Option("--threshold", help=THRESHOLD_HELP)] = metrics.THRESHOLD_TEXT,
    min_mib: Annotated[float, typer.Option("--min-mib", help=MIN_MIB_HELP)] = metrics.FLOOR_MIB,
    floor_share: Annotated[str, typer.Option("--floor-share", help=FLOOR_SHARE_HELP)] = metrics.FLOOR_SHARE_TEXT,
    metric: Annotated[str, typer.Option("--metric", help=METRIC_HELP)] = metrics.CLI_DEFAULT,
    fmt: Annotated[str, typer.Option("--format", help="md | json")] = "md",
    alpha: Annotated[float, typer.Option("--alpha", help=ALPHA_HELP)] = metrics.ALPHA,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="also write the report to this file")] = None,
) -> None:
    """Compare memory between two runs or two pipeline variants; exit 1 when anything regressed.

    Exit codes: 0 nothing regressed, 1 a row regressed (or a cell failed in CURRENT only), 2 bad input.
    See docs/compare.md for the decision rule.
    """
    from memharness.compare import Rule, baseline_spec_for
    from memharness.compare.engine import compare as compare_sides
    from memharness.compare.render import to_json, to_markdown
    from memharness.compare.sides import load_side

    if fmt not in ("md", "json"):
        raise MemharnessError(f"--format {fmt!r}: choose md or json")
    if min_mib < 0:
        raise MemharnessError("--min-mib must not be negative")
    if not 0 < alpha < 1:
        raise MemharnessError("--alpha must lie between 0 and 1")
    try:
        share = parse_threshold(floor_share, "--floor-share")
        rule = Rule(threshold=parse_threshold(threshold), min_bytes=min_mib * 2**20, alpha=alpha, floor_share=share)
    except ValueError as exc:
        raise MemharnessError(str(exc)) from None
    if baseline:
        if len(runs) != 1:
            raise MemharnessError("with --baseline give only CURRENT")
        base_spec, current_spec = baseline_spec_for(runs[0], store, baseline_name), runs[0]
    else:
        if len(runs) != 2:
            raise MemharnessError("give BASE and CURRENT (or --baseline CURRENT)")
        base_spec, current_spec = runs
    sides = load_side(base_spec), load_side(current_spec)
    result = compare_sides(*sides, metric=metric, rule=rule)
    text = to_json(result) if fmt == "json" else to_markdown(result)
    typer.echo(text)
    for side in sides:
        for warning in unreadable_warnings(side):
            typer.echo(f"warning: {side.spec}: {warning}", err=True)
    if output is not None:
        from memharness.core.atomic import write_text

        write_text(output, text + "\n")
    raise typer.Exit(1 if result.regressed else 0)


def unreadable_warnings(side) -> list[str]:  # noqa: ANN001 - a compare.sides.Side
    """What `report` warns about, for the cells one side of a comparison reads: garbage lines skipped in call
    files and cell JSON files that could not be read (their figures are missing from the verdict)."""
    from memharness.report.html import (
        unreadable_call_lines,
        unreadable_calls_warning,
        unreadable_files,
        unreadable_files_warning,
    )

    cells = [side.cell(entry) for entry in side.cells]
    out = []
    if lines := unreadable_call_lines(cells):
        out.append(unreadable_calls_warning(lines, limit=len(lines)))  # no summary.json here: all
    if files := unreadable_files(cells):
        out.append(unreadable_files_warning(files, limit=len(files)))
    return out
