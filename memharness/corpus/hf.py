"""Hugging Face `datasets` corpora: hub ids (DAPR by default) and local dataset files or folders."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from memharness.corpus.errors import CorpusError
from memharness.corpus.jsonl import BATCH, encode

DAPR_PATH = "UKPLab/dapr"
DAPR_NAME = "Genomics-corpus"
# The source's fields and their defaults, the only copy: the scenario schema (memharness.scenario.schema)
# reads them from here (a scenario must give `path`). `split` "train" and `id_field` None (number the
# records) are what every run so far used: the schema filled them in before this module saw the spec.
DEFAULTS: dict = {
    "source": "hf", "path": DAPR_PATH, "name": None, "split": "train", "text_field": "text",
    "id_field": None, "revision": None, "data_files": None,
}
OFFLINE_SCENARIO = "scenarios/quickstart.yaml"
PACKAGED_BUILDERS = {"arrow", "csv", "json", "pandas", "parquet", "text"}
_CONNECTION_MARKERS = ("Connection", "OfflineMode", "LocalEntryNotFound", "NameResolution", "Timeout")


def normalize(spec: dict) -> dict:
    cfg = {**DEFAULTS, **spec}
    cfg["path"] = str(cfg["path"])
    if cfg["path"] == DAPR_PATH and cfg["name"] is None:
        cfg["name"] = DAPR_NAME  # the DAPR default config only goes with the DAPR default path
    elif Path(cfg["path"]).exists():
        cfg["path"] = os.path.abspath(cfg["path"])  # the cache key must not depend on the cwd
    if not cfg["text_field"]:
        raise CorpusError("hf corpus needs a text_field")
    return cfg


def _datasets():
    try:
        import datasets
    except ImportError:
        raise CorpusError(
            "the hf corpus source needs the 'datasets' package: pip install 'memharness[corpora]'"
        ) from None
    return datasets


def _is_local(spec: dict) -> bool:
    return Path(spec["path"]).exists() or spec["path"] in PACKAGED_BUILDERS


def _is_saved_to_disk(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "state.json").is_file() or (p / "dataset_dict.json").is_file())


def _offline_env() -> bool:
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or None when a TCP connection to it succeeds (or a proxy is set)."""
    if _offline_env():
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a direct probe says nothing about a proxy; let the real request decide
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"no connection to {host}:{port}: {exc}"
    return None


def hub_error(path: str, reason: str) -> CorpusError:
    cache_hint = (
        "it is not in the local Hugging Face cache either"
        if _offline_env()
        else "if it is already in the local Hugging Face cache, set HF_HUB_OFFLINE=1"
    )
    return CorpusError(
        f"the Hugging Face hub cannot be reached from this machine ({reason}), so the dataset {path!r} "
        f"cannot be loaded; {cache_hint}. Run the offline scenario {OFFLINE_SCENARIO} (synthetic corpus) "
        "instead, or point the corpus at a local copy (source: hf with a local folder, or source: file)."
    )


def _is_connection_error(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, ConnectionError) or any(m in type(chain).__name__ for m in _CONNECTION_MARKERS):
            return True
        if "Couldn't reach" in str(chain):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _wrap(spec: dict, exc: Exception) -> CorpusError:
    if not _is_local(spec) and _is_connection_error(exc):
        return hub_error(spec["path"], f"{type(exc).__name__}: {exc}")
    where = spec["path"] if spec["name"] is None else f"{spec['path']} (config {spec['name']})"
    return CorpusError(f"cannot load Hugging Face dataset {where}, split {spec['split']!r}: {exc}")


def _builder(spec: dict):
    datasets = _datasets()
    try:
        return datasets.load_dataset_builder(
            spec["path"], spec["name"], revision=spec["revision"], data_files=spec["data_files"]
        )
    except Exception as exc:
        raise _wrap(spec, exc) from None


def _check_fields(spec: dict, fields: list[str]) -> None:
    for field, role in ((spec["text_field"], "text"), (spec["id_field"], "id")):
        if field is not None and field not in fields:
            raise CorpusError(
                f"Hugging Face dataset {spec['path']}: {role} field {field!r} not found; "
                f"fields present: {fields}"
            )


def load(spec: dict):
    """The split as a (memory-mapped) `datasets.Dataset`."""
    datasets = _datasets()
    if not _is_local(spec):
        reason = _hub_unreachable_reason()
        if reason is not None and not (_offline_env() and datasets.config.HF_HUB_OFFLINE):
            raise hub_error(spec["path"], reason)
    try:
        if _is_saved_to_disk(spec["path"]):
            ds = datasets.load_from_disk(spec["path"])
            if isinstance(ds, datasets.DatasetDict):
                if spec["split"] not in ds:
                    raise CorpusError(f"{spec['path']}: no split {spec['split']!r}; splits: {sorted(ds)}")
                ds = ds[spec["split"]]
        else:
            ds = datasets.load_dataset(
                spec["path"], spec["name"], split=spec["split"], revision=spec["revision"],
                data_files=spec["data_files"],
            )
    except CorpusError:
        raise
    except Exception as exc:
        raise _wrap(spec, exc) from None
    _check_fields(spec, list(ds.column_names))
    return ds


def _split_files(builder, spec: dict) -> list[str] | None:
    """Data files of `split` for builders over local files; None when the builder does not list them."""
    data_files = getattr(builder.config, "data_files", None)
    if not data_files:
        return None
    split = spec["split"]
    if split not in data_files:
        splits = sorted(str(k) for k in data_files)
        raise CorpusError(f"Hugging Face dataset {spec['path']}: no split {split!r}; splits: {splits}")
    return [str(f) for f in data_files[split]]


def _parquet_only(files: list[str] | None) -> list[str]:
    return files if files and all(f.endswith(".parquet") for f in files) else []


def check(spec: dict) -> None:
    _datasets()
    if _is_saved_to_disk(spec["path"]):
        load(spec)
        return
    if not _is_local(spec):
        reason = _hub_unreachable_reason()
        if reason is not None:
            # Offline mode: fine if the dataset is in the local cache. Only ask datasets when it was
            # imported in offline mode too; otherwise it would retry the network for ~20 s.
            if not (_offline_env() and _datasets().config.HF_HUB_OFFLINE):
                raise hub_error(spec["path"], reason)
            try:
                _datasets().load_dataset_builder(spec["path"], spec["name"], revision=spec["revision"])
            except Exception:
                raise hub_error(spec["path"], reason) from None
    builder = _builder(spec)
    files = _split_files(builder, spec)
    if builder.info.features is not None:
        _check_fields(spec, list(builder.info.features))
    elif _parquet_only(files) and _is_local(spec):
        import pyarrow.parquet as pq

        _check_fields(spec, list(pq.read_schema(files[0]).names))


def available(spec: dict) -> int | None:
    try:
        _datasets()
        if _is_saved_to_disk(spec["path"]):
            return len(load(spec))
        if not _is_local(spec) and _hub_unreachable_reason() is not None:
            if not (_offline_env() and _datasets().config.HF_HUB_OFFLINE):
                return None
        builder = _builder(spec)
        splits = builder.info.splits
        if splits and spec["split"] in splits and splits[spec["split"]].num_examples:
            return int(splits[spec["split"]].num_examples)
        files = _parquet_only(_split_files(builder, spec))
        if files and _is_local(spec):
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except CorpusError:
        return None
    return None


def stamp(spec: dict) -> dict:
    """Local data: sizes and mtimes, so an edited copy is re-materialised. Hub data: pin `revision`."""
    path = Path(spec["path"])
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        name = f.name if f == path else f.relative_to(path)
        digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return {"files": digest.hexdigest()}


def iter_chunks(spec: dict, n: int) -> Iterator[tuple[bytes, int]]:
    ds = load(spec)
    if len(ds) < n:
        raise CorpusError(
            f"Hugging Face dataset {spec['path']} split {spec['split']!r} holds {len(ds)} records, "
            f"{n} requested"
        )
    text_field, id_field = spec["text_field"], spec["id_field"]
    ds = ds.select_columns([text_field] if id_field is None else [text_field, id_field])
    for start in range(0, n, BATCH):
        stop = min(start + BATCH, n)
        batch = ds[start:stop]  # column dict of one slice only: memory stays bounded
        texts = batch[text_field]
        ids = range(start, stop) if id_field is None else batch[id_field]
        parts = [encode(str(i), "" if t is None else str(t)) for i, t in zip(ids, texts, strict=True)]
        yield b"".join(parts), len(parts)
