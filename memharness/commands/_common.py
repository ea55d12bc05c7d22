"""What several commands share: the `--format` choice of table-or-JSON commands, the baseline store path."""

from __future__ import annotations

from enum import Enum

from memharness.names import BASELINE_STORE

__all__ = ["BASELINE_STORE", "Format"]


class Format(str, Enum):
    """`--format`: a Markdown table or JSON."""

    md = "md"
    json = "json"
