"""Bad scenarios stop `memharness run` before anything runs, with messages that say what to fix."""

from __future__ import annotations

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


def test_unknown_size_filter(tmp_path):
    proc = run(tmp_path, BASE + "pipelines:\n" + GOOD_PIPELINE, "--sizes", "30")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown size: 30 (the scenario has: 20)"


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
