"""Bad scenarios stop `memharness run` before anything runs, with messages that say what to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

GOOD_PIPELINE = '  - {name: a, kind: callable, options: {function: "workloads:pipeline_ok"}}\n'


def run(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(body).replace("OUT", str(tmp_path / "results")))
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.run([sys.executable, "-m", "memharness", "run", str(path), "--no-report", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


BASE = """\
name: bad
corpus: {source: synthetic, seed: 1}
sizes: [20]
output: OUT
"""

CASES = [
    ("target that does not resolve",
     BASE + "targets: [workloads.stgae]\npipelines:\n" + GOOD_PIPELINE,
     ["preflight failed, nothing was run:",
      "  FILE:5: pipelines.a: target 'workloads.stgae': workloads has no attribute 'stgae'; closest: stage"]),
    ("module of a target that does not exist",
     BASE + "targets: [nosuchpkg_abc.mod.f]\npipelines:\n" + GOOD_PIPELINE,
     ["preflight failed, nothing was run:",
      "  FILE:5: pipelines.a: target 'nosuchpkg_abc.mod.f': no importable module in the path "
      "(module 'nosuchpkg_abc' not found)"]),
    ("callable function missing",
     BASE + 'pipelines:\n  - {name: a, kind: callable, options: {function: "workloads:nothing_here"}}\n',
     ["preflight failed, nothing was run:",
      "  FILE:6: pipelines.a: target 'workloads:nothing_here': workloads has no function 'nothing_here'"]),
    ("corpus file missing",
     BASE.replace("{source: synthetic, seed: 1}", "{source: file, path: missing.jsonl}") + "pipelines:\n"
     + GOOD_PIPELINE,
     ["preflight failed, nothing was run:", "  FILE:2: corpus: "]),
    ("corpus smaller than the largest size",
     BASE.replace("sizes: [20]", "sizes: [20, 50]").replace("{source: synthetic, seed: 1}",
                                                             "{source: file, path: small.txt}")
     + "pipelines:\n" + GOOD_PIPELINE,
     ["preflight failed, nothing was run:",
      "  FILE:3: corpus: holds 30 records, fewer than the largest size 50"]),
]


@pytest.mark.parametrize("name, body, expected", CASES, ids=[c[0] for c in CASES])
def test_preflight_refuses_and_runs_nothing(tmp_path, name, body, expected):
    (tmp_path / "small.txt").write_text("".join(f"passage {i}\n" for i in range(30)))
    proc = run(tmp_path, body)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    expected = [line.replace("FILE", str(tmp_path / "s.yaml")) for line in expected]
    assert lines[: len(expected) - 1] == expected[:-1], proc.stderr
    assert any(line.startswith(expected[-1]) for line in lines), proc.stderr
    assert not (tmp_path / "results" / "bad").exists()  # no run folder, no cell ran
    assert not (tmp_path / "results").exists()  # and no empty output folder left behind


def test_schema_errors_also_stop_run(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n  - {name: a, kind: colbrt}\n")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"{tmp_path / 's.yaml'}:6: pipelines[0].kind: unknown pipeline kind 'colbrt'; "
                                   "did you mean 'colbert'? (known: callable, colbert, ragatouille)")
    assert not (tmp_path / "results").exists()


def test_interpreter_that_does_not_exist(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n  - {name: a, kind: callable, python: /nope/bin/python, "
                                "options: {function: \"workloads:pipeline_ok\"}}\n")
    assert proc.returncode == 2
    expected = f"{tmp_path / 's.yaml'}:6: pipelines[0].python: interpreter not found: /nope/bin/python"
    assert proc.stderr.strip() == expected
    assert not (tmp_path / "results").exists()


def test_sizes_the_scenario_does_not_list_run_and_are_recorded_and_resumed(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--sizes", "0.03k,15")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "results" / "bad").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["sizes"] == [15, 30]
    assert [(c["id"], c["status"]) for c in manifest["cells"]] == [("a__15__r0", "done"), ("a__30__r0", "done")]
    # An interrupted cell: --resume (no --sizes) finishes it and runs neither the scenario's size 20 nor more.
    manifest["cells"][1]["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--resume", str(run_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resuming: 1 cells already finished, 1 to run" in proc.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["sizes"] == [15, 30]
    assert [(c["id"], c["status"]) for c in manifest["cells"]] == [("a__15__r0", "done"), ("a__30__r0", "done")]


def test_unknown_pipeline_filter_and_bad_size(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--pipelines", "b")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown pipeline: b (the scenario has: a)"
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--sizes", "2q")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --sizes: "), proc.stderr
    assert not (tmp_path / "results").exists()


def test_dry_run_runs_nothing(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "a__20__r0: a (callable) size 20 repeat 0" in proc.stdout
    assert "dry run: preflight passed, nothing was run" in proc.stdout
    assert not (tmp_path / "results" / "bad").exists()


def test_callable_module_next_to_the_scenario_runs(tmp_path):
    # Neither the current directory nor PYTHONPATH holds the module: only the scenario's own folder does.
    sub = tmp_path / "scenarios"
    sub.mkdir()
    (sub / "nearby_index.py").write_text(
        "def index(ids, texts, options, workdir):\n    (workdir / 'n.txt').write_text(str(len(texts)))\n")
    path = sub / "s.yaml"
    path.write_text(BASE.replace("OUT", str(tmp_path / "results"))
                    + 'pipelines:\n  - {name: a, kind: callable, options: {function: "nearby_index:index"}}\n')
    proc = subprocess.run([sys.executable, "-m", "memharness", "run", str(path), "--no-report"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (tmp_path / "results" / "bad").iterdir()
    assert (run / "cells" / "a__20__r0" / "work" / "n.txt").read_text() == "20"
