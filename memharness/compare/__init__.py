"""Regression verdicts between two runs, or two pipeline variants, and the baseline store.

`compare(base_spec, current_spec, ...)` reads both sides through `memharness.results.figures.collect`
(never re-aggregating call records) and returns a `Result`; `render` turns it into Markdown or JSON.
"""

from __future__ import annotations

from pathlib import Path

from memharness.compare.baselines import BASELINE_STORE, get_baseline
from memharness.compare.engine import DEFAULT_METRIC, METRICS, Result
from memharness.compare.engine import compare as compare_sides
from memharness.compare.rule import Rule
from memharness.compare.sides import CompareError, load_side, split_spec
from memharness.results import BrokenRunError, read_manifest

__all__ = ["DEFAULT_METRIC", "METRICS", "CompareError", "Result", "Rule", "baseline_spec_for", "compare"]


def compare(base_spec: str, current_spec: str, metric: str = DEFAULT_METRIC, rule: Rule | None = None) -> Result:
    """Compare CURRENT against BASE; each is `RUN_DIR` or `RUN_DIR:variant`."""
    return compare_sides(load_side(base_spec), load_side(current_spec), metric, rule)


def baseline_spec_for(current_spec: str, store: Path = BASELINE_STORE, name: str | None = None) -> str:
    """The BASE spec recorded for CURRENT's scenario (or for `name`).

    When CURRENT names a variant and the baseline does not, the same variant of the baseline run is used.
    """
    run, variant = split_spec(current_spec)
    if name is None:
        try:
            name = str(read_manifest(run).get("scenario", ""))
        except BrokenRunError as exc:
            raise CompareError(str(exc)) from None
    base = get_baseline(name, store)
    if base.variant is None and variant is not None:
        return f"{base.run_dir}:{variant}"
    return base.spec
