"""Materialising a corpus source once into `<cache_dir>/corpora/<key>.jsonl` (+ `<key>.json` meta)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

from memharness.corpus.errors import CorpusError
from memharness.corpus.sources import cache_key, normalize, source_of

Progress = Callable[[int, int], None]


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    folder = Path(cache_dir) / "corpora"
    return folder / f"{key}.jsonl", folder / f"{key}.json"


def _reusable(data: Path, meta: Path, n: int, stamp: dict) -> bool:
    """A cached file counts only with its meta, enough records, the same source stamp and the full size."""
    if not (data.is_file() and meta.is_file()):
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(info, dict)
        and info.get("count", -1) >= n
        and info.get("stamp") == stamp
        and info.get("bytes") == data.stat().st_size
    )


def _write_atomic(target: Path, write: Callable[[object], None]) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def materialize(spec: dict, n: int, cache_dir: Path, progress: Progress | None = None) -> Path:
    """Path of a JSONL file whose first `n` lines are the source's first `n` records.

    Reuses a cached file holding at least `n` records; otherwise writes a temporary file and renames it
    into place, then writes the meta last, so an interrupted run never leaves a file that looks complete.
    """
    if n < 0:
        raise CorpusError(f"cannot materialise a negative number of records ({n})")
    cfg = normalize(spec)
    module = source_of(cfg)
    key = cache_key(cfg)
    data, meta = _paths(cache_dir, key)
    stamp = module.stamp(cfg)
    if _reusable(data, meta, n, stamp):
        if progress is not None:
            progress(n, n)
        return data
    data.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def write(fh) -> None:
        nonlocal count
        for chunk, records in module.iter_chunks(cfg, n):
            fh.write(chunk)
            count += records
            if progress is not None:
                progress(count, n)
        if count != n:
            raise CorpusError(f"corpus source produced {count} records, {n} requested")

    _write_atomic(data, write)
    info = {
        "spec": cfg,
        "count": count,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bytes": data.stat().st_size,
        "stamp": stamp,
    }
    _write_atomic(meta, lambda fh: fh.write((json.dumps(info, indent=2) + "\n").encode("utf-8")))
    return data


def estimate_bytes(spec: dict, n: int, cache_dir: Path, sample: int = 1000) -> int | None:
    """Bytes `materialize(spec, n, cache_dir)` would write: 0 when the cache already holds them, else the
    mean record size of the first `sample` records times `n` (None for hub datasets: not read here)."""
    cfg = normalize(spec)
    module = source_of(cfg)
    data, meta = _paths(cache_dir, cache_key(cfg))
    if _reusable(data, meta, n, module.stamp(cfg)):
        return 0
    if cfg.get("source") == "hf" or n <= 0:
        return None
    total = count = 0
    for chunk, records in module.iter_chunks(cfg, min(n, sample)):
        total += len(chunk)
        count += records
    return int(total / count * n) if count else None


def available(spec: dict) -> int | None:
    """How many records the source holds, or None when unknown without loading it all."""
    cfg = normalize(spec)
    return source_of(cfg).available(cfg)


def check(spec: dict) -> None:
    """Preflight: raise CorpusError with a clear message when the source cannot be used."""
    cfg = normalize(spec)
    source_of(cfg).check(cfg)
