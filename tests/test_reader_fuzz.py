"""Every reader of a run folder takes any JSON type in any field (issue 28): each field of manifest.json (top
level and a cell entry), status.json, cell_info.json, timeline.json and processes.json replaced by each JSON type,
against `report`, `compare`, `ls`, `merge` and `run --resume`. Each command either works (a cell file's bad
field is a warning naming the file and the field) or refuses in one line naming manifest.json and the field;
never a traceback.

Cost: the commands run in this process on run folders of a few small cells; the report's PNG charts are drawn
for one case per JSON type (every field of every cell file of that type at once), the other cases render the
rest of the report (the charts' inputs are the same readers)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from click.testing import CliRunner
from runfactory import FakeCall, FakeCell, make_run

from memharness.cli import app
from memharness.results import shapes
from memharness.runner.executors.base import Executor, Finished, Started
from memharness.runner.preflight import PipelineCheck, Preflight
from memharness.runner.supervisor import CellOutcome
from memharness.scenario import executors as registry

COMMAND = typer.main.get_command(app)  # built once: rebuilding it for each of the hundreds of calls costs most
VALUES = {"null": None, "bool": True, "int": -1, "float": 1e300, "string": "x", "list": [1], "object": {"k": 1}}
CALLS = [FakeCall("pkg.index", 100, 400, 900, 0.2, 1.0, children=[FakeCall("pkg.kmeans", 150, 300, 880, 0.3, 0.8)])]
T0 = 10**12

STATUS = {"status": "done", "cause": None, "message": "", "exit_code": 0, "t_start_ns": T0, "t_end_ns": T0 + 2 * 10**9,
          "wall_start_ns": 1_700_000_000 * 10**9, "wall_seconds": 2.0, "peak_tree_rss": 900 << 20, "size": 100,
          "pipeline": "a", "leftovers": [{"pid": 5, "rss": 1, "cmdline": "x", "killed": True}],
          "sampler_gaps": [{"from_ns": T0 + 10**8, "to_ns": T0 + 2 * 10**8, "why": "killed by SIGKILL"}],
          "stdio_closed": ["stdout"]}
TIMELINE = {"format": "memharness-timeline", "version": 1, "row_bytes": 24, "fields": [["t_ns", "<i8"]],
            "kinds": {"1": "proc_rss"}, "interval_s": 0.01, "root_pid": 1000, "started_ns": T0,
            "clock": "CLOCK_MONOTONIC", "gpu": False, "max_rss": None, "memory_file": "timeline_mem.bin",
            "memory_kinds": [5, 6], "stopped_ns": T0 + 2 * 10**9, "ticks": 4, "late_ticks": 0,
            "peak_tree_rss": 900 << 20}
PROCESS = {"pid": 1000, "ppid": 1, "first_ns": T0, "last_ns": T0 + 10**9, "hwm": 900 << 20, "hwm_t_ns": T0 + 5 * 10**8,
           "name": "python"}
PROCESSES = {"root_pid": 1000, "written_ns": T0 + 10**9, "processes": [PROCESS]}
CELL_INFO = {"kmeans": {"label": "faiss-cpu 1.15.1", "use_faiss": True}, "index": {"nbits": 2}}
# each cell file: its content and the shapes of its fields
CELL_FILES = {"status.json": (STATUS, shapes.STATUS_FIELDS),
              "timeline.json": (TIMELINE, shapes.TIMELINE_HEADER_FIELDS),
              "processes.json": (PROCESSES, shapes.PROCESSES_FIELDS),
              "cell_info.json": (CELL_INFO, shapes.CELL_INFO_FIELDS)}

SCENARIO = """\
name: fake
corpus: {{source: synthetic, seed: 3}}
sizes: [100, 200]
output: {output}
pipelines:
  - {{name: a, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
  - {{name: b, kind: callable, options: {{function: "workloads:pipeline_ok"}}}}
"""


class NoCells(Executor):
    """Runs nothing: every cell it is given is done at once (the bookkeeping of `--resume` is what is tried)."""

    name = "nocells"

    def run(self, todo, ctx) -> Iterator[Started | Finished]:
        for plan in todo:
            yield Started(plan, {"executor": self.name})
            (ctx.run_dir / "cells" / plan.id).mkdir(parents=True, exist_ok=True)
            yield Finished(plan, CellOutcome("done", None, "", 0.0, 0))


@pytest.fixture
def harness(monkeypatch, tmp_path):
    """Charts off unless asked, `--resume` without a probe, a reserve or a real cell."""
    import memharness.report.charts as charts
    import memharness.runner.execute as execute
    from memharness.runner import diskspace

    real = charts.render_all
    monkeypatch.setattr(charts, "render_all", lambda ctx: {})
    monkeypatch.setitem(registry.EXECUTORS, NoCells.name, f"{__name__}:NoCells")
    monkeypatch.setattr(diskspace, "RESERVE_BYTES", 1)
    checks = {p: PipelineCheck(p, "python", {"fingerprint": {}}, "cpu") for p in ("a", "b")}
    monkeypatch.setattr(execute, "run_preflight", lambda *a, **k: Preflight(pipelines=checks))
    scenario = tmp_path / "fake.yaml"
    scenario.write_text(SCENARIO.format(output=tmp_path / "resumed"))
    return {"charts": lambda on: monkeypatch.setattr(charts, "render_all", real if on else (lambda ctx: {})),
            "scenario": scenario}


def _base(root: Path) -> Path:
    """Two done cells of two pipelines, a pending one; every file the fuzz edits present, every optional
    manifest field too."""
    run = make_run(root, [FakeCell("a", 100, calls=CALLS, samples=4), FakeCell("b", 100, calls=CALLS, samples=4),
                          FakeCell("a", 200, status="pending", samples=4)])
    for cell in ("a__100__r0", "b__100__r0"):
        d = run / "cells" / cell
        for name, (content, _) in CELL_FILES.items():
            (d / name).write_text(json.dumps(content))
    shutil.rmtree(run / "cells" / "a__200__r0")
    (run / "scenario.yaml").write_text("name: fake\n")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["cells"][2].update(status="pending", cause=None)
    manifest["cells"][0].update(scenario_rev=0, executor="local", node={"hostname": "h"}, tries=1, attempts=[])
    manifest.update(sizes=[100, 200], executor={"name": "local"}, merged_from=["elsewhere"],
                    scenario_revisions=[{"rev": 0, "file": "scenario.yaml", "spec": manifest["scenario_spec"],
                                         "created_wall_ns": 0}])
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def _one_line(result, command: str) -> str:
    assert isinstance(result.exception, SystemExit) or result.exception is None, \
        f"{command}: {result.exception!r}\n{result.output}"
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    if result.exit_code in (0, 1):
        return ""
    assert result.exit_code == 2 and len(errors) == 1, f"{command}: exit {result.exit_code}\n{result.output}"
    return errors[0]


def _all_commands(run: Path, base: Path, work: Path, scenario: Path) -> dict[str, str]:
    """Each command but `ls` on `run`: '' when it worked, else its one error line."""
    cli = CliRunner()
    out = {"report": _one_line(cli.invoke(COMMAND, ["report", str(run), "--output", str(work / "report")]), "report"),
           "compare": _one_line(cli.invoke(COMMAND, ["compare", str(base), str(run)]), "compare"),
           "merge": _one_line(cli.invoke(COMMAND, ["merge", str(run), "--output", str(work / "merged")]), "merge")}
    resumed = cli.invoke(COMMAND, ["run", str(scenario), "--resume", str(run), "--force", "--no-report",
                               "--executor", NoCells.name])
    assert resumed.exception is None or isinstance(resumed.exception, SystemExit), \
        f"--resume: {resumed.exception!r}\n{resumed.output}"
    lines = [x for x in resumed.output.splitlines() if x.startswith("error:")]
    assert resumed.exit_code == 0 or (resumed.exit_code == 2 and len(lines) == 1), resumed.output
    out["--resume"] = lines[0] if resumed.exit_code else ""
    return out


def _ls(root: Path) -> None:
    """`ls` lists every run under `root`, a broken one as broken; never an error."""
    result = CliRunner().invoke(COMMAND, ["ls", str(root)])
    assert result.exit_code == 0 and result.exception is None, result.output


MANIFEST_FIELDS = ["format", "version", "scenario", "run_id", "created_wall_ns", "clock", "scenario_spec", "cells",
                   "sizes", "executor", "scenario_revisions", "merged_from"]
REQUIRED_ENTRY_FIELDS = ["id", "pipeline", "size", "status"]  # a manifest without them is refused
OPTIONAL_ENTRY_FIELDS = ["kind", "repeat", "dir", "cause", "scenario_rev", "executor", "node", "tries", "attempts"]


@pytest.mark.parametrize("field", MANIFEST_FIELDS + [f"cells[0].{f}" for f in REQUIRED_ENTRY_FIELDS])
def test_any_json_type_in_a_manifest_field(harness, tmp_path, field):
    base = _base(tmp_path / "base")
    for kind, value in VALUES.items():
        run = _copy(base, tmp_path / kind / "fake" / "run1")
        manifest = json.loads((run / "manifest.json").read_text())
        in_entry = field.startswith("cells[0].")
        where, key = (manifest["cells"][0], field.split(".", 1)[1]) if in_entry else (manifest, field)
        where[key] = value
        (run / "manifest.json").write_text(json.dumps(manifest))
        for command, line in _all_commands(run, base, tmp_path / kind, harness["scenario"]).items():
            if line:  # refused: one line naming the file (or the run) and the field
                assert ("manifest.json" in line or str(run) in line) and key in line, (kind, command, line)
    _ls(tmp_path)


def test_any_json_type_in_an_optional_cell_entry_field(harness, tmp_path):
    """One cell per (field, JSON type), all in one run: no command refuses it."""
    variants = [(field, kind) for field in OPTIONAL_ENTRY_FIELDS for kind in VALUES]
    run = make_run(tmp_path / "runs", [FakeCell("a", 100 + i, calls=CALLS, samples=4) for i in range(len(variants))])
    manifest = json.loads((run / "manifest.json").read_text())
    for entry, (field, kind) in zip(manifest["cells"], variants, strict=True):
        entry[field] = VALUES[kind]
    (run / "manifest.json").write_text(json.dumps(manifest))
    base = make_run(tmp_path / "base", [FakeCell("a", 100, calls=CALLS, samples=4)])
    assert not any(_all_commands(run, base, tmp_path, harness["scenario"]).values())
    _ls(tmp_path)


@pytest.mark.parametrize("name", list(CELL_FILES))
def test_any_json_type_in_a_cell_file_field(harness, tmp_path, name):
    """One cell per (field, JSON type), all in one run: no command refuses it, and the report names each field
    it could not use."""
    content, fields = CELL_FILES[name]  # the shapes: which edits the report has to name
    keys = list(content) + (["processes[0]." + k for k in PROCESS] if name == "processes.json" else [])
    variants = [(key, kind) for key in keys for kind in VALUES]
    run = make_run(tmp_path / "runs", [FakeCell("a", 100 + i, calls=CALLS, samples=4) for i in range(len(variants))]
                   + [FakeCell("b", 100, calls=CALLS, samples=4)])
    for i, (key, kind) in enumerate(variants):
        edited = json.loads(json.dumps(content))
        if key.startswith("processes[0]."):
            edited["processes"][0][key.split(".", 1)[1]] = VALUES[kind]
        else:
            edited[key] = VALUES[kind]
        (run / "cells" / f"a__{100 + i}__r0" / name).write_text(json.dumps(edited))
    base = make_run(tmp_path / "base", [FakeCell("a", 100, calls=CALLS, samples=4)])
    assert not any(_all_commands(run, base, tmp_path, harness["scenario"]).values())
    _ls(tmp_path)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    named = {(e["cell"], e["file"]): e["reason"] for e in summary["unreadable_files"]}
    for i, (key, kind) in enumerate(variants):
        plain = key.split(".", 1)[-1]
        shape = shapes.PROCESS_FIELDS.get(plain) if key.startswith("processes[0].") else fields.get(key)
        if shape is not None and not shape[0](VALUES[kind]):
            assert f"'{key}'" in named.get((f"a__{100 + i}__r0", name), ""), (kind, key, named)


def test_any_json_type_in_every_cell_file_field_at_once_with_charts(harness, tmp_path):
    """The report with its PNG charts, each JSON type in every field of every cell file of one cell."""
    harness["charts"](True)
    for kind, value in VALUES.items():
        run = make_run(tmp_path / kind, [FakeCell("a", 100, calls=CALLS, samples=4),
                                         FakeCell("a", 200, calls=CALLS, samples=4)])
        d = run / "cells" / "a__200__r0"
        for name, (content, _) in CELL_FILES.items():
            edited = {k: value for k in content}
            (d / name).write_text(json.dumps(edited))
        result = CliRunner().invoke(COMMAND, ["report", str(run)])
        assert result.exit_code == 0 and result.exception is None, (kind, result.output)
        assert "cell file(s) could not be read" in result.stdout or kind == "null", (kind, result.stdout)
