"""A measurement session in the current process: wrap targets, record calls, follow child processes,
optionally run the out-of-process timeline sampler.

    with Session(out_dir, ["pkg.mod.Class.method"]) as s:
        run_the_pipeline()

Children: the session prepends `memharness/boot` to PYTHONPATH and points MEMHARNESS_BOOT at a JSON file.
A Python child started with spawn or forkserver (or any `python ...` subprocess) imports the boot
`sitecustomize`, which creates its own tracker writing `calls/<pid>.jsonl` into the same folder and wraps
the same targets as soon as their modules are imported. A forked child inherits the wrapped functions and
the tracker re-opens itself for the new pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core import targets as targets_mod
from memharness.core import tracker as tracker_mod
from memharness.core.atomic import write_json
from memharness.core.targets import Patches, ResolvedTarget, TargetError

BOOT_DIR = Path(__file__).resolve().parent.parent / "boot"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
BOOT_ENV = "MEMHARNESS_BOOT"


def _call_hooks():
    """The enter/exit hooks wrapped targets call. Explain hook (issue 17, memharness/core/explainer.py): when
    MEMHARNESS_EXPLAIN is set it adds memray / torch's allocator history around one named target."""
    from memharness.core.explainer import call_hooks

    return call_hooks(tracker_mod.enter, tracker_mod.exit_)


def package_path_dir() -> Path:
    """A folder holding only `memharness` (a symlink), to put on another interpreter's PYTHONPATH.

    Adding the folder memharness is installed in could be a whole site-packages, which would leak this
    environment's packages (torch, ...) into the other interpreter.
    """
    import hashlib
    import tempfile

    digest = hashlib.sha1(str(PACKAGE_DIR).encode()).hexdigest()[:10]
    root = Path(tempfile.gettempdir()) / f"memharness-path-{os.getuid()}-{digest}"
    link = root / "memharness"
    if not link.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".link-{os.getpid()}"
        try:
            tmp.symlink_to(PACKAGE_DIR, target_is_directory=True)
            os.replace(tmp, link)
        except FileExistsError:
            pass
    return root


def interpreter_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a pipeline interpreter: memharness importable even from another virtualenv."""
    env = dict(os.environ)
    env.update(extra or {})
    parts = [str(package_path_dir())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.pop("MEMHARNESS_BOOT", None)
    return env


def resolve_all(paths: list[str], optional: set[str] | None = None) -> tuple[list[ResolvedTarget], list[dict]]:
    """Resolve every path; a missing optional path is reported, a missing required one raises."""
    optional = optional or set()
    resolved: list[ResolvedTarget] = []
    missing: list[dict[str, Any]] = []
    errors: list[TargetError] = []
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        try:
            resolved.append(targets_mod.resolve(path))
        except TargetError as exc:
            if path in optional:
                missing.append({"path": path, "reason": exc.reason, "default": True})
            else:
                errors.append(exc)
    if errors:
        raise TargetError(errors[0].path, "; ".join(str(e) for e in errors) if len(errors) > 1 else errors[0].reason)
    return resolved, missing


def child_env(boot_file: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that makes Python children instrument themselves."""
    env = dict(os.environ if base is None else base)
    parts = [str(BOOT_DIR), str(package_path_dir())]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env[BOOT_ENV] = str(boot_file)
    return env


def sampler_env() -> dict[str, str]:
    """Environment for the sampler: never instrumented itself."""
    env = {k: v for k, v in os.environ.items() if k != BOOT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(package_path_dir())] + (
        [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(BOOT_DIR)]))
    return env


def start_sampler(root: int, out_dir: Path, interval: float, max_rss: int | None = None,
                  python: str | None = None, env: dict[str, str] | None = None,
                  restart: bool = False) -> subprocess.Popen:
    """Start the timeline sampler on a process tree; its own messages go to OUT_DIR/sampler.log. `env`: extra
    environment (the supervisor's marks of the cell); `restart`: the tree's sampler died, this one takes over
    its files (the timeline goes on, processes.json keeps the processes seen so far)."""
    cmd = [python or sys.executable, "-m", "memharness.core.sampler", "--root", str(root), "--out", str(out_dir),
           "--interval", str(interval)]
    if max_rss is not None:
        cmd += ["--max-rss", str(max_rss)]
    if restart:
        cmd += ["--restart"]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / names.TIMELINE_HEADER).unlink(missing_ok=True)
    with open(Path(out_dir) / names.SAMPLER_LOG, "ab") as log:
        proc = subprocess.Popen(cmd, env={**sampler_env(), **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (Path(out_dir) / names.TIMELINE_HEADER).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the sampler writes its header once it samples
    return proc


def stop_sampler(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Session:
    def __init__(
        self,
        out_dir: Path,
        targets: list[str],
        optional_targets: list[str] | None = None,
        sample_interval: float | None = 0.05,
        follow_children: bool = True,
        probe: tracker_mod.CallProbe | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.paths = list(dict.fromkeys(list(targets) + list(optional_targets or [])))
        self.optional = set(optional_targets or []) - set(targets)
        self.sample_interval = sample_interval
        self.follow_children = follow_children
        self.probe = probe
        self.patches = Patches()
        self.resolved: list[ResolvedTarget] = []
        self.missing: list[dict] = []
        self.tracker: tracker_mod.Tracker | None = None
        self._sampler: subprocess.Popen | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> Session:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resolved, self.missing = resolve_all(self.paths, self.optional)
        write_json(self.out_dir / names.TARGETS, {
            "resolved": [{**t.to_dict(), "source_sha256": targets_mod.source_hash(t)} for t in self.resolved],
            "missing": self.missing})
        self.tracker = tracker_mod.Tracker(self.out_dir / names.CALLS, probe=self.probe)
        tracker_mod.set_active(self.tracker)
        enter, exit_ = _call_hooks()
        for t in self.resolved:
            targets_mod.install_one(t, enter, exit_, self.patches)
        if self.follow_children:
            boot = self.out_dir / names.BOOT
            write_json(boot, {"calls_dir": str(self.out_dir / names.CALLS),
                              "targets": [t.to_dict() for t in self.resolved],
                              "gpu": self.probe is not None})
            env = child_env(boot)
            for key in ("PYTHONPATH", BOOT_ENV):
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = env[key]
        if self.sample_interval:
            self._sampler = start_sampler(os.getpid(), self.out_dir, self.sample_interval)
        return self

    def stop(self) -> None:
        if self._sampler is not None:
            stop_sampler(self._sampler)
            self._sampler = None
        self.patches.restore()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self.tracker is not None:
            if tracker_mod.active() is self.tracker:
                tracker_mod.set_active(None)
            self.tracker.close()

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def boot_child() -> None:
    """Called by the boot sitecustomize in a child Python process."""
    import json

    path = os.environ.get(BOOT_ENV)
    if not path or tracker_mod.active() is not None:
        return
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    try:
        with open("/proc/self/cmdline", "rb") as fh:
            argv = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        argv = " ".join(sys.argv)
    if "--multiprocessing-fork" in argv:
        method = "spawn"
    elif "multiprocessing.forkserver" in argv:
        method = "forkserver"
    else:
        method = "exec"
    if "multiprocessing.resource_tracker" in argv:
        return  # multiprocessing's helper process: nothing to measure
    probe = None
    if cfg.get("gpu"):
        try:
            from memharness.core.gpuprobe import make_probe

            probe = make_probe()
        except Exception:  # noqa: BLE001
            probe = None
    tracker = tracker_mod.Tracker(Path(cfg["calls_dir"]), start_method=method, probe=probe)
    tracker_mod.set_active(tracker)
    targets = [ResolvedTarget.from_dict(d) for d in cfg.get("targets", [])]

    def on_error(t: ResolvedTarget, exc: BaseException) -> None:
        tracker.log.write({"ev": "W", "target": t.path, "error": f"{type(exc).__name__}: {exc}"})

    enter, exit_ = _call_hooks()
    targets_mod.install_when_imported(targets, enter, exit_, Patches(), on_error)
