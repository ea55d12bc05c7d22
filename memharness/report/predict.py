"""Predicted memory at sizes not measured, and the largest size that fits a memory budget.

Per pipeline, a figure (the run-phase tree peak; the GPU memory used by the tree) against collection size is
fitted by two models:

- `linear`: value = a + b * size
- `power`:  value = a * size ** b (least squares in log-log)

The model is chosen by leave-one-out error (each measured size predicted from the others; the mean
absolute relative error; ties go to `linear`), which needs three or more sizes; with two sizes the line is
used and no error is known, so no band is given.

How far a prediction is trusted (docs/reports.md, "Predicted sizes"):

- **Flat curves.** When the measured values differ by at most `FLAT` (5%) of the largest, the figure does
  not grow with size in the measured range: the report says so ("not the limit in the measured range") and
  neither extrapolates it nor inverts it for a budget.
- **Band.** The relative error at the largest measured size is the largest of the chosen model's
  leave-one-out errors and of the error of predicting the largest size from the smaller ones; beyond the
  largest measured size it widens in proportion to the distance (twice as far, twice the band).
- **Reach.** Nothing is predicted beyond `REACH` (4x) the largest measured size.

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
FLAT = 0.05  # measured values within 5% of each other: the figure does not grow with size
REACH = 4.0  # predictions stop at 4x the largest measured size
METRICS = (("peak", "RAM", "run-phase process-tree peak"),
           ("gpu_nvml_peak", "GPU", "GPU memory used by the tree, NVML"))


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


def size_text(x: float | None) -> str:
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


def _amount(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def _range(lo_mib: float, hi_mib: float) -> str:
    """'3.9–4.0 GiB' (one unit, the larger value's)."""
    if hi_mib >= 1024:
        return f"{lo_mib / 1024:.1f}–{hi_mib / 1024:.1f} GiB"
    return f"{lo_mib:.0f}–{hi_mib:.0f} MiB"


@dataclass
class Fit:
    """One pipeline's chosen model of a figure (MiB) against size."""

    model: str
    params: tuple[float, float]
    sizes: list[int]
    values: list[float]  # measured MiB (median over repeats)
    loo: dict[str, float | None] = field(default_factory=dict)  # model -> mean |relative error|, None: < 3 sizes
    loo_max: float | None = None  # the chosen model's largest |leave-one-out error|
    largest_check: dict[str, Any] | None = None  # the largest size predicted from the smaller ones

    def predict(self, size: float) -> float:
        return _value(self.model, self.params, float(size))

    @property
    def flat(self) -> bool:
        """The measured values lie within FLAT of the largest: the figure does not grow with size here."""
        top = max(self.values)
        return top > 0 and (top - min(self.values)) <= FLAT * top

    @property
    def reach(self) -> float:
        return REACH * max(self.sizes)

    @property
    def error(self) -> float | None:
        """The relative error at the largest measured size (None: under 3 sizes, no error is known)."""
        errs = [e for e in (self.loo_max, None if self.largest_check is None
                            else abs(self.largest_check["relative_error"])) if e is not None]
        return max(errs) if errs else None

    def error_at(self, size: float) -> float | None:
        """The band at `size`: `error`, widened in proportion to the distance beyond the largest size."""
        e = self.error
        return None if e is None else e * max(1.0, float(size) / max(self.sizes))

    def formula(self) -> str:
        a, b = self.params
        if self.model == "linear":
            top = max(self.sizes)
            per = 100_000 if top >= 100_000 else 10 ** max(0, int(math.log10(top)))
            return f"peak = {a:.1f} MiB + {b * per:.1f} MiB per {size_text(per)} documents"
        return f"peak = {a:.4g} MiB x size^{b:.3f}"

    def flat_text(self) -> str:
        lo, hi = min(self.values), max(self.values)
        return (f"does not grow with size between {size_text(min(self.sizes))} and {size_text(max(self.sizes))} "
                f"({_range(lo, hi)}): not the limit in the measured range")

    def max_size(self, budget_mib: float, margin: float = 0.0) -> float | None:
        """The largest size up to `reach` whose predicted value times (1 + margin x distance factor) stays
        within `budget_mib` (margin 0: the point estimate; +error: pessimistic; -error: optimistic); None when
        the smallest measured size already does not; `reach` itself when even that fits."""
        def fits(x: float) -> bool:
            e = (self.error_at(x) or 0.0) * margin
            return self.predict(x) * (1 + e) <= budget_mib

        lo, hi = float(min(self.sizes)), self.reach
        if not fits(lo):
            return None
        if fits(hi):
            return hi
        for _ in range(200):  # bisection in log-size: the value grows with size in every fitted model here
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            if hi / lo < 1 + 1e-9:
                break
        return lo

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": list(self.params), "formula": self.formula(),
                "sizes": self.sizes, "measured_mib": self.values, "loo_mean_relative_error": self.loo,
                "loo_max_relative_error": self.loo_max, "largest_check": self.largest_check, "error": self.error,
                "flat": self.flat, "reach": self.reach}


def fit_sizes(sizes: Iterable[int], values: Iterable[float]) -> Fit | None:
    """Fit MiB against size, choose the model by leave-one-out error. None under two distinct sizes."""
    pairs = sorted(zip((int(s) for s in sizes), (float(v) for v in values), strict=True))
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    if len(set(x.tolist())) < 2:
        return None
    loo: dict[str, float | None] = {}
    loo_errs: dict[str, list[float]] = {}
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
        loo_errs[model] = errs
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
    loo_max = max(loo_errs[model]) if loo_errs.get(model) else None
    return Fit(model, params, [int(s) for s in x], [float(v) for v in y], loo, loo_max, check)


def measured(rows: list[dict[str, Any]], pipeline: str, metric: str) -> dict[int, float]:
    """size -> MiB of one pipeline's process-tree figure."""
    return {int(r["size"]): r["metrics"][metric]["median"] / MiB for r in rows
            if r["pipeline"] == pipeline and r["target"] == TREE and metric in r["metrics"]}


def fit_rows(rows: list[dict[str, Any]], pipeline: str, metric: str = "peak",
             max_size: int | None = None) -> Fit | None:
    """Fit a pipeline's process-tree `metric` (MiB) from summary rows, using sizes up to `max_size`."""
    points = {s: v for s, v in measured(rows, pipeline, metric).items() if max_size is None or s <= max_size}
    return fit_sizes(points.keys(), points.values()) if points else None


def predict_at(f: Fit, size: int) -> dict[str, Any]:
    """One wanted size: the prediction with its band, or why there is none (flat, beyond the reach)."""
    if f.flat:
        return {"size": size, "predicted_mib": None, "low_mib": None, "high_mib": None, "note": f.flat_text()}
    if size > f.reach:
        return {"size": size, "predicted_mib": None, "low_mib": None, "high_mib": None,
                "note": f"beyond {REACH:g}x the largest measured size ({size_text(max(f.sizes))}): not predicted"}
    value, err = f.predict(size), f.error_at(size)
    return {"size": size, "predicted_mib": value, "low_mib": None if err is None else value * (1 - err),
            "high_mib": None if err is None else value * (1 + err), "error": err, "note": None}


def predictions(rows: list[dict[str, Any]], pipelines: list[str], wanted: dict[str, list[int]],
                budgets: dict[str, int | None] | None = None) -> dict[str, dict[str, Any]]:
    """Per pipeline and figure (`peak`, `gpu_nvml_peak`): the fit, predictions at `wanted[pipeline]` (the
    scenario's sizes that failed or were not run) and, where a budget is given for the figure (`budgets`:
    metric -> bytes), the budget's answer."""
    out: dict[str, dict[str, Any]] = {}
    for p in pipelines:
        for metric, _, _ in METRICS:
            f = fit_rows(rows, p, metric)
            if f is None:
                continue
            entry = {**f.to_dict(), "predictions": [predict_at(f, s) for s in wanted.get(p, [])]}
            if f.flat:
                entry["flat_text"] = f.flat_text()
            limit = (budgets or {}).get(metric)
            if limit is not None:
                entry["budget"] = budget_answer(f, limit / MiB)
            out.setdefault(p, {})[metric] = entry
    return out


def budget_answer(f: Fit, budget_mib: float) -> dict[str, Any]:
    """The largest size predicted to fit `budget_mib`, the range the band allows, and the sentence."""
    out: dict[str, Any] = {"budget_mib": budget_mib, "model": f.model, "formula": f.formula(), "flat": f.flat,
                           "error": f.error, "reach": f.reach, "size": None, "low": None, "high": None}
    if f.flat:
        fits = max(f.values) <= budget_mib
        out["size"] = math.inf if fits else None
        out["text"] = (f"{f.flat_text()}; it fits {_amount(budget_mib)}" if fits else
                       f"does not fit {_amount(budget_mib)}: {_amount(min(f.values))} already at "
                       f"{size_text(min(f.sizes))}, and it {f.flat_text()}")
        return out
    size = f.max_size(budget_mib)
    out["size"] = size
    if size is None:
        out["text"] = f"does not fit at any measured size ({f.formula()})"
        return out
    if f.error is not None:
        out["low"], out["high"] = f.max_size(budget_mib, +1.0), f.max_size(budget_mib, -1.0)
    fit_on = f"{f.model} fit on {', '.join(size_text(s) for s in f.sizes)}: {f.formula()}"
    if size >= f.reach:
        out["text"] = (f"more than {size_text(f.reach)} documents ({REACH:g}x the largest measured size, "
                       f"{size_text(max(f.sizes))}, the furthest a fit is trusted); {fit_on}")
        return out
    band = ("no error band (needs 3 measured sizes)" if f.error is None else
            f"{size_text(out['low'])}–{size_text(out['high'])} within a band of ±{f.error * 100:.1f}% at "
            f"{size_text(max(f.sizes))}, ±{f.error_at(size) * 100:.1f}% at {size_text(size)}")
    out["text"] = f"up to {size_text(size)} documents ({band}); {fit_on}"
    return out


def budget_lines(rows: list[dict[str, Any]], pipelines: list[str], budget: int | None,
                 gpu_budget: int | None) -> list[str]:
    """What `memharness report --budget` prints: one line per pipeline and budget."""
    lines = []
    for (metric, what, covers), limit in zip(METRICS, (budget, gpu_budget), strict=True):
        if limit is None:
            continue
        lines.append(f"{what} budget {limit / MiB / 1024:.2f} GiB ({covers}):")
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
            lines.append(f"  {p}: {budget_answer(f, limit / MiB)['text']}")
    return lines
