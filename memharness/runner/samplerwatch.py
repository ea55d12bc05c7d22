"""The supervisor's watch over a cell's timeline sampler.

The sampler is the cell's memory record and its `max_rss` guard, so a cell does not run on without one. When
it dies while the cell runs (killed from outside, a crash), it is started again on the same process tree: its
timeline goes on in the same files and the gap (from the last sample before the death to the first after the
restart) goes into status.json `sampler_gaps`. After `MAX_RESTARTS` restarts, or a restart that does not come
up, the watch gives up and the supervisor stops the cell with cause `sampler_lost`.

A sampler that exits 0 on its own saw the whole tree without memory: the root is exiting. A process frees its
memory before it becomes a zombie its parent can reap, and for tens of GiB that takes a noticeable time
(0.27 s for a 21 GiB RAGatouille 1M cell on an H100 host), so the supervisor waits for the root to end
(`saw_tree_end`) before it calls the sampler dead: otherwise every large cell would end with a false gap.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.clock import now_ns
from memharness.core.records import TIMELINE_ROW_BYTES

MAX_RESTARTS = 3
TREE_END_GRACE_S = 10.0  # how long a root whose memory is gone may take to exit before the sampler counts as dead


def _exit_text(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc}"


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def last_sample_ns(timeline: Path) -> int | None:
    """The time of the last row the sampler wrote (rows are whole: one write per tick)."""
    try:
        with open(timeline, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < TIMELINE_ROW_BYTES:
                return None
            fh.seek((size // TIMELINE_ROW_BYTES - 1) * TIMELINE_ROW_BYTES)
            return int.from_bytes(fh.read(8), "little", signed=True)
    except OSError:
        return None


@dataclass
class SamplerWatch:
    """`start(restart)` starts the sampler on the cell (restart: it takes over the timeline files);
    `guarding` says whether it enforces `max_rss` (for the message when it is lost)."""

    start: Callable[[bool], subprocess.Popen]
    cell_dir: Path
    guarding: bool
    proc: subprocess.Popen | None = None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    lost: str | None = None  # why the watch gave up: the cell is to be stopped

    def begin(self) -> subprocess.Popen:
        self.proc = self.start(False)
        return self.proc

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def saw_tree_end(self, cell: subprocess.Popen, stop_requested: Callable[[], int | None]) -> bool:
        """The sampler exited 0 (the tree had no memory left) while `cell` was not yet reaped: True once the cell
        ends within TREE_END_GRACE_S (not a gap), False when it does not or a stop is requested first."""
        if self.proc is None or self.proc.returncode != 0:
            return False
        deadline = now_ns() + int(TREE_END_GRACE_S * 1e9)
        while now_ns() < deadline and stop_requested() is None:
            try:
                cell.wait(timeout=0.05)
                return True
            except subprocess.TimeoutExpired:
                pass
        return cell.poll() is not None

    def restart(self) -> bool:
        """The sampler died while the cell runs: record the gap and start it again. False when the watch gives
        up (`lost` says why); raises OSError when the cell folder cannot be written."""
        assert self.proc is not None
        why = _exit_text(self.proc.returncode)
        said = _last_line(self.cell_dir / names.SAMPLER_LOG) if self.proc.returncode and \
            self.proc.returncode > 0 else ""
        if said:
            why += f" ({said})"
        gap: dict[str, Any] = {"from_ns": last_sample_ns(self.cell_dir / names.TIMELINE) or now_ns(),
                               "to_ns": None, "why": why}
        self.gaps.append(gap)
        if len(self.gaps) > MAX_RESTARTS:
            return self._give_up(f"the timeline sampler died {len(self.gaps)} times (the last time {why})")
        self.proc = self.start(True)
        if self.proc.poll() is not None:
            return self._give_up(f"the timeline sampler died ({why}) and could not be started again "
                                 f"({_exit_text(self.proc.returncode)})")
        gap["to_ns"] = now_ns()  # start() returns once the new sampler has taken its first sample
        return True

    def _give_up(self, what: str) -> bool:
        unguarded = "max_rss cannot be enforced" if self.guarding else "the process tree cannot be measured"
        self.lost = f"{what}; {unguarded} without it, so the cell was stopped"
        return False
