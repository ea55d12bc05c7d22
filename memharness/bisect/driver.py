"""`memharness bisect`, end to end: check the request, list the candidates, then step until the search ends.

Each step: the candidate's environment from the cache (built with uv when missing), its cell run through
`memharness run` in that environment, its verdict against the good end's run, all recorded in
`bisect.json` before the next step starts. SIGINT, SIGTERM and SIGHUP stop the bisect between two writes of
its state: a running cell is stopped through its `memharness run` (which keeps a resumable run folder) and
`memharness bisect --resume BISECT_DIR` goes on from there.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness import names
from memharness.bisect import render, search, steps
from memharness.bisect.envs import EnvCache, Target, default_root
from memharness.bisect.state import State
from memharness.bisect.versions import Index
from memharness.errors import MemharnessError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}

EXIT_FOUND = 0  # a first bad version (or commit) named
EXIT_NOT_FOUND = 1  # the bad end was judged good, or only skipped candidates are left


@dataclass
class Request:
    scenario: Path
    cell: str  # PIPELINE@SIZE
    good: str
    bad: str
    package: str | None = None
    git: Path | None = None
    repeats: int | None = None
    metric: str = "own"
    threshold: float = 0.10
    min_mib: float = 64.0
    alpha: float = 0.05
    pre: bool = False
    index: Index = field(default_factory=Index)
    unpin: tuple[str, ...] = ()
    output: Path | None = None
    env_cache: Path | None = None


class _Stops:
    """Stop signals: recorded; raised as `steps.Stopped` at once unless a cell is running (then polled)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Stops:
        for s in STOP_SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:  # nohup and background jobs keep ignoring
                self._saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is not None:
            return  # a second Ctrl-C must not cut the clean-up of the first short
        self.signum = signum
        if not self.deferring:
            raise steps.Stopped(signum)

    def requested(self) -> int | None:
        return self.signum


def _split_cell(cell: str) -> tuple[str, str]:
    pipeline, sep, size = cell.rpartition("@")
    if not sep or not pipeline or not size:
        raise MemharnessError(f"--cell {cell!r}: expected PIPELINE@SIZE, e.g. colbert@200")
    return pipeline, size


def _candidates(req: Request, say: Callable[[str], None]) -> tuple[str, list[dict[str, Any]], str]:
    """(mode, candidates, package)."""
    if req.git is not None:
        from memharness.bisect import gitrevs

        revs = gitrevs.commits(req.git, req.good, req.bad)
        package = req.package or gitrevs.package_name(req.git, revs[-1]["rev"])
        say(f"{len(revs)} commits of {req.git} from {revs[0]['label']} to {revs[-1]['label']} ({package})")
        return "git", revs, package
    if not req.package:
        raise MemharnessError("give --package NAME (a release bisect) or --git PATH (a commit bisect)")
    from memharness.bisect import versions

    listing = versions.list_versions(req.package, req.index)
    found = versions.between(listing, req.package, req.good, req.bad, pre=req.pre)
    say(f"{len(found)} releases of {req.package} from {found[0]} to {found[-1]} on {req.index.describe()}: "
        f"{', '.join(found)}")
    return "release", [{"label": v} for v in found], req.package


def start(req: Request, say: Callable[[str], None]) -> State:
    """Check the request (one-line errors), list the candidates and create the bisect folder."""
    from memharness.compare import METRICS

    if req.metric not in METRICS:
        raise MemharnessError(f"--metric {req.metric!r}: choose one of {', '.join(METRICS)}")
    pipeline, size = _split_cell(req.cell)
    scenario = req.scenario.resolve()
    derived = steps.derive(scenario, pipeline, size, req.repeats)
    if req.output is not None and req.output.exists() and any(req.output.iterdir()):
        raise MemharnessError(f"--output {req.output}: not empty; give a new folder, or --resume it")
    mode, candidates, package = _candidates(req, say)
    if req.output is not None:
        folder = req.output
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = Path(str(derived.get("output", "results"))) / "bisect" / f"{derived['name']}-{package}-{stamp}"
    data = {
        "mode": mode, "scenario": str(scenario), "scenario_dir": str(scenario.parent), "cwd": str(Path.cwd()),
        "cell": {"pipeline": pipeline, "size": derived["sizes"][0]}, "derived": derived,
        "package": package, "git": str(req.git.resolve()) if req.git else None, "good": req.good, "bad": req.bad,
        "candidates": candidates, "repeats": derived["repeats"], "metric": req.metric,
        "rule": {"threshold": req.threshold, "min_bytes": req.min_mib * 2**20, "alpha": req.alpha},
        "index": req.index.to_dict(), "unpin": list(req.unpin), "pre": req.pre,
        "base_python": steps.base_python(derived),
        "env_cache": str((req.env_cache or default_root()).absolute()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    state = State.create(folder.absolute(), data)
    say(f"bisect folder: {state.folder}")
    return state


class Bisect:
    def __init__(self, state: State, say: Callable[[str], None]) -> None:
        from memharness.bisect.base import describe
        from memharness.compare import Rule

        self.state, self.say, self.data = state, say, state.data
        self.rule = Rule(**self.data["rule"])
        self.base = describe(self.data["base_python"])
        self.cache = EnvCache(Path(self.data["env_cache"]), self.base, Index.from_dict(self.data["index"]),
                              set(self.data.get("unpin") or ()))
        started_on = self.data.setdefault("base_key", self.base.key)
        if started_on != self.base.key:
            say(f"warning: the base environment {self.base.python} changed since this bisect started (its "
                f"installed versions differ); the remaining steps run in layers on it as it is now")

    def target(self, index: int) -> Target:
        c = self.data["candidates"][index]
        if self.data["mode"] == "git":
            return Target(self.data["package"], c["label"], rev=c["rev"], repo=self.data["git"])
        return Target(self.data["package"], c["label"])

    def run(self) -> int:
        """Step until the search ends; print the table; the exit code."""
        n = len(self.data["candidates"])
        self.say(f"base environment: {self.base.python} (Python {self.base.version}); environments in "
                 f"{self.cache.root}")
        with _Stops() as stops:
            try:
                while (i := search.next_index(n, self.state.verdicts())) is not None:
                    self._step(i, stops)
            except steps.Stopped as exc:
                self.state.save()
                name = SIGNAL_NAMES.get(exc.signum, f"signal {exc.signum}")
                running = self.data.get("running") or {}
                where = f" at {self.data['package']} {running['label']}" if running else ""
                raise MemharnessError(f"interrupted by {name}{where}; continue with: memharness bisect --resume "
                                      f"{self.state.folder}", exit_code=128 + exc.signum) from None
        return self.finish()

    def finish(self) -> int:
        out = search.outcome(len(self.data["candidates"]), self.state.verdicts())
        text = render.markdown(self.data, out)
        self.data["result"] = {"kind": out.kind, "first_bad": out.first_bad, "candidates": list(out.candidates),
                               "last_good": out.last_good, "conclusion": render.conclusion(self.data, out),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.state.save()
        (self.state.folder / names.BISECT_TABLE).write_text(text + "\n", encoding="utf-8")
        self.say("")
        self.say(text)
        return EXIT_FOUND if out.kind == "found" else EXIT_NOT_FOUND

    def _step(self, i: int, stops: _Stops) -> None:
        cand = self.data["candidates"][i]
        k = len(self.state.steps) + 1
        label = cand["label"]
        self.say(f"[{k}] {self.data['package']} {render.name_of(cand)}"
                 + (" (good end: the reference)" if i == 0 else ""))
        env = self.cache.get(self.target(i))
        step: dict[str, Any] = {"index": i, "label": label, "env": env.to_dict(), "ran_cell": False,
                                "run_dir": None, "tree_peak": None, "row": {}, "reason": ""}
        if env.error:
            self.say(f"    environment: {env.error}")
            self._record(step, search.SKIP, env.error)
            return
        self.say(f"    environment {'reused' if env.reused else 'built'} in {env.seconds:.2f} s: {env.path}")
        self._run_and_judge(i, label, env.python or "", step, stops)

    def _run_and_judge(self, i: int, label: str, python: str, step: dict[str, Any], stops: _Stops) -> None:
        folder, name = self.state.folder, self.data["derived"]["name"]
        running = self.data.get("running")
        resume = steps.find_run(folder, label, name) if running and running.get("index") == i else None
        self.data["running"] = {"index": i, "label": label}
        self.state.save()
        scenario_file = steps.write_scenario(folder, label, self.data["derived"], python)
        log = folder / names.BISECT_LOGS / names.log_file(label)
        self.say(f"    running {self.data['cell']['pipeline']}@{self.data['cell']['size']} x{self.data['repeats']}"
                 + (f" (resuming {resume})" if resume else "") + f"; log: {log}")
        t0 = time.perf_counter()
        stops.deferring = True
        try:
            cell = steps.run_cell(scenario_file, log, resume, Path(self.data["scenario_dir"]), stops.requested)
        finally:
            stops.deferring = False
        if stops.requested() is not None:  # arrived as the cell ended: record nothing, resume redoes the step
            raise steps.Stopped(stops.requested() or signal.SIGINT)
        step["cell_seconds"] = round(time.perf_counter() - t0, 1)
        run_dir = steps.find_run(folder, label, name)
        step["run_dir"] = str(run_dir) if run_dir else None
        if cell.code == 2 or run_dir is None:
            self._record(step, search.SKIP, steps.preflight_reason(log))
            return
        if cell.code not in (0, 1):
            raise MemharnessError(f"memharness run of {label} exited {cell.code} (see {log}); fix that and "
                                  f"continue with: memharness bisect --resume {folder}", exit_code=cell.code)
        step["ran_cell"] = True
        good_run = Path(self.state.step_of(0)["run_dir"]) if i else run_dir
        judged = steps.judge(good_run, run_dir, self.data["metric"], self.rule)
        step.update(tree_peak=judged.tree_peak, row=judged.row)
        self._record(step, judged.verdict, judged.reason)

    def _record(self, step: dict[str, Any], verdict: str, reason: str) -> None:
        step["verdict"], step["reason"] = verdict, reason
        i = step["index"]
        if i == 0 and verdict != search.GOOD:
            self.state.add_step(step)
            raise MemharnessError(f"the good end {self.data['package']} {step['label']} cannot be the reference: "
                                  f"{verdict} ({reason or 'see its run folder'})")
        self.state.add_step(step)
        self.say(f"    {render.step_line(self.data, step)}  [{step.get('cell_seconds', 0):.0f} s]")


def run(req: Request | None, resume: Path | None, say: Callable[[str], None]) -> int:
    """A new bisect (`req`) or a resumed one; the exit code (MemharnessError for input problems)."""
    state: State | None = None
    try:
        if resume is not None:
            state = State.load(resume)
            say(f"resuming {state.folder}: {len(state.steps)} steps done")
        else:
            assert req is not None
            state = start(req, say)
        bisect = Bisect(state, say)
        if state.data.get("result") and state.data.get("running") is None:
            return bisect.finish()
        return bisect.run()
    except KeyboardInterrupt:  # before the stop handlers are in place (listing versions, reading the base)
        tail = f"; continue with: memharness bisect --resume {state.folder}" if state else ", nothing was run"
        raise MemharnessError(f"interrupted by Ctrl-C{tail}", exit_code=130) from None
    finally:
        if state is not None:
            state.release()
        sys.stdout.flush()
