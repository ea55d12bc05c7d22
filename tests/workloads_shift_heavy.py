"""`workloads_shift.run`, reached through a module whose imports keep 150 MiB (tests/workloads_ballast.py)."""

from __future__ import annotations

import workloads_ballast  # noqa: F401 - imported for the memory it keeps
from workloads_shift import run

__all__ = ["run"]
