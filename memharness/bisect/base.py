"""The base environment: the interpreter a bisect's layered environments sit on, and its installed versions.

Every step's environment is a virtualenv of the same interpreter whose site-packages holds only what differs
(the bisected package and any dependency its version adds) and then reaches the base's site-packages through
a `.pth` file, so torch and everything else come from the base and are never installed again. Every other
package is pinned to the version installed in the base (a constraints file), so a step differs from the base
in the bisected package only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from memharness.errors import MemharnessError

# Run in the base interpreter (isolated: no PYTHONPATH, no user site): what is installed there.
_DESCRIBE = r"""
import importlib.metadata as md, json, re, sys, sysconfig
dists = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        dists.setdefault(re.sub(r"[-_.]+", "-", name).lower(), d.version)
paths = sysconfig.get_paths()
print(json.dumps({"executable": sys.executable, "version": "%d.%d.%d" % sys.version_info[:3],
                  "site_packages": sorted({paths["purelib"], paths["platlib"]}), "dists": dists}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without what would make an interpreter see other packages than its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Base:
    python: str  # the interpreter as given (a venv's bin/python)
    executable: str  # sys.executable there
    version: str  # 3.11.7
    site_packages: tuple[str, ...]
    dists: dict[str, str]  # canonical name -> version

    @property
    def key(self) -> str:
        """Changes whenever the base's interpreter or any installed version does: its own cache of envs."""
        blob = json.dumps([os.path.realpath(self.executable), self.version, sorted(self.dists.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def pins(self, unpinned: set[str]) -> str:
        """A constraints file: every installed distribution at its version, except `unpinned` (canonical)."""
        lines = [f"{name}=={version}" for name, version in sorted(self.dists.items()) if name not in unpinned]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"python": self.python, "executable": self.executable, "version": self.version,
                "site_packages": list(self.site_packages), "key": self.key}


def describe(python: str) -> Base:
    """Ask `python` what it is and what it has installed."""
    try:
        proc = subprocess.run([python, "-I", "-c", _DESCRIBE], capture_output=True, text=True, timeout=120,
                              env=clean_env(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MemharnessError(f"base interpreter not found: {python}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MemharnessError(f"base interpreter {python} could not list its packages: {tail}")
    data = json.loads(proc.stdout)
    return Base(python=str(python), executable=data["executable"], version=data["version"],
                site_packages=tuple(data["site_packages"]), dists=dict(data["dists"]))


def pth_text(base: Base) -> str:
    """The `.pth` line of a layered environment: the base's site-packages after its own, with their `.pth`
    files processed (editable installs there keep working; anything installed in the layer wins)."""
    calls = "; ".join(f"site.addsitedir({p!r})" for p in base.site_packages)
    return f"import site; {calls}\n"


PTH_NAME = "zz-memharness-base.pth"  # processed after the layer's own .pth files (sorted by name)


def same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
