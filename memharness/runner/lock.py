"""One writer per run folder: `flock` on `<run>/.lock`, which holds the writer's pid.

The kernel drops an flock when its holder exits, however it exits, so a crashed run never leaves a stale
lock; the pid in the file is only read to name the holder in the refusal.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from memharness import names
from memharness.errors import MemharnessError


class RunLocked(MemharnessError):
    """Another process is writing into the run folder."""


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / names.LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise RunLocked(f"{self.path.parent} is in use by another memharness run (pid {holder}); "
                            f"wait for it to end or stop it first") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError:
            pass  # a full disk: the lock holds without the pid
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (its pid is stale but harmless)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
