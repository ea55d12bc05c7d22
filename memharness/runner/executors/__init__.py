"""Where a scenario's cells run, behind one interface (`base.Executor`): `local` runs them one after another
on this machine, `ray` as Ray tasks (one per cell) on a multi-GPU host or a cluster. The names are registered
once, in `memharness.scenario.executors`. Signals, the run lock, resume, disk-full handling and the manifest
bookkeeping stay in `runner/execute.py` and `runner/cellloop.py`, above every executor."""

from __future__ import annotations

from importlib import import_module

from memharness.errors import MemharnessError
from memharness.runner.executors.base import Executor
from memharness.scenario.executors import EXECUTORS


def get(name: str, address: str | None = None) -> Executor:
    """The executor registered as `name`, ready to `check()` and `run()`."""
    try:
        module, _, cls = EXECUTORS[name].partition(":")
    except KeyError:
        raise MemharnessError(f"--executor {name}: expected {' or '.join(EXECUTORS)}") from None
    return getattr(import_module(module), cls)(address=address)


__all__ = ["EXECUTORS", "Executor", "get"]
