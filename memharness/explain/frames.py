"""Which frame of an allocation's stack names its site: the rule behind `explain --frames user|all`.

A site is the innermost frame in the user's or the pipeline's code. Frames are *skipped* (`--frames user`,
the default) when their file is

- in numpy or torch (SKIP_PACKAGES): under the folder of the numpy / torch package the measured process
  imported (recorded by the explainer in that process, `core.explainer.frame_roots`: packages put on
  PYTHONPATH outside site-packages count too), or with `numpy` / `torch` as the first folder after the last
  `site-packages/` or `dist-packages/` of its path;
- in the standard library: under the measured interpreter's or this interpreter's sysconfig `stdlib` /
  `platstdlib` folders, or any `lib/pythonX.Y/` folder, but never in a `site-packages/` or `dist-packages/`;
  and frozen modules (`<frozen importlib._bootstrap>`).

Everything else is kept: the user's modules, colbert, ragatouille, transformers, fast_pytorch_kmeans, ...
The harness's own frames are cut before this rule applies (`sites.trim_stack`). When every frame of a
stack is skipped (an allocation made by the import of torch, or a target that is itself a torch function),
the site is the outermost frame outside the standard library: where control entered the skipped package.
With `--frames all` the site is the innermost frame of any file. Stacks in explain.json stay complete
either way (innermost first); `site_frame` is the index of the site in its stack.
"""

from __future__ import annotations

import re
import sysconfig
from dataclasses import dataclass
from typing import Any

from memharness.core.explainer import SKIP_PACKAGES

USER = "user"
ALL = "all"
_PACKAGE_DIRS = ("site-packages/", "dist-packages/")
_STDLIB_PATTERN = re.compile(r"/lib/python\d+\.\d+/")
_STDLIB_DIRS = tuple(sorted({sysconfig.get_paths()[k].rstrip("/") + "/" for k in ("stdlib", "platstdlib")}))

Frame = tuple[str, str, int]  # (function, file, line)


@dataclass(frozen=True)
class Roots:
    """Folders recorded in the measured process: its numpy and torch packages, its standard library."""

    skip: tuple[str, ...] = ()
    stdlib: tuple[str, ...] = ()

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> Roots:
        meta = meta or {}
        return cls(tuple(meta.get("skip") or ()), tuple(meta.get("stdlib") or ()))


NO_ROOTS = Roots()


def _package_relative(filename: str) -> str | None:
    """The path after the last site-packages/ or dist-packages/ folder; None outside installed packages."""
    cut = max(filename.rfind(d) for d in _PACKAGE_DIRS)
    if cut < 0:
        return None
    rest = filename[cut:]
    return rest.split("/", 1)[1] if "/" in rest else None


def is_stdlib(filename: str, roots: Roots = NO_ROOTS) -> bool:
    if filename.startswith("<frozen "):
        return True
    if _package_relative(filename) is not None:
        return False
    return filename.startswith(_STDLIB_DIRS + roots.stdlib) or bool(_STDLIB_PATTERN.search(filename))


def is_skipped(filename: str, roots: Roots = NO_ROOTS) -> bool:
    """Frames of numpy, torch and the standard library (see the module's docstring)."""
    if roots.skip and filename.startswith(roots.skip):
        return True
    rel = _package_relative(filename)
    if rel is not None:
        return rel.split("/", 1)[0] in SKIP_PACKAGES
    return is_stdlib(filename, roots)


def site_frame(frames: list[Frame], mode: str = USER, roots: Roots = NO_ROOTS) -> int:
    """Index (innermost first) of the frame that names the site of an allocation with this stack."""
    if mode == ALL or not frames:
        return 0
    for i, (_, filename, _) in enumerate(frames):
        if not is_skipped(filename, roots):
            return i
    for i in range(len(frames) - 1, -1, -1):  # all skipped: where control entered the skipped package
        if not is_stdlib(frames[i][1], roots):
            return i
    return 0


def frame_text(frame: Frame) -> str:
    """`function file:line`, the form of every stack element in explain.json."""
    fn, filename, line = frame
    return f"{fn} {filename}:{line}"


def short_path(path: str) -> str:
    """The path after site-packages/ (or dist-packages/); other paths as they are."""
    rel = _package_relative(path)
    return rel if rel is not None else path


def short_frame(text: str) -> str:
    """A stack element `function file:line` with its file shortened."""
    fn, _, where = text.partition(" ")
    return f"{fn} {short_path(where)}" if where else text
