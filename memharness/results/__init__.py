"""The run folder, end to end: the names of its files (`names`), writing it (`writer`), reading it (`Run` /
`CellFolder`, `read_manifest`), the figures every consumer reads (`figures`, `phases`) and merging runs
(`merge`).

`names` is a leaf (standard library only) that any module may import, the measured processes' `core`
included; everything else here is loaded on first use (PEP 562), so importing `memharness.names`
costs nothing more.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "MANIFEST": "memharness.names",
    "RUN_FORMAT": "memharness.results.manifest",
    "BrokenRunError": "memharness.results.manifest",
    "NotARunError": "memharness.results.manifest",
    "read_manifest": "memharness.results.manifest",
    "CellFolder": "memharness.results.run",
    "Run": "memharness.results.run",
}

__all__ = ["MANIFEST", "RUN_FORMAT", "BrokenRunError", "CellFolder", "NotARunError", "Run", "read_manifest"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memharness.results' has no attribute {name!r}")
    return getattr(import_module(module), name)
