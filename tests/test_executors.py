"""Adding an executor is one class and one registration: a toy executor, defined in this file, runs a real
scenario through `memharness run`'s code path, and the runner does the manifest's bookkeeping from its events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli import TESTS, write_scenario
from rich.console import Console

from memharness.results import Run
from memharness.runner.execute import RunRequest, execute
from memharness.runner.executors import base, get
from memharness.runner.executors.base import Executor, Finished, RunContext, Started
from memharness.runner.matrix import CellPlan
from memharness.runner.supervisor import run_cell
from memharness.scenario import executors as registry

MiB = 1 << 20


class ToyExecutor(Executor):
    """Runs the largest cells first, each through the supervisor, and says where: the whole contract."""

    name = "toy"
    seen: list[str] = []

    def open(self, ctx: RunContext) -> dict:
        return {"name": self.name, "order": "largest first"}

    def run(self, todo: list[CellPlan], ctx: RunContext) -> Iterator[Started | Finished]:
        for plan in sorted(todo, key=lambda p: -p.size):
            ToyExecutor.seen.append(plan.id)
            yield Started(plan, {"executor": self.name, "node": {"hostname": "toy-node"}})
            outcome = run_cell(plan, ctx.run_dir / "cells" / plan.id, ctx.scenario, ctx.pre)
            yield Finished(plan, outcome, where=" on toy-node")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(registry.EXECUTORS, "toy", f"{__name__}:ToyExecutor")
    ToyExecutor.seen = []
    return ToyExecutor


def test_a_toy_executor_in_one_file_runs_a_scenario(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the cell imports the workloads
    path = write_scenario(tmp_path, "toyexec", """\
        - {name: ok, kind: callable, options: {function: "workloads:pipeline_ok", mib: 20}}
        """, "[40, 80]", "[workloads.stage]")
    assert isinstance(get("toy"), ToyExecutor)
    console = Console(record=True, width=200)
    code, run_dir = execute(RunRequest(path, executor="toy", report=False), console)
    text = console.export_text()
    assert code == 0, text
    assert toy.seen == ["ok__80__r0", "ok__40__r0"]  # its own order
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["executor"] == {"name": "toy", "order": "largest first"}
    for entry in manifest["cells"]:  # the runner's bookkeeping, from the executor's events
        assert entry["status"] == "done" and entry["executor"] == "toy" and entry["node"] == {"hostname": "toy-node"}
    assert "ok__80__r0: done in" in text and "on toy-node" in text
    run = Run.open(run_dir)
    stage = {c.size: [r for r in c.calls if r.target == "workloads.stage"][0] for c in run.cells}
    for size, rec in stage.items():  # pipeline_ok stages `mib` MiB: the figures are the local executor's
        assert abs(rec.peak_over_start / MiB - 20) < 20 * 0.05 + 1, (size, rec.peak_over_start / MiB)


def test_the_interface_has_defaults_for_everything_but_run():
    class Bare(Executor):
        name = "bare"

    ex = Bare()
    assert ex.open(None) is None and ex.cancel() is None and ex.check() is None
    with pytest.raises(NotImplementedError):
        next(iter(ex.run([], None)))
    assert base.Started and base.Finished
