"""The report's charts, each a renderer (`base.ChartRenderer`): when it applies, what it writes, which section
of index.html shows it. A new chart is one module here and one line in `CHARTS`."""

from __future__ import annotations

from memharness.report.charts.base import CHARTS_SECTION, TIMELINES_SECTION, Chart, ChartContext, ChartRenderer
from memharness.report.charts.compare import CompareCharts
from memharness.report.charts.scaling import ScalingChart
from memharness.report.charts.timeline import TimelineCharts

CHARTS: tuple[ChartRenderer, ...] = (ScalingChart(), CompareCharts(), TimelineCharts())  # as index.html orders them


def render_all(ctx: ChartContext) -> dict[str, list[Chart]]:
    """Every chart that applies, by renderer name, in `CHARTS` order."""
    return {r.name: r.render(ctx) for r in CHARTS if r.applies(ctx)}


def by_section(charts: dict[str, list[Chart]]) -> dict[str, list[Chart]]:
    """The rendered charts grouped by the index.html section that shows them, in `CHARTS` order."""
    out: dict[str, list[Chart]] = {CHARTS_SECTION: [], TIMELINES_SECTION: []}
    for r in CHARTS:
        out[r.section] += charts.get(r.name, [])
    return out


__all__ = ["CHARTS", "Chart", "ChartContext", "ChartRenderer", "by_section", "render_all"]
