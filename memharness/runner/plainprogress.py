"""Progress as plain lines where no terminal shows the progress bar (a log file, nohup, CI, a GPU host's job).

rich draws its bar only on a terminal; elsewhere it prints the bar's last state once, at the end, so a log
of a 20-minute cell says nothing for 20 minutes. This prints the bar's text as one line at most every
`every` seconds (`MEMHARNESS_PROGRESS_EVERY`, default 60; 0: never)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ENV = "MEMHARNESS_PROGRESS_EVERY"
DEFAULT_EVERY_S = 60.0


def every_from_env() -> float:
    """Seconds between lines from `MEMHARNESS_PROGRESS_EVERY`; a bad value is an error, not a silent default."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: expected seconds between progress lines (0: none)") from None
    if value < 0:
        raise ValueError(f"{ENV}={raw!r}: expected seconds >= 0 (0: no progress lines)")
    return value


class PlainProgress:
    """Keeps the bar's description and live text; `update` prints `description: live` when `every` seconds
    have passed since the last line (or since the description changed: a new cell's first line waits too)."""

    def __init__(self, emit: Callable[[str], None], every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit, self.every, self.clock = emit, every, clock
        self.description = ""
        self.live = ""
        self._last = clock()

    def update(self, description: str | None = None, live: str | None = None, **_: object) -> None:
        if description is not None and description != self.description:
            self.description = description
            self._last = self.clock()
        if live is not None:
            self.live = " ".join(live.split())
        if self.every <= 0 or not self.live:
            return
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self.emit(f"{self.description}: {self.live}" if self.description else self.live)
