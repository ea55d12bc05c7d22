"""The one base class of memharness's own errors.

Every error a user can cause (a bad scenario, a broken run folder, a missing extra, a busy run) derives from
`MemharnessError`; the command line catches it once, prints `error: <message>` and exits with the error's
`exit_code`. Standard library only: the measured cell process imports it too.
"""

from __future__ import annotations


class MemharnessError(Exception):
    """An error whose message is meant for the user; `exit_code` is what `memharness` exits with (2 unless
    the class or the raise says otherwise)."""

    exit_code: int = 2

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code
