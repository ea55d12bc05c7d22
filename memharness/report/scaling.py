"""Peak and final process-tree memory against collection size, per pipeline, with a least-squares line
(MiB on documents) whose slope is given in MiB per 100k documents: the figures (`charts/scaling.py` draws
them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from memharness.report import fmt
from memharness.results.figures import TREE, Row

PER = 100_000


def fit(sizes: list[int], values_mib: list[float]) -> tuple[float, float] | None:
    """(slope in MiB per 100k documents, intercept in MiB) of the least-squares line; None under 2 sizes."""
    if len(set(sizes)) < 2:
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
        for metric in ("peak", "final"):
            stats = [r.metrics[metric] for r in prow]
            d[f"{metric}_mib"] = [s.median / fmt.MiB for s in stats]
            d[f"{metric}_mib_min"] = [s.min / fmt.MiB for s in stats]
            d[f"{metric}_mib_max"] = [s.max / fmt.MiB for s in stats]
            f = fit(d["sizes"], d[f"{metric}_mib"])
            d[f"{metric}_slope_mib_per_100k"] = None if f is None else f[0]
            d[f"{metric}_intercept_mib"] = None if f is None else f[1]
        out[p] = d
    return out
