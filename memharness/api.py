"""`memharness.profile(...)`: measure code in this process the way a cell of `memharness run` does.

    with memharness.profile(targets=["colbert.indexing.collection_indexer.CollectionIndexer.train"]) as prof:
        indexer.index(...)
    print(prof.table().to_markdown())
    prof.save("results/my-run")          # then `memharness report results/my-run`

The block runs a `core.session.Session` (wrap the targets, record every call with its exact peak, follow
spawned/forked children, sample the process tree from a separate process, restore every original at the
end) writing into a run folder of its own (a temporary one until `save()` copies it). Every figure is read
back from that folder through the same code the report and `compare` use, so a number printed here is the
number `memharness report` prints for the saved folder.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from memharness.core import tracker as tracker_mod
from memharness.core.atomic import read_json, write_json
from memharness.core.clock import now_ns
from memharness.core.records import CallRecord, read_calls, read_timeline, tree_rss_series
from memharness.errors import MemharnessError
from memharness.results import names

MiB = float(1 << 20)
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_lock = threading.Lock()
_current: Profile | None = None
_fingerprint_cache: dict[str, Any] | None = None


class ProfileError(MemharnessError, RuntimeError):
    """Misuse of `memharness.profile` (nested blocks, results asked before the block ended, ...)."""


def active_profile() -> Profile | None:
    """The profile block open in this process, if any."""
    return _current


def _interval(value: float | str | None) -> float | None:
    if value in (None, 0, False, "off", "0"):
        return None
    from memharness.scenario.units import parse_duration

    seconds = parse_duration(value)
    if not 0.001 <= seconds <= 60:
        raise ValueError(f"sample_interval must be between 1ms and 60s, got {value!r}")
    return seconds


def _probe(gpu: str):
    """Per-call GPU readings: 'on', 'off', or 'auto' (only when torch is already imported and sees CUDA,
    so profiling never imports torch itself)."""
    if gpu not in ("auto", "on", "off"):
        raise ValueError(f"gpu must be 'auto', 'on' or 'off', got {gpu!r}")
    if gpu == "off":
        return None
    if gpu == "auto":
        torch = sys.modules.get("torch")
        try:
            if torch is None or not torch.cuda.is_available():
                return None
        except Exception:  # noqa: BLE001 - a broken CUDA setup means no GPU readings
            return None
    from memharness.core.gpuprobe import make_probe

    return make_probe()


def environment_fingerprint() -> dict[str, Any]:
    """`runner.fingerprint.collect()` taken in a separate interpreter (it imports torch to read its version;
    doing that here would add torch to the measured process). Taken once per process."""
    global _fingerprint_cache
    if _fingerprint_cache is None:
        from memharness.core.session import sampler_env

        code = "import json; from memharness.runner.fingerprint import collect; print(json.dumps(collect()))"
        try:
            out = subprocess.run([sys.executable, "-c", code], env=sampler_env(), capture_output=True, text=True,
                                 timeout=300, check=True).stdout
            _fingerprint_cache = json.loads(out.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
            _fingerprint_cache = {"error": f"fingerprint not taken: {type(exc).__name__}: {exc}"[:500]}
    return dict(_fingerprint_cache)


class ProfileTable(list):
    """The per-function figures of a profile: one dict per row (the process tree first, then the wrapped
    functions in the order they were first called). Memory in MiB (2^20 bytes), time in seconds."""

    COLUMNS = [("function", "Function"), ("start_mib", "Starting Memory"), ("increment_mib", "Memory Increment"),
               ("final_mib", "Final Memory"), ("peak_mib", "Peak Memory"), ("peak_over_start_mib", "Peak over Start"),
               ("gpu_peak_mib", "GPU Peak (allocated)"), ("duration_s", "Duration (s)"), ("calls", "Calls")]

    def to_markdown(self) -> str:
        keys = [(k, title) for k, title in self.COLUMNS if any(k in row for row in self)]
        lines = ["| " + " | ".join(title for _, title in keys) + " |",
                 "|" + "|".join("---" if k == "function" else "---:" for k, _ in keys) + "|"]
        for row in self:
            cells = []
            for k, _ in keys:
                v = row.get(k)
                if v is None:
                    cells.append("–")
                elif k == "function":
                    cells.append(str(v).replace("|", "\\|"))
                elif k == "calls":
                    cells.append(f"{int(v):,}")
                elif k == "duration_s":
                    cells.append(f"{v:.2f}")
                else:
                    cells.append(f"{v:.1f} MiB")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()


class Profile:
    """One measured block (or, used as a decorator, each call of a function; the object then holds the
    latest call's figures). Create it with `memharness.profile(...)`."""

    def __init__(self, targets: Iterable[str] | str = (), *, sample_interval: float | str | None = "50ms",
                 follow_children: bool = True, optional_targets: Iterable[str] = (), label: str = "profile",
                 size: int | str = 1, name: str = "profile", gpu: str = "auto") -> None:
        from memharness.scenario.units import parse_size

        self.targets = [targets] if isinstance(targets, str) else list(targets)
        self.optional_targets = [optional_targets] if isinstance(optional_targets, str) else list(optional_targets)
        self.sample_interval = _interval(sample_interval)
        self.follow_children = follow_children
        for what, value in (("label", label), ("name", name)):
            if not isinstance(value, str) or not _LABEL.match(value):
                raise ValueError(f"{what} {value!r}: use letters, digits, '_', '.', '-' (it names folders)")
        self.label, self.name = label, name
        self.size = parse_size(size)
        if gpu not in ("auto", "on", "off"):
            raise ValueError(f"gpu must be 'auto', 'on' or 'off', got {gpu!r}")
        self.gpu = gpu
        self.run_dir: Path | None = None
        self.cell_dir: Path | None = None
        self.status: str | None = None  # None before the block, "running", "done" or "failed"
        self.error: str | None = None
        self._session = None
        self._block: tracker_mod.Frame | None = None
        self._t0 = self._wall0 = 0
        self._cleanup: weakref.finalize | None = None

    # -- the block -------------------------------------------------------------------------------------
    def start(self) -> Profile:
        global _current
        from memharness.core.session import Session
        from memharness.runner.matrix import cell_id

        with _lock:
            if _current is not None:
                raise ProfileError("memharness.profile: a profile block is already open in this process; nested "
                                   "profile blocks are not supported (add the inner targets to the outer block)")
            if tracker_mod.active() is not None:
                raise ProfileError("memharness.profile: this process is already measured by memharness (a cell "
                                   "of `memharness run` or a profiled block's child); profile the parent instead")
            _current = self
        try:
            if self._cleanup is not None:
                self._cleanup()  # a decorated function called again: the previous call's folder goes
            self.run_dir = Path(tempfile.mkdtemp(prefix=f"memharness-{self.name}-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.run_dir), True)
            self.cell_dir = self.run_dir / names.CELLS / cell_id(self.label, self.size, 0)
            self.status, self.error = "running", None
            self._session = Session(self.cell_dir, self.targets, optional_targets=self.optional_targets,
                                    sample_interval=self.sample_interval, follow_children=self.follow_children,
                                    probe=_probe(self.gpu))
            self._session.start()
            self._t0, self._wall0 = now_ns(), time.time_ns()
            write_json(self.cell_dir / names.STATUS, {"status": "running", "cause": None, "message": "",
                                                       "t_start_ns": self._t0, "wall_start_ns": self._wall0})
            self._block = tracker_mod.enter(f"phase:{self.label}")
        except BaseException:
            if self._session is not None:
                self._session.stop()
            self.status = None
            with _lock:
                _current = None
            raise
        return self

    def stop(self, error: BaseException | None = None) -> None:
        global _current
        if self.status != "running":
            return
        try:
            message = f"{type(error).__name__}: {error}"[:2000] if error is not None else ""
            tracker_mod.exit_(self._block, message[:500] or None)
            self._block = None
            self._session.stop()
            self._session = None
            t1 = now_ns()
            self.status = "failed" if error is not None else "done"
            self.error = message or None
            header = read_json(self.cell_dir / names.TIMELINE_HEADER, {}) or {}
            write_json(self.cell_dir / names.STATUS, {
                "status": self.status, "cause": "exception" if error is not None else None, "message": message,
                "exit_code": None, "t_start_ns": self._t0, "t_end_ns": t1, "wall_start_ns": self._wall0,
                "wall_seconds": (t1 - self._t0) / 1e9, "peak_tree_rss": int(header.get("peak_tree_rss", 0)),
                "size": self.size, "pipeline": self.label,
            })
            self._write_manifest(self.run_dir)
        finally:
            with _lock:
                _current = None

    def wait_for_sample(self, timeout: float = 60.0) -> None:
        """Block until the timeline sampler has recorded the process tree after this call, so a state held
        now (a child's allocation, say) is on the timeline; a test's event to wait on instead of a sleep."""
        import numpy as np

        from memharness.core.records import KIND_TREE_RSS, TIMELINE_ROW_BYTES, timeline_dtype

        if self.status != "running" or self.sample_interval is None:
            raise ProfileError("wait_for_sample() needs a running block with a sampler")
        since = now_ns()
        path = self.cell_dir / names.TIMELINE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            size = path.stat().st_size if path.exists() else 0
            n = min(size // TIMELINE_ROW_BYTES, 256)
            if n:
                with open(path, "rb") as fh:
                    fh.seek((size // TIMELINE_ROW_BYTES - n) * TIMELINE_ROW_BYTES)
                    rows = np.frombuffer(fh.read(n * TIMELINE_ROW_BYTES), dtype=timeline_dtype())
                if np.any((rows["kind"] == KIND_TREE_RSS) & (rows["t_ns"] > since)):
                    return
            time.sleep(min(self.sample_interval / 4, 0.01))
        raise TimeoutError(f"the sampler recorded nothing within {timeout:g} s (see {self.cell_dir}/sampler.log)")

    def __enter__(self) -> Profile:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.stop(exc)

    def __call__(self, fn: Callable) -> Callable:
        """Decorator form: every call of `fn` is profiled afresh, and recorded as a call of `fn` itself."""
        label = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', getattr(fn, '__name__', 'fn'))}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:
                frame = tracker_mod.enter(label)
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    tracker_mod.exit_(frame, f"{type(exc).__name__}: {exc}"[:500])
                    raise
                tracker_mod.exit_(frame, None)
                return result

        wrapper.profile = self  # type: ignore[attr-defined]
        return wrapper

    def _write_manifest(self, run_dir: Path) -> None:
        import yaml

        from memharness.results.writer import Manifest
        from memharness.runner.matrix import CellPlan, cell_id

        spec = {"name": self.name, "source": "memharness.profile",
                "pipelines": [{"name": self.label, "kind": "api", "targets": self.targets}],
                "sizes": [self.size], "repeats": 1, "targets": self.targets,
                "optional_targets": self.optional_targets, "sample_interval": self.sample_interval,
                "follow_children": self.follow_children}
        plan = CellPlan(id=cell_id(self.label, self.size, 0), pipeline=self.label, kind="api", size=self.size,
                        repeat=0, options={}, model=None, targets=tuple(self.targets))
        text = "# recorded by memharness.profile (Python API); not a scenario file\n"
        text += yaml.safe_dump(spec, sort_keys=False)
        manifest = Manifest.create(run_dir, self.name, spec, text, [plan])
        manifest.set_status(plan.id, self.status or "failed", "exception" if self.status == "failed" else None)

    # -- results ---------------------------------------------------------------------------------------
    def _need_done(self, what: str) -> None:
        if self.status in (None, "running"):
            when = "before the block started" if self.status is None else "while the block is running"
            raise ProfileError(f"memharness.profile: {what} is available after the block ends, not {when}")

    @property
    def calls(self) -> list[CallRecord]:
        """Every recorded call of a wrapped function (all processes), in start order."""
        if self.cell_dir is None:
            return []
        return [r for r in read_calls(self.cell_dir) if not r.target.startswith("phase:")]

    def figures(self) -> dict[str, dict[str, float]]:
        """target -> figures in bytes / seconds (start, increment, final, peak, peak_over_start, duration_s,
        calls, GPU figures when recorded), as `memharness report` computes them; `"(process tree)"` holds the
        sampled whole-tree figures."""
        self._need_done("figures()")
        from memharness.results.figures import cell_figures

        return cell_figures(self.cell_dir)

    def block_peak(self) -> int | None:
        """This process's exact peak RSS in bytes over the whole block (its kernel high-water mark, folded
        as for any wrapped call); the sampled tree peak can miss a spike shorter than the interval."""
        self._need_done("block_peak()")
        for rec in read_calls(self.cell_dir):
            if rec.target == f"phase:{self.label}" and rec.pid == os.getpid() and rec.peak_rss is not None:
                return rec.peak_rss
        return None

    def targets_order(self) -> list[str]:
        order: list[str] = []
        for rec in self.calls:
            if rec.target not in order:
                order.append(rec.target)
        return order

    def table(self) -> ProfileTable:
        """The seed-format figures as a list of row dicts (MiB, seconds), with `.to_markdown()`."""
        from memharness.results.figures import TREE

        figs = self.figures()
        names = ([TREE] if TREE in figs else []) + [t for t in self.targets_order() if t in figs]
        rows = ProfileTable()
        for name in names:
            f = figs[name]
            row: dict[str, Any] = {"function": name}
            for metric in ("start", "increment", "final", "peak", "peak_over_start", "gpu_peak"):
                if metric in f:
                    row[f"{metric}_mib"] = f[metric] / MiB
            row["duration_s"] = f.get("duration_s")
            if name != TREE:
                row["calls"] = int(f.get("calls", 0))
            rows.append(row)
        return rows

    def _match(self, target: str, figs: dict[str, dict[str, float]]) -> str:
        if target in figs:
            return target
        short = target.lstrip(".")
        hits = [t for t in figs if t.endswith("." + short) or t == short]
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(sorted(figs)) or "none"
        if hits:
            raise KeyError(f"{target!r} matches several recorded functions: {', '.join(hits)}")
        raise KeyError(f"{target!r} was not recorded (never called, or not a target); recorded: {known}")

    def peak(self, target: str | None = None, *, over_start: bool = False) -> int:
        """Peak RSS in bytes of a wrapped function (highest over its calls; a unique suffix such as
        "CollectionIndexer.train" is enough), or of the whole process tree when no target is given.
        `over_start=True`: the rise above the RSS at the call's entry instead."""
        from memharness.results.figures import TREE

        figs = self.figures()
        name = TREE if target is None else self._match(target, figs)
        if name not in figs:
            raise KeyError("no process-tree figures: the profile ran without a sampler (sample_interval=None)")
        return int(figs[name]["peak_over_start" if over_start else "peak"])

    def timeline(self):
        """The sampled whole-tree RSS as a numpy structured array with fields `t_s` (seconds from the
        block's start) and `rss` (bytes)."""
        import numpy as np

        self._need_done("timeline()")
        t, v = tree_rss_series(read_timeline(self.cell_dir))
        out = np.zeros(len(t), dtype=[("t_s", "f8"), ("rss", "i8")])
        out["t_s"] = (t - self._t0) / 1e9
        out["rss"] = v
        return out

    def plot(self, path: str | Path | None = None):
        """The timeline chart of `memharness report` (RSS lines, peak marked, calls as spans) as a
        matplotlib Figure; also written as a PNG when `path` is given."""
        self._need_done("plot()")
        from memharness.report import png
        from memharness.report.series import cell_series, target_order
        from memharness.report.timeline_chart import DPI, target_colors, timeline_figure
        from memharness.results.run import Run

        run = Run.open(self.run_dir)
        cell = run.cells[0]
        fig, _ = timeline_figure(cell, cell_series(cell), target_colors(target_order(run)))
        if path is not None:
            png.save(fig, Path(path), DPI)
        return fig

    def save(self, run_dir: str | Path, report: bool = False, fingerprint: bool = True) -> Path:
        """Copy the recorded run folder to `run_dir` (which must not exist or be empty), with the
        environment fingerprint (taken once per process, in a separate interpreter: seconds where torch is
        installed; `fingerprint=False` leaves it out); `memharness report RUN_DIR` renders the folder,
        `report=True` renders it now."""
        self._need_done("save()")
        dest = Path(run_dir)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise FileExistsError(f"{dest} exists and is not an empty folder; save() never overwrites a run")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        shutil.copytree(self.run_dir, dest, ignore=shutil.ignore_patterns(names.BOOT))
        from memharness.results.writer import Manifest

        manifest = Manifest.load(dest)
        manifest.data["run_id"] = dest.name
        manifest.save()
        for cell in manifest.data["cells"] if fingerprint else []:
            write_json(dest / cell["dir"] / names.FINGERPRINT, environment_fingerprint())
        if report:
            from memharness.report import build

            build(dest)
        return dest

    def __repr__(self) -> str:
        return f"<memharness.Profile {self.label} targets={len(self.targets)} status={self.status}>"


def profile(targets: Iterable[str] | str | Callable = (), **options: Any) -> Any:
    """`with memharness.profile(targets=[...]) as prof:` or `@memharness.profile(targets=[...])`.

    Options: `sample_interval` ("50ms"; None for no timeline), `follow_children` (True), `optional_targets`
    (missing ones are only reported), `label` and `size` (the table's "Indexing Method" and "Document
    Size"), `name` (the run's scenario name), `gpu` ("auto" | "on" | "off").
    """
    if callable(targets) and not isinstance(targets, str):  # bare `@memharness.profile`
        return Profile(**options)(targets)
    return Profile(targets, **options)

