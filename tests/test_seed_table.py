"""docs/seed-vs-ours.md holds exactly what scripts/seed_table.py makes of the committed samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_seed_vs_ours_page_is_the_generator_output_of_the_committed_samples() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "seed_table.py")], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = (ROOT / "docs" / "seed-vs-ours.md").read_text(encoding="utf-8")
    assert out.stdout in doc, "docs/seed-vs-ours.md is stale: run scripts/seed_table.py --write"
    # the facts the page's prose rests on
    assert "| colbert | 1M | H200 | 2,707.3 / 1,816.4 (0.67) |" in out.stdout
    assert "| yes |" in out.stdout.split("The predictor checked at 1M")[1]
    forecasts = out.stdout.split("### 2M forecasts")[1].split("###")[0]
    assert ("| ragatouille-nofaiss | host (tree peak) | matrix 100k, 250k, 500k | power | 28,234 MiB (25,163–31,305) |"
            in forecasts)
    assert "| ragatouille-faiss | host (tree peak) | matrix 100k, 250k, 500k, 1M | power | 29,107 MiB" in forecasts


def _flat_fit(values: list[float]):
    from memharness.report import predict

    return predict.Fit(model="linear", params=(sum(values) / len(values), 0.0), sizes=[100_000, 250_000, 500_000],
                       values=values)


def test_a_flat_check_says_inside_or_how_far_outside_its_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # scripts/ on sys.path for this test only
    import seed_table

    fit = _flat_fit([4_000.0, 4_100.0, 4_200.0])
    inside = seed_table._check_line("p", "GPU", "matrix", fit, 1_000_000, 4_150.0)
    assert "| inside the range | yes (stays flat) |" in inside and "outside" not in inside
    above = seed_table._check_line("p", "GPU", "matrix", fit, 1_000_000, 4_326.0)
    assert "| +3.0% outside the range | yes (stays flat) |" in above
    far = seed_table._check_line("p", "GPU", "matrix", fit, 1_000_000, 6_000.0)
    assert far.endswith("| no |")
