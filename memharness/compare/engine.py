"""Match the rows of two sides and decide each: cells by (pipeline, size), functions by target.

When either side names a pipeline variant (`RUN_DIR:variant`), each side must hold a single pipeline and
those two pipelines are matched whatever their names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from memharness import metrics as metrics_table
from memharness.compare.entry_levels import CellLevels, cell_levels
from memharness.compare.envdiff import EnvDiff, diff
from memharness.compare.rule import IMPROVED, REGRESSED, UNCHANGED, Decision, Rule, decide
from memharness.compare.shifts import GPU, HOST, Shift, find_shifts
from memharness.compare.sides import CompareError, Side
from memharness.results.figures import TREE, Row

METRICS = metrics_table.NAMES
DEFAULT_METRIC = metrics_table.CLI_DEFAULT
# `own` judges each function on its own part (peak over its entry RSS) and the process tree on its peak;
# `gpu_own` the same with torch's allocated bytes (peak allocated over allocated at entry).
OWN_METRICS = {m.name for m in metrics_table.METRICS if m.function_figure != m.tree_figure}
NA = "n/a"  # the metric is missing on one side of a matched row
INHERITED = "inherited"  # changed only because a wrapped function it calls changed; not counted
FAILED = "failed"  # every repeat of a cell failed in CURRENT where BASE had it done; counts as a regression
MiB = float(1 << 20)


@dataclass
class RowResult:
    pipeline_base: str
    pipeline_current: str
    size: int
    target: str
    verdict: str
    decision: Decision | None
    values_base: list[float]
    values_current: list[float]
    judged_on: str = ""  # the figure the verdict rests on (own: peak_over_start; tree: peak)
    entry_base: float | None = None  # median RSS at the first call's entry (what the function inherited)
    entry_current: float | None = None
    inherits_from: str | None = None  # verdict INHERITED: the called function whose change this is
    inherited_direction: str | None = None  # REGRESSED or IMPROVED, the callee's verdict
    floor: float | None = None  # the absolute floor this cell's rows were judged with (bytes)
    floor_source: str = ""  # which one applied: "--min-mib 64" or "2% of the ... MiB process-tree peak"
    note: str = ""  # why a change of the figure is not counted (e.g. its entry level fell as much)

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "pipeline_base": self.pipeline_base, "pipeline_current": self.pipeline_current, "size": self.size,
            "target": self.target, "verdict": self.verdict, "judged_on": self.judged_on,
            "entry_base": self.entry_base, "entry_current": self.entry_current,
            "inherits_from": self.inherits_from, "inherited_direction": self.inherited_direction,
            "old": d.old if d else None, "new": d.new if d else None, "delta": d.delta if d else None,
            "delta_mib": d.delta / MiB if d else None, "ratio": d.ratio if d else None,
            "test": d.test if d else None, "p_value": d.p_value if d else None,
            "exceeds_threshold": d.exceeds_threshold if d else None,
            "repeats_base": len(self.values_base), "repeats_current": len(self.values_current),
            "values_base": self.values_base, "values_current": self.values_current,
            "floor": self.floor, "floor_source": self.floor_source, "note": self.note,
        }


@dataclass
class CellRef:
    pipeline: str
    size: int
    detail: str = ""  # statuses/causes for failed cells

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "size": self.size, "detail": self.detail}


@dataclass
class Result:
    base: Side
    current: Side
    metric: str
    rule: Rule
    env: EnvDiff
    rows: list[RowResult] = field(default_factory=list)
    only_base_cells: list[CellRef] = field(default_factory=list)
    only_current_cells: list[CellRef] = field(default_factory=list)
    only_base_functions: list[tuple[str, int, str]] = field(default_factory=list)  # (pipeline, size, target)
    only_current_functions: list[tuple[str, int, str]] = field(default_factory=list)
    # every repeat failed in CURRENT where BASE had the cell done: counted as a regression
    failed_cells: list[CellRef] = field(default_factory=list)
    partial_failures: list[tuple[str, CellRef]] = field(default_factory=list)  # ("base"|"current", cell)
    shifts: list[Shift] = field(default_factory=list)  # moves of the inherited level, each reported once

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.verdict for r in self.rows)
        out = {k: c.get(k, 0) for k in (REGRESSED, IMPROVED, UNCHANGED, NA)}
        out[INHERITED] = c.get(INHERITED, 0)
        out[FAILED] = len(self.failed_cells)
        return out

    @property
    def regressed(self) -> bool:
        return any(r.verdict == REGRESSED for r in self.rows) or bool(self.failed_cells)

    @property
    def verdict(self) -> str:
        return REGRESSED if self.regressed else "ok"


def _pipeline_map(base: Side, current: Side) -> dict[str, str]:
    """base pipeline -> current pipeline."""
    if base.variant is None and current.variant is None:
        return {p: p for p in base.pipelines if p in current.pipelines}
    for side in (base, current):
        if len(side.pipelines) != 1:
            names = ", ".join(side.pipelines) or "none"
            raise CompareError(
                f"{side.spec}: the other side names a pipeline variant, so this side must hold one pipeline; "
                f"it holds: {names}. Write {side.run_dir}:VARIANT."
            )
    return {base.pipelines[0]: current.pipelines[0]}


def _status_summary(cells: list[dict[str, Any]]) -> str:
    parts = Counter(f"{c.get('status')}" + (f" ({c['cause']})" if c.get("cause") else "") for c in cells)
    return ", ".join(f"{n} {k}" for k, n in sorted(parts.items()))


def _cells_by_key(side: Side) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in side.cells:
        out.setdefault((c["pipeline"], int(c["size"])), []).append(c)
    return out


def _row_sort_key(target: str) -> tuple[int, str]:
    return (0 if target == TREE else 1, target)


def judged_metric(metric: str, target: str) -> str:
    """The figure a row is judged on: `own` is peak over entry for functions and peak for the tree."""
    m = metrics_table.get(metric)
    return m.tree_figure if target == TREE else m.function_figure


def _levels(side: Side, cells: list[dict[str, Any]]) -> list[CellLevels]:
    return [cell_levels(side.cell(c)) for c in cells]


def _gpu_own(levels: list[CellLevels], target: str) -> list[float]:
    return [lv.gpu_own[target] for lv in levels if target in lv.gpu_own]


def _mark_inherited(rows: list[RowResult], descendants: dict[str, set[str]], rule: Rule) -> None:
    """A caller whose change a changed callee explains is marked INHERITED, naming the innermost function the
    change comes from, not counted itself. Callers are taken innermost first (fewest wrapped descendants),
    callees by the size of their change then by name: the same verdict whatever the hash seed."""
    changed = {r.target: r for r in rows if r.verdict in (REGRESSED, IMPROVED) and r.decision}
    for r in sorted(changed.values(), key=lambda r: (len(descendants.get(r.target, ())), r.target)):
        if r.target == TREE:
            continue
        own = r.decision
        floor = r.floor if r.floor is not None else rule.min_bytes
        for callee in sorted(descendants.get(r.target, ()),
                             key=lambda t: (-abs(changed[t].decision.delta) if t in changed else 0.0, t)):
            c = changed.get(callee)
            direction = c.inherited_direction if c is not None and c.verdict == INHERITED else \
                (c.verdict if c is not None else None)
            if c is None or direction != r.verdict or c.decision is None:
                continue
            rest = own.delta - c.decision.delta
            if abs(rest) <= max(rule.threshold * abs(own.old), floor):
                r.inherited_direction, r.verdict = r.verdict, INHERITED
                r.inherits_from = c.inherits_from if c.verdict == INHERITED else callee
                break


def _rows_by_cell(side: Side) -> dict[tuple[str, int], dict[str, Row]]:
    out: dict[tuple[str, int], dict[str, Row]] = {}
    for r in side.rows:
        out.setdefault((r.pipeline, r.size), {})[r.target] = r
    return out


def _one_sided_cells(result: Result, pmap: dict[str, str], b_cells: dict, c_cells: dict) -> None:
    inverse = {v: k for k, v in pmap.items()}
    for (pipe, size), cells in b_cells.items():
        if pipe not in pmap or (pmap[pipe], size) not in c_cells:
            result.only_base_cells.append(CellRef(pipe, size, _status_summary(cells)))
    for (pipe, size), cells in c_cells.items():
        if pipe not in inverse or (inverse[pipe], size) not in b_cells:
            result.only_current_cells.append(CellRef(pipe, size, _status_summary(cells)))


def _offset_by_entry(row: RowResult, brow: Row, crow: Row, rule: Rule) -> None:
    """A function whose own part rose while the level at its entry fell as much did not need more memory: its
    absolute peak did not move beyond the rule. Such a row is unchanged, with a note."""
    if row.verdict != REGRESSED or row.judged_on != "peak_over_start" or row.decision is None:
        return
    bp, cp = brow.metrics.get("peak"), crow.metrics.get("peak")
    if bp is None or cp is None:
        return
    absolute = decide(bp.values, cp.values, rule)
    if absolute.verdict != REGRESSED:
        entry = (row.entry_current or 0) - (row.entry_base or 0)
        row.verdict = UNCHANGED
        row.note = (f"own peak {row.decision.delta / MiB:+.1f} MiB, but the level at its entry moved "
                    f"{entry / MiB:+.1f} MiB: its absolute peak moved {absolute.delta / MiB:+.1f} MiB, within the rule")


def _judge_row(target: str, metric: str, brow: dict[str, Row], crow: dict[str, Row], b_levels: list[CellLevels],
               c_levels: list[CellLevels], rule: Rule, cell: tuple[str, str, int]) -> RowResult:
    """One function's (or the tree's) verdict in one matched cell (`rule` holds the cell's floor)."""
    judged = judged_metric(metric, target)
    if judged == "gpu_own":
        bv, cv = _gpu_own(b_levels, target), _gpu_own(c_levels, target)
    else:
        bs, cs = brow[target].metrics.get(judged), crow[target].metrics.get(judged)
        bv, cv = (bs.values if bs else []), (cs.values if cs else [])
    entry_key = "gpu_start" if judged.startswith("gpu") else "start"
    eb, ec = brow[target].metrics.get(entry_key), crow[target].metrics.get(entry_key)
    entries = (eb.median if eb else None, ec.median if ec else None)
    if not bv or not cv:
        return RowResult(*cell, target, NA, None, bv, cv, judged, *entries)
    d = decide(bv, cv, rule)
    row = RowResult(*cell, target, d.verdict, d, bv, cv, judged, *entries)
    if target != TREE:
        _offset_by_entry(row, brow[target], crow[target], rule)
    return row


def _compare_cell(result: Result, base: Side, current: Side, pipe: str, cpipe: str, size: int,
                  bcells: list[dict[str, Any]], ccells: list[dict[str, Any]], brow: dict[str, Row],
                  crow: dict[str, Row]) -> None:
    """The rows, shifts and failures of one cell (pipeline, size) present on both sides."""
    b_done = [c for c in bcells if c.get("status") == "done"]
    c_done = [c for c in ccells if c.get("status") == "done"]
    if b_done and not c_done:
        result.failed_cells.append(CellRef(cpipe, size, _status_summary(ccells)))
    for tag, cells, done, name in (("base", bcells, b_done, pipe), ("current", ccells, c_done, cpipe)):
        if done and len(done) < len(cells):
            result.partial_failures.append((tag, CellRef(name, size, _status_summary(cells))))
    if not (b_done and c_done):
        return
    b_levels, c_levels = _levels(base, b_done), _levels(current, c_done)
    descendants: dict[str, set[str]] = {}
    for lv in b_levels + c_levels:
        for t, ds in lv.descendants.items():
            descendants.setdefault(t, set()).update(ds)
    tree = brow.get(TREE)
    floor, source = result.rule.floor_for(tree.metrics["peak"].median if tree and "peak" in tree.metrics else None)
    rule = replace(result.rule, min_bytes=floor)
    for kind in (GPU,) if metrics_table.get(result.metric).resource == "gpu" else (HOST,):
        result.shifts += find_shifts(b_levels, c_levels, rule, kind, pipe, cpipe, size)
    cell_rows: list[RowResult] = []
    for target in sorted(set(brow) | set(crow), key=_row_sort_key):
        if target not in crow:
            result.only_base_functions.append((pipe, size, target))
        elif target not in brow:
            result.only_current_functions.append((cpipe, size, target))
        else:
            row = _judge_row(target, result.metric, brow, crow, b_levels, c_levels, rule, (pipe, cpipe, size))
            row.floor, row.floor_source = floor, source
            cell_rows.append(row)
    _mark_inherited(cell_rows, descendants, rule)
    result.rows += cell_rows


def compare(base: Side, current: Side, metric: str = DEFAULT_METRIC, rule: Rule | None = None) -> Result:
    if metric not in METRICS:
        raise CompareError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    rule = rule or Rule()
    pmap = _pipeline_map(base, current)
    result = Result(base, current, metric, rule, diff(base.fingerprints, current.fingerprints))
    b_rows, c_rows = _rows_by_cell(base), _rows_by_cell(current)
    b_cells, c_cells = _cells_by_key(base), _cells_by_key(current)
    _one_sided_cells(result, pmap, b_cells, c_cells)
    for (pipe, size), bcells in b_cells.items():
        cpipe = pmap.get(pipe)
        ccells = c_cells.get((cpipe, size)) if cpipe else None
        if ccells:
            _compare_cell(result, base, current, pipe, cpipe, size, bcells, ccells, b_rows.get((pipe, size), {}),
                          c_rows.get((cpipe, size), {}))
    if not result.rows and not result.failed_cells:
        raise CompareError(
            f"nothing to compare: no cell (pipeline, size) was done on both sides "
            f"(BASE pipelines: {', '.join(base.pipelines) or 'none'}; "
            f"CURRENT pipelines: {', '.join(current.pipelines) or 'none'})"
        )
    if result.rows and all(r.verdict == NA for r in result.rows) and not result.failed_cells:
        raise CompareError(f"metric {metric!r} is not recorded in these runs (GPU metrics need a CUDA run)")
    return result
