"""The local executor: the cells one after another on this machine, each under `supervisor.run_cell`."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from memharness import names
from memharness.runner.executors.base import Executor, Finished, RunContext, Started
from memharness.runner.matrix import CellPlan
from memharness.runner.node import local_placement
from memharness.runner.signals import Interrupted
from memharness.runner.supervisor import run_cell


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


class LocalExecutor(Executor):
    name = "local"

    def run(self, todo: list[CellPlan], ctx: RunContext) -> Iterator[Started | Finished]:
        for i, plan in enumerate(todo, 1):
            signum = ctx.stop_requested()
            if signum is not None:
                raise Interrupted(signum)
            cell_dir = ctx.run_dir / names.CELLS / plan.id
            if ctx.disk_low():
                raise OSError(errno.ENOSPC, "No space left on device", str(ctx.run_dir))
            ctx.progress(description=f"[{i}/{len(todo)}] {plan.id}")
            yield Started(plan, local_placement(ctx.pre.pipelines[plan.pipeline].probe.get("fingerprint")))

            def tick(elapsed: float, rss: int) -> None:
                ctx.progress(live=f"cell {elapsed:6.1f} s  RSS {rss / 2**20:8.0f} MiB")

            outcome = run_cell(plan, cell_dir, ctx.scenario, ctx.pre, on_tick=tick, stop_requested=ctx.stop_requested,
                               disk_low=ctx.disk_low)
            if outcome.cause == "disk_full" or (
                    outcome.status == "failed" and ("[Errno 28]" in outcome.message or ctx.disk_low())):
                raise OSError(errno.ENOSPC, "No space left on device", str(cell_dir))
            yield Finished(plan, outcome)
