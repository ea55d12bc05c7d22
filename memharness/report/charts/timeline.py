"""One cell's timeline: process-tree RSS (and each process when there were several), GPU memory in its own
panel when sampled, and the wrapped calls as labelled spans in one lane per nesting level below, with the
peak marked and named by the innermost call open at that moment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from memharness import names
from memharness.core.records import KIND_TREE_ANON, KIND_TREE_FILE
from memharness.report import fmt, png
from memharness.report.charts.base import TIMELINES_SECTION, Chart, ChartContext, ChartRenderer
from memharness.report.downsample import envelope
from memharness.report.series import CellSeries
from memharness.results.gpu import GpuFigures, cell_gpu, peak_span
from memharness.results.phases import SampledPeak, sampled_run_peak
from memharness.results.run import CellFolder
from memharness.results.spans import Span, assign_lanes

WIDTH_IN = 13.0
DPI = 110
BUCKETS = 1600  # more than the plot's pixel columns
MAX_LABELS = 400
PROC_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


@dataclass
class TimelineInfo:
    path: Path
    peak_mib: float | None
    peak_s: float | None
    peak_call: str | None  # innermost wrapped call open at the peak
    samples: int
    calls: int
    lanes: int
    gap_s: float = 0.0  # seconds the timeline sampler was not running (hatched on the chart)


def target_colors(targets: list[str]) -> dict[str, str]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]  # saturated ones first
    return {t: _hex(cmap(order[i % 20])) for i, t in enumerate(targets)}


def _hex(rgba) -> str:
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgba[:3])


def render_timeline(cell: CellFolder, series: CellSeries, out: Path, colors: dict[str, str] | None = None,
                    peak: SampledPeak | None = None, gpu: GpuFigures | None = None) -> TimelineInfo:
    fig, info = timeline_figure(cell, series, colors, out, peak, gpu)
    png.save(fig, out, DPI)
    return info


@dataclass
class _Layout:
    """The figure and its axes: RSS on top, GPU when sampled, the call lanes below."""

    fig: Figure
    ax: object
    ax_gpu: object | None
    ax_calls: object | None
    axes: list


def _layout(series: CellSeries, lanes: int, legend_rows: int) -> _Layout:
    gpu = bool(series.gpu or series.torch)
    heights = [4.2] + ([2.2] if gpu else []) + ([0.3 * lanes + 0.35] if lanes else [])
    fig_h = sum(heights) + 1.1 + 0.2 * legend_rows
    fig = Figure(figsize=(WIDTH_IN, fig_h), dpi=DPI)
    bottom = (0.45 + 0.2 * legend_rows) / fig_h
    gs = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.08,
                          left=0.07, right=0.985, top=1 - 0.55 / fig_h, bottom=bottom)
    ax = fig.add_subplot(gs[0])
    axes = [ax]
    ax_gpu = ax_calls = None
    if gpu:
        ax_gpu = fig.add_subplot(gs[len(axes)], sharex=ax)
        axes.append(ax_gpu)
    if lanes:
        ax_calls = fig.add_subplot(gs[len(axes)], sharex=ax)
        axes.append(ax_calls)
    return _Layout(fig, ax, ax_gpu, ax_calls, axes)


def _draw_phases(ax, phases: list, t0: int, end_ns: int) -> None:
    """The cell's phases (prepare / run) as shaded backdrops."""
    for i, ph in enumerate(phases):
        p_start = (ph.t_start_ns - t0) / 1e9
        p_end = ((ph.t_end_ns or end_ns) - t0) / 1e9
        ax.axvspan(p_start, p_end, color="#f0f0f0" if i % 2 == 0 else "#e4e4e4", zorder=0, lw=0)
        ax.text(p_start, 0.985, " " + ph.target.removeprefix("phase:"), transform=ax.get_xaxis_transform(),
                fontsize=7, color="#777", va="top", ha="left", clip_on=True)


def _draw_memory(lay: _Layout, cell: CellFolder, series: CellSeries, peak: SampledPeak | None,
                 x_end: float) -> None:
    """The per-process and tree RSS lines, the split, and the marked peak (or a note without samples)."""
    ax = lay.ax
    for i, s in enumerate(series.procs):
        tx, vy = envelope(s.t, s.v, BUCKETS)
        ax.plot(tx, vy / fmt.MiB, lw=0.8, color=PROC_COLORS[i % len(PROC_COLORS)], alpha=0.85,
                label=s.label if i < 8 else None)
    if series.tree is not None and len(series.tree.v) and peak is not None:
        tree = series.tree
        tx, vy = envelope(tree.t, tree.v, BUCKETS)
        label = "process tree (sum)" if series.procs else "process tree RSS"
        ax.plot(tx, vy / fmt.MiB, lw=1.3, color="black", label=label, zorder=3)
        _draw_split(ax, cell, cell.t0_ns or 0)
        peak_mib = peak.bytes / fmt.MiB
        _mark_peak(ax, peak.t_s, peak_mib, x_end, peak.call)
        top_mib = float(tree.v.max() / fmt.MiB)  # a higher spike outside the window (prepare) stays in view
        if top_mib > peak_mib * 1.001:
            j = int(np.argmax(tree.v))
            ax.annotate(f"{top_mib:.1f} MiB outside the run phase", xy=(float(tree.t[j]), top_mib),
                        xytext=(4, -12), textcoords="offset points", fontsize=7.5, color="#555", zorder=6)
        ax.set_ylim(0, max(peak_mib, top_mib) * 1.22 if top_mib > 0 else 1)
        for other in lay.axes[1:]:
            other.axvline(peak.t_s, color="#d62728", ls=":", lw=1, zorder=4)
    else:
        ax.text(0.5, 0.5, "no timeline samples", transform=ax.transAxes, ha="center", va="center",
                color="#777")
    ax.set_ylabel("RSS (MiB)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)


TORCH_STYLES = (("#d62728", "-"), ("#d62728", "--"))  # allocated, reserved


def _draw_gpu(ax_gpu, cell: CellFolder, series: CellSeries, gpu: GpuFigures | None) -> None:
    """NVML's sampled lines, torch's allocated and reserved memory at the main process's call events (steps),
    and the torch peak marked over the call that holds it."""
    for i, s in enumerate(series.gpu):
        tx, vy = envelope(s.t, s.v, BUCKETS)
        ax_gpu.plot(tx, vy / fmt.MiB, lw=1, color=PROC_COLORS[(i + 3) % len(PROC_COLORS)], label=f"NVML {s.label}")
    for s, (color, ls) in zip(series.torch, TORCH_STYLES, strict=False):
        ax_gpu.plot(s.t, s.v / fmt.MiB, lw=1.1, color=color, ls=ls, drawstyle="steps-post", label=s.label)
    top = max([float(s.v.max()) for s in series.gpu + series.torch if len(s.v)] + [0.0])
    if gpu is not None and gpu.torch_allocated is not None:
        span = peak_span(cell, gpu.call)
        peak = gpu.torch_allocated / fmt.MiB
        top = max(top, float(gpu.torch_allocated))
        if span is not None:
            ax_gpu.plot(span, [peak, peak], color="#d62728", lw=3, solid_capstyle="butt", zorder=5)
            where = f" in {fmt.short_target(gpu.call)}" if gpu.call else ""
            right = span[0] > 0.5 * ax_gpu.get_xlim()[1]
            ax_gpu.annotate(f"GPU peak {peak:,.1f} MiB (torch allocated){where}", xy=(span[0], peak),
                            xytext=(-6 if right else 6, 5), textcoords="offset points", fontsize=8, color="#b0171f",
                            ha="right" if right else "left",
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#d62728", "alpha": 0.9}, zorder=6)
    ax_gpu.set_ylabel("GPU (MiB)")
    ax_gpu.set_ylim(0, top / fmt.MiB * 1.3 if top > 0 else 1)
    ax_gpu.grid(alpha=0.3)
    ax_gpu.legend(loc="upper left", fontsize=7.5, framealpha=0.85)


def timeline_figure(cell: CellFolder, series: CellSeries, colors: dict[str, str] | None = None,
                    out: Path | None = None, peak: SampledPeak | None = None,
                    gpu: GpuFigures | None = None) -> tuple[Figure, TimelineInfo]:
    """The chart as a matplotlib Figure (not saved), and what it shows; `out` only goes into the info.
    `peak`: the run phase's sampled peak to mark (`results.phases.sampled_run_peak`); computed when None."""
    if peak is None and series.tree is not None and len(series.tree.v):
        peak = sampled_run_peak(cell)
    colors = dict(colors or {})
    t0 = cell.t0_ns or 0
    end_ns = cell.end_ns() or t0
    spans = assign_lanes(cell.calls, t0, end_ns)
    lanes = max((s.lane for s in spans), default=-1) + 1
    missing = [t for t in dict.fromkeys(s.call.target for s in spans) if t not in colors]
    if missing:
        extra = target_colors(list(colors) + missing)
        colors.update({t: extra[t] for t in missing})
    x_end = max([(end_ns - t0) / 1e9] + [s.end for s in spans]
                + ([float(series.tree.t[-1])] if series.tree is not None and len(series.tree.t) else []))
    x_end = x_end if x_end > 0 else 1.0
    legend_targets = list(dict.fromkeys(s.call.target for s in spans))
    lay = _layout(series, lanes, (len(legend_targets) + 3) // 4 if legend_targets else 0)
    status = cell.status + (f": {cell.cause}" if cell.cause else "")
    lay.fig.suptitle(f"{cell.id} — {cell.pipeline}, {fmt.size_label(cell.size)} documents, repeat {cell.repeat}"
                     f" ({status})", fontsize=11, x=0.07, ha="left")
    _draw_phases(lay.ax, [c for c in cell.calls if c.target.startswith("phase:")], t0, end_ns)
    gap_s = _draw_sampler_gaps([a for a in (lay.ax, lay.ax_gpu) if a is not None], cell, t0, end_ns)
    _draw_memory(lay, cell, series, peak, x_end)
    if lay.ax_calls is not None:
        _draw_spans(lay.fig, lay.ax_calls, spans, lanes, colors, x_end)
        if legend_targets:
            handles = [Patch(facecolor=colors[t], label=fmt.short_target(t)) for t in legend_targets]
            lay.fig.legend(handles=handles, loc="lower left", ncol=4, fontsize=7.5, frameon=False,
                           bbox_to_anchor=(0.06, 0.0), handlelength=1.2, columnspacing=1.5)
    for a in lay.axes[:-1]:
        a.tick_params(labelbottom=False)
    lay.axes[-1].set_xlabel("seconds from cell start")
    lay.ax.set_xlim(0, x_end * 1.01)
    if lay.ax_gpu is not None:  # after the x range is known: the peak's label goes left of it near the right edge
        _draw_gpu(lay.ax_gpu, cell, series, gpu if gpu is not None else cell_gpu(cell))
    shown = peak if series.tree is not None and len(series.tree.v) else None
    return lay.fig, TimelineInfo(out or Path(), None if shown is None else shown.bytes / fmt.MiB,
                                 None if shown is None else shown.t_s, None if shown is None else shown.call,
                                 series.samples, len(spans), lanes, gap_s)


def _draw_sampler_gaps(axes: list, cell: CellFolder, t0: int, end_ns: int) -> float:
    """Hatch the stretches when the timeline sampler was not running (status.json `sampler_gaps`), so the
    straight line drawn across one is not read as measured; returns their total length in seconds."""
    total = 0.0
    for i, gap in enumerate(cell.sampler_gaps):
        start = (gap["from_ns"] - t0) / 1e9
        stop = ((gap.get("to_ns") or end_ns) - t0) / 1e9
        if stop <= start:
            continue
        total += stop - start
        for ax in axes:
            ax.axvspan(start, stop, facecolor="none", edgecolor="#d62728", hatch="xx", lw=0, zorder=1,
                       label="no samples (sampler not running)" if i == 0 and ax is axes[0] else None)
    return total


SPLIT_LINES = ((KIND_TREE_ANON, "private (RssAnon)", "#2ca02c"), (KIND_TREE_FILE, "file-backed (RssFile)", "#8c564b"))


def _draw_split(ax, cell: CellFolder, t0: int) -> None:
    """The tree's private and file-backed RSS (format version 2), dashed under the RSS line."""
    rows = cell.memory_timeline
    if not len(rows):
        return
    for kind, label, color in SPLIT_LINES:
        sel = rows[rows["kind"] == kind]
        if len(sel):
            tx, vy = envelope((sel["t_ns"] - t0) / 1e9, sel["value"].astype(np.int64), BUCKETS)
            ax.plot(tx, vy / fmt.MiB, lw=0.9, ls="--", color=color, label=f"tree {label}", zorder=2)


def _mark_peak(ax, t: float, mib: float, x_end: float, call: str | None) -> None:
    ax.plot([t], [mib], marker="v", color="#d62728", ms=8, zorder=5, ls="none")
    ax.axvline(t, color="#d62728", ls=":", lw=1, zorder=4)
    text = f"peak {mib:.1f} MiB at {t:.1f} s"
    if call:
        text += f"\nin {fmt.short_target(call)}"
    right_side = t < 0.62 * x_end
    ax.annotate(text, xy=(t, mib), xytext=(10 if right_side else -10, 6), textcoords="offset points",
                ha="left" if right_side else "right", va="bottom", fontsize=8.5, color="#b0171f",
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#d62728", "alpha": 0.9}, zorder=6)


def _draw_spans(fig: Figure, ax, spans: list[Span], lanes: int, colors: dict[str, str], x_end: float) -> None:
    h = 0.8
    done = [s for s in spans if not s.open]
    still_open = [s for s in spans if s.open]
    for group, hatch in ((done, None), (still_open, "///")):
        if not group:
            continue
        verts = [[(s.start, s.lane - h / 2), (s.start, s.lane + h / 2), (s.end, s.lane + h / 2),
                  (s.end, s.lane - h / 2)] for s in group]
        edge = ["#d62728" if s.call.error else "#333333" for s in group]
        pc = PolyCollection(verts, facecolors=[colors[s.call.target] for s in group], edgecolors=edge,
                            linewidths=0.4, hatch=hatch, alpha=0.9)
        ax.add_collection(pc)
    # label the spans wide enough to hold their name
    ax_px = fig.get_figwidth() * fig.dpi * (ax.get_position().x1 - ax.get_position().x0)
    px_per_s = ax_px / (x_end * 1.01)
    labelled = 0
    for s in sorted(spans, key=lambda s: s.start - s.end)[: MAX_LABELS * 4]:
        suffix = (" (open)" if s.open else "") + (" !" if s.call.error else "")
        short = fmt.short_target(s.call.target)
        room = (s.end - s.start) * px_per_s
        fits = [n + suffix for n in (short, short.split(".")[-1]) if room >= 6.0 * len(n + suffix) + 6]
        if not fits:
            continue
        name = fits[0]
        ax.text((s.start + s.end) / 2, s.lane, name, ha="center", va="center", fontsize=7.5, clip_on=True,
                color="white" if _dark(colors[s.call.target]) else "black")
        labelled += 1
        if labelled >= MAX_LABELS:
            break
    ax.set_ylim(lanes - 0.5, -0.5)
    ax.set_yticks(range(lanes))
    ax.set_yticklabels([f"depth {i}" for i in range(lanes)], fontsize=7)
    ax.set_ylabel("calls", fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def _dark(hex_color: str) -> bool:
    r, g, b = (int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


class TimelineCharts(ChartRenderer):
    """One timeline per cell that recorded anything."""

    name = "timelines"
    section = TIMELINES_SECTION

    def render(self, ctx: ChartContext) -> list[Chart]:
        charts = []
        for cell in ctx.run.cells:
            s = ctx.series[cell.id]
            if s.tree is None and not cell.calls:
                continue
            info = render_timeline(cell, s, ctx.out / names.timeline_chart(cell.id), ctx.target_colors,
                                   ctx.peaks.get(cell.id), ctx.gpu.get(cell.id))
            facts = {"png": info.path.name, "peak_mib": info.peak_mib, "peak_s": info.peak_s,
                     "peak_call": info.peak_call, "samples": info.samples, "calls": info.calls}
            cap = f"{info.samples:,} tree samples, {info.calls:,} wrapped calls."
            if info.peak_mib is not None:
                cap += f" Peak {info.peak_mib:.1f} MiB at {info.peak_s:.1f} s"
                cap += f", inside {info.peak_call}." if info.peak_call else ", outside any wrapped call."
            if info.gap_s:
                cap += f" No samples for {info.gap_s:.1f} s (hatched): the timeline sampler was not running."
            charts.append(Chart(f"{cell.id} ({cell.status})", info.path, cap, f"timeline-{cell.id}", facts))
        return charts
