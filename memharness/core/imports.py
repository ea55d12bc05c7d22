"""Import the pipeline's packages one by one inside the cell and record the RSS each adds: `imports.json`.

Runs in the cell before the session starts, so a shift of the memory a process holds before its first
wrapped call can be pinned to a package (`memharness compare` reads it). Packages a pipeline kind names are
distributions (`faiss-cpu`); each is imported under its top-level module name, dependencies first (a
distribution that requires another of the list comes after it), so each step mostly measures one package.
A failed import is recorded and does not stop the cell: the pipeline reports the real error later.

Only the standard library: this module runs inside measured cells, possibly in another virtualenv.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata as md
import importlib.util
import re
import sys
import time
from pathlib import Path
from typing import Any

from memharness.core.procmem import rss_bytes

IMPORTS_FORMAT = "memharness-imports"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _top_level_names(dist: md.Distribution) -> list[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return [n.strip() for n in text.splitlines() if n.strip()]
    names: list[str] = []
    for f in dist.files or []:
        first = f.parts[0] if f.parts else ""
        if first.endswith(".py") and len(f.parts) == 1:
            first = first[:-3]
        elif len(f.parts) == 1 or "." in first or first in ("bin", "__pycache__"):
            continue
        if first.isidentifier() and first not in names:
            names.append(first)
    return names


def module_for(dist_name: str) -> tuple[str, str] | None:
    """(module to import, version) for an installed distribution; None when it is not installed."""
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        return None
    names = [n for n in _top_level_names(dist) if not n.startswith("_")]
    want = _norm(dist_name)
    pick = next((n for n in names if _norm(n) == want), None)
    pick = pick or next((n for n in names if want.startswith(_norm(n))), None)
    pick = pick or (names[0] if names else None)
    return (pick, dist.version) if pick else None


# Runtime libraries a GPU build of a package requires (torch's CUDA wheels): left out of the count that
# orders imports, so a package is imported at the same place whichever build of it is installed.
ACCELERATOR_LIBS = re.compile(r"^(nvidia_|cuda_|triton|pytorch_triton|rocm|intel_)")


def _requires(dist_name: str) -> tuple[set[str], int]:
    """(normalised names of the distribution's requirements, how many there are but accelerator runtimes),
    extras left out."""
    try:
        reqs = md.requires(dist_name) or []
    except md.PackageNotFoundError:
        return set(), 0
    names = {_norm(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in reqs if "extra ==" not in r}
    return names, sum(1 for n in names if not ACCELERATOR_LIBS.match(n))


def ordered_distributions(names: list[str]) -> list[str]:
    """`names`, each after those of the list it requires; among the ready ones, fewest requirements first.

    Libraries often import a package they do not declare (colbert-ai imports faiss), so lower-level
    packages (fewer requirements) go first: each import step then mostly measures its own package.
    """
    pending = list(dict.fromkeys(names))
    reqs = {n: _requires(n) for n in pending}
    out: list[str] = []
    while pending:
        done = {_norm(o) for o in out}
        listed = {_norm(m) for m in pending} | done
        ready = [n for n in pending if not ((reqs[n][0] & listed) - done - {_norm(n)})] or pending
        pick = min(ready, key=lambda n: (reqs[n][1], pending.index(n)))
        out.append(pick)
        pending.remove(pick)
    return out


def module_imports(module_name: str) -> list[str]:
    """Absolute modules the top level of MODULE imports, in source order (without importing it)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            out.append(node.module)
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=1)
def _distributions_of_modules() -> dict[str, list[str]]:
    try:
        return md.packages_distributions()
    except Exception:  # noqa: BLE001 - a broken metadata entry must not fail the cell
        return {}


def _version_of(module: str) -> str | None:
    dists = _distributions_of_modules().get(module.split(".", 1)[0]) or []
    for d in dists:
        try:
            return f"{d} {md.version(d)}"
        except md.PackageNotFoundError:
            continue
    return None


def measure(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Import each step's `module` in order; record RSS before and after it.

    A step is `{"module": name, "package": distribution or None, "version": str or None}`.
    """
    out: dict[str, Any] = {"format": IMPORTS_FORMAT, "version": 1, "rss_start": rss_bytes(), "steps": []}
    for step in steps:
        module = step["module"]
        before = rss_bytes()
        t0 = time.perf_counter()
        already = module in sys.modules
        error = None
        try:
            importlib.import_module(module)
        except BaseException as exc:  # noqa: BLE001 - recorded; the pipeline raises the real error later
            error = f"{type(exc).__name__}: {exc}"[:500]
        after = rss_bytes()
        out["steps"].append({**step, "rss_before": before, "rss_after": after, "delta": after - before,
                             "seconds": round(time.perf_counter() - t0, 4), "already_imported": already,
                             "error": error})
    out["rss_end"] = rss_bytes()
    return out


def steps_for(packages: list[str], modules: list[str]) -> list[dict[str, Any]]:
    """Import steps: the distributions PACKAGES (dependencies first), then the modules MODULES."""
    steps: list[dict[str, Any]] = []
    for dist in ordered_distributions(packages):
        found = module_for(dist)
        if found:
            steps.append({"module": found[0], "package": dist, "version": found[1]})
    for module in modules:
        if module.split(".", 1)[0] in sys.stdlib_module_names:
            continue
        label = _version_of(module)
        package, _, version = (label or "").partition(" ")
        steps.append({"module": module, "package": package or None, "version": version or None})
    seen: set[str] = set()
    return [s for s in steps if not (s["module"] in seen or seen.add(s["module"]))]
