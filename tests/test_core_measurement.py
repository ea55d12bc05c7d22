"""Measurement core on calibrated workloads (issue: exact per-call memory, process tree, timeline)."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest
import workloads

from memharness.core.records import KIND_TREE_RSS, read_calls, read_processes, read_timeline
from memharness.core.session import Session

pytestmark = pytest.mark.usefixtures("calibrated")  # see tests/conftest.py

MiB = 1 << 20
TOL = 0.03
TARGETS = ["workloads.outer", "workloads.inner"]


def _by_target(calls, pid=None):
    out = {}
    for c in calls:
        if pid is None or c.pid == pid:
            out.setdefault(c.target, []).append(c)
    return out


def _check_outer_inner(calls) -> None:
    by = _by_target(calls)
    (outer,) = by["workloads.outer"]
    (inner,) = by["workloads.inner"]
    assert outer.complete and inner.complete
    assert inner.parent_id == outer.call_id and inner.depth == outer.depth + 1
    assert outer.peak_method == "hwm"
    assert abs(outer.increment - 200 * MiB) <= TOL * 200 * MiB, outer.increment / MiB
    assert abs(inner.peak_over_start - 1024 * MiB) <= TOL * 1024 * MiB, inner.peak_over_start / MiB
    assert outer.peak_over_start >= (1224 * MiB) * (1 - TOL), outer.peak_over_start / MiB
    assert outer.t_start_ns <= inner.t_start_ns <= inner.t_end_ns <= outer.t_end_ns


def test_outer_keeps_200_inner_spikes_1gib(tmp_path):
    with Session(tmp_path, TARGETS, sample_interval=None):
        workloads.outer(200, 1024, 0.02)
    workloads.release()
    _check_outer_inner(read_calls(tmp_path))


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_same_figures_inside_a_child_process(tmp_path, method):
    with Session(tmp_path, TARGETS, sample_interval=None):
        proc = mp.get_context(method).Process(target=workloads.run_outer_in_child, args=(200, 1024, 0.02))
        proc.start()
        proc.join(120)
    assert proc.exitcode == 0
    calls = read_calls(tmp_path)
    child = [c for c in calls if c.pid == proc.pid]
    assert child, f"no records from the {method} child; processes: {read_processes(tmp_path)}"
    _check_outer_inner(child)
    assert {p.pid: p.start_method for p in read_processes(tmp_path)}[proc.pid] == method
    assert all(c.pid == proc.pid for c in calls if c.target.startswith("workloads."))


def test_spike_shorter_than_sampling_interval_shows_in_peak(tmp_path):
    # 128 MiB allocated, touched and freed inside one call that lasts less than one sampling interval
    # (about 0.05-0.3 s here, depending on load, against a 1 s interval): the timeline can miss it, the
    # call's peak must not.
    interval = 1.0
    with Session(tmp_path, ["workloads.inner"], sample_interval=interval):
        for _ in range(3):
            workloads.inner(128, 0.0)
    calls = read_calls(tmp_path)
    assert len(calls) == 3
    for c in calls:
        assert c.duration_s < interval
        assert abs(c.peak_over_start - 128 * MiB) <= TOL * 128 * MiB, c.peak_over_start / MiB
        assert abs(c.increment) < 0.05 * 128 * MiB  # freed before returning: the increment cannot see it


def test_unwrapping_restores_originals(tmp_path):
    orig_outer, orig_inner = workloads.outer, workloads.inner
    with Session(tmp_path, TARGETS, sample_interval=None):
        assert workloads.outer is not orig_outer
    assert workloads.outer is orig_outer and workloads.inner is orig_inner


def test_timeline_not_starved_by_gil_holding_loop(tmp_path):
    seconds, interval = 3.0, 0.05
    with Session(tmp_path, [], sample_interval=interval):
        import time

        time.sleep(0.3)  # let the sampler start before timing its ticks
        t0 = time.monotonic_ns()
        workloads.spin_python(seconds)
        t1 = time.monotonic_ns()
    rows = read_timeline(tmp_path)
    tree = rows[(rows["kind"] == KIND_TREE_RSS) & (rows["t_ns"] >= t0) & (rows["t_ns"] <= t1)]
    promised = seconds / interval
    assert len(tree) >= 0.9 * promised, (len(tree), promised)
    assert (tree["value"] > 0).all()
    assert os.getpid() in set(rows["pid"][rows["kind"] == 0].tolist())
