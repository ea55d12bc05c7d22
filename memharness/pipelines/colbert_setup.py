"""Shared by the `colbert` and `ragatouille` kinds: device selection, C++ extension warm-up, artifacts.

colbert-ai compiles its C++/CUDA extensions with `torch.utils.cpp_extension.load` the first time a class
needs them (about 30 s each on a 2-core host, 100 s on a fresh GPU host), caching the build under
`TORCH_EXTENSIONS_DIR` or `~/.cache/torch_extensions/`. `warm_extensions` loads the ones indexing uses
during `prepare`, so neither the compile nor the first load is charged to the measured run.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from memharness.errors import MemharnessError
from memharness.pipelines.base import CellContext, Pipeline
from memharness.pipelines.options import with_defaults

# (module, class) whose `try_load_torch_extensions(use_gpu)` indexing reaches, and the extension names
# each loads on CPU / GPU. ColBERT (the base of Checkpoint) loads segmented_maxsim_cpp on CPU only;
# ResidualCodec (built in CollectionIndexer.train) loads decompress_residuals_cpp and packbits_cpp on GPU
# only. StridedTensor and IndexScorer extensions are for search, not indexing.
EXTENSION_LOADERS: list[tuple[str, str, dict[bool, list[str]]]] = [
    ("colbert.modeling.colbert", "ColBERT", {False: ["segmented_maxsim_cpp"], True: []}),
    ("colbert.indexing.codecs.residual", "ResidualCodec",
     {False: [], True: ["decompress_residuals_cpp", "packbits_cpp"]}),
]


class DeviceError(MemharnessError, RuntimeError):
    """The requested device cannot be used in this process."""


def select_device(device: str) -> bool:
    """Make colbert run on `device` ("cpu" or "cuda"); return whether it uses the GPU.

    colbert decides at import time (`RunSettings.total_visible_gpus = torch.cuda.device_count()`,
    `colbert.parameters.DEVICE`), so on a GPU host "cpu" has to hide the GPUs before CUDA initialises.
    """
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import torch

        if torch.cuda.is_available():
            raise DeviceError(
                "device cpu was asked for, but CUDA was initialised in this process before memharness "
                "could hide the GPUs; start the cell with CUDA_VISIBLE_DEVICES= (empty)"
            )
        return False
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(
                f"device cuda was asked for, but torch {torch.__version__} sees no GPU "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        return True
    raise DeviceError(f"unknown device {device!r}; use cpu or cuda")


def _extension_file(name: str) -> Path | None:
    try:
        from torch.utils.cpp_extension import _get_build_directory
    except ImportError:  # private helper; only used to tell "compiled" from "loaded from cache"
        return None
    return Path(_get_build_directory(name, verbose=False)) / f"{name}.so"


def warm_extensions(use_gpu: bool) -> list[dict[str, Any]]:
    """Compile (first time) or load colbert's extensions for indexing on this device.

    Returns one record per extension: name, class, seconds, compiled (no cached build before), path.
    """
    import importlib

    records: list[dict[str, Any]] = []
    for module_name, class_name, names in EXTENSION_LOADERS:
        cls = getattr(importlib.import_module(module_name), class_name)
        wanted = names[use_gpu]
        if not wanted:
            continue
        files = {name: _extension_file(name) for name in wanted}
        before = {name: (f.stat().st_mtime_ns if f is not None and f.exists() else None)
                  for name, f in files.items()}
        already = hasattr(cls, "loaded_extensions")
        t0 = time.monotonic()
        cls.try_load_torch_extensions(use_gpu)
        seconds = time.monotonic() - t0
        for name in wanted:
            f = files[name]
            after = f.stat().st_mtime_ns if f is not None and f.exists() else None
            records.append({
                "name": name,
                "class": f"{module_name}.{class_name}",
                "seconds": round(seconds, 3),
                "already_loaded": already,
                "compiled": None if f is None else (after is not None and after != before[name]),
                "path": None if f is None else str(f),
            })
    return records


def loaded_extension_classes() -> list[str]:
    """Extension-loading classes that have loaded their extensions in this process."""
    loaded = []
    for module_name, class_name, _ in EXTENSION_LOADERS:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module else None
        if cls is not None and hasattr(cls, "loaded_extensions"):
            loaded.append(f"{module_name}.{class_name}")
    return loaded


def list_artifacts(index_path: Path) -> dict[str, int]:
    """File name -> size in bytes of an index folder (what a cell leaves behind)."""
    index_path = Path(index_path)
    if not index_path.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in sorted(index_path.iterdir()) if p.is_file()}


def index_summary(index_path: Path) -> dict[str, Any]:
    """num_chunks / num_partitions / num_embeddings / avg_doclen from colbert's metadata.json."""
    import json

    try:
        with open(Path(index_path) / "metadata.json", encoding="utf-8") as fh:
            meta = json.load(fh)
    except (FileNotFoundError, ValueError):
        return {}
    summary = {k: meta.get(k) for k in ("num_chunks", "num_partitions", "num_embeddings", "avg_doclen")}
    config = meta.get("config", {})
    summary.update({k: config.get(k) for k in ("nbits", "dim", "doc_maxlen", "kmeans_niters", "index_bsize")})
    return summary


def record_index(ctx, index_path: Path, extensions_before: set[str]) -> None:
    """Facts about the finished index for the cell's fingerprint (shared by the colbert and ragatouille kinds)."""
    ctx.info["index_path"] = str(index_path)
    ctx.info["index"] = index_summary(Path(index_path))
    ctx.info["artifacts"] = list_artifacts(Path(index_path))
    ctx.info["extensions_loaded_during_run"] = sorted(set(loaded_extension_classes()) - extensions_before)


class ColbertFamilyPipeline(Pipeline):
    """Base of the kinds built on colbert-ai (`colbert`, `ragatouille`)."""

    @classmethod
    def options(cls, ctx: CellContext) -> dict[str, Any]:
        """The options the adapter runs with: the kind's defaults, the scenario's options over them, and
        `index_name` defaulting to the pipeline's name."""
        opts = with_defaults(cls.option_set, ctx.options)
        opts["index_name"] = opts["index_name"] or ctx.pipeline or "index"
        return opts

    @classmethod
    def index_path(cls, ctx: CellContext) -> Path:
        """`<work>/<experiment>/indexes/<index_name>`: colbert's option `experiment`; RAGatouille always uses
        the experiment "colbert" (ragatouille.models.colbert.ColBERT.index)."""
        opts = cls.options(ctx)
        return Path(ctx.workdir) / opts.get("experiment", "colbert") / "indexes" / opts["index_name"]


def remove_stale_index(index_path: Path, overwrite: Any) -> None:
    """An index left by an earlier attempt, removed in `prepare` when the options overwrite it anyway:
    colbert's overwrite=True sleeps 20 s before deleting old files, which must not land in the measurement."""
    if index_path.exists() and overwrite is True:
        shutil.rmtree(index_path)
