"""Compare results as Markdown (terminal and CI job summary) or JSON (machines)."""

from __future__ import annotations

import json
from typing import Any

from memharness import metrics as metrics_table
from memharness.compare.engine import FAILED, INHERITED, METRICS, NA, OWN_METRICS, CellRef, MiB, Result, RowResult
from memharness.compare.entry_levels import short
from memharness.compare.rule import (
    IMPROVED,
    MIN_REPEATS_FOR_TEST,
    REGRESSED,
    TEST_FLOOR,
    TEST_SEPARATION,
    UNCHANGED,
    Decision,
    Rule,
)
from memharness.compare.shifts import describe
from memharness.results.figures import TREE
from memharness.scenario.units import format_size

JSON_FORMAT = "memharness-compare"
JSON_VERSION = 1


def rule_text(rule: Rule) -> str:
    pct = f"{rule.threshold * 100:g}%"
    floor = (f"the floor (the larger of {rule.min_bytes / MiB:g} MiB and {rule.floor_share * 100:g}% of the "
             "cell's BASE process-tree peak)")
    return (
        f"medians compared; a change counts when it exceeds {pct} of the BASE median and, with "
        f">= {MIN_REPEATS_FOR_TEST} repeats on both sides, a one-sided Mann-Whitney U test gives "
        f"p < {rule.alpha:g} (where the sample sizes cannot reach that p: no overlap and above {floor}); "
        f"with fewer repeats, it also exceeds {floor}; a function whose own part rose only as much as the level "
        "at its entry fell (its absolute peak within the rule) is unchanged; docs/compare.md"
    )


def _size(n: int) -> str:
    try:
        return format_size(int(n))
    except ValueError:
        return str(n)


def _cell(row: RowResult) -> str:
    pipe = row.pipeline_base if row.pipeline_base == row.pipeline_current else (
        f"{row.pipeline_base} → {row.pipeline_current}")
    return f"{pipe} · {_size(row.size)}"


def _mib(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v / MiB:+.1f}" if signed else f"{v / MiB:.1f}"


def _p(row: RowResult) -> str:
    d = row.decision
    if d is None or d.test == TEST_FLOOR or d.p_value is None:
        return "–"
    return f"{d.p_value:.3g}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _verdict_md(v: str, row: RowResult | None = None) -> str:
    if v == INHERITED and row is not None:
        return f"inherits `{row.inherits_from}` ({row.inherited_direction})"
    return {REGRESSED: "**regressed**", IMPROVED: "improved", UNCHANGED: "unchanged", NA: "n/a"}.get(v, v)


def _amount(delta: float) -> str:
    sign = "+" if delta >= 0 else "-"
    v = abs(delta)
    return f"{sign}{v / 2**30:.2f} GiB" if v >= 2**30 else f"{sign}{v / MiB:.1f} MiB"


def _what(row: RowResult) -> str:
    return {"peak_over_start": "own peak", "gpu_own": "own GPU peak", "peak": "peak", "gpu_peak": "GPU peak",
            "increment": "increment", "final": "final RSS"}.get(row.judged_on, row.judged_on)


def _evidence(d: Decision) -> str:
    if d.test == TEST_FLOOR or d.p_value is None:
        return "few repeats: threshold and floor"
    return f"p {d.p_value:.2g}" + (", no overlap" if d.test == TEST_SEPARATION else "")


def _cell_of(pipeline: str, size: int) -> str:
    return f"{pipeline} · {_size(size)}"


def _quiet(result: Result) -> str:
    gpu = metrics_table.get(result.metric).resource == "gpu"
    if result.metric in OWN_METRICS:
        return f"no function's own {'GPU ' if gpu else ''}peak changed"
    return f"no function's {result.metric} changed"


def verdict_lines(result: Result) -> list[str]:
    """The verdict in words, each line naming its cell (pipeline · size): baseline shifts (once each), then
    each changed function, then the tree; the metric's resource only (a GPU metric speaks of the GPU)."""
    lines: list[str] = []
    functions = [r for r in result.rows if r.target != TREE]
    changed = [r for r in functions if r.verdict in (REGRESSED, IMPROVED)]
    quiet = _quiet(result)
    for i, shift in enumerate(result.shifts):
        text = f"{_cell_of(shift.pipeline_current, shift.size)}: {describe(shift)}"
        if i == 0 and not changed:
            text += f"; {quiet}"
        lines.append(text)
    for r in changed:
        d = r.decision
        p = _evidence(d) if d else ""
        callers = sorted(x.target for x in result.rows if x.verdict == INHERITED and x.inherits_from == r.target
                         and (x.pipeline_current, x.size) == (r.pipeline_current, r.size))
        text = (f"{_cell_of(r.pipeline_current, r.size)}: `{short(r.target)}` {_what(r)} "
                f"{_amount(d.delta) if d else ''} ({p}): {r.verdict}")
        if callers:
            text += f"; its callers inherit it: {', '.join(f'`{short(c)}`' for c in callers)}"
        lines.append(text)
    if not result.shifts and not changed:
        lines.append(quiet)
    for r in result.rows:
        if r.target == TREE and r.verdict in (REGRESSED, IMPROVED) and r.decision:
            d = r.decision
            why = " (a shift of the whole process counts as a regression of the tree)" if \
                result.shifts and r.verdict == REGRESSED and not changed else ""
            lines.append(f"{_cell_of(r.pipeline_current, r.size)}: process tree {_what(r)} {_amount(d.delta)} "
                         f"({_evidence(d)}): {r.verdict}{why}")
    lines += [f"{_cell_of(r.pipeline_current, r.size)}: `{short(r.target)}` unchanged: {r.note}"
              for r in result.rows if r.note]
    return lines


def repeats_line(result: Result) -> str | None:
    """Said first when a side has fewer repeats than the significance test needs."""
    counts = [len(v) for r in result.rows for v in (r.values_base, r.values_current) if v]
    fewest = min(counts, default=0)
    if not counts or fewest >= MIN_REPEATS_FOR_TEST:
        return None
    floors = sorted({r.floor_source for r in result.rows if r.floor_source})
    return (f"{fewest} repeat{'s' * (fewest != 1)} on a side: no significance test; a change counts only when it "
            f"exceeds {result.rule.threshold * 100:g}% and the floor ({'; '.join(floors) or 'none'}). Run "
            f"{MIN_REPEATS_FOR_TEST} or more repeats on each side (--repeats) for a tested verdict.")


def _side_repeats(result: Result, which: str) -> str:
    rows = result.rows
    if not rows:
        return "–"
    counts = sorted({len(r.values_base if which == "base" else r.values_current) for r in rows})
    return "/".join(str(c) for c in counts)


def to_markdown(result: Result) -> str:
    b, c = result.base, result.current
    counts = result.counts
    judged = {"own": "own (functions: peak over entry; process tree: peak)",
              "gpu_own": "gpu_own (functions: GPU peak over entry; process tree: GPU peak)"}
    lines = [f"## memharness compare: {judged.get(result.metric, result.metric)}", ""]
    headline = "REGRESSED" if result.regressed else "OK"
    summary = ", ".join(f"{counts[k]} {k}" for k in (REGRESSED, IMPROVED, UNCHANGED) if k in counts)
    if counts[FAILED]:
        summary += f", {counts[FAILED]} cell(s) failed in CURRENT"
    if counts[NA]:
        summary += f", {counts[NA]} without {result.metric}"
    if counts[INHERITED]:
        summary += f", {counts[INHERITED]} inheriting a called function's change"
    first = repeats_line(result)
    lines += [f"**{headline}**: {summary}." + (f" {first}" if first else ""), ""]
    lines += [f"- {x}" for x in verdict_lines(result)] + [""]
    lines += ["| | BASE | CURRENT |", "| --- | --- | --- |",
              f"| run | `{b.run_dir}` | `{c.run_dir}` |",
              f"| scenario | {b.scenario} | {c.scenario} |",
              f"| pipeline | {', '.join(b.pipelines)} | {', '.join(c.pipelines)} |",
              f"| repeats | {_side_repeats(result, 'base')} | {_side_repeats(result, 'current')} |", ""]

    lines += ["### Environment", ""]
    if result.env.differ:
        lines += ["| differs | BASE | CURRENT |", "| --- | --- | --- |"]
        lines += [f"| {k} | {_md_escape(bv)} | {_md_escape(cv)} |" for k, bv, cv in result.env.differ]
        lines.append("")
    else:
        lines += ["No difference in the recorded environment.", ""]
    if result.env.same:
        same = "; ".join(f"{k} {_md_escape(v)}" for k, v in result.env.same)
        lines += [f"Same on both sides: {same}.", ""]

    lines += [f"### Memory: {result.metric} (MiB, median over repeats)", "",
              "| cell | function | old | new | delta | ratio | p | verdict |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result.rows:
        d = r.decision
        ratio = f"{d.ratio:.3f}" if d and d.ratio is not None else "–"
        old, new, delta = (d.old, d.new, d.delta) if d else (None, None, None)
        lines.append(f"| {_cell(r)} | `{r.target}` | {_mib(old)} | {_mib(new)} | {_mib(delta, signed=True)} "
                     f"| {ratio} | {_p(r)} | {_verdict_md(r.verdict, r)} |")
    lines.append("")
    entries = [r for r in result.rows if r.target != TREE and r.entry_base is not None and r.entry_current is not None]
    if result.metric in OWN_METRICS and entries:
        lines += ["### Inherited: memory held at each function's entry (MiB, median; not judged)", "",
                  "| cell | function | old | new | delta |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {_cell(r)} | `{r.target}` | {_mib(r.entry_base)} | {_mib(r.entry_current)} "
                  f"| {_mib(r.entry_current - r.entry_base, signed=True)} |" for r in entries]  # type: ignore[operator]
        lines.append("")

    if result.failed_cells:
        lines += ["### Cells failed in CURRENT (done in BASE): counted as regressions", ""]
        lines += [f"- {x.pipeline} · {_size(x.size)}: {x.detail}" for x in result.failed_cells]
        lines.append("")
    if result.partial_failures:
        lines += ["### Cells with some failed repeats (compared on the done repeats)", ""]
        lines += [f"- {tag.upper()} {x.pipeline} · {_size(x.size)}: {x.detail}"
                  for tag, x in result.partial_failures]
        lines.append("")
    one_sided = []
    for side, cells, funcs in (("BASE", result.only_base_cells, result.only_base_functions),
                               ("CURRENT", result.only_current_cells, result.only_current_functions)):
        one_sided += [f"- cell only in {side}: {x.pipeline} · {_size(x.size)} ({x.detail})" for x in cells]
        one_sided += [f"- function only in {side}: {p} · {_size(s)} `{t}`" for p, s, t in funcs]
    if one_sided:
        lines += ["### Present on one side only", "", *one_sided, ""]
    lines += [f"Rule: {rule_text(result.rule)}.", ""]
    return "\n".join(lines)


def _one_sided(cells: list[CellRef], functions: list[tuple[str, int, str]]) -> dict[str, Any]:
    return {"cells": [x.to_dict() for x in cells],
            "functions": [{"pipeline": p, "size": s, "target": t} for p, s, t in functions]}


def to_dict(result: Result) -> dict[str, Any]:
    rule = result.rule
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "verdict": result.verdict,
        "counts": result.counts,
        "metric": result.metric,
        "metrics_available": list(METRICS),
        "rule": {"threshold": rule.threshold, "min_mib": rule.min_bytes / MiB, "alpha": rule.alpha,
                 "min_repeats_for_test": MIN_REPEATS_FOR_TEST, "text": rule_text(rule)},
        "base": result.base.describe(),
        "current": result.current.describe(),
        "env": result.env.to_dict(),
        "summary": verdict_lines(result),
        "repeats_note": repeats_line(result),
        "shifts": [x.to_dict() for x in result.shifts],
        "rows": [r.to_dict() for r in result.rows],
        "failed_cells": [x.to_dict() for x in result.failed_cells],
        "partial_failures": [{"side": tag, **x.to_dict()} for tag, x in result.partial_failures],
        "only_base": _one_sided(result.only_base_cells, result.only_base_functions),
        "only_current": _one_sided(result.only_current_cells, result.only_current_functions),
    }


def to_json(result: Result) -> str:
    return json.dumps(to_dict(result), indent=2)
