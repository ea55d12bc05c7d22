"""What several commands share: the `--format` choice of table-or-JSON commands, the baseline store path."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

BASELINE_STORE = Path(".memharness") / "baselines.json"  # `baseline` and `compare --baseline`; relative to cwd


class Format(str, Enum):
    """`--format`: a Markdown table or JSON."""

    md = "md"
    json = "json"
