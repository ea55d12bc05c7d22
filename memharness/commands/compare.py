"""`memharness compare BASE CURRENT` and `memharness compare --baseline CURRENT`."""

from __future__ import annotations

from pathlib import Path

import typer

THRESHOLD_HELP = "relative change of the median that can count: 10% or 0.1"
RUNS_HELP = "two run folders (or RUN_DIR:variant); only CURRENT with --baseline"
BASELINE_HELP = "compare CURRENT against the baseline recorded for its scenario"
BASELINE_NAME_HELP = "baseline name to use instead of CURRENT's scenario"
MIN_MIB_HELP = "absolute floor in MiB, used with fewer than 3 repeats (see docs/compare.md)"
METRIC_HELP = ("own (default: each function on its peak over entry, the process tree on its peak) | peak | "
               "increment | final | peak_over_start | gpu_own | gpu_peak")


def parse_threshold(text: str) -> float:
    """'10%' -> 0.10, '0.1' -> 0.1; a bare number above 1 is refused as ambiguous."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"--threshold {text!r}: expected a percentage (10%) or a fraction (0.1)") from None
    if not raw.endswith("%") and value > 1:
        raise ValueError(f"--threshold {text!r}: a bare number is a fraction (0.1); write {raw}% for percent")
    if not 0 <= value:
        raise ValueError(f"--threshold {text!r}: must not be negative")
    return value


def _fail(message: str) -> None:
    typer.echo(f"memharness compare: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        runs: list[str] = typer.Argument(..., metavar="BASE CURRENT", help=RUNS_HELP),
        baseline: bool = typer.Option(False, "--baseline", help=BASELINE_HELP),
        baseline_name: str = typer.Option(None, "--baseline-name", help=BASELINE_NAME_HELP),
        store: Path = typer.Option(Path(".memharness/baselines.json"), "--store", help="baseline store file"),
        threshold: str = typer.Option("10%", "--threshold", help=THRESHOLD_HELP),
        min_mib: float = typer.Option(64.0, "--min-mib", help=MIN_MIB_HELP),
        metric: str = typer.Option("own", "--metric", help=METRIC_HELP),
        fmt: str = typer.Option("md", "--format", help="md | json"),
        alpha: float = typer.Option(0.05, "--alpha", help="significance level of the Mann-Whitney U test"),
        output: Path = typer.Option(None, "--output", "-o", help="also write the report to this file"),
    ) -> None:
        """Compare memory between two runs or two pipeline variants; exit 1 when anything regressed.

        Exit codes: 0 nothing regressed, 1 a row regressed (or a cell failed in CURRENT only), 2 bad input.
        See docs/compare.md for the decision rule.
        """
        from memharness.compare import CompareError, Rule, baseline_spec_for, compare
        from memharness.compare.render import to_json, to_markdown

        if fmt not in ("md", "json"):
            _fail(f"--format {fmt!r}: choose md or json")
        if min_mib < 0:
            _fail("--min-mib must not be negative")
        if not 0 < alpha < 1:
            _fail("--alpha must lie between 0 and 1")
        try:
            rule = Rule(threshold=parse_threshold(threshold), min_bytes=min_mib * 2**20, alpha=alpha)
        except ValueError as exc:
            _fail(str(exc))
        try:
            if baseline:
                if len(runs) != 1:
                    _fail("with --baseline give only CURRENT")
                base_spec, current_spec = baseline_spec_for(runs[0], store, baseline_name), runs[0]
            else:
                if len(runs) != 2:
                    _fail("give BASE and CURRENT (or --baseline CURRENT)")
                base_spec, current_spec = runs
            result = compare(base_spec, current_spec, metric=metric, rule=rule)
        except CompareError as exc:
            _fail(str(exc))
        text = to_json(result) if fmt == "json" else to_markdown(result)
        typer.echo(text)
        if output is not None:
            from memharness.core.atomic import write_text

            write_text(output, text + "\n")
        raise typer.Exit(1 if result.regressed else 0)
