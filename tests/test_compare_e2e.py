"""`memharness compare` on real runs of a `callable` pipeline (issue 6, first Must-show item).

One `memharness run` of three variants x 5 repeats: `base`, `same` (the same function again) and
`regressed` (stage_b holds 100 MiB more). Then:
- `compare RUN:base RUN:regressed` exits 1 and flags stage_b and the process tree only;
- `compare RUN:base RUN:same` (5 repeats each of an unchanged pipeline) exits 0 with nothing flagged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli import memharness_cli

pytestmark = pytest.mark.e2e

TREE = "(process tree)"

SCENARIO = """\
name: regress
corpus:
  source: file
  path: {corpus}
  format: txt
model: builtin:tiny
pipelines:
  - name: base
    kind: callable
    options: {{function: "workloads_regress:base"}}
  - name: same
    kind: callable
    options: {{function: "workloads_regress:base"}}
  - name: regressed
    kind: callable
    options: {{function: "workloads_regress:regressed"}}
sizes: [20]
repeats: 5
device: cpu
targets: [workloads_regress.stage_a, workloads_regress.stage_b]
sample_interval: 20ms
timeout: 120s
max_rss: 4GiB
output: {output}
"""


def _memharness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return memharness_cli(*args, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e_compare")
    corpus = tmp / "corpus.txt"
    corpus.write_text("".join(f"passage number {i} about genes and proteins\n" for i in range(50)))
    output = tmp / "results"
    scenario = tmp / "regress.yaml"
    scenario.write_text(SCENARIO.format(corpus=corpus, output=output))
    proc = _memharness("run", scenario, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [p for p in (output / "regress").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert len(manifest["cells"]) == 15
    assert all(c["status"] == "done" for c in manifest["cells"]), manifest["cells"]
    return runs[0]


def _compare(run: Path, a: str, b: str) -> tuple[int, dict, str]:
    proc = _memharness("compare", f"{run}:{a}", f"{run}:{b}", "--format", "json", cwd=run)
    assert proc.returncode in (0, 1), proc.stderr
    md = _memharness("compare", f"{run}:{a}", f"{run}:{b}", cwd=run)
    assert md.returncode == proc.returncode
    print(md.stdout)  # shown with pytest -s: the Markdown report
    return proc.returncode, json.loads(proc.stdout), md.stdout


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def test_100mib_more_in_stage_b_is_flagged_on_stage_b_only(run_dir):
    code, report, md = _compare(run_dir, "base", "regressed")
    assert code == 1
    rows = {_short(r["target"]): r for r in report["rows"]}
    flagged = {name for name, r in rows.items() if r["verdict"] == "regressed"}
    assert flagged == {"stage_b", TREE}, report["rows"]
    assert rows["stage_a"]["verdict"] == "unchanged"
    assert rows["stage_b"]["delta_mib"] == pytest.approx(100, abs=10)
    assert rows["stage_b"]["repeats_base"] == rows["stage_b"]["repeats_current"] == 5
    assert rows["stage_b"]["p_value"] < 0.05
    assert report["counts"]["improved"] == 0
    assert "**regressed**" in md


def test_five_repeats_of_an_unchanged_pipeline_flag_nothing(run_dir):
    code, report, _ = _compare(run_dir, "base", "same")
    assert code == 0
    assert report["counts"]["regressed"] == 0 and report["counts"]["improved"] == 0
    names = {_short(r["target"]) for r in report["rows"]}
    assert {"stage_a", "stage_b", TREE} <= names
    assert all(r["repeats_base"] == 5 and r["repeats_current"] == 5 for r in report["rows"])
    assert report["verdict"] == "ok"
