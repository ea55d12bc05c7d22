"""Reports of a run folder: per-function tables, timelines, pipeline comparison, scaling chart, one HTML
page. `build(run_dir) -> Path` renders `run_dir/report/` and returns its index.html."""

from __future__ import annotations

from pathlib import Path


def build(run_dir: Path, out_dir: Path | None = None, timings: dict[str, float] | None = None,
          budgets: dict[str, int | None] | None = None) -> Path:
    """`budgets`: {"peak": bytes, "gpu_nvml_peak": bytes} (`report --budget` / `--gpu-budget`): the largest size
    each pipeline is predicted to fit goes into the report's "Predicted sizes" and summary.json."""
    from memharness.report.builder import build as _build

    return _build(run_dir, out_dir, timings, budgets)


__all__ = ["build"]
