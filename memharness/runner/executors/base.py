"""The one interface every executor implements: run the cells it is given and report, as events, when each
starts (and where) and how it ended; stop them all when asked.

The caller (`runner/cellloop.py`, for `runner/execute.py`) turns the events into the manifest's bookkeeping,
the progress bar and the per-cell summary line, the same for every executor. An executor raises
`runner.signals.Interrupted` when `stop_requested()` returns a signal (after stopping what it started and
leaving each started cell's folder readable) and `OSError` when the run folder cannot be written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memharness.runner.matrix import CellPlan
    from memharness.runner.preflight import Preflight
    from memharness.runner.supervisor import CellOutcome
    from memharness.scenario import Scenario


@dataclass
class Started:
    """A cell began running; `placement` is what the manifest records about where (executor, node, GPU)."""

    plan: CellPlan
    placement: dict[str, Any]


@dataclass
class Finished:
    """A cell ended (done, failed, lost, ...); its folder is whole in the run folder."""

    plan: CellPlan
    outcome: CellOutcome
    placement: dict[str, Any] | None = None
    tries: int = 1
    where: str = ""  # appended to the cell's summary line, e.g. " on node-3 (1a2b3c4d)"


@dataclass
class RunContext:
    """What an executor is given besides the cells."""

    run_dir: Path
    scenario: Scenario
    pre: Preflight
    stop_requested: Callable[[], int | None]
    say: Callable[[str], None]
    progress: Callable[..., None]  # progress(description=..., live=...): the progress bar's text
    disk_low: Callable[[], bool] = field(default=lambda: False)


class Executor:
    """Subclass it in `runner/executors/<name>.py` and register the name in `memharness.scenario.executors`."""

    name: ClassVar[str]

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def check(self) -> None:
        """Raise a one-line `MemharnessError` when this executor cannot run here (a missing extra), before
        any work is done."""

    def open(self, ctx: RunContext) -> dict[str, Any] | None:
        """Get ready to run cells (start a cluster client, ...); return what the run's manifest records under
        `executor` (None: nothing). Called once, before `run`."""
        return None

    def run(self, todo: list[CellPlan], ctx: RunContext) -> Iterator[Started | Finished]:
        """Run `todo`; yield `Started` and `Finished` for each cell, in the order they happen."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop every cell still running (called when the caller leaves early)."""
