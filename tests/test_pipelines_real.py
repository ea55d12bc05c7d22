"""The `colbert` and `ragatouille` kinds on the tiny builtin model, in-process, plus the k-means choice."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from memharness.models import resolve
from memharness.pipelines import kmeans as km
from memharness.pipelines.base import CellContext
from memharness.pipelines.colbert_setup import DeviceError, warm_extensions
from memharness.pipelines.registry import get

# The cells run on the GPU where there is one (colbert-ai decides at import time; "cpu" on a GPU host
# needs CUDA hidden before torch initialises it, which an in-process test cannot promise).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EXTENSIONS = {"cpu": ["segmented_maxsim_cpp"], "cuda": ["decompress_residuals_cpp", "packbits_cpp"]}[DEVICE]

COLBERT_ARTIFACTS = {"plan.json", "metadata.json", "centroids.pt", "buckets.pt", "avg_residual.pt", "ivf.pid.pt",
                     "0.codes.pt", "0.residuals.pt", "0.metadata.json", "doclens.0.json"}


@pytest.fixture(autouse=True)
def _restore_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """select_device("cpu") sets CUDA_VISIBLE_DEVICES=""; keep that from leaking into later tests."""
    name = "CUDA_VISIBLE_DEVICES"
    if name in os.environ:
        monkeypatch.setenv(name, os.environ[name])  # records the value; restored after the test
    else:
        monkeypatch.delenv(name, raising=False)  # records "unset"; removed again after the test


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return resolve("builtin:tiny", tmp_path_factory.mktemp("models"))


def passages(model_dir: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Simple synthetic passages: 20-80 real vocabulary words each (so tokenization is realistic)."""
    vocab = [w for w in Path(model_dir, "vocab.txt").read_text().split() if w.isalpha() and len(w) > 2]
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(20, 80))).capitalize() + "." for _ in range(n)]
    return [f"doc-{i}" for i in range(n)], texts


def make_ctx(kind: str, model: str, workdir: Path, n: int, **options) -> CellContext:
    ids, texts = passages(model, n)
    return CellContext(pipeline=f"{kind}-test", kind=kind, size=n, ids=ids, texts=texts, options=options,
                       model=model, device=DEVICE, workdir=workdir)


def run_cell(ctx: CellContext) -> Path:
    from colbert.infra import Run

    pipeline = get(ctx.kind)
    assert pipeline.validate_options(ctx.options) == []
    depth = len(Run().stack)
    pipeline.prepare(ctx)
    pipeline.run(ctx)
    assert len(Run().stack) == depth  # no Run() context left behind
    index = Path(ctx.info["index_path"])
    listing = ", ".join(f"{name} ({size:,} B)" for name, size in ctx.info["artifacts"].items())
    print(f"\n{ctx.pipeline} {ctx.options}: {index}\n  {listing}\n  kmeans: {ctx.info['kmeans']['label']}")
    return index


def check_colbert_index(index: Path, n: int, dim: int = 32) -> dict:
    files = {p.name for p in index.iterdir()}
    assert COLBERT_ARTIFACTS <= files, COLBERT_ARTIFACTS - files
    meta = json.loads((index / "metadata.json").read_text())
    doclens = json.loads((index / "doclens.0.json").read_text())
    assert len(doclens) == n and sum(doclens) == meta["num_embeddings"] > n
    centroids = torch.load(index / "centroids.pt")
    assert tuple(centroids.shape) == (meta["num_partitions"], dim)
    codes = torch.load(index / "0.codes.pt")
    assert codes.numel() == meta["num_embeddings"] and int(codes.max()) < meta["num_partitions"]
    ivf, ivf_lengths = torch.load(index / "ivf.pid.pt")
    # centroid -> unique pids, padded at the end by up to the longest list (colbert's strided layout)
    total = int(ivf_lengths.sum())
    assert total <= ivf.numel() <= total + int(ivf_lengths.max()) and int(ivf.max()) < n
    assert len(ivf_lengths) == meta["num_partitions"]
    return meta


@pytest.mark.slow
def test_colbert_indexes_tiny_with_faiss(tiny: str, tmp_path: Path) -> None:
    import faiss
    from colbert.indexing import collection_indexer

    ctx = make_ctx("colbert", tiny, tmp_path, 250)
    index = run_cell(ctx)
    assert index == tmp_path / "memharness" / "indexes" / "colbert-test"
    meta = check_colbert_index(index, 250)
    assert meta["config"]["nbits"] == 2 and meta["config"]["kmeans_niters"] == 4
    assert meta["config"]["doc_maxlen"] == 256 and meta["config"]["avoid_fork_if_possible"] is True
    assert ctx.info["kmeans"]["faiss_version"] == faiss.__version__
    if DEVICE == "cpu":
        assert ctx.info["kmeans"]["backend"] == "faiss" and ctx.info["kmeans"]["patched"] is False
    assert [e["name"] for e in ctx.info["extensions"]] == EXTENSIONS
    assert ctx.info["extensions_loaded_during_run"] == []  # prepare warmed everything indexing loads
    assert collection_indexer.faiss is faiss


@pytest.mark.slow
def test_colbert_with_fastkmeans_runs_the_adapter(tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss
    from colbert.indexing import collection_indexer
    from fastkmeans import FastKMeans

    trained = []
    original = FastKMeans.train

    def spy(self, data):  # the real fastkmeans, counted
        trained.append(data.shape)
        return original(self, data)

    monkeypatch.setattr(FastKMeans, "train", spy)
    ctx = make_ctx("colbert", tiny, tmp_path, 200, kmeans="fastkmeans", nbits=1, kmeans_niters=2)
    index = run_cell(ctx)
    meta = check_colbert_index(index, 200)
    assert meta["config"]["nbits"] == 1
    assert ctx.info["kmeans"]["backend"] == "fastkmeans" and ctx.info["kmeans"]["patched"] is True
    assert ctx.info["kmeans"]["label"].startswith("fastkmeans 0.5")
    assert len(trained) == 1 and trained[0][1] == 32
    assert collection_indexer.faiss is faiss  # call site restored


@pytest.mark.slow
@pytest.mark.parametrize("use_faiss", [True, False])
def test_ragatouille_indexes_tiny(tiny: str, tmp_path: Path, use_faiss: bool) -> None:
    from colbert.indexing.collection_indexer import CollectionIndexer

    train_kmeans = CollectionIndexer._train_kmeans
    ctx = make_ctx("ragatouille", tiny, tmp_path, 200, use_faiss=use_faiss)
    index = run_cell(ctx)
    assert index == tmp_path / "colbert" / "indexes" / "ragatouille-test"
    meta = check_colbert_index(index, 200)
    assert meta["config"]["nbits"] == 4  # RAGatouille's own choice below 10k documents
    assert meta["config"]["kmeans_niters"] == 20
    pid_docid = json.loads((index / "pid_docid_map.json").read_text())
    assert len(pid_docid) == 200 and pid_docid["0"] == "doc-0"  # split_documents=False: N docs = N passages
    assert len(json.loads((index / "collection.json").read_text())) == 200
    assert ctx.info["kmeans"]["ragatouille"] == ("faiss" if use_faiss else "fast_pytorch_kmeans")
    # what PLAIDModelIndex.build chose, as recorded for the fingerprint, matches the index it wrote
    settings = ctx.info["kmeans"]["library_settings"]
    assert settings == {"kmeans_niters": meta["config"]["kmeans_niters"], "nbits": meta["config"]["nbits"],
                        "pytorch_kmeans_first": not use_faiss}
    # the faiss-cpu pause happens only with a GPU visible and only on the faiss path
    import faiss

    faiss_cpu_on_gpu = DEVICE == "cuda" and not hasattr(faiss, "StandardGpuResources")
    assert ctx.info["kmeans"]["library_sleep_s"] == (5.0 if use_faiss and faiss_cpu_on_gpu else 0.0)
    assert ctx.info["extensions_loaded_during_run"] == []
    assert CollectionIndexer._train_kmeans is train_kmeans


def test_ragatouille_sleep_is_a_marked_span(tmp_path: Path) -> None:
    """`time.sleep` inside ragatouille.models.index becomes a call record, and only while recorded."""
    import time

    import ragatouille.models.index as plaid

    from memharness.core import tracker
    from memharness.core.records import read_calls
    from memharness.pipelines import ragatouille as rag

    t = tracker.Tracker(tmp_path / "calls")
    tracker.set_active(t)
    seen: list[float] = []
    try:
        with rag.sleeps_recorded(seen):
            plaid.time.sleep(0.05)
            assert plaid.time.monotonic() > 0  # everything else of `time` passes through
        assert plaid.time is time
        time.sleep(0.01)  # not recorded: outside the block and outside that module
    finally:
        tracker.set_active(None)
        t.close()
    assert seen == [0.05]
    calls = [c for c in read_calls(tmp_path) if c.target == rag.SLEEP_LABEL]
    assert len(calls) == 1 and 0.05 <= calls[0].duration_s < 5
    assert rag.library_settings(100_000, False) == {"kmeans_niters": 10, "nbits": 2, "pytorch_kmeans_first": False}
    assert rag.library_settings(50_000, False) == {"kmeans_niters": 20, "nbits": 2, "pytorch_kmeans_first": True}
    assert rag.library_settings(250_000, True)["kmeans_niters"] == 4


def test_kmeans_decision_table() -> None:
    decide = km.decide
    assert decide("auto", False, 0, False) == ("faiss", False)
    assert decide("auto", True, 2, True) == ("faiss", True)
    assert decide("auto", True, 0, True) == ("fastkmeans", True)
    assert decide("faiss", True, 1, False) == ("faiss", True)
    assert decide("faiss-cpu", True, 1, True) == ("faiss", False)
    assert decide("fastkmeans", False, 0, True) == ("fastkmeans", False)
    with pytest.raises(km.KmeansUnavailable, match="(?i)install faiss-gpu.*kmeans: fastkmeans"):
        decide("faiss", True, 0, True, ("faiss-cpu", "1.15.1"))
    with pytest.raises(km.KmeansUnavailable, match="faiss-cpu 1.15.1 has no GPU support"):
        decide("auto", True, 0, False, ("faiss-cpu", "1.15.1"))
    with pytest.raises(km.KmeansUnavailable, match="pip install fastkmeans"):
        decide("fastkmeans", True, 0, False)
    with pytest.raises(km.KmeansUnavailable, match="unknown kmeans choice"):
        decide("sklearn", False, 0, False)


def test_faiss_cpu_on_gpu_fails_before_indexing(tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memharness.pipelines.colbert as colbert_kind

    # Fake the GPU host: colbert's device check says "GPU", the installed faiss is faiss-cpu (0 GPUs).
    monkeypatch.setattr(colbert_kind, "select_device", lambda device: True)
    monkeypatch.setattr(km, "faiss_facts", lambda: ("faiss-cpu", "1.15.1", 0))
    ctx = make_ctx("colbert", tiny, tmp_path, 10, kmeans="faiss")
    ctx.device = "cuda"
    with pytest.raises(km.KmeansUnavailable, match="faiss-gpu"):
        get("colbert").prepare(ctx)
    assert "extensions" not in ctx.info and list(tmp_path.iterdir()) == []
    # auto picks fastkmeans there (installed here).
    choice = km.choose("auto", True)
    assert (choice.backend, choice.gpu, choice.patched) == ("fastkmeans", True, True)


def test_ragatouille_faiss_check_only_where_it_uses_faiss(tiny: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(km, "faiss_facts", lambda: ("faiss-cpu", "1.15.1", 0))
    monkeypatch.setattr(km, "fastkmeans_version", lambda: None)
    kind = get("ragatouille")
    ctx = make_ctx("ragatouille", tiny, tmp_path, 10, use_faiss=False)
    assert kind.kmeans_plan(ctx, True) == ("fast_pytorch_kmeans", None)
    ctx.options = {"use_faiss": True}
    with pytest.raises(km.KmeansUnavailable, match="faiss-gpu"):
        kind.kmeans_plan(ctx, True)


def test_cuda_device_without_a_gpu_is_a_clear_error(tiny: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a host without a usable GPU
    ctx = make_ctx("colbert", tiny, tmp_path, 10)
    ctx.device = "cuda"
    with pytest.raises(DeviceError, match="sees no GPU"):
        get("colbert").prepare(ctx)


def test_fastkmeans_adapter_is_a_faiss_kmeans_drop_in() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)).astype(np.float32) * 10
    # 1,000 points: below faiss' 256 points per centroid, so nothing is subsampled.
    data = np.concatenate([c + rng.normal(scale=0.1, size=(250, 8)) for c in centers]).astype(np.float16)
    kmeans = km.fastkmeans_class(False)(8, 4, niter=50, gpu=True, verbose=False, seed=123, spherical=False)
    assert kmeans.gpu is False  # the harness' decision, not colbert's gpu=True
    kmeans.train(data)  # float16 in, as colbert's sample is before .float()
    centroids = kmeans.centroids
    assert centroids.shape == (4, 8) and centroids.dtype == np.float32
    # A converged Lloyd solution: every centroid is the mean of the points nearest to it.
    points = data.astype(np.float32)
    nearest = np.linalg.norm(points[:, None, :] - centroids[None, :, :], axis=-1).argmin(axis=1)
    for j in np.unique(nearest):
        assert np.allclose(points[nearest == j].mean(axis=0), centroids[j], atol=0.05)
    inertia = ((points - centroids[nearest]) ** 2).sum()
    assert inertia < 0.5 * ((points - points.mean(axis=0)) ** 2).sum()
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        kmeans.train(np.zeros((10, 3), dtype=np.float32))


def test_call_site_patch_is_scoped() -> None:
    import faiss
    from colbert.indexing import collection_indexer

    choice = km.KmeansChoice("faiss-cpu", "faiss", False, True, "faiss-cpu", faiss.__version__, 0, None)
    with pytest.raises(RuntimeError, match="boom"), km.patched_call_site(choice):
        proxy = collection_indexer.faiss
        assert proxy is not faiss and proxy.IndexFlatL2 is faiss.IndexFlatL2
        forced = proxy.Kmeans(8, 2, gpu=True, niter=1)
        assert forced.gpu is False and isinstance(forced, faiss.Kmeans)
        raise RuntimeError("boom")
    assert collection_indexer.faiss is faiss


def test_validate_options() -> None:
    colbert = get("colbert")
    assert colbert.validate_options({"nbits": 2, "doc_maxlen": 256, "kmeans": "fastkmeans",
                                     "config": {"ncells": 2}}) == []
    errors = colbert.validate_options({"nbitz": 2, "nbits": 3, "kmeans": "sklearn", "doc_maxlen": "long"})
    assert "options.nbitz: unknown key; did you mean 'nbits'?" in errors
    assert "options.nbits: expected one of 1, 2, 4 or 8, got integer 3" in errors
    assert any(e.startswith("options.kmeans: expected one of 'auto', 'faiss'") for e in errors)
    assert "options.doc_maxlen: expected an integer, got string 'long'" in errors
    rag = get("ragatouille")
    assert rag.validate_options({"use_faiss": True, "split_documents": False, "max_document_length": 256}) == []
    assert rag.validate_options({"use_faiss": "yes"}) == ["options.use_faiss: expected true or false, got string 'yes'"]


def test_extension_warm_up_is_recorded() -> None:
    use_gpu = DEVICE == "cuda"
    first = warm_extensions(use_gpu)
    assert [r["name"] for r in first] == EXTENSIONS
    assert all(Path(r["path"]).is_file() for r in first)
    again = warm_extensions(use_gpu)
    assert again[0]["already_loaded"] is True and again[0]["compiled"] is False


def test_default_targets_and_packages() -> None:
    colbert, rag = get("colbert"), get("ragatouille")
    assert "colbert.indexer.Indexer.__launch" in colbert.default_targets
    assert "colbert.indexing.collection_encoder.CollectionEncoder.encode_passages" in colbert.default_targets
    assert set(colbert.default_targets) <= set(rag.default_targets)
    assert "ragatouille.models.index.PLAIDModelIndex.build" in rag.default_targets
    assert colbert.packages == ["colbert-ai", "torch", "transformers", "faiss-cpu", "faiss-gpu", "fastkmeans", "numpy"]
    assert {"ragatouille", "fast-pytorch-kmeans", "langchain"} <= set(rag.packages)
