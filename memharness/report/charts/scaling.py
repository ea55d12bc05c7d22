"""The scaling chart: peak and final process-tree memory against collection size per pipeline, the fitted
slope, the chosen prediction model dotted out to the sizes the scenario wanted but did not measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from memharness import names
from memharness.report import fmt, png
from memharness.report.charts.base import Chart, ChartContext, ChartRenderer


def render_scaling(data: dict[str, dict[str, Any]], out: Path, colors: dict[str, str],
                   predictions: dict[str, dict[str, Any]] | None = None) -> None:
    """`predictions` (`predict.predictions`): the chosen fit of each pipeline's peak, drawn dotted out to
    the predicted sizes, which get hollow markers with the error bar."""
    fig = Figure(figsize=(10, 5.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    predicted = [x["size"] for p in (predictions or {}).values() for x in p.get("peak", {}).get("predictions", [])]
    all_sizes = sorted({s for d in data.values() for s in d["sizes"]} | set(predicted))
    top_pred = 0.0
    for p, by_metric in (predictions or {}).items():
        pred = by_metric.get("peak")
        if not pred or p not in data:
            continue
        color = colors.get(p, "black")
        xs_all = pred["sizes"] + [x["size"] for x in pred["predictions"]]
        xs = np.geomspace(min(xs_all), max(xs_all), 60)
        a, b = pred["params"]
        ys = a + b * xs if pred["model"] == "linear" else a * xs ** b
        ax.plot(xs, ys, color=color, lw=0.9, ls=":", alpha=0.8,
                label=f"{p} {pred['model']} fit" + ("" if pred["error"] is None else f" (±{pred['error'] * 100:.1f}%)"))
        for x in pred["predictions"]:
            lo, hi = x["low_mib"], x["high_mib"]
            yerr = None if lo is None else [[x["predicted_mib"] - lo], [hi - x["predicted_mib"]]]
            ax.errorbar([x["size"]], [x["predicted_mib"]], yerr=yerr, color=color, marker="o", mfc="white", ms=6,
                        capsize=3, ls="none")
            top_pred = max(top_pred, hi if hi is not None else x["predicted_mib"])
    for p, d in data.items():
        color = colors.get(p, "black")
        x = np.asarray(d["sizes"], dtype=float)
        for metric, style, marker in (("peak", "-", "o"), ("final", "--", "s")):
            y = np.asarray(d[f"{metric}_mib"])
            err = [y - np.asarray(d[f"{metric}_mib_min"]), np.asarray(d[f"{metric}_mib_max"]) - y]
            slope = d[f"{metric}_slope_mib_per_100k"]
            label = f"{p} {metric}" + (f" ({fmt.signed(slope)} MiB/100k)" if slope is not None else "")
            ax.errorbar(x, y, yerr=err if np.any(np.asarray(err) > 0) else None, color=color, ls=style,
                        marker=marker, ms=5, lw=1.4, capsize=3, label=label)
            if slope is not None and len(x) >= 3:  # the fitted line, drawn faint over the measured range
                xs = np.geomspace(x.min(), x.max(), 50)
                ax.plot(xs, d[f"{metric}_intercept_mib"] + slope * xs / 1e5, color=color, lw=0.8, alpha=0.35,
                        ls=style)
    ax.set_xscale("log")
    ax.set_xticks(all_sizes)
    ax.set_xticklabels([fmt.size_label(s) for s in all_sizes])
    ax.minorticks_off()
    ax.set_xlabel("collection size (documents, log scale)")
    ax.set_ylabel("process-tree RSS (MiB)")
    top = max([max(d["peak_mib_max"]) for d in data.values()] + [top_pred, 1.0])
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    ax.grid(alpha=0.3, which="both")
    ax.set_title("Run-phase peak (solid) and final (dashed) memory against collection size; slope of a "
                 "least-squares line in the legend;\nchosen fit dotted, predicted sizes hollow", fontsize=10)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    png.save(fig, out)


class ScalingChart(ChartRenderer):
    """When some pipeline ran two sizes or more."""

    name = "scaling"

    def applies(self, ctx: ChartContext) -> bool:
        return any(len(set(d["sizes"])) >= 2 for d in ctx.scaling.values())

    def render(self, ctx: ChartContext) -> list[Chart]:
        path = ctx.out / names.SCALING_CHART
        render_scaling(ctx.scaling, path, ctx.pipeline_colors, ctx.predictions)
        cap = "; ".join(f"{p}: peak {fmt.signed(d['peak_slope_mib_per_100k'])}, final "
                        f"{fmt.signed(d['final_slope_mib_per_100k'])} MiB per 100k documents"
                        for p, d in ctx.scaling.items() if d["peak_slope_mib_per_100k"] is not None)
        return [Chart("Memory against collection size", path, cap)]
