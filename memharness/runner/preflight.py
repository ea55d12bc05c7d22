"""Checks made before any long work: every failure here stops the run with nothing run.

- each pipeline's interpreter can import memharness and the pipeline kind, and the scenario's targets
  and `line_profile` paths resolve *there* (a missing default target is only reported);
- the model is reachable (a local path, a `builtin:` checkpoint that can be built, or a hub id that is
  cached or reachable);
- the corpus is reachable and holds enough records for the largest size (it is materialised once, here);
- the output folder `<output>/<scenario name>` (the one the run folder is created in) can be created and
  takes a real file of a few MiB, and its disk (and the corpus cache's) has room for an estimate of what
  the run writes (see `runner/diskspace.py`).

Every problem carries the scenario field it is about (`PreflightError.locs`), so the command can name the
scenario file and line. Folders preflight created are removed again when it fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memharness.core.launch import cache_dir
from memharness.core.session import interpreter_env
from memharness.errors import MemharnessError
from memharness.runner import diskspace
from memharness.runner.matrix import CellPlan
from memharness.scenario import format_size

if TYPE_CHECKING:
    from memharness.scenario import PipelineSpec, Scenario

OFFLINE_HINT = "use the offline scenario scenarios/quickstart.yaml (synthetic corpus, builtin checkpoint)"


Loc = tuple  # a scenario field path: ("pipelines", 0, "options", "function")


class PreflightError(MemharnessError):
    """`problems`: one message each; `locs`: the scenario field each is about (() for none)."""

    def __init__(self, problems: list[str], locs: list[Loc] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.locs = list(locs) if locs is not None else [() for _ in problems]


@dataclass
class PipelineCheck:
    name: str
    python: str
    probe: dict[str, Any]
    device: str
    model_path: str | None = None


@dataclass
class Preflight:
    pipelines: dict[str, PipelineCheck] = field(default_factory=dict)
    corpus_file: Path | None = None
    sys_path: list[str] = field(default_factory=list)  # cwd and the scenario's folder, for `callable` modules
    created: list[Path] = field(default_factory=list)  # output folders preflight made (removed on a dry run)


def _run_probe(python: str, requests: list[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]] | dict:
    """The probe's results, one per request, or {"fatal": message} when the interpreter cannot run it."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(requests, fh)
        path = fh.name
    try:
        proc = subprocess.run([python, "-m", "memharness.runner.probe", path], capture_output=True, text=True,
                              env=env, timeout=600, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return {"fatal": f"interpreter not found: {python}"}
    except subprocess.TimeoutExpired:
        return {"fatal": f"probing {python} took longer than 600 s"}
    finally:
        os.unlink(path)
    marker = "@@MEMHARNESS-PROBE@@"
    if proc.returncode != 0 or marker not in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"fatal": f"{python} could not run the memharness probe: {tail[0]}"}
    return json.loads(proc.stdout.rsplit(marker, 1)[1])


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> bool:
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
    return (hub / f"models--{repo_id.replace('/', '--')}" / "snapshots").is_dir()


def resolve_model(spec: str, python: str, env: dict[str, str]) -> str:
    """A local path for builtin/local models, the hub id for hub models (checked reachable or cached)."""
    if spec.startswith("builtin:"):
        proc = subprocess.run([python, "-m", "memharness.models", "build", spec, "--cache", str(cache_dir())],
                              capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise PreflightError([f"model {spec}: building it failed: {tail}"])
        return lines[-1].strip()
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    if spec.startswith((".", "/", "~")):
        raise PreflightError([f"model {spec}: no such local folder"])
    if _hub_cached(spec) or _hub_reachable():
        return spec
    raise PreflightError([f"model {spec}: not in the local Hugging Face cache and the Hugging Face hub cannot "
                          f"be reached from this machine; {OFFLINE_HINT}"])


def check_output(folder: Path) -> list[Path]:
    """Create `folder` (the run folder's parent) and write a real probe file into it; returns the folders
    it created (to remove again if preflight fails); raises PreflightError naming the folder."""
    folder = Path(folder)
    missing = []
    p = folder.absolute()
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise PreflightError([f"output folder {folder}: a file is in the way (not a folder)"],
                                 [("output",)]) from None
        except OSError as exc:
            raise PreflightError([f"output folder {folder} cannot be created: {exc.strerror}"],
                                 [("output",)]) from None
        if not folder.is_dir():
            raise PreflightError([f"output folder {folder}: a file is in the way (not a folder)"], [("output",)])
        try:
            diskspace.write_probe(folder)
        except OSError as exc:
            raise PreflightError([f"output folder {folder} is not writable: cannot write a "
                                  f"{diskspace.fmt(diskspace.PROBE_BYTES)} test file: {exc.strerror}"],
                                 [("output",)]) from None
    except PreflightError:
        remove_empty(missing)
        raise
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove folders (deepest first) that preflight created and that are still empty."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            break


def check_space(scenario: Scenario, plans: list[CellPlan], corpus_spec: dict, output: Path, largest: int) -> None:
    """Refuse a run whose estimated writes (corpus cache, timelines) exceed the free space."""
    from memharness import corpus

    needs: dict[int, list[tuple[int, str, Path]]] = {}
    cache = cache_dir()
    try:
        corpus_bytes = corpus.estimate_bytes(corpus_spec, largest, cache)
    except corpus.CorpusError:
        corpus_bytes = None
    if corpus_bytes:
        needs.setdefault(diskspace.device_of(cache), []).append(
            (corpus_bytes, f"corpus cache {format_size(largest)} records ~{diskspace.fmt(corpus_bytes)}", cache))
    tl, why = diskspace.timeline_bytes(len(plans), scenario.sample_interval, scenario.timeout)
    needs.setdefault(diskspace.device_of(output), []).append((tl + diskspace.RESERVE_BYTES, f"run folder: {why}",
                                                             output))
    problems, locs = [], []
    for items in needs.values():
        total = sum(n for n, _, _ in items)
        free = diskspace.free_bytes(items[0][2])
        if total > free:
            where = " and ".join(str(path) for _, _, path in items)
            problems.append(f"not enough disk space at {where}: {diskspace.fmt(free)} free, the run needs about "
                            f"{diskspace.fmt(total)} ({'; '.join(w for _, w, _ in items)})")
            locs.append(("sizes",) if corpus_bytes and any(path == cache for _, _, path in items) else ("output",))
    if problems:
        raise PreflightError(problems, locs)


def run_preflight(scenario: Scenario, plans: list[CellPlan], scenario_dir: Path, output: Path,
                  say=print, materialize: bool = True) -> Preflight:
    """`output` is the folder run folders are created in (`<scenario output>/<scenario name>`)."""
    created = check_output(output)
    try:
        result = _run_preflight(scenario, plans, scenario_dir, output, say, materialize)
        result.created = created
        return result
    except BaseException:
        remove_empty(created)
        raise


class _Problems:
    """Problems found so far, each once, with the scenario field each is about."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.locs: list[Loc] = []

    def add(self, message: str, loc: Loc) -> None:
        if message not in self.messages:
            self.messages.append(message)
            self.locs.append(loc)

    def raise_any(self) -> None:
        if self.messages:
            raise PreflightError(self.messages, self.locs)


def _target_loc(scenario: Scenario, i: int, path: str) -> Loc:
    """The scenario field a probe error about `path` (a target, `options`, ...) of pipeline `i` is about."""
    spec = scenario.pipelines[i]
    if path == "options":
        return ("pipelines", i, "options")
    if path == spec.options.get("function"):
        return ("pipelines", i, "options", "function")
    for key, values in (("targets", scenario.targets), ("line_profile", scenario.line_profile)):
        if path in values:
            return (key, list(values).index(path))
    if path in spec.targets:
        return ("pipelines", i, "targets", list(spec.targets).index(path))
    return ("pipelines", i)


def _probe_request(scenario: Scenario, spec: PipelineSpec, sys_path: list[str]) -> dict[str, Any]:
    return {"kind": spec.kind, "options": spec.options, "use_defaults": spec.default_targets,
            "targets": list(dict.fromkeys(list(scenario.targets) + list(spec.targets))),
            "line_profile": list(scenario.line_profile), "sys_path": sys_path}


def _cell_device(scenario: Scenario, probe: dict[str, Any]) -> str:
    if scenario.device == "auto":
        return "cuda" if probe.get("cuda_available") else "cpu"
    return scenario.device


def _probe_pipelines(scenario: Scenario, plans: list[CellPlan], sys_path: list[str], env: dict[str, str],
                     say, problems: _Problems) -> dict[str, PipelineCheck]:
    """Run the probe once per interpreter for the pipelines the plans use; one check per pipeline."""
    index = {p.name: i for i, p in enumerate(scenario.pipelines)}
    by_name = {p.name: p for p in scenario.pipelines}
    by_python: dict[str, list[str]] = {}
    for name in dict.fromkeys(p.pipeline for p in plans):
        by_python.setdefault(by_name[name].python or sys.executable, []).append(name)
    checks: dict[str, PipelineCheck] = {}
    for python, names in by_python.items():
        say(f"preflight: probing {', '.join(names)} in {python}")
        probes = _run_probe(python, [_probe_request(scenario, by_name[name], sys_path) for name in names], env)
        if isinstance(probes, dict):  # a fatal problem with the interpreter itself
            for name in names:
                problems.add(f"pipelines.{name}: {probes['fatal']}", ("pipelines", index[name], "python"))
            continue
        for name, probe in zip(names, probes, strict=True):
            if probe.get("kind_error"):
                problems.add(f"pipelines.{name}: pipeline kind {by_name[name].kind!r} cannot be used in {python}: "
                             f"{probe['kind_error']}", ("pipelines", index[name], "kind"))
            for err in probe.get("errors", []):
                problems.add(f"pipelines.{name}: {err['message']}", _target_loc(scenario, index[name],
                                                                                err.get("path", "")))
            if scenario.device == "cuda" and not probe.get("cuda_available"):
                problems.add(f"pipelines.{name}: device cuda requested but torch in {python} sees no CUDA device",
                             ("device",))
            checks[name] = PipelineCheck(name=name, python=python, probe=probe, device=_cell_device(scenario, probe))
    return checks


def _resolve_models(scenario: Scenario, checks: dict[str, PipelineCheck], env: dict[str, str], say,
                    problems: _Problems) -> None:
    """Set each non-`callable` check's `model_path`: one resolution per (model, interpreter)."""
    index = {p.name: i for i, p in enumerate(scenario.pipelines)}
    by_name = {p.name: p for p in scenario.pipelines}
    models: dict[tuple[str, str], str] = {}
    for name, check in checks.items():
        spec = by_name[name]
        if spec.kind == "callable":
            continue
        model = spec.model or scenario.model
        key = (model, check.python)
        if key not in models:
            say(f"preflight: model {model} in {check.python}")
            try:
                models[key] = resolve_model(model, check.python, env)
            except PreflightError as exc:
                for problem in exc.problems:
                    problems.add(problem, ("pipelines", index[name], "model") if spec.model else ("model",))
                continue
        check.model_path = models[key]


def _corpus_spec(scenario: Scenario, scenario_dir: Path) -> dict[str, Any]:
    """The scenario's corpus as plain data, a relative `file` path made absolute from the scenario's folder."""
    spec = scenario.corpus.model_dump(mode="json")
    if spec.get("path") and spec["source"] == "file":
        p = Path(spec["path"]).expanduser()
        spec["path"] = str(p if p.is_absolute() else (scenario_dir / p).resolve())
    return spec


def _check_corpus(corpus_spec: dict[str, Any], largest: int, problems: _Problems) -> None:
    """The corpus is reachable and holds `largest` records (raises with every problem found so far)."""
    from memharness import corpus

    try:
        corpus.check(corpus_spec)
        have = corpus.available(corpus_spec)
    except corpus.CorpusError as exc:
        problems.add(f"corpus: {exc}", ("corpus",))
        raise PreflightError(problems.messages, problems.locs) from exc
    problems.raise_any()
    if have is not None and have < largest:
        raise PreflightError([f"corpus: holds {have} records, fewer than the largest size {format_size(largest)}"],
                             [("sizes",)])


def _materialize_corpus(corpus_spec: dict[str, Any], largest: int, say) -> Path:
    from memharness import corpus

    say(f"preflight: preparing the first {format_size(largest)} corpus records")
    try:
        return corpus.materialize(corpus_spec, largest, cache_dir())
    except corpus.CorpusError as exc:
        raise PreflightError([f"corpus: {exc}"], [("corpus",)]) from exc
    except OSError as exc:
        raise PreflightError([f"corpus cache {cache_dir()}: cannot write: {exc.strerror}"],
                             [("corpus",)]) from exc


def _run_preflight(scenario: Scenario, plans: list[CellPlan], scenario_dir: Path, output: Path,
                   say, materialize: bool) -> Preflight:
    result = Preflight()
    problems = _Problems()
    result.sys_path = [str(Path.cwd()), str(scenario_dir)]
    env = interpreter_env(scenario.env)
    result.pipelines = _probe_pipelines(scenario, plans, result.sys_path, env, say, problems)
    problems.raise_any()
    _resolve_models(scenario, result.pipelines, env, say, problems)
    corpus_spec = _corpus_spec(scenario, scenario_dir)
    largest = max(p.size for p in plans)
    _check_corpus(corpus_spec, largest, problems)
    check_space(scenario, plans, corpus_spec, output, largest)  # a dry run too: it starts no cell
    if materialize:
        result.corpus_file = _materialize_corpus(corpus_spec, largest, say)
    return result
