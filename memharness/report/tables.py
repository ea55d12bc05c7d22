"""Per-function tables in the seed study's format (`Indexing Method | Document Size | Starting Memory |
Memory Increment | Final Memory`) plus peak, peak over start, GPU columns when present, duration and
calls; written as Markdown, CSV and JSON.

The numbers come from `results.figures.collect()`; this module only lays them out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import write_text
from memharness.report import fmt
from memharness.results.figures import TREE, TREE_PREPARE, Row, Stat, collect

__all__ = ["collect", "Column", "Table", "build_tables", "write_tables"]


@dataclass(frozen=True)
class Column:
    metric: str  # key in Row.metrics
    title: str
    unit: str  # "MiB", "s" or ""
    scale: float  # divide the stored value by this for the unit (bytes -> MiB)
    number: Callable[[float], str]

    def text(self, row: Row) -> str:
        stat = row.metrics.get(self.metric)
        if stat is None:
            return "–"
        return fmt.stat_text(Stat([v / self.scale for v in stat.values]), self.number, self.unit)


def _mib(metric: str, title: str) -> Column:
    return Column(metric, title, "MiB", fmt.MiB, lambda v: f"{v:.1f}")


HOST_COLUMNS = [
    _mib("start", "Starting Memory"),
    _mib("increment", "Memory Increment"),
    _mib("final", "Final Memory"),
    _mib("peak", "Peak Memory"),
    _mib("peak_over_start", "Peak over Start"),
]
# Issue 11: shown where the run holds them (format version 2). See docs/reports.md for how each is taken.
SPLIT_COLUMNS = [
    _mib("private_increment", "Private Increment"),
    _mib("private_peak", "Private Peak"),
    _mib("file_increment", "File-backed Increment"),
    _mib("file_peak", "File-backed Peak"),
    _mib("descendants_peak", "Descendants' Peak"),
    _mib("tree_peak_in_call", "Tree Peak during Call"),
]
GPU_COLUMNS = [  # each title says what the figure covers (docs/reports.md)
    _mib("gpu_start", "GPU Start (allocated)"),
    _mib("gpu_final", "GPU Final (allocated)"),
    _mib("gpu_peak", "GPU Peak (allocated)"),
    _mib("gpu_peak_reserved", "GPU Peak (reserved)"),
    _mib("gpu_nvml_peak", "GPU Used by Tree, peak (NVML)"),  # the process-tree row: the summary's figure
    _mib("gpu_nvml_device_peak", "GPU Used on Device, peak (NVML)"),
    _mib("gpu_nvml_tree", "GPU Used by Process and Children at Exit (NVML)"),  # function rows
    _mib("gpu_nvml_device", "GPU Used on Device at Exit (NVML)"),
]
DURATION = Column("duration_s", "Duration", "s", 1.0, fmt.seconds)
CALLS = Column("calls", "Calls", "", 1.0, fmt.count)


@dataclass
class Table:
    target: str
    columns: list[Column]
    rows: list[Row]
    show_repeats: bool
    show_phase: bool = False  # the tree table when the run recorded phases: run rows, then prepare rows

    @property
    def heading(self) -> str:
        return fmt.heading(self.target)

    @property
    def file_stem(self) -> str:
        return fmt.safe_name(self.target)

    def header(self) -> list[str]:
        head = ["Indexing Method", "Document Size"]
        if self.show_phase:
            head.append("Phase")
        if self.show_repeats:
            head.append("Repeats")
        return head + [c.title for c in self.columns]

    def text_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            line = [r.pipeline, fmt.size_label(r.size)]
            if self.show_phase:
                line.append("prepare" if r.target == TREE_PREPARE else "run")
            if self.show_repeats:
                line.append(str(r.repeats))
            out.append(line + [c.text(r) for c in self.columns])
        return out

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = ["| " + " | ".join(self.header()) + " |",
                 "|" + "|".join("---" if i < 2 + self.show_phase else "---:" for i in range(len(self.header())))
                 + "|"]
        lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in self.text_rows()]
        return "\n".join(lines) + "\n"

    def csv_text(self) -> str:
        """One line per row; memory in MiB, time in seconds; median plus _min/_max columns."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        head = ["pipeline", "kind", "size", "size_label", "target", "repeats"]
        for c in self.columns:
            base = c.metric + ("_mib" if c.unit == "MiB" else "")  # duration_s is already in seconds
            head += [base, f"{base}_min", f"{base}_max"]
        w.writerow(head)
        for r in self.rows:
            line: list[Any] = [r.pipeline, r.kind, r.size, fmt.size_label(r.size), r.target, r.repeats]
            for c in self.columns:
                stat = r.metrics.get(c.metric)
                if stat is None:
                    line += ["", "", ""]
                else:
                    line += [_num(stat.median / c.scale), _num(stat.min / c.scale), _num(stat.max / c.scale)]
            w.writerow(line)
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r, text in zip(self.rows, self.text_rows(), strict=True):
            metrics = {}
            for c in self.columns:
                stat = r.metrics.get(c.metric)
                if stat is not None:
                    metrics[c.metric] = {"unit": c.unit, "median": stat.median / c.scale,
                                         "min": stat.min / c.scale, "max": stat.max / c.scale,
                                         "values": [v / c.scale for v in stat.values]}
            rows.append({"pipeline": r.pipeline, "kind": r.kind, "size": r.size,
                         "size_label": fmt.size_label(r.size), "repeats": r.repeats,
                         "text": dict(zip(self.header(), text, strict=True)), "metrics": metrics})
        return {"target": self.target, "heading": self.heading, "columns": self.header(), "rows": rows}


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 4)


def build_tables(rows: list[Row], order: list[str] | None = None) -> list[Table]:
    """One table per target: the process tree first, then `order` (targets not in it after, sorted).
    Rows keep `collect()`'s order (pipeline in scenario order, then size)."""
    by_target: dict[str, list[Row]] = {}
    for r in rows:  # prepare-phase tree rows go into the tree table, after the run rows
        by_target.setdefault(TREE if r.target == TREE_PREPARE else r.target, []).append(r)
    names = [TREE] if TREE in by_target else []
    names += [t for t in (order or []) if t in by_target and t != TREE]
    names += sorted(t for t in by_target if t not in names)
    tables = []
    for target in names:
        trows = by_target[target]
        present = {m for r in trows for m in r.metrics}
        cols = (list(HOST_COLUMNS) + [c for c in SPLIT_COLUMNS if c.metric in present]
                + [c for c in GPU_COLUMNS if c.metric in present] + [DURATION])
        if target != TREE:
            cols.append(CALLS)
        show_phase = target == TREE and any(r.target == TREE_PREPARE for r in trows)
        if show_phase:
            trows = sorted(trows, key=lambda r: r.target == TREE_PREPARE)  # stable: run rows, then prepare rows
        tables.append(Table(target, cols, trows, show_repeats=any(r.repeats > 1 for r in trows),
                            show_phase=show_phase))
    return tables


TREE_NOTE = ("Whole process tree, whole cell (this run recorded no phases): summed RSS of every process of "
             "the cell, from the sampled timeline (start = first sample, final = last sample, peak = highest "
             "sample; duration = the cell's wall time).")
TREE_NOTE_PHASES = ("Whole process tree: summed RSS of every process of the cell. Rows marked `run` cover the "
                    "run phase only: start = tree RSS when `run` began, final = when it ended, peak = the "
                    "highest tree RSS during it (timeline samples and the main process's exact high-water "
                    "mark), duration = the phase's length. Rows marked `prepare` cover the prepare phase "
                    "(imports, extension compiles, model loads), which every other figure leaves out.")


def tree_note(table: Table) -> str:
    """The caption of the tree table: which window its figures cover."""
    return TREE_NOTE_PHASES if table.show_phase else TREE_NOTE


def tables_markdown(tables: list[Table], title: str, lead: str = "") -> str:
    """All tables under `title`; `lead` (the summary and call trees) goes before them."""
    parts = [f"# {title}\n"] + ([lead] if lead else []) + [
        "Memory in MiB (2^20 bytes). With repeats: median (min–max).\n"]
    for t in tables:
        heading = t.heading if t.target == TREE else f"`{t.target}`"
        parts.append(f"### {heading}\n")
        if t.target == TREE:
            parts.append(tree_note(t) + "\n")
        parts.append(t.markdown())
    return "\n".join(parts)


def write_tables(tables: list[Table], out_dir: Path, title: str, lead: str = "") -> Path:
    """`out_dir/tables/<name>.md|.csv|.json` per table and `out_dir/tables.md` with all of them."""
    tdir = Path(out_dir) / names.REPORT_TABLES
    tdir.mkdir(parents=True, exist_ok=True)
    for old in tdir.glob("*"):
        if old.name.endswith(names.table_files("")):
            old.unlink()
    for t in tables:
        md, csv, js = names.table_files(t.file_stem)
        write_text(tdir / md, f"### {t.heading}\n\n{t.markdown()}")
        write_text(tdir / csv, t.csv_text())
        write_text(tdir / js, json.dumps(t.to_json(), indent=2, ensure_ascii=False) + "\n")
    path = Path(out_dir) / names.REPORT_TABLES_MD
    write_text(path, tables_markdown(tables, title, lead))
    return path
