"""Line-by-line memory tables of chosen functions, taken with memory_profiler itself.

`LineProfiles(["pkg.mod.Class.meth", ...])` resolves dotted paths, patches each function where it lives
(module or class attribute; classmethod/staticmethod kept) with a wrapper that switches memory_profiler's
`LineProfiler` on around the call, and `write(out_dir)` writes memory_profiler's own text format
(Line #, Mem usage, Increment, Occurrences, Line Contents) to `out_dir/<path>.txt`. `uninstall()` puts
the originals back.

Runs inside measured cell processes: only the standard library, memory_profiler and memharness.core.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import write_text
from memharness.core.targets import Patch, TargetError, file_name, resolve, undo


def _raw_attr(owner: Any, name: str) -> tuple[Any, bool]:
    """The attribute as stored (staticmethod/classmethod objects, not bound functions), and whether
    `owner` holds it itself."""
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in klass.__dict__:
                return klass.__dict__[name], klass is owner
        raise AttributeError(name)
    return getattr(owner, name), True


def _profiled(fn: Any, profiler: Any) -> Any:
    """A wrapper that turns `profiler` on for the duration of each call (as memory_profiler's own
    `LineProfiler.wrap_function` does), keeping the wrapped function's name and signature."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        profiler.enable_by_count()
        try:
            return fn(*args, **kwargs)
        finally:
            profiler.disable_by_count()

    return wrapper


class LineProfiles:
    """memory_profiler line tables for a list of dotted paths (one `LineProfiler` per path)."""

    def __init__(self, targets: list[str], backend: str = "psutil", install: bool = True) -> None:
        self.targets = list(dict.fromkeys(targets))
        self.backend = backend
        self.patched: dict[str, Patch] = {}
        self.profilers: dict[str, Any] = {}  # path -> memory_profiler.LineProfiler; kept after uninstall
        self.errors: dict[str, str] = {}  # path -> why it could not be profiled
        if install:
            self.install()

    def install(self) -> LineProfiles:
        """Patch every target that resolves; record the others in `errors` (never raises for a target)."""
        from memory_profiler import LineProfiler

        for path in self.targets:
            if path in self.patched:
                continue
            self.errors.pop(path, None)
            try:
                self._install_one(path, self.profilers.get(path) or LineProfiler(backend=self.backend))
            except (TargetError, AttributeError, ImportError, TypeError) as exc:
                self.errors[path] = str(exc)
        return self

    def _install_one(self, path: str, profiler: Any) -> None:
        target = resolve(path)
        owner: Any = importlib.import_module(target.module)
        for name in target.attrs[:-1]:
            owner = getattr(owner, name)
        name = target.attrs[-1]
        raw, had_own = _raw_attr(owner, name)
        if isinstance(raw, (staticmethod, classmethod)):
            fn = raw.__func__
            new: Any = type(raw)(_profiled(fn, profiler))
        else:
            fn = raw
            new = _profiled(fn, profiler)
        # Trace the innermost function's code, below any wrapper already in place (e.g. the call tracker).
        code_fn = inspect.unwrap(fn)
        if not hasattr(code_fn, "__code__"):
            raise TypeError(f"target {path!r}: {type(code_fn).__name__} has no Python code to profile")
        profiler.add_function(code_fn)
        setattr(owner, name, new)
        self.patched[path] = Patch(owner, name, raw, had_own)
        self.profilers[path] = profiler

    def uninstall(self) -> None:
        """Put every original attribute back (in reverse order of patching)."""
        undo(list(self.patched.values()))
        self.patched.clear()

    def __enter__(self) -> LineProfiles:
        return self.install()  # a no-op for targets already installed

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()

    def write(self, out_dir: Path) -> list[Path]:
        """Write one memory_profiler table per target to `out_dir/<path>.txt`; return the files written.

        A target that never ran gets a one-line note instead of a table; one that did not resolve gets
        its error.
        """
        from memory_profiler import show_results

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in self.targets:
            file = out_dir / names.lineprof_file(file_name(path))
            fh = io.StringIO()
            profiler = self.profilers.get(path)
            if profiler is None:
                fh.write(f"# {path}: not profiled: {self.errors.get(path, 'not installed')}\n")
            elif not any(True for _ in profiler.code_map.items()):
                fh.write(f"# {path}: not called while profiled\n")
            else:
                show_results(profiler, stream=fh)
            write_text(file, fh.getvalue())
            written.append(file)
        return written
