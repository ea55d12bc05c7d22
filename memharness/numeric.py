"""What counts as a number in a file memharness reads (YAML, JSON): an int or a float, never a bool.

`True` is an `int` to Python, so `isinstance(x, (int, float))` alone would take `size: yes` or a
hand-edited `"peak": true` as 1. A leaf: standard library only, importable from anywhere.
"""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    """An int or a float that is not a bool (NaN and infinities included; callers that need finite check it)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
