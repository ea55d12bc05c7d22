"""`memharness ...` in a subprocess, with the tests folder and the repository on PYTHONPATH (end-to-end tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def default_stop_signals() -> None:
    """`preexec_fn` of a process a test stops with a signal: a test run started in the background by a shell
    ignores SIGINT, and an ignored signal stays ignored across exec (memharness keeps it ignored, as nohup
    asks); give the child the default dispositions a terminal user's command has."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def memharness_cli(*args, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memharness", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def write_scenario(folder: Path, name: str, pipelines: str, sizes: str, targets: str,
                   sample_interval: str = "20ms") -> Path:
    """`folder/<name>.yaml`: a scenario on the synthetic corpus (seed 3) writing into `folder/results`;
    `pipelines` is the YAML list under `pipelines:` (dedented here), `sizes` and `targets` YAML flow lists."""
    path = folder / f"{name}.yaml"
    header = (f"name: {name}\ncorpus: {{source: synthetic, seed: 3}}\nsizes: {sizes}\n"
              f"output: {folder / 'results'}\nsample_interval: {sample_interval}\ntargets: {targets}\npipelines:\n")
    path.write_text(header + textwrap.indent(textwrap.dedent(pipelines), "  "), encoding="utf-8")
    return path
