"""Synthetic corpus: deterministic passages of real vocabulary words, generated in vectorised chunks.

Chunk `i` is drawn from `numpy.random.default_rng([seed, i])` with a fixed chunk size, so record `k`
depends only on (seed, k, spec): the first n records are the same whatever the total generated.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator

import numpy as np

from memharness.corpus import lengths as lengths_mod
from memharness.corpus.errors import CorpusError
from memharness.corpus.vocab import load_words, vocab_path

# Bump when the bytes produced for a given spec change; cached corpora from other versions are rebuilt.
GENERATOR_VERSION = 1
CHUNK = 2048
ID_PREFIX = "syn-"

# The source's fields and their defaults, the only copy (the scenario schema reads them from here;
# `lengths` None means the defaults of memharness.corpus.lengths).
DEFAULTS: dict = {"source": "synthetic", "seed": 0, "records": None, "vocab": "minilm", "lengths": None}

# Punctuation glued to a word ("cell," / "cell."): each mark is one more token, as in real text.
# Every passage ends with a full stop (the mark END, which has no trailing space).
PUNCT = ("", ",", ".", ";")
PUNCT_CUMULATIVE = np.array([0.86, 0.94, 0.99], dtype=np.float32)
END = len(PUNCT)
VARIANTS = len(PUNCT) + 1


def normalize(spec: dict) -> dict:
    cfg = {**DEFAULTS, **spec}
    cfg["lengths"] = lengths_mod.normalize(spec.get("lengths"))
    seed = cfg["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise CorpusError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    records = cfg["records"]
    if records is not None and (not isinstance(records, int) or isinstance(records, bool) or records < 0):
        raise CorpusError(f"synthetic records must be a non-negative integer or null, got {records!r}")
    return cfg


def available(spec: dict) -> int | None:
    return spec["records"]


def check(spec: dict) -> None:
    _table(spec["vocab"])


def stamp(spec: dict) -> dict:
    return {"generator": GENERATOR_VERSION, "vocab_sha256": _vocab_digest(spec["vocab"])}


@functools.lru_cache(maxsize=4)
def _vocab_digest(vocab: str) -> str:
    return hashlib.sha256(vocab_path(vocab).read_bytes()).hexdigest()


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.compute
    except ImportError:
        raise CorpusError(
            "the synthetic corpus needs pyarrow: pip install 'memharness[corpora]'"
        ) from None
    return pyarrow, pyarrow.compute


class _Table:
    """Every (word, mark) pair as an Arrow string `word + mark + " "`; entry = rank * VARIANTS + mark.

    Arrow's `take` on this array concatenates the chosen entries in C++, so a chunk's text costs no
    per-word Python and only one copy of its bytes.
    """

    def __init__(self, words: tuple[str, ...]):
        pa, _ = _pyarrow()
        entries: list[str] = []
        for w in words:
            entries.extend(w + mark + " " for mark in PUNCT)
            entries.append(w + ".")  # END: last word of a passage
        self.words = words
        self.entries = pa.array(entries, pa.large_string())
        weights = 1.0 / np.arange(1, len(words) + 1, dtype=np.float64)  # Zipf-like: P(rank k) ~ 1/(k+1)
        self.accept, self.alias = _alias_table(weights / weights.sum())


def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table for `p`: 32-bit-scaled acceptance thresholds and alias indices.

    Sampling is then two uniform integers, a multiply-shift, two gathers and a comparison per word, all
    integer operations (no exp/log whose last bit can differ between CPUs' SIMD paths), so a seed gives
    the same bytes on every machine.
    """
    n = len(p)
    scaled = (p * n).tolist()
    small = [i for i, x in enumerate(scaled) if x < 1.0]
    large = [i for i, x in enumerate(scaled) if x >= 1.0]
    accept = [1.0] * n
    alias = list(range(n))
    while small and large:
        s, big = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], big
        scaled[big] = (scaled[big] + scaled[s]) - 1.0
        (small if scaled[big] < 1.0 else large).append(big)
    return np.floor(np.array(accept) * 2.0**32).astype(np.uint64), np.array(alias, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def _table(vocab: str) -> _Table:
    return _Table(load_words(vocab))


def _chunk_entries(table: _Table, seed: int, index: int, lengths_cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """Entry indices of chunk `index` (CHUNK passages) and each passage's end position in them."""
    rng = np.random.default_rng([seed, index])
    words_per_passage = lengths_mod.draw(rng, CHUNK, lengths_cfg)
    total = int(words_per_passage.sum())
    column = rng.integers(0, 2**32, size=total, dtype=np.uint32).astype(np.uint64)
    column = ((column * np.uint64(len(table.words))) >> np.uint64(32)).astype(np.int64)
    coin = rng.integers(0, 2**32, size=total, dtype=np.uint32)
    ranks = np.where(coin < table.accept[column], column, table.alias[column])
    u = rng.random(total, dtype=np.float32)
    marks = (u > PUNCT_CUMULATIVE[0]).astype(np.int64)
    for threshold in PUNCT_CUMULATIVE[1:]:
        marks += u > threshold
    passage_ends = np.cumsum(words_per_passage)
    marks[passage_ends - 1] = END
    return ranks * VARIANTS + marks, passage_ends


def iter_chunks(spec: dict, n: int) -> Iterator[tuple[memoryview, int]]:
    """JSONL bytes of the first `n` records, in chunks of at most CHUNK records."""
    records = spec["records"]
    if records is not None and n > records:
        raise CorpusError(f"synthetic corpus is capped at records={records}, {n} requested")
    pa, pc = _pyarrow()
    table = _table(spec["vocab"])
    frame = [pa.scalar(s, pa.large_string()) for s in ('{"id": "' + ID_PREFIX, '", "text": "', '"}\n', "")]
    done = 0
    index = 0
    while done < n:
        entries, passage_ends = _chunk_entries(table, spec["seed"], index, spec["lengths"])
        count = min(CHUNK, n - done)
        words = table.entries.take(pa.array(entries))
        word_offsets = np.frombuffer(words.buffers()[1], dtype=np.int64)
        offsets = np.concatenate(([0], word_offsets[passage_ends[:count]]))
        texts = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), words.buffers()[2])
        ids = pc.cast(pa.array(np.arange(done, done + count, dtype=np.int64)), pa.large_string())
        lines = pc.binary_join_element_wise(frame[0], ids, frame[1], texts, frame[2], frame[3])
        line_offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
        yield memoryview(lines.buffers()[2])[line_offsets[0] : line_offsets[count]], count
        done += count
        index += 1
