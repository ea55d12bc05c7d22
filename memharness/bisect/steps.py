"""One bisection step: run the cell in a version's environment through `memharness run`, then judge it.

The cell runs through the ordinary runner, so each version gets an ordinary run folder that `memharness
report` and `memharness compare` read: a derived scenario (the chosen pipeline alone, with
`python: <layer>/bin/python`, the chosen size, the bisect's repeats, `output: <bisect>/runs/<version>`) is
written to `<bisect>/scenarios/<version>.yaml` and run with `memharness run --no-report` in a subprocess
(its own session; a stop signal is forwarded to it once, and it leaves a folder `--resume` finishes). Its
output goes to `<bisect>/logs/<version>.log`.

The verdict is `memharness compare GOOD_RUN STEP_RUN` with the bisect's metric and rule: `bad` when a row
regressed, else `good`. A cell the runner marks failed counts as `bad` when memory killed it (`max_rss`
guard, the kernel's OOM killer; compare counts those as regressions too) and is a `skip` otherwise (it
raised, timed out: the version does not run here, which says nothing about its memory).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memharness import names
from memharness.bisect.search import BAD, GOOD, SKIP
from memharness.core.atomic import write_text
from memharness.errors import MemharnessError

MEMORY_CAUSES = ("max_rss", "oom_kill")  # a failed cell killed by memory is a regression, not a skip


class Stopped(Exception):
    """A stop signal arrived while a step ran; the step's child has been stopped and waited for."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def derive(scenario_path: Path, pipeline: str, size_text: str, repeats: int | None) -> dict[str, Any]:
    """The derived scenario (without its per-version `python` and `output`) for one cell of a scenario.

    Raises MemharnessError (one line) for an unknown pipeline or size; ScenarioError for a bad scenario."""
    import difflib

    from memharness.scenario import load, parse_size

    scenario = load(scenario_path)
    names = [p.name for p in scenario.pipelines]
    if pipeline not in names:
        close = difflib.get_close_matches(pipeline, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MemharnessError(f"--cell {pipeline}@{size_text}: {scenario_path} has no pipeline {pipeline!r}{hint} "
                              f"(pipelines: {', '.join(names)})")
    try:
        size = parse_size(size_text)
    except ValueError as exc:
        raise MemharnessError(f"--cell {pipeline}@{size_text}: {exc}") from None
    if size not in scenario.sizes:
        raise MemharnessError(f"--cell {pipeline}@{size_text}: {scenario_path} has no size {size_text} "
                              f"(sizes: {', '.join(str(s) for s in scenario.sizes)})")
    raw = yaml.safe_load(scenario_path.read_text(encoding="utf-8"))
    derived = {k: v for k, v in raw.items() if k not in ("explain",)}
    derived["pipelines"] = [dict(p) for p in raw["pipelines"] if p.get("name") == pipeline]
    derived["sizes"] = [size]
    derived["repeats"] = repeats or scenario.repeats
    derived["executor"] = "local"
    corpus = dict(raw.get("corpus") or {})
    if corpus.get("source") == "file" and corpus.get("path"):
        p = Path(str(corpus["path"])).expanduser()
        corpus["path"] = str(p if p.is_absolute() else (scenario_path.resolve().parent / p).resolve())
        derived["corpus"] = corpus
    return derived


def base_python(derived: dict[str, Any]) -> str:
    """The interpreter the pipeline runs in without bisect: its `python:`, else this one."""
    python = derived["pipelines"][0].get("python")
    return str(Path(python).expanduser().absolute()) if python else sys.executable


def write_scenario(bisect_dir: Path, label: str, derived: dict[str, Any], python: str) -> Path:
    spec = dict(derived)
    spec["pipelines"] = [dict(derived["pipelines"][0], python=python)]
    spec["output"] = str(bisect_dir / names.BISECT_RUNS / label)
    path = bisect_dir / "scenarios" / f"{label}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(spec, sort_keys=False))
    return path


def find_run(bisect_dir: Path, label: str, scenario_name: str) -> Path | None:
    """The newest run folder of a version's step."""
    folder = bisect_dir / names.BISECT_RUNS / label / scenario_name
    runs = sorted((p for p in folder.glob("*") if (p / names.MANIFEST).exists()), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


@dataclass
class CellRun:
    code: int
    run_dir: Path | None
    log: Path


def run_cell(scenario_file: Path, log: Path, resume: Path | None, scenario_dir: Path,
             stop_requested) -> CellRun:
    """`memharness run SCENARIO --no-report [--resume RUN]` in a subprocess; raises Stopped after forwarding a
    stop signal to it and waiting for it to leave a resumable run folder."""
    cmd = [sys.executable, "-m", "memharness", "run", str(scenario_file), "--no-report"]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    env = dict(os.environ)
    # the original scenario's folder, where its `callable` modules may live (the runner adds the derived one's)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), str(scenario_dir)] if p)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    signum = stop_requested()
                    if signum is not None:
                        proc.send_signal(signum)  # once: the runner stops its cell and marks the run
                        proc.wait()
                        raise Stopped(signum) from None
        finally:
            if proc.poll() is None:  # an unexpected exception here: never leave the run behind
                proc.send_signal(signal.SIGINT)
                proc.wait()
    return CellRun(proc.returncode, None, log)


def preflight_reason(log: Path) -> str:
    """The first problem `memharness run` printed before running any cell (preflight, a bad scenario)."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("preflight failed"):
            return "preflight: " + (lines[i + 1] if i + 1 < len(lines) else line)
    errors = [ln for ln in lines if ln.lower().startswith(("error", "memharness run"))]
    return (errors or lines or ["no output"])[-1]


@dataclass
class Judgement:
    verdict: str  # GOOD | BAD | SKIP
    reason: str = ""
    tree_peak: float | None = None  # median process-tree peak of the step, bytes
    row: dict[str, Any] = field(default_factory=dict)  # the judged row: target, judged_on, value, delta

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "tree_peak": self.tree_peak, "row": self.row}


def _cell_failures(run_dir: Path) -> list[dict[str, Any]]:
    from memharness.results import Run

    return [{"id": c.id, "status": c.status, "cause": c.cause, "message": c.status_json.get("message", "")}
            for c in Run.open(run_dir).cells if c.status != "done"]


def _median(values: list[float]) -> float | None:
    import statistics

    return float(statistics.median(values)) if values else None


def judge(good_run: Path, step_run: Path, metric: str, rule) -> Judgement:
    """The step's verdict against the good end's run, with compare's rule."""
    from memharness.compare import compare
    from memharness.results.figures import TREE

    failures = _cell_failures(step_run)
    result = compare(str(good_run), str(step_run), metric=metric, rule=rule)
    tree = next((r for r in result.rows if r.target == TREE), None)
    peak = _median(tree.values_current) if tree else None
    memory = [f for f in failures if f["cause"] in MEMORY_CAUSES]
    if memory:
        f = memory[0]
        return Judgement(BAD, f"cell {f['status']}: {f['cause']}: {f['message']}"[:300], peak,
                         {"target": TREE, "judged_on": "status", "value": None, "delta": None})
    done = {(r.pipeline_current, r.size) for r in result.rows}
    if failures and not done:
        f = failures[0]
        return Judgement(SKIP, f"cell {f['status']} ({f['cause']}): {f['message']}"[:300], peak)
    if result.failed_cells:
        return Judgement(SKIP, f"cell failed: {result.failed_cells[0].detail}"[:300], peak)
    regressed = [r for r in result.rows if r.verdict == "regressed" and r.decision is not None]
    # the most specific evidence first: a function's own regression, then the process tree's
    chosen = max(regressed, key=lambda r: (r.target != TREE, r.decision.delta)) if regressed else tree
    row: dict[str, Any] = {}
    if chosen is not None:
        d = chosen.decision
        row = {"target": chosen.target, "judged_on": chosen.judged_on,
               "value": _median(chosen.values_current), "delta": d.delta if d else None,
               "verdict": chosen.verdict}
    return Judgement(BAD if result.regressed else GOOD, "", peak, row)
