"""Reading what a run left on disk, for every tool that reads runs (report, ls, compare).

Standard library only, so any process (a cell's virtualenv included) can import it.
"""

from memharness.results.manifest import (
    MANIFEST,
    RUN_FORMAT,
    BrokenRunError,
    NotARunError,
    read_manifest,
)

__all__ = ["MANIFEST", "RUN_FORMAT", "BrokenRunError", "NotARunError", "read_manifest"]
