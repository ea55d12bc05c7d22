"""A cell has one owner at a time: the supervisor that started it, and only one attempt writes its folder.

Every process of a cell (its interpreter, the children it starts, its sampler) starts with
`MEMHARNESS_CELL_DIR=<the cell folder>` and `MEMHARNESS_SUPERVISOR=<the supervisor's pid>` in its
environment. A supervisor that dies without cleaning up (SIGKILL, the OOM killer) leaves them running, and
they would go on writing into the cell folder. `--resume` holds the run folder's lock, so no supervisor of
this run is alive any more: every process marked with a cell folder of this run is an orphan. `stop_orphans`
asks them to stop (SIGTERM), kills those still alive after `GRACE_S` (SIGKILL) and says so, before any cell
starts again.

A cell that runs again never writes into what an earlier attempt left: `set_aside` moves the earlier folder
to `attempts/<cell-id>/<n>/` (its `work/` folder, a half-built index, is deleted: it would only take the disk
space the new attempt needs).
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from memharness import names
from memharness.errors import MemharnessError
from memharness.runner import leftovers

CELL_DIR_ENV = "MEMHARNESS_CELL_DIR"
SUPERVISOR_ENV = "MEMHARNESS_SUPERVISOR"
GRACE_S = 5.0  # between SIGTERM and SIGKILL for an earlier run's processes


def marks(cell_dir: Path) -> dict[str, str]:
    """The environment variables that mark a process as one of this supervisor's cell `cell_dir`."""
    return {CELL_DIR_ENV: str(Path(cell_dir).resolve()), SUPERVISOR_ENV: str(os.getpid())}


@dataclass
class Orphan:
    pid: int
    cell: str  # the cell folder's name (its id)
    supervisor: str  # the pid of the supervisor that started it


def orphans(run_dir: Path) -> list[Orphan]:
    """Live processes that a supervisor started for a cell of `run_dir`."""
    cells = Path(run_dir).resolve() / names.CELLS
    found = []
    for pid, env in leftovers.marked_with(CELL_DIR_ENV).items():
        cell = Path(env[CELL_DIR_ENV])
        if cell.parent == cells:
            found.append(Orphan(pid, cell.name, env.get(SUPERVISOR_ENV, "?")))
    return sorted(found, key=lambda o: o.pid)


def stop_orphans(run_dir: Path, grace: float = GRACE_S) -> list[str]:
    """Stop every process an earlier supervisor left running in `run_dir`'s cells (SIGTERM, SIGKILL after
    `grace` seconds); one line per cell saying what was stopped. Raises MemharnessError when some cannot be
    stopped."""
    found = orphans(run_dir)
    if not found:
        return []
    pids = [o.pid for o in found]
    leftovers.send(pids, signal.SIGTERM)
    left = leftovers.wait_gone(pids, grace)
    killed = list(left)
    stuck = leftovers.kill(left) if left else []
    if stuck:
        raise MemharnessError(f"processes {', '.join(map(str, stuck))} of an earlier run of {run_dir} survive "
                              f"SIGKILL; stop them, then resume")
    lines = []
    for cell in dict.fromkeys(o.cell for o in found):
        mine = [o for o in found if o.cell == cell]
        supervisors = ", ".join(sorted({o.supervisor for o in mine}))
        how = (f"SIGTERM, then SIGKILL after {grace:g} s" if any(o.pid in killed for o in mine)
               else "SIGTERM")
        lines.append(f"cell {cell}: stopped {len(mine)} processes (pids {', '.join(str(o.pid) for o in mine)}) "
                     f"that an earlier memharness run (pid {supervisors}, no longer running) left running; {how}")
    return lines


def set_aside(run_dir: Path, cell_id: str, cell_dir: Path) -> str | None:
    """Move an earlier attempt's folder of the cell to `attempts/<cell-id>/<n>/` (without its `work/`), so the
    new attempt starts in an empty folder; returns the new place relative to the run folder, None when there
    was nothing to move. Raises OSError when the run folder cannot be written."""
    cell_dir = Path(cell_dir)
    if not cell_dir.is_dir() or not any(cell_dir.iterdir()):
        return None
    n = 1
    while (Path(run_dir) / names.attempt_dir_name(cell_id, n)).exists():
        n += 1
    rel = names.attempt_dir_name(cell_id, n)
    target = Path(run_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(cell_dir, target)
    shutil.rmtree(target / names.WORK, ignore_errors=True)
    return rel
