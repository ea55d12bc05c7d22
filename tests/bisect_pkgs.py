"""A tiny pipeline package for the bisect tests: wheels of many versions in a folder, or a git history.

`memtiny.index.index` is a `callable` pipeline; its wrapped function `memtiny.index.build` allocates a
16 MiB scratch buffer, and from the planted version on also keeps `KEEP_MIB` (200) MiB, every page touched.
With `MEMTINY_HOLD=DIR`, a version whose `DIR/hold-VERSION` exists waits in `index` until the file is removed
(after writing `DIR/started-VERSION`): an event a test waits on to stop a step mid-cell.
Wheels are written by hand (zipfile, a correct RECORD): no build backend, no network, milliseconds each.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

NAME = "memtiny"
KEEP_MIB = 200

INDEX_PY = '''\
"""memtiny {version}: a pipeline whose `build` keeps {keep} MiB."""

import os
import time

import numpy as np

KEEP_MIB = {keep}
KEPT = []


def build(texts):
    scratch = np.ones(16 << 20, dtype=np.uint8)  # 16 MiB, freed on return
    if KEEP_MIB:
        kept = np.empty(KEEP_MIB << 20, dtype=np.uint8)
        kept.fill(1)  # every page resident
        KEPT.append(kept)
    return int(scratch[:8].sum()) + len(texts)


def index(ids, texts, options, workdir):
    _hold()
    return build(texts)


def _hold():
    """Tests' event hook: with MEMTINY_HOLD=DIR and DIR/hold-{version} present, say so in DIR/started-{version}
    and wait until the hold file is gone (at most 300 s), so a test can stop a step while it surely runs."""
    folder = os.environ.get("MEMTINY_HOLD")
    if not folder or not os.path.exists(os.path.join(folder, "hold-{version}")):
        return
    open(os.path.join(folder, "started-{version}"), "w").close()
    deadline = time.monotonic() + 300
    while os.path.exists(os.path.join(folder, "hold-{version}")) and time.monotonic() < deadline:
        time.sleep(0.05)
'''


def sources(version: str, keep: int) -> dict[str, str]:
    return {f"{NAME}/__init__.py": f'__version__ = "{version}"\n',
            f"{NAME}/index.py": INDEX_PY.format(version=version, keep=keep)}


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(folder: Path, version: str, keep: int) -> Path:
    """`folder/memtiny-VERSION-py3-none-any.whl`."""
    info = f"{NAME}-{version}.dist-info"
    files = {path: text.encode() for path, text in sources(version, keep).items()}
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n"
                                 f"Requires-Dist: numpy\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: memharness-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    files[f"{info}/top_level.txt"] = f"{NAME}\n".encode()
    record = "".join(f"{p},{_digest(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    path = Path(folder) / f"{NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path


def write_index(folder: Path, versions: list[str], planted: str) -> Path:
    """Wheels of every version; from `planted` on, `build` keeps KEEP_MIB."""
    from packaging.version import Version

    folder.mkdir(parents=True, exist_ok=True)
    for v in versions:
        write_wheel(folder, v, KEEP_MIB if Version(v) >= Version(planted) else 0)
    return folder


PYPROJECT = f'''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{NAME}"
version = "0.1.0"
dependencies = ["numpy"]

[tool.setuptools]
packages = ["{NAME}"]
'''


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def write_repo(repo: Path, commits: int, planted: int, broken: int | None = None) -> list[str]:
    """A git repository of memtiny with `commits` commits; commit number `planted` (0-based) makes `build`
    keep KEEP_MIB; commit number `broken` (if any) does not import. Returns the commit ids, oldest first."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    shas = []
    for i in range(commits):
        keep = KEEP_MIB if i >= planted else 0
        for path, text in sources(f"0.1.0+c{i}", keep).items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
        if i == broken:
            (repo / NAME / "__init__.py").write_text('raise ImportError("broken on purpose")\n')
        (repo / "CHANGES").write_text(f"change {i}\n")
        git(repo, "add", "-A")
        note = " (keeps a buffer)" if i == planted else " (does not import)" if i == broken else ""
        git(repo, "commit", "-q", "-m", f"change {i}{note}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return shas
