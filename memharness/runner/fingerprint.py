"""The environment fingerprint of an interpreter: what can change memory figures between two runs.

Taken in a separate process of the pipeline's interpreter (the probe), never inside a measured cell, so
importing torch to read its version does not add to the cell's memory.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
from typing import Any

MEMORY_ENV_VARS = (
    "PYTORCH_CUDA_ALLOC_CONF",
    "MALLOC_ARENA_MAX",
    "MALLOC_TRIM_THRESHOLD_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "TORCH_EXTENSIONS_DIR",
)

BASE_PACKAGES = ("numpy", "torch", "transformers", "tokenizers", "faiss-cpu", "faiss-gpu", "faiss-gpu-cu12",
                 "fastkmeans", "fast-pytorch-kmeans", "colbert-ai", "ragatouille", "datasets", "psutil")


def package_versions(names: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in dict.fromkeys(names):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def top_level_modules(paths: list[str] | tuple[str, ...]) -> list[str]:
    """The top-level package of each dotted target (`pylate.indexes.PLAID.add_documents` -> `pylate`) and
    of each `package.module:function` (a `callable` pipeline's function), in order, once each."""
    return list(dict.fromkeys(p.split(":", 1)[0].split(".", 1)[0] for p in paths if p and p[0] not in ".:"))


def module_distributions(modules: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """{top-level module: the installed distribution that provides it}; None for a module that no
    installed distribution provides (a local file next to the scenario, a folder on PYTHONPATH)."""
    if not modules:
        return {}
    provided = importlib.metadata.packages_distributions()
    return {m: (sorted(provided[m])[0] if provided.get(m) else None) for m in modules}


def direct_requirements(distribution: str) -> list[str]:
    """The distributions `distribution` requires (not its optional extras): a target's library pulls in
    the ones that decide its memory (PyLate: fast-plaid, sentence-transformers, torch)."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = []
    for req in requires:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match and "extra" not in req.partition(";")[2]:  # an optional extra's requirement: left out
            names.append(match.group(1))
    return names


def _torch_info() -> dict[str, Any] | None:
    try:
        import torch
    except Exception:  # noqa: BLE001 - no torch in this interpreter
        return None
    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": bool(torch.cuda.is_available())}
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001
        info["cudnn"] = None
    info["num_threads"] = torch.get_num_threads()
    return info


def _gpu_info() -> dict[str, Any] | None:
    from memharness.core.nvml import open_nvml

    nvml = open_nvml()
    if nvml is None:  # no NVML: no GPU section
        return None
    driver = nvml.driver()
    devices = [{"index": i, "name": nvml.name(h), "memory_total": nvml.total(h)}
               for i, h in enumerate(nvml.handles())]
    return {"driver": driver, "devices": devices}


def collect(packages: list[str] | tuple[str, ...] = (), modules: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """`packages`: distributions whose versions are recorded (the pipeline kind's `PACKAGES`); `modules`:
    top-level modules of the targets and `callable` functions, recorded in `target_packages` with the
    distribution that provides each (whose version, and the versions of what it requires, join
    `packages`)."""
    libc, libc_version = platform.libc_ver()
    provided = module_distributions(modules)
    dists = [d for d in provided.values() if d]
    packages = tuple(packages) + tuple(dists) + tuple(r for d in dists for r in direct_requirements(d))
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "glibc": libc_version if libc == "glibc" else None,
        "torch": _torch_info(),
        "gpu": _gpu_info(),
        "packages": package_versions(tuple(BASE_PACKAGES) + tuple(packages)),
        "target_packages": provided,
        "env": {k: os.environ.get(k) for k in MEMORY_ENV_VARS},
    }
