"""Predicted peak memory at sizes not measured, and the largest size that fits a memory budget.

Per pipeline, peak (MiB) against collection size is fitted by two models:

- `linear`: peak = a + b * size
- `power`:  peak = a * size ** b (least squares in log-log)

The model is chosen by leave-one-out error (each measured size predicted from the others; the mean
absolute relative error; ties go to `linear`), which needs three or more sizes; with two sizes the line is
used and no error is known. The error bar of a prediction is the chosen model's leave-one-out error at
the largest measured size (that size predicted from the smaller ones): an honest figure for
extrapolating, since that is what a prediction beyond the measured sizes does.

Everything works on summary rows (`Row.to_dict()`, the `rows` of `summary.json`) so a committed
`summary.json` can be fitted without its run folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memharness.results.phases import TREE

MiB = float(1 << 20)
MODELS = ("linear", "power")


def _fit_params(model: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if len(set(x.tolist())) < 2:
        return None
    if model == "linear":
        b, a = np.polyfit(x, y, 1)
        return float(a), float(b)
    if np.any(x <= 0) or np.any(y <= 0):
        return None
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return float(math.exp(log_a)), float(b)


def _value(model: str, params: tuple[float, float], size: float) -> float:
    a, b = params
    return a + b * size if model == "linear" else a * size ** b


@dataclass
class Fit:
    """One pipeline's chosen model of peak MiB against size."""

    model: str
    params: tuple[float, float]
    sizes: list[int]
    values: list[float]  # measured MiB (median over repeats)
    loo: dict[str, float | None] = field(default_factory=dict)  # model -> mean |relative error|, None: < 3 sizes
    largest_check: dict[str, Any] | None = None  # the largest size predicted from the smaller ones

    def predict(self, size: float) -> float:
        return _value(self.model, self.params, float(size))

    @property
    def error(self) -> float | None:
        """Relative error bar of a prediction (the largest size's leave-one-out error), None if unknown."""
        return None if self.largest_check is None else abs(self.largest_check["relative_error"])

    def formula(self) -> str:
        a, b = self.params
        if self.model == "linear":
            top = max(self.sizes)
            per = 100_000 if top >= 100_000 else 10 ** max(0, int(math.log10(top)))
            return f"peak = {a:.1f} MiB + {b * per:.1f} MiB per {_size_text(per)} documents"
        return f"peak = {a:.4g} MiB x size^{b:.3f}"

    def max_size(self, budget_mib: float) -> float | None:
        """The largest size whose predicted peak is within `budget_mib` (inf when the peak does not grow,
        None when even the smallest size does not fit the model's range)."""
        a, b = self.params
        top = self.predict(max(self.sizes))
        if self.predict(10 * max(self.sizes)) - top <= 1e-6 * abs(top):  # flat or shrinking
            return math.inf if top <= budget_mib else None
        if self.model == "linear":
            x = (budget_mib - a) / b
        else:
            x = (budget_mib / a) ** (1 / b) if budget_mib > 0 else 0.0
        return x if x > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": list(self.params), "formula": self.formula(),
                "sizes": self.sizes, "measured_mib": self.values, "loo_mean_relative_error": self.loo,
                "largest_check": self.largest_check, "error": self.error}


def fit_sizes(sizes: Iterable[int], values: Iterable[float]) -> Fit | None:
    """Fit MiB against size, choose the model by leave-one-out error. None under two distinct sizes."""
    pairs = sorted(zip((int(s) for s in sizes), (float(v) for v in values), strict=True))
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    if len(set(x.tolist())) < 2:
        return None
    loo: dict[str, float | None] = {}
    for model in MODELS:
        if len(x) < 3 or _fit_params(model, x, y) is None:
            loo[model] = None
            continue
        errs = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            params = _fit_params(model, x[keep], y[keep])
            if params is None:
                errs = []
                break
            errs.append(abs(_value(model, params, x[i]) - y[i]) / abs(y[i]) if y[i] else math.inf)
        loo[model] = float(np.mean(errs)) if errs else None
    scored = [(v, i) for i, (m, v) in enumerate(loo.items()) if v is not None]
    model = MODELS[min(scored)[1]] if scored else "linear"
    params = _fit_params(model, x, y)
    assert params is not None
    check = None
    if len(x) >= 3:
        p_small = _fit_params(model, x[:-1], y[:-1])
        if p_small is not None:
            predicted = _value(model, p_small, x[-1])
            check = {"size": int(x[-1]), "fitted_on": [int(s) for s in x[:-1]], "predicted_mib": float(predicted),
                     "measured_mib": float(y[-1]), "relative_error": float((predicted - y[-1]) / y[-1])}
    return Fit(model, params, [int(s) for s in x], [float(v) for v in y], loo, check)


def measured(rows: list[dict[str, Any]], pipeline: str, metric: str) -> dict[int, float]:
    """size -> MiB of one pipeline's process-tree figure; for `gpu_nvml_peak` of runs whose tree rows lack
    it, the highest figure of any wrapped call at that size."""
    out: dict[int, float] = {}
    for r in rows:
        if r["pipeline"] == pipeline and r["target"] == TREE and metric in r["metrics"]:
            out[int(r["size"])] = r["metrics"][metric]["median"] / MiB
    if not out and metric.startswith("gpu"):
        for r in rows:
            if r["pipeline"] == pipeline and metric in r["metrics"]:
                size = int(r["size"])
                out[size] = max(out.get(size, 0.0), r["metrics"][metric]["median"] / MiB)
    return out


def fit_rows(rows: list[dict[str, Any]], pipeline: str, metric: str = "peak",
             max_size: int | None = None) -> Fit | None:
    """Fit a pipeline's process-tree `metric` (MiB) from summary rows, using sizes up to `max_size`."""
    points = {s: v for s, v in measured(rows, pipeline, metric).items() if max_size is None or s <= max_size}
    return fit_sizes(points.keys(), points.values()) if points else None


def predictions(rows: list[dict[str, Any]], pipelines: list[str], wanted: dict[str, list[int]]
                ) -> dict[str, dict[str, Any]]:
    """Per pipeline and figure (`peak`, `gpu_nvml_peak`): the fit and predictions at `wanted[pipeline]`
    (the scenario's sizes that failed or were not run)."""
    out: dict[str, dict[str, Any]] = {}
    for p in pipelines:
        for metric in ("peak", "gpu_nvml_peak"):
            f = fit_rows(rows, p, metric)
            if f is None:
                continue
            preds = []
            for size in wanted.get(p, []):
                value = f.predict(size)
                err = f.error
                preds.append({"size": size, "predicted_mib": value,
                              "low_mib": None if err is None else value * (1 - err),
                              "high_mib": None if err is None else value * (1 + err)})
            out.setdefault(p, {})[metric] = {**f.to_dict(), "predictions": preds}
    return out


def budget_answer(fit: Fit, budget_mib: float) -> dict[str, Any]:
    """The largest size predicted to fit `budget_mib`, with the range the error bar allows."""
    size = fit.max_size(budget_mib)
    err = fit.error
    low = high = None
    if err is not None and size is not None:
        # pessimistic: the real peak is err higher than predicted; optimistic: err lower
        low = fit.max_size(budget_mib / (1 + err))
        high = fit.max_size(budget_mib / (1 - err)) if err < 1 else math.inf
    return {"budget_mib": budget_mib, "size": size, "low": low, "high": high, "error": err,
            "model": fit.model, "formula": fit.formula()}


def _size_text(x: float | None) -> str:
    if x is None:
        return "none"
    if math.isinf(x):
        return "any size"
    x = float(f"{x:.3g}")  # three significant digits
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{int(x)}"


def budget_lines(rows: list[dict[str, Any]], pipelines: list[str], budget: int | None,
                 gpu_budget: int | None) -> list[str]:
    """What `memharness report --budget` prints: one line per pipeline and budget."""
    lines = []
    for what, metric, limit in (("RAM", "peak", budget), ("GPU", "gpu_nvml_peak", gpu_budget)):
        if limit is None:
            continue
        budget_mib = limit / MiB
        lines.append(f"{what} budget {budget_mib / 1024:.2f} GiB ("
                     + ("run-phase process-tree peak" if metric == "peak" else "GPU memory used by the tree, NVML")
                     + "):")
        for p in pipelines:
            f = fit_rows(rows, p, metric)
            if f is None:
                have = sorted(measured(rows, p, metric))
                if not have and metric != "peak":
                    lines.append(f"  {p}: no GPU memory recorded")
                    continue
                lines.append(f"  {p}: cannot predict ({len(have)} measured size{'s' * (len(have) != 1)}; "
                             "a fit needs 2)")
                continue
            ans = budget_answer(f, budget_mib)
            if ans["size"] is None:
                lines.append(f"  {p}: does not fit at any size ({f.formula()})")
                continue
            bar = ("no error bar (needs 3 measured sizes)" if ans["error"] is None else
                   f"{_size_text(ans['low'])}–{_size_text(ans['high'])} within the ±{ans['error'] * 100:.1f}% "
                   f"error of predicting {_size_text(f.largest_check['size'])} from the smaller sizes")
            far = ans["size"] / max(f.sizes)
            warn = (f"; {far:.0f}x beyond the largest measured size, where the model is a guess" if far > 4
                    and not math.isinf(far) else "")
            lines.append(f"  {p}: up to {_size_text(ans['size'])} documents ({bar}); {f.model} fit "
                         f"on {', '.join(_size_text(s) for s in f.sizes)}: {f.formula()}{warn}")
    return lines
