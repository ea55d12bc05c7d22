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


def _draw_fit(ax, pred: dict[str, Any], color: str, p: str) -> float:
    """The chosen model dotted out to the predicted sizes (hollow markers with their band); returns the top."""
    xs_all = pred["sizes"] + [x["size"] for x in pred["predictions"] if x.get("predicted_mib") is not None]
    xs = np.geomspace(min(xs_all), max(xs_all), 60)
    a, b = pred["params"]
    ys = a + b * xs if pred["model"] == "linear" else a * xs ** b
    ax.plot(xs, ys, color=color, lw=0.9, ls=":", alpha=0.8,
            label=f"{p} {pred['model']} fit" + ("" if pred["error"] is None else f" (±{pred['error'] * 100:.1f}%)"))
    top = 0.0
    for x in pred["predictions"]:
        if x.get("predicted_mib") is None:
            continue
        lo, hi = x["low_mib"], x["high_mib"]
        yerr = None if lo is None else [[x["predicted_mib"] - lo], [hi - x["predicted_mib"]]]
        ax.errorbar([x["size"]], [x["predicted_mib"]], yerr=yerr, color=color, marker="o", mfc="white", ms=6,
                    capsize=3, ls="none")
        top = max(top, hi if hi is not None else x["predicted_mib"])
    return top


def _draw_measured(ax, d: dict[str, Any], key: str, sizes: list[int], color: str, style: str, marker: str,
                   label: str) -> None:
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(d[f"{key}_mib"])
    err = [y - np.asarray(d[f"{key}_mib_min"]), np.asarray(d[f"{key}_mib_max"]) - y]
    slope = d[f"{key}_slope_mib_per_100k"]
    label += f" ({fmt.signed(slope)} MiB/100k)" if slope is not None else ""
    ax.errorbar(x, y, yerr=err if np.any(np.asarray(err) > 0) else None, color=color, ls=style,
                marker=marker, ms=5, lw=1.4, capsize=3, label=label)
    if slope is not None:  # the fitted line (3 sizes or more), drawn faint over the measured range
        xs = np.geomspace(x.min(), x.max(), 50)
        ax.plot(xs, d[f"{key}_intercept_mib"] + slope * xs / 1e5, color=color, lw=0.8, alpha=0.35, ls=style)


def _axis(ax, sizes: list[int], ylabel: str, top: float) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([fmt.size_label(s) for s in sizes])
    ax.minorticks_off()
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def render_scaling(data: dict[str, dict[str, Any]], out: Path, colors: dict[str, str],
                   predictions: dict[str, dict[str, Any]] | None = None) -> None:
    """Host memory on top; GPU memory used by the tree below when sampled. `predictions`
    (`predict.predictions`): each figure's chosen fit, drawn dotted out to the predicted sizes, which get
    hollow markers with their band. A slope needs three sizes (`report.scaling.MIN_SIZES`)."""
    predictions = predictions or {}
    gpu = any("gpu_mib" in d for d in data.values())
    fig = Figure(figsize=(10, 9.0 if gpu else 5.6), dpi=100)
    axes = fig.subplots(2 if gpu else 1, 1, sharex=True, squeeze=False)[:, 0]
    predicted = [x["size"] for p in predictions.values() for m in p.values() for x in m.get("predictions", [])
                 if x.get("predicted_mib") is not None]
    all_sizes = sorted({s for d in data.values() for s in d["sizes"]} | set(predicted))
    tops = [0.0, 0.0]
    for p, d in data.items():
        color = colors.get(p, "black")
        by_metric = predictions.get(p, {})
        if by_metric.get("peak") and not by_metric["peak"].get("flat"):
            tops[0] = max(tops[0], _draw_fit(axes[0], by_metric["peak"], color, p))
        _draw_measured(axes[0], d, "peak", d["sizes"], color, "-", "o", f"{p} peak")
        _draw_measured(axes[0], d, "final", d["sizes"], color, "--", "s", f"{p} final")
        tops[0] = max([tops[0]] + d["peak_mib_max"])
        if gpu and "gpu_mib" in d:
            pred = by_metric.get("gpu_nvml_peak")
            if pred and not pred.get("flat"):
                tops[1] = max(tops[1], _draw_fit(axes[1], pred, color, p))
            _draw_measured(axes[1], d, "gpu", d["gpu_sizes"], color, "-", "D", f"{p} GPU used by tree")
            tops[1] = max([tops[1]] + d["gpu_mib_max"])
    _axis(axes[0], all_sizes, "process-tree RSS (MiB)", tops[0])
    axes[0].set_title("Run-phase peak (solid) and final (dashed) host memory against collection size; slope of a "
                      "least-squares line\n(3 sizes or more) in the legend; chosen fit dotted, predicted sizes "
                      "hollow" + ("; GPU memory used by the tree (NVML) below" if gpu else ""), fontsize=10)
    if gpu:
        _axis(axes[1], all_sizes, "GPU used by the tree, NVML (MiB)", tops[1])
    axes[-1].set_xlabel("collection size (documents, log scale)")
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
        cap = cap or "slopes need three sizes or more"
        return [Chart("Memory against collection size", path, cap)]
