"""Resolve dotted paths to functions and wrap them in place, without editing library source.

A path names a module-level function (`pkg.mod.func`), a method, classmethod or staticmethod
(`pkg.mod.Class.meth`, nested classes too), or a private name-mangled method written as it appears in
source (`pkg.mod.Class.__helper`, stored by Python as `Class._Class__helper`).

Wrapping patches the attribute where the path points and, for module-level functions, every attribute
of every imported module that holds the same function object (`from x import f` re-binds it elsewhere).
`Patches.restore()` puts every original back.

Only the standard library: this module runs inside measured processes.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.abc
import importlib.util
import inspect
import re
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from memharness.errors import MemharnessError


class TargetError(MemharnessError):
    """A dotted path that does not name a wrappable function."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"target {path!r}: {message}")
        self.path = path
        self.reason = message


@dataclass(frozen=True)
class ResolvedTarget:
    path: str  # as the user wrote it
    module: str  # module to import
    attrs: tuple[str, ...]  # attribute chain from the module, mangled names as stored
    kind: str  # function | method | classmethod | staticmethod

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["attrs"] = list(self.attrs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResolvedTarget:
        return cls(d["path"], d["module"], tuple(d["attrs"]), d["kind"])


def _mangle(owner: Any, name: str) -> str:
    if isinstance(owner, type) and name.startswith("__") and not name.endswith("__"):
        return f"_{owner.__name__.lstrip('_')}{name}"
    return name


def _closest(name: str, candidates: list[str], cutoff: float = 0.5) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=cutoff)
    return f"; closest: {', '.join(close)}" if close else ""


def _public_names(obj: Any) -> list[str]:
    names = []
    if isinstance(obj, types.ModuleType) and hasattr(obj, "__path__"):  # a package: its submodules too
        import pkgutil

        names.extend(m.name for m in pkgutil.iter_modules(obj.__path__))
    for n in dir(obj):
        if isinstance(obj, type) and n.startswith(f"_{obj.__name__.lstrip('_')}__"):
            n = n[len(obj.__name__.lstrip("_")) + 1 :]  # show mangled names as written in source
        names.append(n)
    return names


def _import_prefix(path: str, parts: list[str]) -> tuple[types.ModuleType, int]:
    """Import the longest module prefix of a dotted path; return the module and how many parts it used."""
    last_error: ModuleNotFoundError | None = None
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        try:
            return importlib.import_module(name), i
        except ModuleNotFoundError as exc:
            # the prefix itself is missing: try a shorter one; a dependency missing inside it is fatal
            if exc.name is not None and not (name == exc.name or name.startswith(exc.name + ".")):
                raise TargetError(path, f"importing {name} failed: {exc}") from exc
            last_error = exc
        except Exception as exc:  # noqa: BLE001 - an import that crashes is reported, not raised raw
            raise TargetError(path, f"importing {name} failed: {type(exc).__name__}: {exc}") from exc
    top = parts[0]
    hint = ""
    if last_error is not None:
        import pkgutil

        names = [m.name for m in pkgutil.iter_modules()] + [m for m in sys.modules if "." not in m]
        hint = _closest(top, [n for n in names if not n.startswith("_")], cutoff=0.75)
    raise TargetError(path, f"no importable module in the path (module {top!r} not found{hint})")


def resolve(path: str) -> ResolvedTarget:
    """Import what a dotted path needs and check it names a function; raise TargetError if not."""
    parts = path.strip().split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise TargetError(path, "not a dotted path of identifiers like pkg.module.Class.method")
    module, used = _import_prefix(path, parts)
    obj: Any = module
    owner: Any = None
    attrs: list[str] = []
    walked = parts[:used]
    for name in parts[used:]:
        stored = _mangle(obj, name)
        if not hasattr(obj, stored):
            where = ".".join(walked)
            raise TargetError(path, f"{where} has no attribute {name!r}{_closest(name, _public_names(obj))}")
        owner, obj = obj, getattr(obj, stored)
        attrs.append(stored)
        walked.append(name)
    raw = _raw_attr(owner, attrs[-1])
    if isinstance(owner, type):
        if isinstance(raw, staticmethod):
            kind = "staticmethod"
        elif isinstance(raw, classmethod):
            kind = "classmethod"
        elif inspect.isfunction(raw):
            kind = "method"
        else:
            raise TargetError(path, f"is {_a(type(raw).__name__)}, not a function or method")
    else:
        if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or isinstance(obj, functools.partial)):
            raise TargetError(path, f"is {_a(type(obj).__name__)}, not a function")
        kind = "function"
    return ResolvedTarget(path=path, module=module.__name__, attrs=tuple(attrs), kind=kind)


def _raw_attr(owner: Any, name: str) -> Any:
    """The attribute as stored (a staticmethod/classmethod object, not the bound function)."""
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in klass.__dict__:
                return klass.__dict__[name]
    return getattr(owner, name)


def source_hash(target: ResolvedTarget) -> str | None:
    """The first 16 hex digits of the SHA-256 of the target's source (`inspect.getsource`), so a run records
    which code it measured; None where the source cannot be read (a C function, no file)."""
    import hashlib
    import inspect

    try:
        obj: Any = importlib.import_module(target.module)
        for name in target.attrs[:-1]:
            obj = getattr(obj, name)
        raw = _raw_attr(obj, target.attrs[-1])
        fn = getattr(raw, "__func__", raw)
        return hashlib.sha256(inspect.getsource(fn).encode("utf-8")).hexdigest()[:16]
    except (OSError, TypeError, ImportError, AttributeError):
        return None


# --- wrapping ---------------------------------------------------------------------------------------


@dataclass
class Patch:
    """One attribute replaced by a wrapper, with what to put back."""

    owner: Any
    name: str
    original: Any  # the attribute as stored before patching (a staticmethod/classmethod object included)
    had_own: bool  # the owner held the attribute itself (not inherited)


def undo(patches: list[Patch]) -> None:
    """Put every original attribute back, last patch first; an inherited one is deleted from the owner."""
    for p in reversed(patches):
        if p.had_own:
            setattr(p.owner, p.name, p.original)
        else:
            try:
                delattr(p.owner, p.name)
            except AttributeError:
                pass


def file_name(path: str) -> str:
    """A file name for a dotted path: anything but ASCII letters, digits, '.', '_' and '-' replaced by '_',
    no leading or trailing dot ('target' when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path).strip(".") or "target"


@dataclass
class Patches:
    """Everything one install changed, so it can be undone exactly."""

    items: list[Patch] = field(default_factory=list)
    wrapped: dict[str, ResolvedTarget] = field(default_factory=dict)

    def restore(self) -> None:
        undo(self.items)
        self.items.clear()
        self.wrapped.clear()


def make_wrapper(fn: Callable, label: str, enter: Callable[[str], Any], exit_: Callable[[Any, Any], None]):
    """A wrapper that records one call of `fn` under `label` around every invocation."""
    if getattr(fn, "__memharness_label__", None) is not None:
        return fn  # already wrapped

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        token = enter(label)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            exit_(token, f"{type(exc).__name__}: {exc}"[:500])
            raise
        exit_(token, None)
        return result

    wrapper.__memharness_label__ = label  # type: ignore[attr-defined]
    wrapper.__memharness_original__ = fn  # type: ignore[attr-defined]
    return wrapper


def _set(patches: Patches, owner: Any, name: str, value: Any) -> None:
    had_own = not isinstance(owner, type) or name in owner.__dict__
    original = owner.__dict__[name] if isinstance(owner, type) and had_own else getattr(owner, name, None)
    patches.items.append(Patch(owner, name, original, had_own))
    setattr(owner, name, value)


def install_one(target: ResolvedTarget, enter: Callable, exit_: Callable, patches: Patches) -> None:
    """Wrap one resolved target (its module must be importable now)."""
    if target.path in patches.wrapped:
        return
    obj: Any = importlib.import_module(target.module)
    for name in target.attrs[:-1]:
        obj = getattr(obj, name)
    owner, name = obj, target.attrs[-1]
    raw = _raw_attr(owner, name)
    if target.kind == "staticmethod":
        _set(patches, owner, name, staticmethod(make_wrapper(raw.__func__, target.path, enter, exit_)))
    elif target.kind == "classmethod":
        _set(patches, owner, name, classmethod(make_wrapper(raw.__func__, target.path, enter, exit_)))
    elif target.kind == "method":
        _set(patches, owner, name, make_wrapper(raw, target.path, enter, exit_))
    else:
        original = getattr(owner, name)
        wrapper = make_wrapper(original, target.path, enter, exit_)
        _set(patches, owner, name, wrapper)
        for mod in list(sys.modules.values()):  # re-bindings made by `from x import f`
            if mod is None or mod is owner:
                continue
            try:
                items = list(vars(mod).items())
            except TypeError:
                continue
            for attr, value in items:
                if value is original:
                    _set(patches, mod, attr, wrapper)
    patches.wrapped[target.path] = target


# --- lazy installation for child processes ------------------------------------------------------------

class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Runs callbacks right after a watched module finishes executing (a post-import hook)."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callable[[], None]]] = {}
        self._busy = threading.local()

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib protocol
        if fullname not in self.callbacks or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader = spec.loader
        watcher = self

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):  # noqa: ANN001
                return loader.create_module(spec)

            def exec_module(self, module):  # noqa: ANN001
                loader.exec_module(module)
                for cb in watcher.callbacks.pop(fullname, []):
                    cb()

        spec.loader = _Loader()
        return spec


_watcher: _ImportWatcher | None = None


def install_when_imported(
    targets: list[ResolvedTarget], enter: Callable, exit_: Callable, patches: Patches,
    on_error: Callable[[ResolvedTarget, BaseException], None] | None = None,
) -> None:
    """Wrap targets whose module is imported now, and the others as soon as their module is imported."""
    global _watcher

    def do(t: ResolvedTarget) -> None:
        try:
            install_one(t, enter, exit_, patches)
        except Exception as exc:  # noqa: BLE001 - a child must not die because a wrap failed
            if on_error is not None:
                on_error(t, exc)

    for t in targets:
        if t.module in sys.modules:
            do(t)
            continue
        if _watcher is None:
            _watcher = _ImportWatcher()
            sys.meta_path.insert(0, _watcher)
        _watcher.callbacks.setdefault(t.module, []).append(functools.partial(do, t))


def _a(noun: str) -> str:
    """'an int', 'a property': the article for a type name in an error message."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
