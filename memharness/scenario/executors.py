"""The executors a scenario (`executor:`) or `memharness run --executor` may name, and where each lives.

One table: the scenario schema takes its names from here, the runner imports the class a name points at
(`memharness.runner.executors.get`). Adding an executor is one module with a `runner.executors.base.Executor`
subclass and one line here. The class is named by its dotted path, so this module imports nothing above it.
"""

from __future__ import annotations

EXECUTORS: dict[str, str] = {
    "local": "memharness.runner.executors.local:LocalExecutor",  # one cell after another on this machine
    "ray": "memharness.runner.executors.ray:RayExecutor",  # one Ray task per cell (docs/executors.md)
}
DEFAULT_EXECUTOR = "local"


def executor_names() -> list[str]:
    return list(EXECUTORS)
