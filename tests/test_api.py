"""The Python API (`memharness.profile`) on calibrated workloads: figures, run folder, chart, misuse."""

from __future__ import annotations

import multiprocessing as mp

import pytest
import workloads
from matplotlib.figure import Figure

import memharness
from memharness.results.figures import TREE
from memharness.results.run import Run

pytestmark = pytest.mark.usefixtures("calibrated")  # see tests/conftest.py

MiB = 1 << 20
TOL = 0.03
TARGETS = ["workloads.outer", "workloads.inner"]


def test_block_records_calibrated_figures_and_restores_originals():
    originals = (workloads.outer, workloads.inner)
    with memharness.profile(targets=TARGETS) as prof:
        assert workloads.outer is not originals[0]  # wrapped inside the block
        workloads.outer(200, 512, 0.02)
    workloads.release()
    assert (workloads.outer, workloads.inner) == originals
    assert prof.status == "done"
    assert [c.target for c in prof.calls] == TARGETS
    inner = prof.peak("workloads.inner", over_start=True)
    assert abs(inner - 512 * MiB) <= TOL * 512 * MiB, inner / MiB
    assert prof.peak("inner") == prof.figures()["workloads.inner"]["peak"]  # a unique suffix is enough
    rows = prof.table()
    assert [r["function"] for r in rows] == [TREE] + TARGETS
    outer = rows[1]
    assert abs(outer["increment_mib"] - 200) <= TOL * 200 and outer["calls"] == 1
    md = rows.to_markdown()
    assert md.splitlines()[0].startswith("| Function | Starting Memory | Memory Increment | Final Memory |")
    assert "| workloads.inner |" in md
    tl = prof.timeline()
    assert tl.dtype.names == ("t_s", "rss") and len(tl) >= 1
    # no target: the process tree's peak, the sampled peak raised to the calls' exact peaks where a spike
    # fell between two samples (the tree held at least what one of its processes held)
    exact = max(c.peak_rss for c in prof.calls if c.peak_rss is not None)
    assert prof.peak() == max(int(tl["rss"].max()), exact)


def test_spawned_child_calls_count(tmp_path):
    with memharness.profile(targets=TARGETS) as prof:
        p = mp.get_context("spawn").Process(target=workloads.run_outer_in_child, args=(100, 256, 0.02))
        p.start()
        p.join(120)
    assert p.exitcode == 0
    assert {c.pid for c in prof.calls} == {p.pid}
    assert abs(prof.peak("inner", over_start=True) - 256 * MiB) <= TOL * 256 * MiB


def test_save_writes_a_run_folder_report_renders(tmp_path):
    with memharness.profile(targets=TARGETS, label="calib", size=300) as prof:
        workloads.outer(50, 128, 0.02)
    workloads.release()
    run_dir = prof.save(tmp_path / "run")
    run = Run.open(run_dir)
    assert [c.id for c in run.cells] == ["calib__300__r0"] and run.cells[0].status == "done"
    assert run.cells[0].fingerprint.get("python")
    from memharness.report import build

    index = build(run_dir)
    tree_md = (index.parent / "tables" / "process_tree.md").read_text()
    assert "| calib | 300 |" in tree_md
    assert (index.parent / "timeline-calib__300__r0.png").stat().st_size > 10_000
    with pytest.raises(FileExistsError):
        prof.save(run_dir)  # never overwrites a run


def test_plot_returns_the_timeline_figure(tmp_path):
    with memharness.profile(targets=TARGETS) as prof:
        workloads.inner(128, 0.02)
    fig = prof.plot(tmp_path / "t.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decorator_profiles_each_call_afresh():
    @memharness.profile(targets=["workloads.inner"])
    def build(mib):
        workloads.inner(mib, 0.01)

    build(64)
    first = build.profile.peak("workloads.inner", over_start=True)
    build(256)
    second = build.profile.peak("workloads.inner", over_start=True)
    assert abs(first - 64 * MiB) <= 0.1 * 64 * MiB and abs(second - 256 * MiB) <= TOL * 256 * MiB
    names = [r["function"] for r in build.profile.table()]
    assert names[1].endswith("test_decorator_profiles_each_call_afresh.<locals>.build")  # the function itself


def test_nested_profile_refused_and_outer_keeps_working():
    with memharness.profile(targets=["workloads.inner"]) as outer:
        with pytest.raises(memharness.ProfileError, match="nested profile blocks are not supported"):
            with memharness.profile(targets=["workloads.outer"]):
                pass
        workloads.inner(64, 0.01)
    assert [c.target for c in outer.calls] == ["workloads.inner"]


def test_exception_in_block_is_recorded_and_raised():
    original = workloads.inner
    with pytest.raises(ZeroDivisionError):
        with memharness.profile(targets=["workloads.inner"]) as prof:
            workloads.inner(16, 0.0)
            1 / 0  # noqa: B018
    assert workloads.inner is original
    assert prof.status == "failed" and prof.error.startswith("ZeroDivisionError")
    assert len(prof.calls) == 1
    with memharness.profile():  # the failed block left nothing open
        pass


def test_results_before_the_end_and_bad_targets_are_clear_errors():
    prof = memharness.profile(targets=["workloads.inner"], sample_interval=None)
    with pytest.raises(memharness.ProfileError, match="after the block ends"):
        prof.table()
    from memharness.core.targets import TargetError

    with pytest.raises(TargetError, match="closest: inner"):
        with memharness.profile(targets=["workloads.innr"]):
            pass
    assert memharness.api.active_profile() is None
    with pytest.raises(ValueError, match="sample_interval"):
        memharness.profile(sample_interval="2h")
