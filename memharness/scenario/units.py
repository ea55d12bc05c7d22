"""Parsing and formatting of collection sizes, durations and memory amounts as written in scenario files.

Each parser accepts the value as YAML hands it over (int, float or str) and raises `ValueError` with a
message naming the accepted forms; the messages end up verbatim in `memharness validate` output.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from memharness.numeric import is_number

SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
# Single letters and IEC names are powers of two; SI names (KB, MB, GB, TB) are powers of ten.
MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}

SIZE_FORMS = "a positive whole number such as 100000, 100_000, 100k, 1.5k or 2M"
DURATION_FORMS = "a number of seconds or a number with a unit: 500us, 50ms, 30s, 30m, 2h"
MEMORY_FORMS = (
    "bytes or a number with a unit: 500MiB, 20GiB, 20G (= GiB, powers of 2) or 1.5GB (powers of 10)"
)

_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def _split(value: str) -> tuple[Decimal, str] | None:
    """'1.5k' -> (Decimal('1.5'), 'k'); underscores between digits are allowed as in Python."""
    m = _NUMBER_UNIT.match(value.replace("_", "") if re.search(r"\d_\d", value) else value)
    if not m:
        return None
    try:
        return Decimal(m.group(1)), m.group(2).lower()
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        return None


def parse_size(value: object) -> int:
    """Number of records: 100000, "100_000", "100k", "100K", "1.5k", "2M", "1G" (k/M/G are 10**3/6/9)."""
    if is_number(value):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
    elif isinstance(value, str):
        parts = _split(value)
        if parts is None or parts[1] not in SIZE_UNITS:
            raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
        number = parts[0] * SIZE_UNITS[parts[1]]
    else:
        raise ValueError(f"invalid size {value!r}: expected {SIZE_FORMS}")
    if number != number.to_integral_value():
        raise ValueError(f"invalid size {value!r}: not a whole number of records")
    if number <= 0:
        raise ValueError(f"invalid size {value!r}: must be > 0")
    return int(number)


def format_size(n: int) -> str:
    """Short form of a size that `parse_size` reads back exactly: 100000 -> "100k", 1500000 -> "1.5M".

    Up to two decimals are used (1250 -> "1.25k"); sizes that need more stay plain (1234567 -> "1234567").
    """
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"size must be a positive int, got {n!r}")
    for suffix, unit in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= unit and (n * 100) % unit == 0:
            text = f"{Decimal(n) / unit:f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return text + suffix
    return str(n)


def parse_duration(value: object) -> float:
    """Seconds as a float: a number of seconds, or "500us", "50ms", "30s", "30m" (= "30min"), "2h"."""
    if is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        parts = _split(value)
        if parts is None or parts[1] not in DURATION_UNITS:
            raise ValueError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
        seconds = float(parts[0]) * DURATION_UNITS[parts[1]]
    else:
        raise ValueError(f"invalid duration {value!r}: expected {DURATION_FORMS}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds


def parse_memory(value: object) -> int:
    """Bytes as an int: a number of bytes, or "500MiB", "20GiB", "20G", "1.5GB", "512k".

    K/M/G/T and KiB/MiB/GiB/TiB are powers of 2 (G = GiB = 2**30); KB/MB/GB/TB are powers of 10
    (GB = 10**9). Units are case-insensitive. Fractions round to the nearest byte.
    """
    if is_number(value):
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            raise ValueError(
                f"invalid memory amount {value!r}: a plain number must be a whole number of bytes"
            )
        number = Decimal(int(value))
    elif isinstance(value, str):
        parts = _split(value)
        if parts is None or parts[1] not in MEMORY_UNITS:
            raise ValueError(f"invalid memory amount {value!r}: expected {MEMORY_FORMS}")
        number = (parts[0] * MEMORY_UNITS[parts[1]]).to_integral_value()
    else:
        raise ValueError(f"invalid memory amount {value!r}: expected {MEMORY_FORMS}")
    if number < 0:
        raise ValueError(f"invalid memory amount {value!r}: must be >= 0")
    return int(number)
