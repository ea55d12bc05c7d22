"""The interface of a chart: a renderer says when it applies, writes its PNGs and returns them as `Chart`s
for the HTML section it belongs to. `report/charts/__init__.py` lists the renderers; a new chart is one module
with one renderer and one line there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memharness.report.series import CellSeries
    from memharness.results.gpu import GpuFigures
    from memharness.results.phases import SampledPeak
    from memharness.results.run import Run

CHARTS_SECTION = "charts"  # index.html's "Charts": scaling, pipelines side by side
TIMELINES_SECTION = "timelines"  # index.html's "Timelines": one per cell


@dataclass
class Chart:
    title: str
    path: Path
    caption: str
    anchor: str = ""
    facts: dict[str, Any] = field(default_factory=dict)  # what summary.json keeps of it (per-cell timelines)


@dataclass
class ChartContext:
    """Everything a renderer may draw, computed once by the builder."""

    run: Run
    out: Path
    series: dict[str, CellSeries]  # cell id -> its timeline's lines
    peaks: dict[str, SampledPeak | None]  # cell id -> its run phase's sampled peak and the call open then
    target_colors: dict[str, str]
    pipeline_colors: dict[str, str]
    gpu: dict[str, GpuFigures | None] = field(default_factory=dict)  # cell id -> what it did on the GPU
    marks: dict[int, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # size -> pipeline -> the
    # summary's figures to mark: {"host": run-phase tree peak, "gpu": GPU used by the tree} (bytes)
    scaling: dict[str, dict[str, Any]] = field(default_factory=dict)  # report.scaling.scaling_data
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)  # report.predict.predictions


class ChartRenderer:
    name: ClassVar[str]
    section: ClassVar[str] = CHARTS_SECTION

    def applies(self, ctx: ChartContext) -> bool:
        return True

    def render(self, ctx: ChartContext) -> list[Chart]:
        raise NotImplementedError
