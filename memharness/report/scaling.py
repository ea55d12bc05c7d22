"""Peak and final process-tree memory (and the GPU memory used by the tree, where sampled) against collection
size, per pipeline, with a least-squares line (MiB on documents) whose slope is given in MiB per 100k
documents, from three sizes or more (a line through two points says nothing about the trend): the figures
(`charts/scaling.py` draws them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from memharness.report import fmt
from memharness.results.figures import TREE, Row

PER = 100_000
MIN_SIZES = 3  # a slope needs three sizes or more
SERIES = (("peak", "peak"), ("final", "final"), ("gpu", "gpu_nvml_peak"))  # key in the data -> row metric


def fit(sizes: list[int], values_mib: list[float]) -> tuple[float, float] | None:
    """(slope in MiB per 100k documents, intercept in MiB) of the least-squares line; None under 3 sizes."""
    if len(set(sizes)) < MIN_SIZES:
        return None
    slope, intercept = np.polyfit(np.asarray(sizes, dtype=float), np.asarray(values_mib, dtype=float), 1)
    return float(slope * PER), float(intercept)


def scaling_data(rows: list[Row], pipelines: list[str]) -> dict[str, dict[str, Any]]:
    """Per pipeline: sizes, median/min/max of peak and final tree memory (MiB), fitted slopes."""
    out: dict[str, dict[str, Any]] = {}
    for p in pipelines:
        prow = sorted((r for r in rows if r.target == TREE and r.pipeline == p and "peak" in r.metrics),
                      key=lambda r: r.size)
        if not prow:
            continue
        d: dict[str, Any] = {"sizes": [r.size for r in prow]}
        for key, metric in SERIES:
            have = [r for r in prow if metric in r.metrics]
            if key == "gpu":
                if not have:
                    continue
                d["gpu_sizes"] = [r.size for r in have]
            stats = [r.metrics[metric] for r in have]
            d[f"{key}_mib"] = [s.median / fmt.MiB for s in stats]
            d[f"{key}_mib_min"] = [s.min / fmt.MiB for s in stats]
            d[f"{key}_mib_max"] = [s.max / fmt.MiB for s in stats]
            f = fit([r.size for r in have], d[f"{key}_mib"])
            d[f"{key}_slope_mib_per_100k"] = None if f is None else f[0]
            d[f"{key}_intercept_mib"] = None if f is None else f[1]
        out[p] = d
    return out
