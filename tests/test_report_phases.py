"""Process-tree figures over the `run` phase: a real cell through `memharness run` whose `prepare` needs
1 GiB and whose `run` peaks 300 MiB over its start; and the windowing function on synthetic timelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli import write_scenario

from memharness.core.records import KIND_TREE_RSS, timeline_dtype
from memharness.results.phases import CELL, PREPARE, RUN, TREE, TREE_PREPARE, Window, tree_figures

TESTS = Path(__file__).resolve().parent
MiB = 1 << 20


def _run(tmp_path: Path, scenario: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.run([sys.executable, "-m", "memharness", "run", scenario, *args], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def phased_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("phases")
    path = write_scenario(tmp, "phases", """\
        - name: spiky-prepare
          kind: callable
          options: {function: "workloads:pipeline_peaks", prepare: "workloads:prepare_spike",
                    prepare_mib: 1024, mib: 300}
        - name: small
          kind: callable
          options: {function: "workloads:pipeline_peaks", mib: 100}
        """, sizes="[20]", targets="[workloads.stage]")
    out = _run(tmp, str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = (tmp / "results" / "phases").iterdir()
    return run


def _tree_row(summary: dict, pipeline: str, target: str = TREE) -> dict:
    (row,) = [r for r in summary["rows"] if r["pipeline"] == pipeline and r["target"] == target]
    return {k: v["median"] / MiB for k, v in row["metrics"].items() if k != "duration_s"}


def test_tree_figures_cover_the_run_phase_only(phased_run):
    summary = json.loads((phased_run / "report" / "summary.json").read_text())
    run = _tree_row(summary, "spiky-prepare")
    prep = _tree_row(summary, "spiky-prepare", TREE_PREPARE)
    # run: peaks 300 MiB over its start; the 1 GiB of prepare is not in it
    assert run["peak_over_start"] == pytest.approx(300, rel=0.03), run
    assert run["peak"] < prep["peak"] - 600
    # prepare keeps its own row with the 1 GiB
    assert prep["peak_over_start"] == pytest.approx(1024, rel=0.03), prep
    # status.json's peak is the run phase's, as the report's
    status = json.loads((phased_run / "cells" / "spiky-prepare__20__r0" / "status.json").read_text())
    assert status["peak_tree_rss"] / MiB == pytest.approx(run["peak"], abs=0.5)
    assert summary["window"].startswith("run phase only")


def test_summary_and_tables_lead_with_the_run_phase_answer(phased_run):
    summary = json.loads((phased_run / "report" / "summary.json").read_text())
    (size,) = summary["answer"]["sizes"]
    by = {e["pipeline"]: e for e in size["pipelines"]}
    assert by["spiky-prepare"]["peak_call"] == "workloads.stage"
    assert by["small"]["ratio"] == 1.0
    ratio = by["spiky-prepare"]["peak"] / by["small"]["peak"]
    assert by["spiky-prepare"]["ratio"] == pytest.approx(ratio)
    assert summary["answer"]["headline"] == (
        f"At 20 documents spiky-prepare peaks {ratio:.1f}x higher than small "
        f"({by['spiky-prepare']['peak'] / MiB:.1f} vs {by['small']['peak'] / MiB:.1f} MiB), inside stage.")
    md = (phased_run / "report" / "tables.md").read_text()
    assert md.index("## Summary") < md.index("## Call trees") < md.index("### Whole process tree")
    assert summary["answer"]["headline"] in md
    tree_md = md[md.index("### Whole process tree"):]
    assert "Rows marked `run` cover the run phase only" in tree_md
    assert "| spiky-prepare | 20 | run |" in tree_md and "| spiky-prepare | 20 | prepare |" in tree_md
    html = (phased_run / "report" / "index.html").read_text()
    assert html.index('id="summary"') < html.index('id="tables"')


def _rows(times_s: list[float], mib: list[float]) -> np.ndarray:
    rows = np.zeros(len(times_s), dtype=timeline_dtype())
    rows["t_ns"] = (np.asarray(times_s) * 1e9).astype(np.int64)
    rows["kind"] = KIND_TREE_RSS
    rows["value"] = (np.asarray(mib) * MiB).astype(np.int64)
    return rows


def test_window_selects_samples_and_prefers_exact_readings():
    rows = _rows([0, 1, 2, 3, 4, 5, 6], [100, 1200, 150, 400, 420, 300, 50])
    whole = tree_figures(rows, Window(CELL), wall_seconds=7.0)
    assert (whole["start"], whole["peak"], whole["final"], whole["duration_s"]) == (100 * MiB, 1200 * MiB,
                                                                                     50 * MiB, 7.0)
    run = tree_figures(rows, Window(RUN, int(2.5e9), int(5.5e9)))
    assert (run["start"] / MiB, run["peak"] / MiB, run["final"] / MiB) == (400, 420, 300)
    assert run["duration_s"] == pytest.approx(3.0)
    # the phase record's readings win for start/final, and its exact peak lifts a spike between samples
    exact = tree_figures(rows, Window(RUN, int(2.5e9), int(5.5e9), 160 * MiB, 310 * MiB, 700 * MiB))
    assert (exact["start"] / MiB, exact["peak"] / MiB, exact["final"] / MiB) == (160, 700, 310)
    assert exact["peak_over_start"] / MiB == 540
    prep = tree_figures(rows, Window(PREPARE, 0, int(2.2e9)))
    assert prep["peak"] / MiB == 1200
    assert tree_figures(rows[:0], Window(RUN, 0, 10)) == {}


def test_callable_prepare_option_is_validated():
    from memharness.scenario.options import validate_options

    ok, issues = validate_options("callable", {"function": "a.b:run", "prepare": "a.b:load", "k": 1})
    assert issues == [] and ok == {"function": "a.b:run", "prepare": "a.b:load", "k": 1}
    _, issues = validate_options("callable", {"function": "a.b:run", "prepare": "load"})
    assert issues == [(("prepare",), "invalid function 'load': expected package.module:function")]


def test_a_vfork_child_sharing_its_parents_memory_is_counted_once():
    """Measured in the quickstart: a vfork child reads its parent's RSS to the byte for one tick."""
    from memharness.core.records import KIND_PROC_RSS
    from memharness.results.phases import tree_rows

    ticks = [(0, [(1, 790 * MiB)]), (1, [(1, 790 * MiB), (2, 790 * MiB)]), (2, [(1, 791 * MiB), (2, 240 * 1024)]),
             (3, [(1, 800 * MiB), (3, 300 * MiB), (4, 300 * MiB), (5, 300 * MiB)])]
    rows = []
    for t, procs in ticks:
        rows += [(t * 10**9, pid, KIND_PROC_RSS, -1, v) for pid, v in procs]
        rows.append((t * 10**9, 0, KIND_TREE_RSS, -1, sum(v for _, v in procs)))
    arr = np.array(rows, dtype=timeline_dtype())
    tree = tree_rows(arr)
    assert [int(v) for v in tree["value"]] == [790 * MiB, 790 * MiB, 791 * MiB + 240 * 1024, 1100 * MiB]
    assert tree_figures(arr, Window(CELL))["peak"] == 1100 * MiB
