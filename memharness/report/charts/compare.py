"""For one collection size, the pipelines side by side on a shared y-axis (the seed's left/right chart):
process-tree RSS over time per pipeline, every repeat drawn, the peak marked."""

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


def render_compare(size: int, panels: list[tuple[str, list[tuple[CellFolder, CellSeries]]]], out: Path,
                   colors: dict[str, str], xlabel: str = "seconds from cell start") -> dict[str, float]:
    """`panels`: (pipeline, [(cell, series), ...]) in the order to draw, left to right; the builder hands
    each cell's `run` phase (`run_part`). Returns the highest peak per pipeline in MiB."""
    n = len(panels)
    fig = Figure(figsize=(max(5.2 * n, 8.0), 4.6), dpi=100)
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    peaks: dict[str, float] = {}
    for ax, (pipeline, cells) in zip(axes, panels, strict=True):
        color = colors.get(pipeline, "black")
        best: tuple[float, float] | None = None
        notes = []
        for j, (cell, series) in enumerate(sorted(cells, key=lambda cs: cs[0].repeat)):
            if cell.status != "done":
                notes.append(f"r{cell.repeat} {cell.status}" + (f" ({cell.cause})" if cell.cause else ""))
            if series.tree is None or not len(series.tree.v):
                continue
            tx, vy = envelope(series.tree.t, series.tree.v, 1000)
            ax.plot(tx, vy / fmt.MiB, lw=1.1, color=color, alpha=1.0 if j == 0 else 0.55,
                    ls="-" if cell.status == "done" else "--", label=f"repeat {cell.repeat}")
            k = int(np.argmax(series.tree.v))
            pk = (float(series.tree.t[k]), float(series.tree.v[k] / fmt.MiB))
            if best is None or pk[1] > best[1]:
                best = pk
        if best is not None:
            peaks[pipeline] = best[1]
            ax.plot([best[0]], [best[1]], marker="v", color="black", ms=7, ls="none", zorder=5)
            ax.axhline(best[1], color=color, ls=":", lw=0.8)
            x_max = max(float(cs[1].tree.t[-1]) for cs in cells if cs[1].tree is not None and len(cs[1].tree.t))
            frac = best[0] / x_max if x_max > 0 else 0.5
            ha = "left" if frac < 0.25 else ("right" if frac > 0.75 else "center")
            ax.annotate(f"peak {best[1]:.1f} MiB", xy=best, xytext=(0, 6), textcoords="offset points",
                        ha=ha, va="bottom", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no timeline", transform=ax.transAxes, ha="center", color="#777")
        title = pipeline + (f"\n{'; '.join(notes)}" if notes else "")
        ax.set_title(title, fontsize=10, color=color)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if len(cells) > 1:
            ax.legend(loc="lower right", fontsize=7)
    axes[0].set_ylabel("process-tree RSS (MiB)")
    top = max(peaks.values(), default=1.0)
    axes[0].set_ylim(0, top * 1.15 if top > 0 else 1)
    fig.suptitle(f"{fmt.size_label(size)} documents: process-tree memory per pipeline (shared y-axis)",
                 fontsize=11)
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
    keep = (s.tree.t >= a) & (s.tree.t <= b)
    return CellSeries(Series(s.tree.label, s.tree.t[keep] - a, s.tree.v[keep]), samples=int(keep.sum()))


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
            peaks = render_compare(size, panels, path, ctx.pipeline_colors, xlabel=_xlabel(run))
            cap = "; ".join(f"{p}: peak {v:.1f} MiB" for p, v in peaks.items())
            charts.append(Chart(f"{fmt.size_label(size)} documents: pipelines side by side", path, cap))
        return charts
