"""The verdict points at the cause (issue 19), on real `memharness run`s of calibrated `callable` pipelines.

One run of three variants x 3 repeats (tests/workloads_shift.py): `index` (wrapped) calls `work`
(wrapped), which allocates 200 MiB.
- `heavy` imports a module that keeps 150 MiB: no function's own peak changed, one baseline shift of
  150 MiB named at the imports (the process tree's peak still regresses: exit 1);
- `grown`: `work` allocates 100 MiB more: `work` alone is flagged, `index` inherits it.
Then stability: the same scenario run twice on unchanged code, for three corpus seeds: 0 regressed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from cli import memharness_cli

pytestmark = pytest.mark.e2e

TREE = "(process tree)"
INDEX, WORK = "workloads_shift.index", "workloads_shift.work"
MiB = 1 << 20

SCENARIO = """\
name: {name}
corpus: {corpus}
model: builtin:tiny
pipelines:
{pipelines}
sizes: [20]
repeats: 3
device: cpu
targets: [workloads_shift.index, workloads_shift.work]
sample_interval: 20ms
timeout: 120s
max_rss: 4GiB
output: {output}
"""
VARIANTS = {"base": "workloads_shift:run", "heavy": "workloads_shift_heavy:run", "grown": "workloads_shift:run_grown"}


def _pipelines(names: list[str]) -> str:
    return "\n".join(f"  - name: {n}\n    kind: callable\n    options: {{function: \"{VARIANTS[n]}\"}}"
                     for n in names)


def _memharness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return memharness_cli(*args, cwd=cwd, timeout=900)


def _run(tmp: Path, name: str, corpus: str, pipelines: list[str]) -> Path:
    output = tmp / "results"
    scenario = tmp / f"{name}.yaml"
    scenario.write_text(SCENARIO.format(name=name, corpus=corpus, pipelines=_pipelines(pipelines), output=output))
    before = set((output / name).iterdir()) if (output / name).is_dir() else set()
    proc = _memharness("run", scenario, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [p for p in (output / name).iterdir() if p.is_dir() and p not in before]
    assert len(runs) == 1, runs
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert all(c["status"] == "done" for c in manifest["cells"]), manifest["cells"]
    return runs[0]


def _compare(base: str, current: str, cwd: Path) -> tuple[int, dict, str]:
    proc = _memharness("compare", base, current, "--format", "json", cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    md = _memharness("compare", base, current, cwd=cwd)
    assert md.returncode == proc.returncode, md.stderr
    print(md.stdout)  # shown with pytest -s: the Markdown verdict
    return proc.returncode, json.loads(proc.stdout), md.stdout


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e_verdict")
    corpus = tmp / "corpus.txt"
    corpus.write_text("".join(f"passage number {i} about genes and proteins\n" for i in range(50)))
    spec = f"{{source: file, path: {corpus}, format: txt}}"
    return _run(tmp, "verdict", spec, ["base", "heavy", "grown"])


def _rows(report: dict) -> dict[str, dict]:
    return {r["target"]: r for r in report["rows"]}


def test_import_that_keeps_150mib_is_one_baseline_shift_not_a_function_regression(run_dir):
    code, report, md = _compare(f"{run_dir}:base", f"{run_dir}:heavy", run_dir)
    rows = _rows(report)
    assert rows[INDEX]["verdict"] == rows[WORK]["verdict"] == "unchanged", report["rows"]
    assert rows[WORK]["judged_on"] == "peak_over_start"
    assert rows[WORK]["old"] == pytest.approx(200 * MiB, rel=0.05)  # its own 200 MiB, on both sides
    assert rows[WORK]["entry_current"] - rows[WORK]["entry_base"] == pytest.approx(150 * MiB, rel=0.03)
    # the whole process holds 150 MiB more: the tree's peak regresses, so the exit code is 1
    assert rows[TREE]["verdict"] == "regressed" and rows[TREE]["judged_on"] == "peak"
    assert code == 1 and report["counts"]["regressed"] == 1
    host = [s for s in report["shifts"] if s["kind"] == "host"]
    assert len(host) == 1, report["shifts"]
    shift = host[0]
    assert shift["delta_mib"] == pytest.approx(150, rel=0.03)
    assert shift["before"] == f"call:{INDEX}" and shift["from_imports"]
    imports = shift["sources"][0]
    assert imports["step"] == "imports" and imports["delta_mib"] == pytest.approx(150, rel=0.03)
    assert imports["imports"][0]["module"] == "workloads_ballast"
    assert imports["imports"][0]["delta_mib"] == pytest.approx(150, rel=0.03)
    first = report["summary"][0]
    said = re.match(r"heavy · 20: \+([\d.]+) MiB held before `index`, from imports", first)  # cell, then words
    assert said and float(said.group(1)) == pytest.approx(150, rel=0.03), first
    assert "workloads_ballast" in first and first.endswith("no function's own peak changed")
    assert f"- {first}" in md


def test_100mib_more_in_work_flags_work_and_marks_its_caller_as_inheriting(run_dir):
    code, report, md = _compare(f"{run_dir}:base", f"{run_dir}:grown", run_dir)
    rows = _rows(report)
    assert code == 1
    assert rows[WORK]["verdict"] == "regressed"
    assert rows[WORK]["delta_mib"] == pytest.approx(100, rel=0.05)
    assert rows[INDEX]["verdict"] == "inherited" and rows[INDEX]["inherits_from"] == WORK
    assert rows[INDEX]["inherited_direction"] == "regressed"
    flagged = {t for t, r in rows.items() if r["verdict"] == "regressed"}
    assert flagged == {WORK, TREE}
    assert report["counts"]["regressed"] == 2 and report["counts"]["inherited"] == 1
    assert [s for s in report["shifts"] if s["kind"] == "host"] == []  # nothing held before the calls moved
    said = re.match(r"grown · 20: `work` own peak \+([\d.]+) MiB \(p ", report["summary"][0])  # cell, then words
    assert said and float(said.group(1)) == pytest.approx(100, rel=0.05), report["summary"][0]
    assert "its callers inherit it: `index`" in report["summary"][0]
    assert f"inherits `{WORK}` (regressed)" in md


def test_unchanged_code_run_twice_flags_nothing_for_several_corpus_seeds(tmp_path):
    for seed in (1, 2, 3):
        corpus = f"{{source: synthetic, seed: {seed}, lengths: {{min_words: 20, max_words: 200}}}}"
        first = _run(tmp_path, f"stable{seed}", corpus, ["base"])
        second = _run(tmp_path, f"stable{seed}", corpus, ["base"])
        code, report, _ = _compare(str(first), str(second), tmp_path)
        assert code == 0, report["rows"]
        assert report["counts"]["regressed"] == 0 and report["counts"]["improved"] == 0, report["rows"]
        assert report["shifts"] == [], report["shifts"]
        assert {r["repeats_base"] for r in report["rows"]} == {3}
