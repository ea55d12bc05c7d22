"""Corpus sources (`synthetic`, `hf`, `file`), materialised once per run into JSONL.

See docs/corpus.md. Heavy libraries (datasets, pyarrow) are imported only when a source needs them.
"""

from memharness.corpus.cache import available, check, estimate_bytes, materialize
from memharness.corpus.errors import CorpusError
from memharness.corpus.reader import read_slice
from memharness.corpus.sources import SOURCES, cache_key, normalize

__all__ = [
    "CorpusError", "SOURCES", "available", "cache_key", "check", "estimate_bytes", "materialize", "normalize",
    "read_slice",
]
