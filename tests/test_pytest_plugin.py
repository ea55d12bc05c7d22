"""The `memharness` pytest plugin, driven with pytester in fresh pytest processes (serial and `-n 2`)."""

from __future__ import annotations

import re

import pytest

from memharness.results.figures import collect  # numpy before pytester's sys.modules snapshot

pytest_plugins = ["pytester"]

MiB = 1 << 20

WORKLOAD = '''
import numpy as np

MiB = 1 << 20


def allocate(mib):
    """Allocate mib MiB, touch every page, free it on return."""
    a = np.empty(int(mib * MiB), dtype=np.uint8)
    a.fill(1)
    return int(a[:: 1 << 12].sum())


def allocate_kept(mib):
    """Allocate mib MiB with every page touched and hand it back."""
    a = np.empty(int(mib * MiB), dtype=np.uint8)
    a.fill(1)
    return a


def hold_in_child(mib, ready, release):
    a = np.empty(int(mib * MiB), dtype=np.uint8)
    a.fill(1)
    ready.set()
    release.wait(300)
    del a
'''

LIMITS = '''
import multiprocessing as mp

import pytest

import memharness
import mhwork


@pytest.mark.memharness(targets=["mhwork.allocate"], own={"mhwork.allocate": "200MiB"})
def test_over_limit():
    mhwork.allocate(300)


@pytest.mark.memharness(own={"mhwork.allocate": "400MiB"}, increment={"mhwork.allocate": "16MiB"})
def test_under_limit():
    mhwork.allocate(300)


def _child(limit):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=mhwork.hold_in_child, args=(300, ready, release))
    p.start()
    try:
        assert ready.wait(300), "the child never allocated"
        memharness.active_profile().wait_for_sample()  # the child's 300 MiB is on the timeline
    finally:
        release.set()
        p.join(300)
    assert p.exitcode == 0


@pytest.mark.memharness(tree_peak_over_start="200MiB")
def test_spawned_child_over_tree_limit():
    _child("200MiB")


@pytest.mark.memharness(tree_peak_over_start="2GiB")
def test_spawned_child_under_tree_limit():
    _child("2GiB")


def test_unmarked():
    mhwork.allocate(300)
'''

BASELINE = '''
import os

import pytest

import memharness
import mhwork


@pytest.mark.memharness(targets=["mhwork.allocate_kept"])
def test_build():
    kept = mhwork.allocate_kept(200 + float(os.environ.get("MH_EXTRA_MIB", "0")))
    memharness.active_profile().wait_for_sample()  # the sampled process-tree row holds it too
    del kept
'''

OVER = re.compile(r"memharness: mhwork\.allocate: peak over its entry RSS ([\d.]+) MiB exceeds the limit "
                  r"own=200\.0 MiB")
TREE = re.compile(r"memharness: process tree: peak above its RSS at the test's start "
                  r"([\d.]+) MiB exceeds the limit tree_peak_over_start=200\.0 MiB")
REGRESSION = re.compile(r"mhwork\.allocate_kept: own \(peak_over_start\) ([\d.]+) MiB -> ([\d.]+) MiB "
                        r"\(\+([\d.]+) MiB, x[\d.]+\) regressed against the baseline")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(mhwork=WORKLOAD, test_limits=LIMITS, test_baseline=BASELINE)
    return pytester


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    out = {}
    for line in result.outlines:
        m = re.match(r"^(PASSED|FAILED) (\S+::\w+)", line) or re.match(r"^(\S+::\w+) (PASSED|FAILED)", line)
        if m:
            a, b = m.groups()
            status, nodeid = (a, b) if a in ("PASSED", "FAILED") else (b, a)
            out[nodeid.split("::")[-1]] = status
    return out


def _check_limits(result: pytest.RunResult) -> None:
    text = result.stdout.str()
    m = OVER.search(text)
    assert m, text
    assert 295 <= float(m.group(1)) <= 330, m.group(0)  # 300 MiB allocated
    m = TREE.search(text)
    assert m, text
    assert float(m.group(1)) >= 300, m.group(0)  # the spawned worker's 300 MiB counts
    assert "test_under_limit" not in re.findall(r"FAILED \S+::(\w+)", text)
    summary = text.split("memharness ==")[-1].split("short test summary")[0]
    assert "test_over_limit" in summary and "test_unmarked" not in summary  # unmarked tests are not profiled


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist-2"])
def test_limits(suite: pytest.Pytester, workers: str | None) -> None:
    args = ["test_limits.py", "-rA", "-p", "no:cacheprovider"] + (["-n", workers] if workers else [])
    result = suite.runpytest_subprocess(*args, timeout=600)
    outcomes = _outcomes(result)
    assert outcomes == {"test_over_limit": "FAILED", "test_under_limit": "PASSED",
                        "test_spawned_child_over_tree_limit": "FAILED",
                        "test_spawned_child_under_tree_limit": "PASSED", "test_unmarked": "PASSED"}, \
        result.stdout.str()
    _check_limits(result)


def test_baseline_flags_planted_regression_and_passes_rerun(suite: pytest.Pytester, monkeypatch,
                                                          tmp_path_factory) -> None:
    """The baseline folder outside the project, given space-separated (an option value pytest once took for a
    path, which moved its rootdir and with it the test ids): found all the same, and the regression's reason is
    on -q's short-summary line."""
    common = ["test_baseline.py", "-rA", "-p", "no:cacheprovider"]
    monkeypatch.setenv("COLUMNS", "300")  # the short summary is cut at the terminal's width
    base = tmp_path_factory.mktemp("outside-the-project") / "base"
    saved = suite.runpytest_subprocess(*common, "--memharness-report", str(base), timeout=600)
    saved.assert_outcomes(passed=1)
    run_dir = base / "test_baseline.py__test_build"
    assert (run_dir / "manifest.json").exists(), sorted(p.name for p in base.iterdir())
    rows = {r.target: r for r in collect(run_dir)}
    assert abs(rows["mhwork.allocate_kept"].metrics["peak_over_start"].median - 200 * MiB) <= 0.05 * 200 * MiB

    for workers in ([], ["-n", "2"]):  # serial, then two xdist workers: the same verdicts
        rerun = suite.runpytest_subprocess(*common, *workers, "--memharness-baseline", str(base), timeout=600)
        rerun.assert_outcomes(passed=1)
        monkeypatch.setenv("MH_EXTRA_MIB", "100")
        planted = suite.runpytest_subprocess("test_baseline.py", "-q", "-p", "no:cacheprovider", *workers,
                                             "--memharness-baseline", str(base), timeout=600)
        monkeypatch.delenv("MH_EXTRA_MIB")
        planted.assert_outcomes(failed=1)
        m = REGRESSION.search(planted.stdout.str())
        assert m, planted.stdout.str()
        old, new, delta = map(float, m.groups())
        assert 190 <= old <= 215 and 290 <= new <= 315 and 95 <= delta <= 105, m.group(0)
        short = [line for line in planted.outlines if line.startswith("FAILED ")]
        assert short and "Failed: memharness: mhwork.allocate_kept: own (peak_over_start)" in short[0], short


def test_a_missing_baseline_warns_or_fails(suite: pytest.Pytester, tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    empty = tmp_path_factory.mktemp("no-baselines")
    common = ["test_baseline.py", "-q", "-p", "no:cacheprovider", "--memharness-baseline", str(empty)]
    warned = suite.runpytest_subprocess(*common, timeout=600)
    warned.assert_outcomes(passed=1, warnings=1)
    failed = suite.runpytest_subprocess(*common, "--memharness-baseline-missing=fail", timeout=600)
    failed.assert_outcomes(failed=1)
    line = next(x for x in failed.outlines if x.startswith("FAILED "))
    assert "Failed: memharness: no baseline run folder" in line and str(empty) in line


def test_bad_marker_is_a_clear_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.memharness(peak={"json.dumps": "lots"})
def test_bad():
    pass

@pytest.mark.memharness(targets=["json.dumpz"])
def test_missing_target():
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "test_bad: @pytest.mark.memharness: peak['json.dumps']: invalid memory" in text, text
    assert "target 'json.dumpz'" in text and "closest: dump" in text, text


def _mark(**kwargs) -> pytest.Mark:
    return pytest.mark.memharness(**kwargs).mark


def test_marker_parsing_and_limit_messages() -> None:
    """The marker's limits carry the names and meanings of `memharness compare --metric` (metrics.py)."""
    from memharness.pytest_limits import MarkSpec, check_limits, folder_name

    spec = MarkSpec.parse(_mark(targets=["a.f"], own={"b.g": "1.5GiB"}, increment={"a.f": "200MiB"},
                                tree_peak_over_start="4GiB"))
    assert spec.targets == ["a.f", "b.g"]  # limit keys are wrapped too
    assert spec.limits == {"own": {"b.g": 1536 * MiB}, "increment": {"a.f": 200 * MiB}}
    assert spec.tree == {"tree_peak_over_start": 4096 * MiB}
    for bad, message in (({"own": {"a.f": "lots"}}, "own['a.f']: invalid memory"),
                         ({"peak": ["a.f"]}, "peak= must be a dict"),
                         ({"tree_peek": "1GiB"}, "unknown argument(s) tree_peek")):
        with pytest.raises(ValueError, match=re.escape(message)):
            MarkSpec.parse(_mark(**bad))
    figures = {"a.f": {"peak": 900 * MiB, "peak_over_start": 250 * MiB, "increment": 10 * MiB, "calls": 2},
               "(process tree)": {"start": 800 * MiB, "peak": 5000 * MiB, "peak_over_start": 4200 * MiB}}
    spec = MarkSpec.parse(_mark(own={"a.f": "200MiB", "c.h": "1GiB"}, peak={"a.f": "1GiB"},
                                increment={"a.f": "16MiB"}, gpu_peak={"a.f": "1GiB"}, tree_peak_over_start="4GiB",
                                tree_peak="6GiB"))
    failures, warnings = check_limits(spec, figures, "t::x")
    assert failures == [
        "t::x: a.f: peak over its entry RSS 250.0 MiB exceeds the limit own=200.0 MiB "
        "(peak RSS 900.0 MiB, peak over entry 250.0 MiB, 2 calls)",
        "t::x: c.h was never called, so own={'c.h': 1024.0 MiB} cannot be checked",
        "t::x: process tree: peak above its RSS at the test's start 4200.0 MiB exceeds the limit "
        "tree_peak_over_start=4096.0 MiB (absolute peak 5000.0 MiB, 800.0 MiB at the test's start, all processes "
        "of the test summed)",
    ]  # peak= is absolute, as the report's Peak: 900 MiB is under 1 GiB
    assert warnings == ["t::x: a.f: no GPU peak allocated (torch) recorded (no CUDA device seen); gpu_peak not "
                        "checked"]
    absolute = MarkSpec.parse(_mark(peak={"a.f": "800MiB"}, tree_peak="4GiB"))
    lines, _ = check_limits(absolute, figures, "t::z")
    assert lines[0].startswith("t::z: a.f: peak RSS 900.0 MiB exceeds the limit peak=800.0 MiB")
    assert lines[1].startswith("t::z: process tree: peak 5000.0 MiB exceeds the limit tree_peak=4096.0 MiB")
    # a spike of the test process between two samples: its exact peak raises the sampled tree peak
    tree_only = MarkSpec.parse(_mark(tree_peak_over_start="300MiB"))
    short = {"(process tree)": {"start": 100 * MiB, "peak": 150 * MiB, "peak_over_start": 50 * MiB}}
    assert check_limits(tree_only, short, "t::y") == ([], [])
    (line,), _ = check_limits(tree_only, short, "t::y", root_peak=500 * MiB)
    assert "peak above its RSS at the test's start 400.0 MiB exceeds the limit tree_peak_over_start=300.0" in line
    assert folder_name("tests/test_x.py::test_y[a-1]") == "tests_test_x.py__test_y_a-1_"
