"""Corpus sources (`synthetic`, `hf`, `file`), materialised once per run into JSONL.

See docs/corpus.md. Heavy libraries (datasets, pyarrow) are imported only when a source needs them, and
nothing here is loaded until asked for (PEP 562): a measured cell imports `memharness.corpus.reader` alone.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "available": "memharness.corpus.cache", "check": "memharness.corpus.cache",
    "estimate_bytes": "memharness.corpus.cache", "materialize": "memharness.corpus.cache",
    "CorpusError": "memharness.corpus.errors", "read_slice": "memharness.corpus.reader",
    "SOURCES": "memharness.corpus.sources", "cache_key": "memharness.corpus.sources",
    "normalize": "memharness.corpus.sources",
}

__all__ = [
    "CorpusError", "SOURCES", "available", "cache_key", "check", "estimate_bytes", "materialize", "normalize",
    "read_slice",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memharness.corpus' has no attribute {name!r}")
    return getattr(import_module(module), name)
