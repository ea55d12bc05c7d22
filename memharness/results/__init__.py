"""The run folder: the names of its files (`names`), its manifest (`read_manifest`), and the `Run` / `Cell`
model every tool that reads runs uses (report, compare, ls, the runner's resume, `memharness merge`).

Standard library only (numpy where a timeline is read), so any process (a cell's virtualenv included) can
import it.
"""

from memharness.results import names
from memharness.results.manifest import (
    MANIFEST,
    RUN_FORMAT,
    BrokenRunError,
    NotARunError,
    read_manifest,
)
from memharness.results.run import Cell, Run

__all__ = ["MANIFEST", "RUN_FORMAT", "BrokenRunError", "Cell", "NotARunError", "Run", "names", "read_manifest"]
