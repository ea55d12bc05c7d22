"""Predicted sizes on synthetic data: exact models give exact predictions, leave-one-out picks the model,
budgets invert the fit; and `report --budget` on a run folder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from runfactory import FakeCall, FakeCell, make_run

from memharness.report import build
from memharness.report.predict import budget_answer, budget_lines, fit_rows, fit_sizes, predictions
from memharness.results.phases import TREE

MiB = 1 << 20
SIZES = [100_000, 200_000, 400_000, 800_000]


def _rows(pipeline: str, points: dict[int, float], metric: str = "peak") -> list[dict]:
    return [{"pipeline": pipeline, "size": s, "target": TREE, "metrics": {metric: {"median": v * MiB}}}
            for s, v in points.items()]


def test_exact_linear_predicts_exactly_and_is_chosen():
    f = fit_sizes(SIZES, [500 + 150 * s / 100_000 for s in SIZES])
    assert f.model == "linear"
    assert f.predict(2_000_000) == pytest.approx(500 + 150 * 20, rel=1e-9)
    assert f.loo["linear"] == pytest.approx(0, abs=1e-9) and f.loo["power"] > 0.01
    assert f.largest_check["relative_error"] == pytest.approx(0, abs=1e-9)
    assert f.largest_check["fitted_on"] == SIZES[:-1] and f.error == pytest.approx(0, abs=1e-9)


def test_exact_power_law_is_chosen_and_predicts_exactly():
    f = fit_sizes(SIZES, [3.0 * s ** 0.5 for s in SIZES])
    assert f.model == "power"
    a, b = f.params
    assert (a, b) == (pytest.approx(3.0, rel=1e-9), pytest.approx(0.5, rel=1e-9))
    assert f.predict(1_600_000) == pytest.approx(3.0 * 1_600_000 ** 0.5, rel=1e-9)
    assert f.loo["power"] == pytest.approx(0, abs=1e-9) and f.loo["linear"] > 0.01


def test_leave_one_out_choice_on_noisy_data():
    # a line with noise: the line predicts left-out points better than a power law through the origin
    ys = [1000 + 200 * s / 100_000 for s in SIZES]
    ys[1] *= 1.02
    ys[2] *= 0.99
    f = fit_sizes(SIZES, ys)
    assert f.loo["linear"] < f.loo["power"] and f.model == "linear"
    # the band: the largest of the chosen model's leave-one-out errors and of predicting the largest size from
    # the smaller ones (a line through them)
    slope, intercept = np.polyfit(SIZES[:-1], ys[:-1], 1)
    check = abs(intercept + slope * SIZES[-1] - ys[-1]) / ys[-1]
    assert f.error == pytest.approx(max(check, f.loo_max), rel=1e-9) and f.loo_max >= f.loo["linear"]
    assert f.error_at(SIZES[-1]) == f.error and f.error_at(2 * SIZES[-1]) == pytest.approx(2 * f.error)


def test_two_sizes_fit_a_line_without_an_error_bar():
    f = fit_sizes([100, 200], [10.0, 30.0])
    assert f.model == "linear" and f.error is None and f.loo == {"linear": None, "power": None}
    assert f.predict(400) == pytest.approx(70.0)
    assert fit_sizes([100, 100], [1.0, 2.0]) is None


def test_budget_inverts_the_fit_with_a_band_that_widens_with_distance():
    f = fit_sizes(SIZES, [500 + 150 * s / 100_000 for s in SIZES])
    ans = budget_answer(f, 2000.0)
    assert ans["size"] == pytest.approx(1_000_000, rel=1e-9)
    p = fit_sizes(SIZES, [3.0 * s ** 0.5 * (1.05 if s == SIZES[-1] else 1) for s in SIZES])
    ans = budget_answer(p, 3600.0)
    assert ans["error"] > 0.01 and ans["low"] < ans["size"] < ans["high"]
    assert p.predict(ans["size"]) == pytest.approx(3600.0, rel=1e-6)
    # pessimistic end: the prediction plus the band at that size (wider than at 800k) meets the budget
    assert p.predict(ans["low"]) * (1 + p.error_at(ans["low"])) == pytest.approx(3600.0, rel=1e-6)
    assert p.error_at(ans["size"]) > p.error and "±" in ans["text"]


def test_nothing_is_extrapolated_beyond_four_times_the_largest_size():
    p = fit_sizes(SIZES, [3.0 * s ** 0.5 for s in SIZES])
    ans = budget_answer(p, 1e9)
    assert ans["size"] == 4 * SIZES[-1] and ans["text"].startswith("more than 3.2M documents (4x the largest")
    rows = _rows("a", {s: 3.0 * s ** 0.5 for s in SIZES})
    preds = predictions(rows, ["a"], {"a": [3_200_000, 3_300_000]})["a"]["peak"]["predictions"]
    assert preds[0]["predicted_mib"] == pytest.approx(3.0 * 3_200_000 ** 0.5)
    assert preds[1]["predicted_mib"] is None and "beyond 4x the largest measured size (800k)" in preds[1]["note"]


def test_a_flat_curve_is_said_so_and_not_extrapolated():
    flat = fit_sizes(SIZES, [4000.0, 4028.0, 4084.0, 4090.0])
    assert flat.flat
    assert flat.flat_text() == ("does not grow with size between 100k and 800k (3.9–4.0 GiB): not the limit in the "
                                "measured range")
    assert math.isinf(budget_answer(flat, 80 * 1024)["size"]) and budget_answer(flat, 3000)["size"] is None
    rows = _rows("a", {s: v for s, v in zip(SIZES, [4000.0, 4028.0, 4084.0, 4090.0], strict=True)}, "gpu_nvml_peak")
    rows += _rows("a", {s: 500 + 150 * s / 100_000 for s in SIZES})
    lines = budget_lines(rows, ["a"], None, 80 << 30)
    assert lines == ["GPU budget 80.00 GiB (GPU memory used by the tree, NVML):",
                     "  a: does not grow with size between 100k and 800k (3.9–4.0 GiB): not the limit in the "
                     "measured range; it fits 80.0 GiB"]
    assert "x beyond" not in lines[1] and "e+" not in lines[1]  # no figure past 4x, no runaway number


def test_the_h200_samples_100k_to_500k_fit_holds_its_measured_1m():
    """The band of a fit on 100k–500k contains what 1M measured (results/samples/genomics-gpu-h200), both for
    the predicted value at 1M and for the size a budget of that value allows."""
    import json
    from pathlib import Path

    summary = Path(__file__).resolve().parent.parent / "results/samples/genomics-gpu-h200/summary.json"
    rows = json.loads(summary.read_text(encoding="utf-8"))["rows"]
    f = fit_rows(rows, "colbert", "peak", max_size=500_000)
    measured = {r["size"]: r["metrics"]["peak"]["median"] / MiB for r in rows
                if r["pipeline"] == "colbert" and r["target"] == TREE}[1_000_000]
    at = f.predict(1_000_000)
    err = f.error_at(1_000_000)
    assert at * (1 - err) <= measured <= at * (1 + err), (at, err, measured)
    ans = budget_answer(f, measured)
    assert ans["low"] <= 1_000_000 <= ans["high"], ans


def test_predictions_and_budget_lines_from_summary_rows():
    rows = _rows("a", {s: 500 + 150 * s / 100_000 for s in SIZES}) + _rows("b", {100_000: 900.0})
    rows += _rows("a", {s: 4000 + s / 1e5 for s in SIZES}, "gpu_nvml_peak")
    preds = predictions(rows, ["a", "b"], {"a": [2_000_000], "b": [200_000]})
    assert preds["a"]["peak"]["predictions"] == [{"size": 2_000_000, "predicted_mib": pytest.approx(3500.0),
                                                  "low_mib": pytest.approx(3500.0), "high_mib": pytest.approx(3500.0),
                                                  "error": pytest.approx(0.0, abs=1e-9), "note": None}]
    assert "gpu_nvml_peak" in preds["a"] and "b" not in preds
    assert fit_rows(rows, "a", max_size=400_000).sizes == SIZES[:3]
    lines = budget_lines(rows, ["a", "b"], 2000 * MiB, None)
    assert lines[0] == "RAM budget 1.95 GiB (run-phase process-tree peak):"
    assert lines[1].startswith("  a: up to 1M documents (1M–1M within a band of ±0.0% at 800k")
    assert lines[2] == "  b: cannot predict (1 measured size; a fit needs 2)"


def test_report_shows_predictions_and_answers_a_budget(tmp_path):
    from typer.testing import CliRunner

    from memharness.cli import app

    cells = [FakeCell("a", s, calls=[FakeCall("m.f", 100, 120, 500 + 150 * s / 100_000, 1.0, 2.0)])
             for s in SIZES]
    cells.append(FakeCell("a", 1_600_000, status="failed", cause="max_rss",
                          calls=[FakeCall("m.f", 100, 120, 3000, 1.0, 2.0)]))
    run_dir = make_run(tmp_path, cells)
    build(run_dir)
    md = (run_dir / "report" / "tables.md").read_text()
    assert "## Predicted sizes" in md
    assert "1.6M: 2900 MiB (2900–2900)" in md
    assert "800k from 100k, 200k, 400k: 1700.0 MiB predicted, 1700.0 measured (+0.0%)" in md
    res = CliRunner().invoke(app, ["report", str(run_dir), "--budget", "2000MiB"])
    assert res.exit_code == 0, res.output
    assert "  a: up to 1M documents" in res.stdout
    bad = CliRunner().invoke(app, ["report", str(run_dir), "--budget", "lots"])
    assert bad.exit_code == 2 and "--budget: invalid memory amount 'lots'" in bad.stderr
