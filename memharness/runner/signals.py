"""SIGINT, SIGTERM and SIGHUP to `memharness run`: all three stop the run the same way.

The handler never raises inside a cell's start or wait (a `KeyboardInterrupt` between `Popen` and the
bookkeeping of the child would leave the cell, which runs in its own session, behind): while `deferred()`
is active it only records the signal, and the supervisor polls `requested()` at safe points. Outside
`deferred()` (preflight) the first signal raises `Interrupted` at once. Only the first signal ever
raises: a second one (Ctrl-C pressed twice) is ignored, so it cannot cut the clean-up of the first short.

A signal that was ignored when the run started stays ignored (`nohup memharness run ...` keeps running
after a hangup; a background job of a non-interactive shell ignores Ctrl-C), as the shell intends.

Exit codes follow the shell's convention, 128 + the signal number: 130 (SIGINT), 143 (SIGTERM),
129 (SIGHUP).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """The run was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); the cell is redone by `--resume`."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {signal_name(self.signum)}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_message(signum: int) -> str:
    """The message recorded in a cell's status.json."""
    if signum == signal.SIGINT:
        return "stopped by the user (Ctrl-C)"
    return f"stopped by {signal_name(signum)}"


class StopSignals:
    """Installs handlers for STOP_SIGNALS; use as a context manager around the whole run."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = 0
        self._raised = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for s in STOP_SIGNALS:
            try:
                if signal.getsignal(s) == signal.SIG_IGN:
                    continue  # ignored by whoever started us (`nohup`, a background job): keep it so
                self._saved[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._saved.items():
            signal.signal(s, old)
        self._saved.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.signum is not None:
            return  # a second signal never cuts the clean-up of the first short
        self.signum = signum
        if self._deferring == 0:
            self._raised = True
            raise Interrupted(signum)

    def requested(self) -> int | None:
        """The first stop signal received, if any."""
        return self.signum

    def check(self) -> None:
        """Raise Interrupted if a signal arrived and has not been raised yet."""
        if self.signum is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals inside only set the flag; the code inside polls `requested()` / calls `check()`."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
