"""The bisect folder and its state file, `bisect.json`: everything `--resume` needs to go on.

    <bisect>/bisect.json        the request, the candidates, every step so far, the step in flight, the result
    <bisect>/bisect.md          the table and the conclusion (written at the end)
    <bisect>/scenarios/V.yaml   the derived scenario of each version's step
    <bisect>/runs/V/<scenario>/<run-id>/   each version's run folder (memharness report / compare read it)
    <bisect>/logs/V.log         each step's `memharness run` output

`bisect.json` is rewritten atomically after every change; a step in flight (`running`) is finished with
`memharness run --resume` of its run folder when the bisect is resumed. One bisect works in a folder at a
time (a lock file, `bisect.lock`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import read_json, write_json
from memharness.errors import MemharnessError

STATE_FILE = names.BISECT_STATE
LOCK_FILE = names.BISECT_LOCK
FORMAT = 1


class State:
    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder, self.data = Path(folder), data
        self._lock = None

    @classmethod
    def create(cls, folder: Path, data: dict[str, Any]) -> State:
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise MemharnessError(f"--output {folder}: not empty; give a new folder, or --resume it")
        folder.mkdir(parents=True, exist_ok=True)
        state = cls(folder, {"format": FORMAT, **data, "steps": [], "running": None, "result": None})
        state.lock()
        state.save()
        return state

    @classmethod
    def load(cls, folder: Path) -> State:
        folder = Path(folder)
        path = folder / STATE_FILE
        if not path.exists():
            raise MemharnessError(f"--resume {folder}: not a bisect folder (no {STATE_FILE})")
        try:
            data = read_json(path)
        except ValueError as exc:
            raise MemharnessError(f"--resume {folder}: {STATE_FILE} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or "candidates" not in data:
            raise MemharnessError(f"--resume {folder}: {STATE_FILE} is not a bisect state of format {FORMAT}")
        state = cls(folder, data)
        state.lock()
        return state

    def lock(self) -> None:
        fh = open(self.folder / LOCK_FILE, "a+")  # noqa: SIM115 - held for the life of the bisect
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise MemharnessError(f"{self.folder} is in use by another memharness bisect (pid {holder})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock = fh

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def save(self) -> None:
        write_json(self.folder / STATE_FILE, self.data)

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.data["steps"]

    def verdicts(self) -> dict[int, str]:
        return {s["index"]: s["verdict"] for s in self.steps}

    def step_of(self, index: int) -> dict[str, Any] | None:
        return next((s for s in self.steps if s["index"] == index), None)

    def add_step(self, step: dict[str, Any]) -> None:
        self.data["steps"] = [s for s in self.steps if s["index"] != step["index"]] + [step]
        self.data["running"] = None
        self.save()
