"""`memharness explain`: calibrated host sites in the cell process and in a spawned worker (the workload's own
line for a 1 GiB `np.ones`), retained at exit, alive at entry and two cells side by side, the scenario's
`explain:` field, the GPU replay on a recorded-format snapshot, the default call, the missing-extra message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli import cli_env

from memharness.core.records import CallRecord, read_calls
from memharness.explain.gpu import sites_at_gpu_peak
from memharness.explain.peakcall import peak_call

TESTS = Path(__file__).resolve().parent
MiB = 1 << 20
WORKLOADS = TESTS / "explain_workloads.py"
TARGET = "explain_workloads.allocate"
KEEP_TARGET = "explain_workloads.keep_and_free"


def marker_line(marker: str) -> int:
    for i, line in enumerate(WORKLOADS.read_text().splitlines(), 1):
        if f"# {marker}" in line:
            return i
    raise AssertionError(marker)


def memharness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # the tests folder and this checkout on PYTHONPATH: an installed memharness must not answer instead
    return subprocess.run([sys.executable, "-m", "memharness", *args], cwd=cwd, env=cli_env(), text=True,
                          capture_output=True, timeout=600)


def write_scenario(tmp_path: Path, extra: str = "") -> Path:
    text = textwrap.dedent(f"""\
        name: explaincal
        corpus: {{source: synthetic, seed: 3}}
        sizes: [20]
        output: {tmp_path / "results"}
        sample_interval: 20ms
        targets: [{TARGET}, {KEEP_TARGET}]
        pipelines:
          - {{name: inproc, kind: callable, options: {{function: "explain_workloads:pipeline_in_process"}}}}
          - {{name: spawned, kind: callable, options: {{function: "explain_workloads:pipeline_in_spawned_worker"}}}}
          - {{name: keeps, kind: callable, options: {{function: "explain_workloads:pipeline_keeps"}}}}
          - {{name: keepsmall, kind: callable,
             options: {{function: "explain_workloads:pipeline_keeps", entry_mib: 64}}}}
        """) + extra
    path = tmp_path / "explaincal.yaml"
    path.write_text(text)
    return path


def check_calibrated(result: dict) -> None:
    head = next(c for c in result["calls"] if c["name"] == result["headline"])
    sites = head["host"]["sites"]
    top = {(Path(s["file"]).name, s["line"]): s["bytes"] for s in sites[:2]}
    numpy_site = ("explain_workloads.py", marker_line("SITE_NUMPY"))
    bytes_site = ("explain_workloads.py", marker_line("SITE_BYTES"))
    assert set(top) == {numpy_site, bytes_site}, sites[:3]
    assert top[numpy_site] == pytest.approx(1024 * MiB, rel=0.03)
    assert top[bytes_site] == pytest.approx(100 * MiB, rel=0.05)
    # the workload's own line names the site; numpy's frame stays in the stack, innermost
    first = sites[0]
    assert first["function"] == "allocate" and first["stack"][0].startswith("ones ") and "numpy/" in first["stack"][0]
    site_frame = first["stack"][first["site_frame"]]
    assert site_frame.startswith("allocate ")
    assert site_frame.endswith(f"explain_workloads.py:{marker_line('SITE_NUMPY')}")
    assert result["host_agreement"]["status"] == "agree", result["host_agreement"]
    print(f"calibrated: {Path(first['file']).name}:{first['line']} {first['bytes'] / MiB:.1f} MiB "
          f"(pid {head['pid']}); agreement ratio {result['host_agreement']['ratio']:.3f}")


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("explain")
    proc = memharness("run", str(write_scenario(tmp)), "--no-report", cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (tmp / "results" / "explaincal").iterdir()
    return run


@pytest.fixture(scope="module")
def keeps_explained(calibrated_run) -> subprocess.CompletedProcess:
    """`keeps` explained with --retained and --at-entry, side by side with `keepsmall` (64 MiB at entry)."""
    return memharness("explain", str(calibrated_run), "keeps__20__r0", "--target", KEEP_TARGET, "--retained",
                      "--at-entry", "--against", "keepsmall__20__r0", "--top", "5", cwd=calibrated_run.parent)


@pytest.mark.parametrize("cell_id", ["inproc__20__r0", "spawned__20__r0"])
def test_explain_names_the_two_calibrated_lines(calibrated_run, cell_id):
    # a run folder relative to the current one (the cell process works in its own work/ folder)
    proc = memharness("explain", calibrated_run.name, cell_id, "--target", TARGET, "--top", "5",
                      cwd=calibrated_run.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = calibrated_run / "cells" / cell_id / "explain"
    result = json.loads((out / "explain.json").read_text())
    check_calibrated(result)
    assert result["second_run"] is True
    head = next(c for c in result["calls"] if c["name"] == result["headline"])
    if cell_id.startswith("spawned"):  # explained in the worker, not in the cell process
        (run_phase,) = [c for c in read_calls(out / "rerun") if c.target == "phase:run"]
        assert head["pid"] != run_phase.pid
    md = (out / "explain.md").read_text()
    assert f"explain_workloads.py:{marker_line('SITE_NUMPY')}" in md and "second run" in md
    assert "agrees with" in md and "Overhead:" in md
    html = out / "host-flamegraph.html"
    assert html.exists() and html.stat().st_size > 10_000
    assert f"explain_workloads.py:{marker_line('SITE_NUMPY')}" in proc.stdout


def _site_mib(sites: list[dict], marker: str) -> float | None:
    found = [s["bytes"] for s in sites if Path(s["file"]).name == WORKLOADS.name and s["line"] == marker_line(marker)]
    return found[0] / MiB if found else None


def test_retained_shows_only_what_the_call_keeps(calibrated_run, keeps_explained):
    """keep_and_free keeps 200 MiB in a module global and frees 300 MiB: at its exit only the 200 MiB line
    is alive (±3%), every other site together under 2 MiB; the harness's anonymous RSS increment of the
    call (explained run) agrees, and so does the measured run's increment (±10%)."""
    assert keeps_explained.returncode == 0, keeps_explained.stdout + keeps_explained.stderr
    result = json.loads((calibrated_run / "cells" / "keeps__20__r0" / "explain" / "explain.json").read_text())
    head = next(c for c in result["calls"] if c["name"] == result["headline"])
    retained = head["host"]["retained"]["sites"]
    assert _site_mib(retained, "SITE_KEEP") == pytest.approx(200, rel=0.03), retained[:3]
    assert (_site_mib(retained, "SITE_FREED") or 0) < 0.01  # 16 bytes of numpy's seen here: not the 300 MiB
    assert head["host"]["retained"]["total"] - retained[0]["bytes"] < 2 * MiB, retained[:3]
    assert _site_mib(head["host"]["sites"], "SITE_FREED") == pytest.approx(300, rel=0.03)  # at the peak: both
    ag = result["host_retained_agreement"]
    assert ag["status"] == "agree" and "anonymous RSS increment" in ag["reference_name"], ag
    assert result["harness"]["increment"] == pytest.approx(200 * MiB, rel=0.10)
    md = (calibrated_run / "cells" / "keeps__20__r0" / "explain" / "explain.md").read_text()
    assert "retained at the call's exit" in md and f"explain_workloads.py:{marker_line('SITE_KEEP')}" in md
    print(f"retained: {_site_mib(retained, 'SITE_KEEP'):.1f} MiB at explain_workloads.py:{marker_line('SITE_KEEP')}, "
          f"total {head['host']['retained']['total'] / MiB:.1f} MiB, harness anon increment (explained run) "
          f"{ag['reference'] / MiB:.1f} MiB, increment (measured run) {result['harness']['increment'] / MiB:.1f} MiB")


def test_at_entry_shows_the_buffer_allocated_before_the_call(calibrated_run, keeps_explained):
    """pipeline_keeps allocates 256 MiB before it calls keep_and_free: the largest site alive at entry (±3%)."""
    assert keeps_explained.returncode == 0, keeps_explained.stdout + keeps_explained.stderr
    result = json.loads((calibrated_run / "cells" / "keeps__20__r0" / "explain" / "explain.json").read_text())
    entry = next(c for c in result["calls"] if c["name"] == result["at_entry_call"])["at_entry"]
    assert Path(entry["sites"][0]["file"]).name == WORKLOADS.name
    assert entry["sites"][0]["line"] == marker_line("SITE_ENTRY"), entry["sites"][:3]
    assert entry["sites"][0]["bytes"] == pytest.approx(256 * MiB, rel=0.03)
    assert _site_mib(entry["sites"], "SITE_KEEP") is None  # allocated inside the call: not alive at entry
    md = (calibrated_run / "cells" / "keeps__20__r0" / "explain" / "explain.md").read_text()
    assert "Alive at the call's entry" in md and "Not seen:" in md
    print(f"at entry: {entry['sites'][0]['bytes'] / MiB:.1f} MiB at explain_workloads.py:{marker_line('SITE_ENTRY')}, "
          f"total {entry['total'] / MiB:.1f} MiB; {result.get('at_entry_agreement')}")


def test_two_cells_at_entry_side_by_side(calibrated_run, keeps_explained):
    """keeps (256 MiB at entry) against keepsmall (64 MiB): the first row is the buffer's line, B - A -192 MiB."""
    assert keeps_explained.returncode == 0, keeps_explained.stdout + keeps_explained.stderr
    cmp = json.loads((calibrated_run / "cells" / "keeps__20__r0" / "explain" / "against-keepsmall__20__r0.json")
                     .read_text())
    views = {v["view"]: v for v in cmp["views"]}
    assert set(views) == {"at_entry", "retained", "peak"}
    row = views["at_entry"]["rows"][0]
    assert (Path(row["file"]).name, row["line"]) == (WORKLOADS.name, marker_line("SITE_ENTRY")), views["at_entry"]
    assert row["a"] == pytest.approx(256 * MiB, rel=0.03) and row["b"] == pytest.approx(64 * MiB, rel=0.03)
    assert row["diff"] == pytest.approx(-192 * MiB, rel=0.03)
    assert abs(views["retained"]["rows"][0]["diff"]) < 2 * MiB  # the same call keeps the same
    assert "keeps__20__r0 (A) vs keepsmall__20__r0 (B)" in keeps_explained.stdout
    assert (calibrated_run / "cells" / "keepsmall__20__r0" / "explain" / "explain.json").exists()
    print(f"side by side: A {row['a'] / MiB:.1f} MiB, B {row['b'] / MiB:.1f} MiB, B - A {row['diff'] / MiB:.1f} MiB")


def test_scenario_explain_field_explains_chosen_cells_during_the_run(tmp_path):
    extra = f"explain:\n  - {{target: {TARGET}, pipelines: [spawned], top: 4}}\n"
    proc = memharness("run", str(write_scenario(tmp_path, extra)), "--no-report", "--pipelines", "inproc,spawned",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (tmp_path / "results" / "explaincal").iterdir()
    assert not (run / "cells" / "inproc__20__r0" / "explain").exists()
    result = json.loads((run / "cells" / "spawned__20__r0" / "explain" / "explain.json").read_text())
    check_calibrated(result)
    assert result["second_run"] is False and len(result["calls"][0]["host"]["sites"]) <= 4


def _alloc(addr: int, size: int, line: int, t: int) -> dict:
    frames = [{"filename": "/lib/site-packages/kmeans.py", "line": line, "name": "step"},
              {"filename": "/x/memharness/core/targets.py", "line": 200, "name": "wrapper"},
              {"filename": "/x/memharness/runner/cell.py", "line": 80, "name": "run_cell"}]
    return {"action": "alloc", "addr": addr, "size": size, "frames": frames, "time_us": t}


def test_gpu_replay_finds_the_live_set_at_the_high_water_mark():
    trace = [
        _alloc(0x1000, 300 * MiB, 10, 1),
        _alloc(0x2000, 100 * MiB, 20, 2),
        {"action": "free_requested", "addr": 0x2000, "size": 100 * MiB, "time_us": 3},
        {"action": "free_completed", "addr": 0x2000, "size": 100 * MiB, "time_us": 3},
        _alloc(0x3000, 50 * MiB, 30, 4),
        _alloc(0x4000, 60 * MiB, 30, 5),  # peak: 300 + 50 + 60 = 410 MiB
        {"action": "free_completed", "addr": 0x1000, "size": 300 * MiB, "time_us": 6},
        {"action": "free_completed", "addr": 0x9999, "size": 7 * MiB, "time_us": 7},  # allocated before
    ]
    sites, info = sites_at_gpu_peak({"segments": [], "device_traces": [trace]})
    assert info["total_at_peak"] == 410 * MiB
    assert [(s.line, s.bytes, s.count) for s in sites] == [(10, 300 * MiB, 1), (30, 110 * MiB, 2)]
    assert sites[0].stack == ["step /lib/site-packages/kmeans.py:10"]


def _call(cid, target, depth, t0, t1, peak, pid=1) -> CallRecord:
    return CallRecord(call_id=cid, parent_id=None, depth=depth, target=target, pid=pid, tid=1, thread="M",
                      t_start_ns=t0, rss_start=0, children_rss_start=0, t_end_ns=t1, rss_end=0, peak_rss=peak)


def test_default_call_is_the_innermost_open_at_the_run_phase_peak():
    calls = [_call("1:1", "phase:prepare", 0, 0, 10, 900 * MiB), _call("1:2", "model.load", 1, 1, 9, 900 * MiB),
             _call("1:3", "phase:run", 0, 20, 100, 700 * MiB), _call("1:4", "index", 1, 21, 99, 700 * MiB),
             _call("1:5", "kmeans", 2, 30, 60, 700 * MiB), _call("1:6", "encode", 2, 61, 98, 400 * MiB)]
    assert peak_call(calls).target == "kmeans"


def test_without_memray_the_command_names_the_extra(tmp_path):
    blocker = tmp_path / "memray"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "memharness", "explain", str(tmp_path), "x"], env=env,
                          text=True, capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert "memharness[explain]" in proc.stderr


def test_report_shows_the_explained_call_with_its_top_sites(calibrated_run):
    cell_dir = calibrated_run / "cells" / "inproc__20__r0"
    if not (cell_dir / "explain" / "explain.json").exists():
        proc = memharness("explain", str(calibrated_run), "inproc__20__r0", "--target", TARGET, cwd=calibrated_run)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = memharness("report", str(calibrated_run), cwd=calibrated_run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((calibrated_run / "report" / "summary.json").read_text())
    (entry,) = [e for e in summary["explain"] if e["cell"] == "inproc__20__r0"]
    assert [s["line"] for s in entry["host"]["sites"][:2]] == [marker_line("SITE_NUMPY"), marker_line("SITE_BYTES")]
    assert (calibrated_run / "report" / entry["links"]["host_flamegraph"]).resolve().exists()
    html = (calibrated_run / "report" / "index.html").read_text()
    assert "Explained calls" in html and f"explain_workloads.py:{marker_line('SITE_NUMPY')}" in html
    assert 'href="#explain-inproc__20__r0"' in html and 'id="explain-inproc__20__r0"' in html


def test_gpu_request_without_cuda_is_recorded_and_host_still_explained(tmp_path):
    import explain_workloads

    from memharness.core.explainer import Explainer
    from memharness.explain.host import sites_at_peak

    ex = Explainer({"target": TARGET, "out_dir": str(tmp_path), "host": True, "gpu": True})
    state = ex.on_enter(TARGET)
    explain_workloads.allocate(numpy_mib=40, bytes_mib=10)
    ex.on_exit(state, None)
    meta = json.loads((tmp_path / "calls" / f"{state['name']}.json").read_text())
    assert "gpu" not in meta and any("torch.cuda is not available" in e or e.startswith("gpu:") for e in meta["errors"])
    sites, info = sites_at_peak(tmp_path / "host" / f"{state['name']}.bin")
    assert [s.line for s in sites[:2]] == [marker_line("SITE_NUMPY"), marker_line("SITE_BYTES")]
    assert sites[0].bytes == pytest.approx(40 * MiB, rel=0.03)
    assert sites[0].stack[sites[0].site_frame].startswith("allocate ") and sites[0].site_frame > 0
    every, _ = sites_at_peak(tmp_path / "host" / f"{state['name']}.bin", frames="all")  # --frames all
    assert every[0].function == "ones" and "numpy/" in every[0].file and every[0].site_frame == 0
    assert every[0].stack == sites[0].stack
    assert ex.on_enter("some.other.call") is None


def test_scenario_explain_names_an_unknown_pipeline_with_its_line(tmp_path):
    path = write_scenario(tmp_path, f"explain:\n  - {{target: {TARGET}, pipelines: [inprocc]}}\n")
    proc = memharness("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    line = len(path.read_text().splitlines())  # the explain entry is the scenario's last line
    assert f"explaincal.yaml:{line}: explain[0].pipelines[0]: no pipeline named 'inprocc'; did you mean 'inproc'?" in (
        proc.stdout + proc.stderr)


def test_default_call_is_the_one_the_reports_summary_names_for_the_cell(tmp_path):
    """explain's default (host) call and the summary's "Peak inside" come from one rule
    (`results.phases.run_peak_call`), so they name the same call without explain reading the report."""
    from runfactory import FakeCall, FakeCell, make_run

    from memharness.explain.peakcall import default_target
    from memharness.report import build

    kmeans = FakeCall("pkg.mod.kmeans", 300, 320, 900, 2.0, 3.0)
    outer = FakeCall("pkg.mod.Indexer.index", 200, 320, 900, 1.0, 4.0, children=[kmeans])
    run = make_run(tmp_path, [FakeCell("a", 100, calls=[FakeCall("pkg.mod.other", 200, 210, 400, 1.0, 2.0)]),
                              FakeCell("b", 100, calls=[outer], prepare_peak_mib=250)])
    build(run)
    summary = json.loads((run / "report" / "summary.json").read_text())
    named = {e["pipeline"]: e["peak_call"] for s in summary["answer"]["sizes"] for e in s["pipelines"]}
    assert named["b"] == "pkg.mod.kmeans"
    assert default_target(run, "b__100__r0", run / "cells" / "b__100__r0") == named["b"]
    (run / "report" / "summary.json").unlink()  # the report is not read
    assert default_target(run, "b__100__r0", run / "cells" / "b__100__r0") == "pkg.mod.kmeans"


SOURCE_CHANGE_MODULE = '''
import numpy as np

KEEP = []


def step():
    KEEP.append(np.ones(8 * 131072))  # 8 MiB
    return len(KEEP)


def pipeline(ids, texts, options, workdir):
    return step()
'''


def test_explain_says_when_a_wrapped_functions_source_changed_since_the_run(tmp_path):
    (tmp_path / "srcchange_work.py").write_text(SOURCE_CHANGE_MODULE)
    scenario = tmp_path / "srcchange.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        name: srcchange
        corpus: {{source: synthetic, seed: 3}}
        sizes: [10]
        output: {tmp_path / "results"}
        sample_interval: 20ms
        targets: [srcchange_work.step]
        pipelines:
          - {{name: p, kind: callable, options: {{function: "srcchange_work:pipeline"}}}}
        """))
    run = memharness("run", str(scenario), "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    run_dir = next((tmp_path / "results" / "srcchange").iterdir())
    # the function is edited after the measured run: the explained run is not the run the report shows
    (tmp_path / "srcchange_work.py").write_text(SOURCE_CHANGE_MODULE.replace("# 8 MiB", "# 8 MiB, edited"))
    out = memharness("explain", str(run_dir), "p__10__r0", "--target", "srcchange_work.step", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    md = (run_dir / "cells" / "p__10__r0" / "explain" / "explain.md").read_text()
    line = next(x for x in md.splitlines() if "changed since the run" in x)
    print(line)
    assert line.startswith("**The source of `srcchange_work.step` changed since the run** (hash ")
