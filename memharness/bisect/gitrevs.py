"""Git mode: the commits of a local checkout from a good to a bad revision, and the package it builds.

The candidates are the good commit, then the commits on the first-parent line from it to the bad commit,
oldest first (`git rev-list --first-parent GOOD..BAD`). The checkout is only read (`rev-parse`, `rev-list`,
`show`, and `git archive` when an environment is built): its work tree, index and branches stay as they are.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from memharness.bisect.versions import VersionError


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise VersionError("--git needs git on PATH") from None


def _commit(repo: Path, rev: str, what: str) -> str:
    proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise VersionError(f"{what} {rev}: not a commit of {repo}")
    return proc.stdout.strip()


def commits(repo: Path, good: str, bad: str) -> list[dict[str, str]]:
    """[{rev, label, title}] from good to bad, oldest first; one-line errors for a bad range."""
    repo = Path(repo)
    if not repo.is_dir():
        raise VersionError(f"--git {repo}: no such folder")
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise VersionError(f"--git {repo}: not a git checkout")
    g, b = _commit(repo, good, "--good"), _commit(repo, bad, "--bad")
    if g == b:
        raise VersionError(f"--good {good} and --bad {bad} are the same commit: nothing to bisect")
    if _git(repo, "merge-base", "--is-ancestor", g, b).returncode != 0:
        if _git(repo, "merge-base", "--is-ancestor", b, g).returncode == 0:
            raise VersionError(f"--good {good} is newer than --bad {bad} (a descendant of it): give the older, "
                               f"known-good commit as --good")
        raise VersionError(f"--good {good} is not an ancestor of --bad {bad}: bisect needs one line of history")
    proc = _git(repo, "log", "--reverse", "--first-parent", "--format=%H%x00%s", f"{g}..{b}")
    if proc.returncode != 0:
        raise VersionError(f"--git {repo}: git log failed: {proc.stderr.strip()[-200:]}")
    first = _git(repo, "log", "-1", "--format=%H%x00%s", g).stdout
    out = []
    for line in [first.strip(), *proc.stdout.splitlines()]:
        if "\0" in line:
            rev, title = line.split("\0", 1)
            out.append({"rev": rev, "label": rev[:10], "title": title})
    if not out or out[-1]["rev"] != b:
        raise VersionError(f"--bad {bad} is not on the first-parent line from --good {good}")
    return out


def package_name(repo: Path, rev: str) -> str:
    """The distribution name the checkout builds at `rev` (pyproject.toml's [project] name, else setup.cfg)."""
    text = _git(repo, "show", f"{rev}:pyproject.toml")
    if text.returncode == 0:
        try:
            import tomllib

            name = tomllib.loads(text.stdout).get("project", {}).get("name")
        except ImportError:  # Python 3.10
            m = re.search(r'(?ms)^\[project\].*?^name\s*=\s*["\']([^"\']+)', text.stdout)
            name = m.group(1) if m else None
        except ValueError:
            name = None
        if name:
            return str(name)
    cfg = _git(repo, "show", f"{rev}:setup.cfg")
    m = re.search(r"(?m)^name\s*=\s*(\S+)", cfg.stdout) if cfg.returncode == 0 else None
    if m:
        return m.group(1)
    raise VersionError(f"--git {repo}: cannot tell the package's name at {rev[:10]} (no [project] name in "
                       f"pyproject.toml nor name in setup.cfg); give --package NAME")
