"""uv, the installer: find it, ask it what a version would change in the base, install that into a layer.

Two calls per environment built:

1. `plan`: `uv pip install --dry-run --python BASE -c PINS SPEC`, resolved against the base environment
   itself with every other package pinned to its installed version: uv reports the distributions that
   differ from the base (the bisected package, and any new dependency its version brings), or why none fits
   (a dependency range the base's pins rule out: that version is skipped with uv's reason);
2. `install`: exactly those, `--no-deps`, into the layered virtualenv (`uv venv`, then a `.pth` to the base).

torch is never installed into a layer (unless torch is the package bisected): a plan that would install it is
refused, because torch from PyPI is the multi-gigabyte CUDA build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from memharness.bisect.base import canonical, clean_env
from memharness.errors import MemharnessError

NEVER_LAYERED = ("torch", "torchvision", "torchaudio", "triton")  # CUDA-sized; the base provides them
UV_TIMEOUT_S = 1800


class InstallFailed(Exception):
    """An environment could not be planned, built or imported; the message is the one-line skip reason."""


def uv_binary() -> str:
    """The uv executable: the `uv` package's own binary (memharness[bisect]), else `uv` on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise MemharnessError("memharness bisect needs uv: pip install 'memharness[bisect]' (or uv on PATH)")


def uv_version(uv: str) -> str:
    proc = subprocess.run([uv, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return proc.stdout.strip()


def _uv_env() -> dict[str, str]:
    # no interpreter downloads, no colour codes in the reasons we keep, no progress bars in logs
    return clean_env({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_NO_PROGRESS": "1"})


def run_uv(uv: str, args: Sequence[str], log: list[str]) -> subprocess.CompletedProcess:
    cmd = [uv, *args]
    log.append("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_uv_env(), stdin=subprocess.DEVNULL,
                          timeout=UV_TIMEOUT_S)
    log.extend(line for line in (proc.stdout + proc.stderr).splitlines() if line.strip())
    return proc


def reason(proc: subprocess.CompletedProcess, what: str) -> str:
    """One line from uv's error output: its `error:` line and the first `cause:`/`hint` line after it."""
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.startswith(("error:", "Caused by:", "cause:", "╰─▶", "hint:"))]
    text = " ".join((picked or lines[-2:] or [f"exit {proc.returncode}"])[:3])
    text = re.sub(r"\s+", " ", text.replace("╰─▶", "")).strip()
    return f"{what}: {text[:400]}"


@dataclass(frozen=True)
class Planned:
    name: str  # canonical
    spec: str  # name==version, or the editable source's path
    editable: bool = False


_PLUS = re.compile(r"^\s*\+\s+(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*(?:==\s*(?P<version>\S+)|@\s*(?P<url>\S+))")


def parse_plan(output: str) -> list[tuple[str, str | None, str | None]]:
    """The `+ name==version` / `+ name @ url` lines of a uv dry run: (canonical name, version, url)."""
    out = []
    for line in output.splitlines():
        m = _PLUS.match(line)
        if m:
            out.append((canonical(m["name"]), m["version"], m["url"]))
    return out


def plan(uv: str, base_python: str, pins_file: str, package: str, spec: list[str], index_args: list[str],
         editable_src: str | None, log: list[str]) -> list[Planned]:
    """What installing `spec` into the base would change, with everything else pinned to the base.

    `spec` is `[name==version]` or `["-e", src]`. Raises InstallFailed with uv's reason."""
    extra = ["--no-build-isolation", "-C", "editable_mode=compat"] if editable_src else []
    proc = run_uv(uv, ["pip", "install", "--dry-run", "--python", base_python, "-c", pins_file, *index_args,
                       *extra, *spec], log)
    if proc.returncode != 0:
        raise InstallFailed(reason(proc, "not installable with the base's other versions"))
    name = canonical(package)
    planned: list[Planned] = []
    for dist, version, url in parse_plan(proc.stdout + proc.stderr):
        if dist == name:
            continue  # the package itself is always installed (below), even when the base has this version
        if dist in NEVER_LAYERED and name not in NEVER_LAYERED:
            raise InstallFailed(f"would install {dist} {version or url} into the layer; memharness bisect never "
                                f"installs torch (CUDA wheels): give a base environment that has a fitting {dist}")
        if version is None:
            raise InstallFailed(f"would install {dist} from {url}; only index releases are layered")
        planned.append(Planned(dist, f"{dist}=={version}"))
    if editable_src:
        planned.insert(0, Planned(name, editable_src, editable=True))
    else:
        planned.insert(0, Planned(name, spec[-1]))
    return planned


def make_layer(uv: str, base_python: str, venv: str, pth_name: str, pth_text: str, log: list[str]) -> str:
    """An empty virtualenv of the base's interpreter that sees the base's packages after its own; its python."""
    proc = run_uv(uv, ["venv", "-q", "--python", base_python, venv], log)
    if proc.returncode != 0:
        raise InstallFailed(reason(proc, "uv venv failed"))
    python = os.path.join(venv, "bin", "python")
    site = _site_packages(python, venv)
    with open(os.path.join(site, pth_name), "w", encoding="utf-8") as fh:
        fh.write(pth_text)
    return python


def _site_packages(python: str, venv: str) -> str:
    """The layer's own site-packages (asked with `site` on: only `site` makes the interpreter a venv's)."""
    proc = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, env=clean_env(), stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise InstallFailed(f"the new virtualenv's python does not run: {proc.stderr.strip()[-200:]}")
    site = os.path.realpath(proc.stdout.strip())
    if not site.startswith(os.path.realpath(venv) + os.sep):
        raise InstallFailed(f"the new virtualenv's site-packages is {site}, outside {venv}")
    return site


def install(uv: str, python: str, planned: list[Planned], index_args: list[str], log: list[str]) -> None:
    """Install the planned distributions into the layer, without resolving again (--no-deps)."""
    args = ["pip", "install", "--python", python, "--no-deps", *index_args]
    for p in planned:
        args += (["--no-build-isolation", "-C", "editable_mode=compat", "-e", p.spec] if p.editable else [p.spec])
    proc = run_uv(uv, args, log)
    if proc.returncode != 0:
        raise InstallFailed(reason(proc, "install failed"))
