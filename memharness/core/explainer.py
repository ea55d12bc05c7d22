"""The explainer inside a measured process: memray and torch's allocator history around one named call.

`MEMHARNESS_EXPLAIN` names a JSON file (written by `memharness explain` or by the runner for a scenario's
`explain:` cells). Children inherit the variable, so a spawned or exec'd worker that runs the call is
explained too: the session (`core/session.py`) asks `call_hooks` for the enter/exit hooks it installs on the
wrapped targets, in the cell process and in every instrumented child.

For the named target only, and only for its outermost invocation in a process (memray tracks one window
per process at a time), `on_enter` starts `memray.Tracker` (host) and torch's `_record_memory_history`
(GPU) and `on_exit` stops them, writing into the config's `out_dir`:

    host/<pid>-<n>.bin     memray capture of that call      gpu/<pid>-<n>.pickle   torch snapshot
    calls/<pid>-<n>.json   pid, seconds, gpu peak bytes, errors of the explainer itself
    entry/<pid>.bin        `at_entry`: memray from the process's start to the target's first entry

With `at_entry`, `start_at_entry` starts memray when the cell process starts (`runner/cell.py`, before the
pipeline's imports) and when an instrumented worker boots (through `call_hooks`); the target's first entry
in that process stops it, so what the capture still holds is what is alive at entry (allocated since the
start). A process that never runs the target is tracked until it ends; its capture is not used.

Only the standard library at import time: memray and torch are imported when the call starts.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memharness import names

ENV = "MEMHARNESS_EXPLAIN"
MAX_CALLS_DEFAULT = 4  # explained invocations per process; later ones run untouched
SKIP_PACKAGES = ("numpy", "torch")  # their frames do not name a site (memharness/explain/frames.py)


_ENTRY: dict[str, Any] = {}  # the at-entry window of this process: pid, tracker, readings at its start


def _memory() -> dict[str, int]:
    """VmRSS and RssAnon of this process, in bytes (empty where /proc cannot be read)."""
    from memharness.core.procmem import mem_status

    status = mem_status("self")
    return {} if status is None else {"rss": status[1], "anon": status[2]}


def start_at_entry() -> None:
    """Start memray's at-entry window in this process when the explainer's config asks for it (`at_entry`);
    a no-op otherwise and when this process already has one. Never raises: an error is kept for the call."""
    cfg = load_config() if os.environ.get(ENV) else None
    if not cfg or not cfg.get("at_entry") or not cfg.get("target") or _ENTRY.get("pid") == os.getpid():
        return
    _ENTRY.clear()
    _ENTRY.update(pid=os.getpid(), errors=[], t0=time.perf_counter())
    try:
        import memray

        path = Path(cfg["out_dir"]) / names.capture_file("entry", str(os.getpid()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        tracker = memray.Tracker(str(path), follow_fork=False)
        _ENTRY["start"] = _memory()
        tracker.__enter__()
        _ENTRY.update(tracker=tracker, capture=str(path))
    except Exception as exc:  # noqa: BLE001 - the explainer never breaks the measured process
        _ENTRY["errors"].append(f"at-entry memray: {type(exc).__name__}: {exc}")


def stop_at_entry() -> dict[str, Any] | None:
    """Stop this process's at-entry window (at the target's first entry); its facts, once per process."""
    if _ENTRY.get("pid") != os.getpid() or _ENTRY.get("stopped"):
        return None
    _ENTRY["stopped"] = True
    tracker = _ENTRY.pop("tracker", None)
    out: dict[str, Any] = {"errors": _ENTRY["errors"], "seconds": time.perf_counter() - _ENTRY["t0"]}
    if tracker is not None:
        try:
            tracker.__exit__(None, None, None)
            out.update(capture=_ENTRY["capture"], start=_ENTRY.get("start", {}), end=_memory())
        except Exception as exc:  # noqa: BLE001
            out["errors"].append(f"at-entry memray stop: {type(exc).__name__}: {exc}")
    return out


def frame_roots() -> dict[str, list[str]]:
    """Where this process's numpy and torch live and its standard library, for explain's frame rule: the
    analysis runs elsewhere (another interpreter, packages on PYTHONPATH outside site-packages)."""
    import sysconfig

    skip: set[str] = set()
    for name in SKIP_PACKAGES:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            skip.update(os.path.dirname(p) + "/" for p in (path, os.path.realpath(path)))
    paths = sysconfig.get_paths()
    stdlib = {paths[k].rstrip("/") + "/" for k in ("stdlib", "platstdlib") if paths.get(k)}
    return {"skip": sorted(skip), "stdlib": sorted(stdlib)}


def load_config() -> dict[str, Any] | None:
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"memharness explain: cannot read {path}: {exc}\n")
        return None


class Explainer:
    """Starts and stops the host/GPU recorders around invocations of one target in this process."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.target: str = cfg["target"]
        self.out_dir = Path(cfg["out_dir"])
        self.host = bool(cfg.get("host", True))
        self.gpu = bool(cfg.get("gpu", False))
        self.native = bool(cfg.get("native", False))
        self.max_calls = int(cfg.get("max_calls", MAX_CALLS_DEFAULT))
        self.gpu_max_entries = int(cfg.get("gpu_max_entries", 1_000_000))
        self._lock = threading.Lock()
        self._active: dict[str, Any] | None = None
        self._count = 0
        self._pid = os.getpid()

    def on_enter(self, label: str) -> dict[str, Any] | None:
        if label != self.target:
            return None
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's window is not ours
                self._pid, self._active, self._count = os.getpid(), None, 0
            if self._active is not None or self._count >= self.max_calls:
                return None
            self._count += 1
            name = f"{os.getpid()}-{self._count}"
            state: dict[str, Any] = {"name": name, "errors": [], "t0": time.perf_counter()}
            self._active = state
        entry = stop_at_entry()  # first: memray tracks one window per process at a time
        if entry is not None:
            state["at_entry"] = entry
        # GPU first: importing torch inside memray's window would show torch's import as sites
        if self.gpu:
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    state["gpu_start_allocated"] = torch.cuda.memory_allocated()
                    torch.cuda.memory._record_memory_history(enabled="all", stacks="python",
                                                             max_entries=self.gpu_max_entries)
                    state["gpu_on"] = True
                else:
                    state["errors"].append("gpu: torch.cuda is not available in this process")
            except Exception as exc:  # noqa: BLE001
                state["errors"].append(f"gpu: {type(exc).__name__}: {exc}")
        if self.host:
            try:
                import memray

                path = self.out_dir / names.capture_file("host", name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.unlink(missing_ok=True)
                tracker = memray.Tracker(str(path), native_traces=self.native, follow_fork=False)
                tracker.__enter__()
                state["memray"] = tracker
            except Exception as exc:  # noqa: BLE001 - the explainer never breaks the measured call
                state["errors"].append(f"memray: {type(exc).__name__}: {exc}")
        state["t1"] = time.perf_counter()
        return state

    def on_exit(self, state: dict[str, Any] | None, error: str | None) -> None:
        if state is None:
            return
        t_end = time.perf_counter()
        tracker = state.pop("memray", None)
        if tracker is not None:
            try:
                tracker.__exit__(None, None, None)
            except Exception as exc:  # noqa: BLE001
                state["errors"].append(f"memray stop: {type(exc).__name__}: {exc}")
        meta: dict[str, Any] = {"name": state["name"], "pid": os.getpid(), "target": self.target,
                                "seconds": t_end - state["t1"], "start_overhead_s": state["t1"] - state["t0"],
                                "host": self.host and not any(e.startswith("memray") for e in state["errors"]),
                                "native": self.native, "call_error": error}
        if "at_entry" in state:
            meta["at_entry"] = state["at_entry"]
        if state.get("gpu_on"):
            try:
                import pickle

                import torch

                torch.cuda.synchronize()
                snapshot = torch.cuda.memory._snapshot()
                torch.cuda.memory._record_memory_history(enabled=None)
                path = self.out_dir / names.capture_file("gpu", state["name"])
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as fh:
                    pickle.dump(snapshot, fh)
                meta["gpu"] = {"snapshot": str(path), "start_allocated": state["gpu_start_allocated"],
                               "max_allocated": torch.cuda.max_memory_allocated()}
            except Exception as exc:  # noqa: BLE001
                state["errors"].append(f"gpu snapshot: {type(exc).__name__}: {exc}")
        try:
            meta["frame_roots"] = frame_roots()
        except Exception as exc:  # noqa: BLE001
            state["errors"].append(f"frame roots: {type(exc).__name__}: {exc}")
        meta["errors"] = state["errors"]
        path = self.out_dir / names.capture_file("calls", state["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, path)
        with self._lock:
            self._active = None


def call_hooks(enter: Callable[[str], Any], exit_: Callable[[Any, Any], None]) -> tuple[Callable, Callable]:
    """The session's wrapper hooks, with the explainer around the named target when MEMHARNESS_EXPLAIN is
    set; otherwise `enter` and `exit_` unchanged. The harness records first and last, so its own events
    bracket the explainer's window."""
    cfg = load_config()
    if cfg is None or not cfg.get("target"):
        return enter, exit_
    start_at_entry()  # a worker booting (the cell process started its window at its first line)
    explainer = Explainer(cfg)

    def enter_explained(label: str) -> Any:
        token = enter(label)
        try:
            return (token, explainer.on_enter(label))
        except Exception:  # noqa: BLE001
            return (token, None)

    def exit_explained(pair: Any, error: Any) -> None:
        token, state = pair
        try:
            explainer.on_exit(state, error)
        finally:
            exit_(token, error)

    return enter_explained, exit_explained
