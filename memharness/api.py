"""`memharness.profile(...)`: measure code in this process the way a cell of `memharness run` does (this module
measures; what a finished block gives back is `api_results.ProfileResults`, which `Profile` inherits).

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
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from memharness import names
from memharness.api_results import ProfileError, ProfileResults, ProfileTable, environment_fingerprint
from memharness.core import tracker as tracker_mod
from memharness.core.atomic import read_json, write_json
from memharness.core.clock import now_ns

__all__ = ["Profile", "ProfileError", "ProfileTable", "active_profile", "environment_fingerprint", "profile",
           "target_list"]

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_lock = threading.Lock()
_current: Profile | None = None


def active_profile() -> Profile | None:
    """The profile block open in this process, if any."""
    return _current


def _interval(value: float | str | None) -> float | None:
    """The sampler's interval in seconds; None (or "off") runs no sampler. Zero is refused: it reads as
    "sample as often as possible" but used to turn the sampler off without a word."""
    if value is None or value is False or value == "off":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"sample_interval must be a duration such as '50ms' or 0.05, or None for no sampler; "
                         f"got {value!r}")
    from memharness.scenario.units import parse_duration

    seconds = parse_duration(value)
    if not 0.001 <= seconds <= 60:
        raise ValueError(f"sample_interval must be between 1ms and 60s (None runs no sampler), got {value!r}")
    return seconds


def target_list(value: Any, what: str = "targets") -> list[str]:
    """`value` as a list of dotted paths (one string is a list of one); a ValueError naming `what` and the
    item otherwise, so `profile(targets=[None])` is one line, not a traceback from deep in the resolver."""
    if isinstance(value, str):
        value = [value]
    elif value is None or isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        raise ValueError(f"{what} must be a dotted path or a list of dotted paths (e.g. ['pkg.mod.func']), "
                         f"got {value!r}")
    out = list(value)
    for i, item in enumerate(out):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{what}[{i}] must be a dotted path string such as 'pkg.mod.func', got {item!r}")
    return out


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


class Profile(ProfileResults):
    """One measured block (or, used as a decorator, each call of a function; the object then holds the
    latest call's figures). Create it with `memharness.profile(...)`."""

    def __init__(self, targets: Iterable[str] | str = (), *, sample_interval: float | str | None = "50ms",
                 follow_children: bool = True, optional_targets: Iterable[str] = (), label: str = "profile",
                 size: int | str = 1, name: str = "profile", gpu: str = "auto") -> None:
        from memharness.scenario.units import parse_size

        self.targets = target_list(targets)
        self.optional_targets = target_list(optional_targets, "optional_targets")
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

