"""Local file corpora: jsonl, parquet, csv, tsv, txt (one passage per line)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from memharness.corpus.errors import CorpusError
from memharness.corpus.jsonl import chunked

# The source's fields and their defaults, the only copy (the scenario schema reads them from here);
# `path` (None here) is required.
DEFAULTS: dict = {"source": "file", "path": None, "format": "auto", "text_field": "text", "id_field": None}
FORMATS = ("jsonl", "parquet", "csv", "tsv", "txt")
EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "txt",
}
PARQUET_BATCH = 8192

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # passages may exceed csv's 128 KiB default


def normalize(spec: dict) -> dict:
    cfg = {**DEFAULTS, **spec}
    if not cfg["path"]:
        raise CorpusError("file corpus needs a 'path'")
    cfg["path"] = os.path.abspath(cfg["path"])  # the cache key must not depend on the cwd
    if cfg["format"] != "auto" and cfg["format"] not in FORMATS:
        raise CorpusError(
            f"file corpus format must be 'auto' or one of {list(FORMATS)}, got {cfg['format']!r}"
        )
    return cfg


def file_format(spec: dict) -> str:
    if spec["format"] != "auto":
        return spec["format"]
    path = Path(spec["path"])
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    fmt = EXTENSIONS.get(suffix.lower())
    if fmt is None:
        raise CorpusError(
            f"cannot tell the format of {path} from its extension; set format to one of {list(FORMATS)}"
        )
    return fmt


def _open_text(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _missing(field: str, role: str, fields: list[str], path: str) -> CorpusError:
    return CorpusError(f"{path}: {role} field {field!r} not found; fields present: {fields}")


def _from_mappings(rows: Iterator[dict], spec: dict, fields_of) -> Iterator[tuple[str, str]]:
    text_field, id_field = spec["text_field"], spec["id_field"]
    for index, row in enumerate(rows):
        if text_field not in row:
            raise _missing(text_field, "text", fields_of(row), spec["path"])
        if id_field is not None and id_field not in row:
            raise _missing(id_field, "id", fields_of(row), spec["path"])
        text = row[text_field]
        yield (str(index) if id_field is None else str(row[id_field])), ("" if text is None else str(text))


def _jsonl_rows(path: str) -> Iterator[dict]:
    with _open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise CorpusError(f"{path}:{number}: expected a JSON object per line")
            yield row


def _csv_rows(path: str, delimiter: str) -> Iterator[dict]:
    with _open_text(path) as fh:
        yield from csv.DictReader(fh, delimiter=delimiter)


def _txt_records(path: str) -> Iterator[tuple[str, str]]:
    with _open_text(path) as fh:
        for index, line in enumerate(fh):
            text = line.rstrip("\r\n")
            if text.strip():
                yield str(index), text


def _parquet_records(spec: dict) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    path, text_field, id_field = spec["path"], spec["text_field"], spec["id_field"]
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    for field, role in ((text_field, "text"), (id_field, "id")):
        if field is not None and field not in names:
            raise _missing(field, role, names, path)
    columns = [text_field] if id_field is None else [text_field, id_field]
    offset = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=columns):
        texts = batch.column(text_field).to_pylist()
        ids = (
            [str(i) for i in range(offset, offset + len(texts))]
            if id_field is None
            else [str(v) for v in batch.column(id_field).to_pylist()]
        )
        offset += len(texts)
        for record_id, text in zip(ids, texts, strict=True):
            yield record_id, "" if text is None else str(text)


def records(spec: dict) -> Iterator[tuple[str, str]]:
    fmt, path = file_format(spec), spec["path"]
    if fmt == "jsonl":
        return _from_mappings(_jsonl_rows(path), spec, lambda row: sorted(row))
    if fmt in ("csv", "tsv"):
        return _from_mappings(_csv_rows(path, "," if fmt == "csv" else "\t"), spec, lambda row: list(row))
    if fmt == "txt":
        return _txt_records(path)
    return _parquet_records(spec)


def check(spec: dict) -> None:
    path = spec["path"]
    if not os.path.isfile(path):
        raise CorpusError(f"corpus file not found: {path}")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"corpus file not readable: {path}")
    try:
        next(records(spec), None)  # reads the first record: proves the format and the fields
    except CorpusError:
        raise
    except Exception as exc:  # parser errors of any library become one clear message
        raise CorpusError(f"cannot read {path} as {file_format(spec)}: {exc}") from None


def available(spec: dict) -> int | None:
    if not os.path.isfile(spec["path"]):
        raise CorpusError(f"corpus file not found: {spec['path']}")
    try:
        return _count(spec)
    except CorpusError:
        raise
    except Exception as exc:  # parser errors of any library become one clear message
        raise CorpusError(f"cannot read {spec['path']} as {file_format(spec)}: {exc}") from None


def _count(spec: dict) -> int:
    fmt, path = file_format(spec), spec["path"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt in ("csv", "tsv"):
        # Rows, not lines: quoted fields may hold newlines.
        return sum(1 for _ in _csv_rows(path, "," if fmt == "csv" else "\t"))
    with _open_text(path) as fh:
        return sum(1 for line in fh if line.strip())


def stamp(spec: dict) -> dict:
    if not os.path.isfile(spec["path"]):
        raise CorpusError(f"corpus file not found: {spec['path']}")
    st = os.stat(spec["path"])
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def iter_chunks(spec: dict, n: int) -> Iterator[tuple[bytes, int]]:
    done = 0
    source = records(spec)
    limited = (record for _, record in zip(range(n), source, strict=False))  # stops after n records
    chunks = chunked(limited)
    while True:
        try:
            chunk, count = next(chunks)
        except StopIteration:
            break
        except CorpusError:
            raise
        except Exception as exc:  # parser errors of any library become one clear message
            raise CorpusError(f"cannot read {spec['path']} as {file_format(spec)}: {exc}") from None
        done += count
        yield chunk, count
    if done < n:
        raise CorpusError(f"{spec['path']} holds {done} records, {n} requested")
