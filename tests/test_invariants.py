"""The invariants of tests/invariants.py hold on every committed sample run that has its cell folders (the
quickstart-sized real run is checked in tests/test_process_peaks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from invariants import violations

SAMPLES = Path(__file__).resolve().parent.parent / "results" / "samples"
RUNS = sorted(p.parent for p in SAMPLES.glob("**/manifest.json") if (p.parent / "cells").is_dir())


def test_there_are_committed_samples_to_check():
    assert len(RUNS) >= 5, RUNS


@pytest.mark.parametrize("run", RUNS, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_one_figure_per_fact_on_a_committed_sample(run: Path, tmp_path: Path) -> None:
    bad = violations(run, tmp_path / "report")
    print(f"{run.relative_to(SAMPLES)}: {'no violation' if not bad else bad}")
    assert not bad
