"""For one collection size, the pipelines side by side on a shared y-axis (the seed's left/right chart):
process-tree RSS over the run phase per pipeline, every repeat drawn, the summary's peak marked; below, when
sampled, the GPU memory NVML charged to each pipeline's processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from memharness import names
from memharness.report import fmt, png
from memharness.report.charts.base import Chart, ChartContext, ChartRenderer
from memharness.report.downsample import envelope
from memharness.report.series import CellSeries, Series
from memharness.results.phases import run_seconds
from memharness.results.run import CellFolder, Run

PIPELINE_COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def pipeline_colors(pipelines: list[str]) -> dict[str, str]:
    return {p: PIPELINE_COLORS[i % len(PIPELINE_COLORS)] for i, p in enumerate(pipelines)}


def _gpu_line(series: CellSeries) -> Series | None:
    """The NVML line a GPU panel draws: used by the tree (summed over devices), else used on the device."""
    for what in ("used by tree", "used (device)"):
        lines = [s for s in series.gpu if s.label.endswith(what)]
        if lines:
            if len(lines) == 1:
                return Series(f"NVML {what}", lines[0].t, lines[0].v)
            t = np.unique(np.concatenate([s.t for s in lines]))
            v = sum(np.interp(t, s.t, s.v).astype(np.int64) for s in lines)
            return Series(f"NVML {what}", t, v)
    return None


def _draw_panel(ax, cells: list[tuple[CellFolder, CellSeries]], line, color: str, mark: float | None,
                what: str) -> tuple[list[str], float]:
    """Every repeat's line (`line(series)`), the figure the summary gives marked at the highest sample's
    time; returns (notes on cells not done, the top of what was drawn in MiB)."""
    notes, best, top = [], None, 0.0
    for j, (cell, series) in enumerate(sorted(cells, key=lambda cs: cs[0].repeat)):
        if cell.status != "done" and what == "host":
            notes.append(f"r{cell.repeat} {cell.status}" + (f" ({cell.cause})" if cell.cause else ""))
        ln = line(series)
        if ln is None or not len(ln.v):
            continue
        tx, vy = envelope(ln.t, ln.v, 1000)
        ax.plot(tx, vy / fmt.MiB, lw=1.1, color=color, alpha=1.0 if j == 0 else 0.55,
                ls="-" if cell.status == "done" else "--", label=f"repeat {cell.repeat}")
        k = int(np.argmax(ln.v))
        top = max(top, float(ln.v[k] / fmt.MiB))
        if best is None or ln.v[k] > best[1]:
            best = (float(ln.t[k]), float(ln.v[k]), float(ln.t[-1]))
    if best is None:
        ax.text(0.5, 0.5, "no timeline" if what == "host" else "no GPU samples", transform=ax.transAxes,
                ha="center", color="#777")
        return notes, top
    value = mark / fmt.MiB if mark is not None else best[1] / fmt.MiB
    top = max(top, value)
    ax.plot([best[0]], [value], marker="v", color="black", ms=7, ls="none", zorder=5)
    ax.axhline(value, color=color, ls=":", lw=0.8)
    frac = best[0] / best[2] if best[2] > 0 else 0.5
    ha = "left" if frac < 0.25 else ("right" if frac > 0.75 else "center")
    ax.annotate(f"{'peak' if what == 'host' else 'GPU used'} {value:,.1f} MiB", xy=(best[0], value), xytext=(0, 6),
                textcoords="offset points", ha=ha, va="bottom", fontsize=9)
    return notes, top


def render_compare(size: int, panels: list[tuple[str, list[tuple[CellFolder, CellSeries]]]], out: Path,
                   colors: dict[str, str], xlabel: str = "seconds from cell start",
                   marks: dict[str, dict[str, float | None]] | None = None) -> dict[str, float]:
    """`panels`: (pipeline, [(cell, series), ...]) in the order to draw, left to right; the builder hands
    each cell's `run` phase (`run_part`). `marks`: per pipeline the summary's figures (`host`: the run-phase
    tree peak; `gpu`: the GPU memory used by the tree), marked on the lines, so chart and summary give one
    number; without them, the highest sample. A second row draws NVML's GPU memory when any cell sampled it.
    Returns the marked host figure per pipeline in MiB."""
    marks = marks or {}
    n = len(panels)
    gpu = any(_gpu_line(series) is not None for _, cells in panels for _, series in cells)
    fig = Figure(figsize=(max(5.2 * n, 8.0), 7.8 if gpu else 4.6), dpi=100)
    grid = fig.subplots(2 if gpu else 1, n, sharey="row", sharex="col", squeeze=False)
    peaks: dict[str, float] = {}
    tops = [0.0, 0.0]
    for i, (pipeline, cells) in enumerate(panels):
        color = colors.get(pipeline, "black")
        mark = marks.get(pipeline, {})
        ax = grid[0][i]
        notes, top = _draw_panel(ax, cells, lambda s: s.tree, color, mark.get("host"), "host")
        tops[0] = max(tops[0], top)
        if mark.get("host") is not None or top:
            peaks[pipeline] = mark["host"] / fmt.MiB if mark.get("host") is not None else top
        ax.set_title(pipeline + (f"\n{'; '.join(notes)}" if notes else ""), fontsize=10, color=color)
        ax.grid(alpha=0.3)
        if len(cells) > 1:
            ax.legend(loc="lower right", fontsize=7)
        if gpu:
            _, gtop = _draw_panel(grid[1][i], cells, _gpu_line, color, mark.get("gpu"), "gpu")
            tops[1] = max(tops[1], gtop)
            grid[1][i].grid(alpha=0.3)
        for a in grid[-1:, i]:
            a.set_xlabel(xlabel)
    grid[0][0].set_ylabel("process-tree RSS (MiB)")
    grid[0][0].set_ylim(0, tops[0] * 1.15 if tops[0] > 0 else 1)
    if gpu:
        grid[1][0].set_ylabel("GPU used by the tree, NVML (MiB)")
        grid[1][0].set_ylim(0, tops[1] * 1.15 if tops[1] > 0 else 1)
    what = "host and GPU memory" if gpu else "process-tree memory"
    fig.suptitle(f"{fmt.size_label(size)} documents: {what} per pipeline (shared y-axis per row; marked: the "
                 "summary's figure)", fontsize=11)
    fig.tight_layout()
    png.save(fig, out)
    return peaks


def run_part(cell: CellFolder, s: CellSeries) -> CellSeries:
    """The tree line of a cell over its `run` phase, in seconds from the phase's start (the whole line when
    the cell recorded no phases)."""
    window = run_seconds(cell)
    if window is None or s.tree is None:
        return s
    a, b = window

    def cut(line: Series) -> Series:
        keep = (line.t >= a) & (line.t <= b)
        return Series(line.label, line.t[keep] - a, line.v[keep])

    tree = cut(s.tree)
    return CellSeries(tree, gpu=[cut(g) for g in s.gpu], samples=len(tree.t))


def _xlabel(run: Run) -> str:
    if any(run_seconds(c) is not None for c in run.cells):
        return "seconds from the start of the run phase"
    return "seconds from cell start"


class CompareCharts(ChartRenderer):
    """Per size with two or more pipelines: their `run` phases side by side."""

    name = "compare"

    def render(self, ctx: ChartContext) -> list[Chart]:
        run = ctx.run
        charts: list[Chart] = []
        for size in run.sizes:
            panels = []
            for p in run.pipelines:
                cs = [(c, run_part(c, ctx.series[c.id])) for c in run.cells if c.pipeline == p and c.size == size
                      and ctx.series[c.id].tree is not None]
                if cs:
                    panels.append((p, cs))
            if len(panels) < 2:
                continue
            path = ctx.out / names.compare_chart(fmt.size_label(size))
            peaks = render_compare(size, panels, path, ctx.pipeline_colors, xlabel=_xlabel(run),
                                   marks=ctx.marks.get(size, {}))
            cap = "; ".join(f"{p}: peak {v:.1f} MiB" for p, v in peaks.items())
            charts.append(Chart(f"{fmt.size_label(size)} documents: pipelines side by side", path, cap))
        return charts
