"""Disk space: preflight's estimate of what a run writes, the probe file, and the run folder's reserve.

The estimate is deliberately rough (it says so in its message): the corpus cache is the mean size of the
first records times the largest size; the timeline grows by `ROWS_PER_TICK` rows of 24 bytes per sample,
for `timeout` (or `ASSUMED_CELL_SECONDS` when the scenario has none) per cell, plus `CELL_OVERHEAD` for the
call logs and small files of each cell.

The reserve is a file of `RESERVE_BYTES` written into the run folder at its creation: when a write fails
with ENOSPC the runner deletes it, which leaves room to record the interrupted cell in status.json and the
manifest so that `--resume` finds a consistent folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from memharness import names
from memharness.core.records import TIMELINE_ROW_BYTES

MiB = 1 << 20
PROBE_BYTES = 4 * MiB
RESERVE_BYTES = 4 * MiB
ROWS_PER_TICK = 8  # the tree's total and the RSS of the root and a handful of workers
ASSUMED_CELL_SECONDS = 3600.0
CELL_OVERHEAD = 2 * MiB
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
LOW_WATER = 256 * 1024  # below this many free bytes a failed cell is taken as a disk-full casualty


def fmt(n: float, mib_decimals: int = 1, gib_decimals: int = 1) -> str:
    """A byte amount in MiB below 1 GiB, in GiB from there: `fmt(4 * 2**20)` -> '4.0 MiB'."""
    return f"{n / 2**30:.{gib_decimals}f} GiB" if n >= 2**30 else f"{n / 2**20:.{mib_decimals}f} MiB"


def existing_ancestor(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def device_of(path: Path) -> int:
    return os.stat(existing_ancestor(path)).st_dev


def timeline_bytes(n_cells: int, interval: float, timeout: float | None) -> tuple[int, str]:
    seconds = timeout if timeout is not None else ASSUMED_CELL_SECONDS
    per_cell = int(ROWS_PER_TICK * TIMELINE_ROW_BYTES * seconds / max(interval, 1e-3)) + CELL_OVERHEAD
    why = (f"{n_cells} cells x {fmt(per_cell)} of timeline and logs for "
           + (f"the timeout of {seconds:g} s" if timeout is not None else
              f"an assumed {seconds / 3600:g} h each (set `timeout` to bound it)"))
    return n_cells * per_cell, why


def write_probe(folder: Path, size: int = PROBE_BYTES) -> None:
    """Write (and fsync) a real file of `size` bytes in `folder`, then delete it; raises OSError."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
    try:
        block = b"\0" * MiB
        left = size
        while left > 0:
            left -= os.write(fd, block[: min(left, MiB)])
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class Reserve:
    """RESERVE_BYTES kept in the run folder, given up when the disk fills so the bookkeeping can be written."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / names.RESERVE

    def create(self) -> None:
        try:
            write_probe_to(self.path, RESERVE_BYTES)
        except OSError:
            self.path.unlink(missing_ok=True)  # too little space even for this: preflight said so already

    def release(self) -> None:
        """Give the space back; never raises (it runs while a failed write is being recorded, in a folder
        that may have become read-only or immutable meanwhile)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def write_probe_to(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        block = b"\0" * MiB
        left = size
        while left > 0:
            n = fh.write(block[: min(left, MiB)])
            left -= n
        fh.flush()
        os.fsync(fh.fileno())
