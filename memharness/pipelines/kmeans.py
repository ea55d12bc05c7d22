"""Which k-means ColBERT's `CollectionIndexer.train` runs: faiss as installed, or fastkmeans as a drop-in.

colbert-ai calls `faiss.Kmeans(dim, k, niter=..., gpu=torch.cuda.is_available(), verbose=True, seed=123)`
in `colbert.indexing.collection_indexer.compute_faiss_kmeans`, through that module's global `faiss`.
With faiss-cpu on a GPU host that call cannot use the GPU (faiss-cpu 1.15 turns gpu=True into
get_num_gpus() == 0 and silently clusters on CPU: one iteration over 1.3M vectors took 190 s on an H100
host; other versions fail outright). The choices:

- `faiss`: the installed faiss, call site untouched; on a cuda device it must have GPU support, otherwise
  `KmeansUnavailable` is raised before indexing with what to do;
- `faiss-cpu`: the installed faiss with `gpu=False` forced (accept CPU k-means on a GPU host);
- `fastkmeans`: `fastkmeans.FastKMeans` (torch/triton) behind faiss.Kmeans' constructor/`train`/`centroids`;
- `auto` (default): faiss on CPU; on cuda faiss when it has GPUs, else fastkmeans when importable, else the
  same error as `faiss`.

Only the call site's module global is swapped (for the duration of the run), so nothing else that uses
faiss is affected.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from memharness.errors import MemharnessError

CHOICES = ("auto", "faiss", "faiss-cpu", "fastkmeans")
CALL_SITE = "colbert.indexing.collection_indexer"
FAISS_DISTRIBUTIONS = ("faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-gpu", "faiss-cpu", "faiss")


class KmeansUnavailable(MemharnessError, RuntimeError):
    """The requested k-means backend cannot run on this host/device."""


@dataclass
class KmeansChoice:
    requested: str
    backend: str  # "faiss" or "fastkmeans"
    gpu: bool
    patched: bool  # whether colbert's call site is redirected
    faiss_distribution: str | None
    faiss_version: str | None
    faiss_gpus: int
    fastkmeans_version: str | None

    @property
    def label(self) -> str:
        if self.backend == "fastkmeans":
            return f"fastkmeans {self.fastkmeans_version} ({'gpu' if self.gpu else 'cpu'})"
        return f"{self.faiss_distribution or 'faiss'} {self.faiss_version} ({'gpu' if self.gpu else 'cpu'})"

    def info(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def faiss_facts() -> tuple[str | None, str | None, int]:
    """(distribution, version, number of GPUs faiss can use) of the installed faiss."""
    import faiss

    distribution = next((d for d in FAISS_DISTRIBUTIONS if dist_version(d)), None)
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    gpus = int(get_num_gpus()) if get_num_gpus is not None else 0
    return distribution, getattr(faiss, "__version__", None), gpus


def fastkmeans_version() -> str | None:
    if importlib.util.find_spec("fastkmeans") is None:
        return None
    return dist_version("fastkmeans") or "unknown"


def no_gpu_faiss_message(distribution: str | None, version: str | None) -> str:
    return (
        f"k-means: {distribution or 'faiss'} {version} has no GPU support (faiss.get_num_gpus() == 0), "
        "so ColBERT's faiss.Kmeans(..., gpu=True) cannot run on the GPU. Install faiss-gpu, or set the "
        "pipeline option `kmeans: fastkmeans` (pip install fastkmeans), or `kmeans: faiss-cpu` to accept "
        "k-means on CPU (slow: 190 s per iteration over 1.3M vectors on an H100 host)."
    )


def decide(requested: str, use_gpu: bool, faiss_gpus: int, fastkmeans_available: bool,
           faiss_label: tuple[str | None, str | None] = (None, None)) -> tuple[str, bool]:
    """Pure selection logic: (backend, gpu) for a request on a device, or KmeansUnavailable."""
    if requested not in CHOICES:
        raise KmeansUnavailable(f"unknown kmeans choice {requested!r}; use one of {', '.join(CHOICES)}")
    if requested == "faiss-cpu":
        return "faiss", False
    if requested == "fastkmeans":
        if not fastkmeans_available:
            raise KmeansUnavailable("kmeans: fastkmeans was asked for, but the fastkmeans package is not "
                                    "installed (pip install fastkmeans)")
        return "fastkmeans", use_gpu
    if not use_gpu:
        return "faiss", False
    if faiss_gpus > 0:
        return "faiss", True
    if requested == "auto" and fastkmeans_available:
        return "fastkmeans", True
    raise KmeansUnavailable(no_gpu_faiss_message(*faiss_label))


def choose(requested: str, use_gpu: bool) -> KmeansChoice:
    """Decide the backend for this process (reads the installed faiss / fastkmeans)."""
    distribution, version, gpus = faiss_facts()
    fk_version = fastkmeans_version()
    backend, gpu = decide(requested, use_gpu, gpus, fk_version is not None, (distribution, version))
    # colbert passes gpu=torch.cuda.is_available(); the call site is left alone when that already matches.
    patched = backend == "fastkmeans" or gpu != use_gpu
    return KmeansChoice(requested, backend, gpu, patched, distribution, version, gpus, fk_version)


class FastKMeansAsFaiss:
    """`faiss.Kmeans(d, k, niter=, gpu=, verbose=, seed=, max_points_per_centroid=)` backed by fastkmeans.

    `max_points_per_centroid` defaults to faiss' 256 (fastkmeans' own default keeps every point), so the
    training sample is subsampled as faiss would. Unknown faiss clustering parameters are ignored.
    """

    use_gpu: bool = False  # set on the subclass made by `fastkmeans_class`

    def __init__(self, d: int, k: int, niter: int = 25, gpu: Any = False, verbose: bool = False,
                 seed: int = 1234, max_points_per_centroid: int = 256, **_ignored: Any) -> None:
        from fastkmeans import FastKMeans

        self.d, self.k = int(d), int(k)
        self.gpu = self.use_gpu
        self.centroids = None
        self.obj = None
        self._kmeans = FastKMeans(
            d=self.d, k=self.k, niter=niter, gpu=self.use_gpu, seed=seed,
            max_points_per_centroid=max_points_per_centroid, verbose=bool(verbose),
        )

    def train(self, x: Any, weights: Any = None, init_centroids: Any = None) -> None:
        import numpy as np

        if weights is not None or init_centroids is not None:
            raise NotImplementedError("fastkmeans adapter: weights / init_centroids are not supported")
        data = np.ascontiguousarray(x, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.d:
            raise ValueError(f"expected an (n, {self.d}) array, got shape {data.shape}")
        self._kmeans.train(data)
        self.centroids = np.ascontiguousarray(self._kmeans.centroids, dtype=np.float32)


def fastkmeans_class(use_gpu: bool) -> type:
    return type("FastKMeansAsFaiss", (FastKMeansAsFaiss,), {"use_gpu": use_gpu})


def faiss_forced_class(faiss_module: Any, use_gpu: bool) -> type:
    """faiss.Kmeans with the `gpu` argument replaced by the harness' decision."""

    class Kmeans(faiss_module.Kmeans):
        def __init__(self, d: int, k: int, **kwargs: Any) -> None:
            kwargs["gpu"] = use_gpu
            super().__init__(d, k, **kwargs)

    return Kmeans


class _FaissWithKmeans(types.ModuleType):
    """Stands in for the `faiss` module at the call site: everything from faiss except `Kmeans`."""

    def __init__(self, real: types.ModuleType, kmeans: type) -> None:
        super().__init__(real.__name__)
        self._real = real
        self.Kmeans = kmeans

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def kmeans_class(choice: KmeansChoice, faiss_module: Any) -> type:
    if choice.backend == "fastkmeans":
        return fastkmeans_class(choice.gpu)
    return faiss_forced_class(faiss_module, choice.gpu)


@contextlib.contextmanager
def patched_call_site(choice: KmeansChoice) -> Iterator[None]:
    """Redirect colbert's `faiss.Kmeans` for the duration of the block when `choice.patched`."""
    if not choice.patched:
        yield
        return
    module = importlib.import_module(CALL_SITE)
    real = module.faiss
    module.faiss = _FaissWithKmeans(real, kmeans_class(choice, real))
    try:
        yield
    finally:
        module.faiss = real
