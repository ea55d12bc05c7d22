"""How a cell's interpreter is started: its environment and its command (`python -m
memharness.runner.cell_main CELL_DIR`, in a session of its own). The supervisor starts every cell this way,
and `memharness explain`'s second run does too, so both run with the same environment. Standard library only,
like the rest of `core`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from memharness import names
from memharness.core.session import interpreter_env

CELL_MODULE = "memharness.runner.cell_main"  # the cell process: python -m CELL_MODULE CELL_DIR


def cache_dir() -> Path:
    """memharness's cache (corpora, built models, torch extensions of other virtualenvs): MEMHARNESS_CACHE or
    ~/.cache/memharness."""
    return Path(os.environ.get("MEMHARNESS_CACHE", Path.home() / ".cache" / "memharness"))


def cell_env(extra: dict[str, str], python: str, device: str) -> dict[str, str]:
    """The cell interpreter's environment: the scenario's `env` (`extra`), memharness importable, a torch
    extensions folder of its own when the pipeline runs in another virtualenv, no GPU for a cpu cell. The one
    builder of it: `memharness explain`'s second run uses it too."""
    env = interpreter_env(extra)
    # A virtualenv's python is a symlink to the base interpreter: compare bin folders, not resolved files.
    other_env = Path(python).absolute().parent != Path(sys.executable).absolute().parent
    if "TORCH_EXTENSIONS_DIR" not in env and other_env:
        # torch caches compiled extensions by name: two virtualenvs sharing ~/.cache/torch_extensions rebuild
        # each other's (colbert's) on every alternation, inflating the prepare phase. One folder each.
        digest = hashlib.sha1(str(Path(python).absolute()).encode()).hexdigest()[:10]
        env["TORCH_EXTENSIONS_DIR"] = str(cache_dir() / "torch_extensions" / digest)
    if device == "cpu":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def start_cell_process(python: str, cell_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """The cell's interpreter (`runner/cell_main.py`), in a session of its own, its output in the cell's logs."""
    with open(cell_dir / names.STDOUT, "wb") as out, open(cell_dir / names.STDERR, "wb") as err:
        return subprocess.Popen([python, "-m", CELL_MODULE, str(cell_dir)], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
