"""The cache of per-version environments: one layered virtualenv per (base, package, version or commit).

Layout, under `cache_dir()/bisect-envs` (`MEMHARNESS_CACHE`, default `~/.cache/memharness`) or `--env-cache`:

    <base-key>/base.json                   the base interpreter the layers sit on
    <base-key>/<package>-<version>/        venv/, constraints.txt, build.log, env.json (written last)
    <base-key>/git-<package>-<sha12>/      src/ (the commit, from `git archive`), venv/ (editable install), ...

`<base-key>` hashes the base interpreter and every version installed in it, so a changed base gets fresh
layers. An environment is reused when its `env.json` says it was built and checked, its interpreter and the
base's site-packages still exist and its installed version is the one asked for; else it is rebuilt. A build
holds a lock file, so two bisects never build the same environment at once.
"""

from __future__ import annotations

import fcntl
import io
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from memharness import names
from memharness.bisect import installer
from memharness.bisect.base import PTH_NAME, Base, canonical, clean_env, pth_text
from memharness.bisect.versions import Index, label
from memharness.core.atomic import read_json, write_json

# Run in a new layer: is the asked version the one imported, and do its top-level modules import from the layer?
_CHECK = r"""
import importlib, importlib.metadata as md, json, os, sys
name, roots = sys.argv[1], sys.argv[2:]
d = md.distribution(name)
out = {"version": d.version, "modules": [], "error": None}
top = (d.read_text("top_level.txt") or "").split()
if not top:
    for f in d.files or []:
        first = f.parts[0]
        if len(f.parts) > 1 and f.parts[1] == "__init__.py":
            top.append(first)
        elif len(f.parts) == 1 and first.endswith(".py") and not first.startswith("__editable__"):
            top.append(first[:-3])
top = sorted({t for t in top if t.isidentifier() and not t.startswith("_") and t not in ("test", "tests")})
for mod in top:
    try:
        m = importlib.import_module(mod)
    except BaseException as exc:
        out["error"] = f"import {mod}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        break
    where = os.path.realpath(m.__file__) if getattr(m, "__file__", None) else ""
    if where and not any(where.startswith(os.path.realpath(r) + os.sep) for r in roots):
        out["error"] = f"import {mod} found {where}, not the layer's copy (shadowed by the base)"
        break
    out["modules"].append(mod)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Target:
    """What one environment holds: a released version, or a commit of a local checkout (editable)."""

    package: str
    version: str  # a release; for a commit, the label shown (short sha)
    rev: str | None = None  # the full commit id in git mode
    repo: str | None = None  # the checkout in git mode

    @property
    def folder(self) -> str:
        if self.rev:
            return f"git-{canonical(self.package)}-{self.rev[:12]}"
        return f"{canonical(self.package)}-{label(self.version)}"


@dataclass
class EnvResult:
    target: Target
    path: Path
    python: str | None = None
    reused: bool = False
    seconds: float = 0.0
    error: str | None = None  # the skip reason
    installed: list[str] = field(default_factory=list)  # what the layer holds

    def to_dict(self) -> dict:
        return {"path": str(self.path), "python": self.python, "reused": self.reused,
                "seconds": round(self.seconds, 3), "error": self.error, "installed": self.installed}


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class EnvCache:
    def __init__(self, root: Path, base: Base, index: Index, unpinned: set[str] | None = None) -> None:
        self.root = Path(root).absolute() / base.key
        self.base, self.index = base, index
        self.unpinned = {canonical(n) for n in unpinned or ()}
        self._uv: str | None = None

    @property
    def uv(self) -> str:
        if self._uv is None:
            self._uv = installer.uv_binary()
        return self._uv

    def path(self, target: Target) -> Path:
        return self.root / target.folder

    def healthy(self, target: Target) -> EnvResult | None:
        """The cached environment of `target`, or None when it must be built."""
        path = self.path(target)
        info = read_json(path / names.ENV_SPEC, None) if (path / names.ENV_SPEC).exists() else None
        if not isinstance(info, dict) or info.get("status") != "ok":
            return None
        python = path / "venv" / "bin" / "python"
        if not python.exists() or not all(Path(p).is_dir() for p in self.base.site_packages):
            return None
        if target.rev and not (path / "src").is_dir():
            return None
        if not target.rev and info.get("version") != target.version:
            return None
        return EnvResult(target, path, str(python), reused=True, installed=list(info.get("installed", [])))

    def get(self, target: Target, say: Callable[[str], None] = lambda _m: None) -> EnvResult:
        """The environment of `target`: reused when healthy, else built (seconds with uv's cache warm)."""
        t0 = time.perf_counter()
        path = self.path(target)
        with _Lock(path.with_name(path.name + ".lock")):
            found = self.healthy(target)
            if found is not None:
                found.seconds = time.perf_counter() - t0
                return found
            result = self._build(target, path)
        result.seconds = time.perf_counter() - t0
        return result

    def _build(self, target: Target, path: Path) -> EnvResult:
        write_json(self.root / names.ENV_BASE, self.base.to_dict())
        for stale in ("venv", names.ENV_SPEC):
            p = path / stale
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        path.mkdir(parents=True, exist_ok=True)
        log: list[str] = []
        result = EnvResult(target, path)
        t0 = time.perf_counter()
        try:
            src = self._source(target, path) if target.rev else None
            pins = path / names.ENV_PINS
            pins.write_text(self.base.pins(self.unpinned | {canonical(target.package)}), encoding="utf-8")
            spec = ["-e", str(src)] if src else [f"{target.package}=={target.version}"]
            planned = installer.plan(self.uv, self.base.python, str(pins), target.package, spec,
                                     self.index.uv_args(), str(src) if src else None, log)
            python = installer.make_layer(self.uv, self.base.python, str(path / "venv"), PTH_NAME,
                                          pth_text(self.base), log)
            installer.install(self.uv, python, planned, self.index.uv_args(), log)
            version = self._check(python, target, path, src)
        except installer.InstallFailed as exc:
            result.error = str(exc)
            shutil.rmtree(path / "venv", ignore_errors=True)
            (path / names.ENV_BUILD_LOG).write_text("\n".join(log) + "\n", encoding="utf-8")
            return result
        except subprocess.TimeoutExpired as exc:
            result.error = f"timed out after {exc.timeout:.0f} s: {' '.join(map(str, exc.cmd))[:200]}"
            shutil.rmtree(path / "venv", ignore_errors=True)
            return result
        (path / names.ENV_BUILD_LOG).write_text("\n".join(log) + "\n", encoding="utf-8")
        result.python, result.installed = python, [p.spec if not p.editable else f"-e {p.spec}" for p in planned]
        write_json(path / names.ENV_SPEC, {
            "status": "ok", "package": target.package, "version": target.version, "installed_version": version,
            "rev": target.rev, "repo": target.repo, "installed": result.installed, "uv": installer.uv_version(self.uv),
            "base": self.base.to_dict(), "build_seconds": round(time.perf_counter() - t0, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return result

    def _source(self, target: Target, path: Path) -> Path:
        """The commit's files in `path/src` (git archive: the checkout itself is never touched)."""
        src = path / "src"
        if (path / "src.ok").exists() and src.is_dir():
            return src
        shutil.rmtree(src, ignore_errors=True)
        (path / "src.ok").unlink(missing_ok=True)
        proc = subprocess.run(["git", "-C", str(target.repo), "archive", "--format=tar", str(target.rev)],
                              capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise installer.InstallFailed(f"git archive {target.rev[:12]}: "
                                          f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
        src.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(src, filter="data")
        (path / "src.ok").write_text(str(target.rev) + "\n", encoding="utf-8")
        return src

    def _check(self, python: str, target: Target, path: Path, src: Path | None) -> str:
        """Import the layer's top-level modules from the layer; returns the installed version."""
        roots = [str(path / "venv")] + ([str(src)] if src else [])
        try:
            proc = subprocess.run([python, "-c", _CHECK, target.package, *roots], capture_output=True,
                                  text=True, timeout=600, env=clean_env(), stdin=subprocess.DEVNULL,
                                  cwd=str(path))
        except subprocess.TimeoutExpired:
            raise installer.InstallFailed("importing it took longer than 600 s") from None
        if proc.returncode != 0 or not proc.stdout.strip():
            tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise installer.InstallFailed(f"import check failed: {tail[:300]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        version = str(out.get("version"))
        if not target.rev and Version(version) != Version(target.version):
            raise installer.InstallFailed(f"the layer imports {target.package} {version}, not {target.version}")
        if out.get("error"):
            raise installer.InstallFailed(out["error"][:400])
        return version


def default_root() -> Path:
    from memharness.core.launch import cache_dir

    return cache_dir() / "bisect-envs"
