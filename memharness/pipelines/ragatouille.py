"""Pipeline kind `ragatouille`: RAGatouille's `RAGPretrainedModel` indexing, as in the seed study.

    RAG = RAGPretrainedModel.from_pretrained(<model>, index_root=<workdir>)
    RAG.index(collection=<texts>, document_ids=<ids>, index_name=..., use_faiss=False,
              split_documents=False, max_document_length=256)

`split_documents` is False by default so that size N means N documents (RAGatouille's own default splits
them into chunks). RAGatouille picks its own ColBERT settings in `PLAIDModelIndex.build`: nbits 4 below
10k documents (else 2), kmeans_niters 20/10/4 by size, avoid_fork_if_possible True, and with
`use_faiss=False` below 75k documents fast_pytorch_kmeans instead of faiss (falling back to faiss only on
a Python exception: on CPU at 2,000 passages it built a points-by-centroids matrix and was OOM-killed at
24 GB, which no exception handler sees; the runner's max_rss guard records such a cell as failed). From
75k documents up `use_faiss` false and true take the same faiss path. With a GPU visible and a faiss
without `StandardGpuResources` (faiss-cpu) that path prints a warning and sleeps 5 s: the cell records it
as the span `ragatouille.models.index.PLAIDModelIndex.build.time.sleep` and in `kmeans.library_sleep_s`,
next to the settings the library chose (`kmeans.library_settings`).
"""

from __future__ import annotations

import contextlib
import importlib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from memharness.core import tracker
from memharness.pipelines import colbert_setup
from memharness.pipelines import kmeans as km
from memharness.pipelines.base import CellContext
from memharness.pipelines.colbert import COLBERT_TARGETS
from memharness.pipelines.options import Option, OptionSet

# The seed's RAGatouille table as dotted paths into ragatouille 0.0.9.post2. The seed names files where
# the calls are made: "RAGPretrainedModel.py | model.index" is `ragatouille.models.colbert.ColBERT.index`;
# "models/colbert.py | ModelIndexFactory.construct" is defined in ragatouille/models/index.py (and
# imported into models/colbert.py); "PLAIDModelIndex.indexer.index" is colbert's Indexer.index, in the
# ColBERT chain below.
SEED_TARGETS: list[str] = [
    "ragatouille.RAGPretrainedModel.RAGPretrainedModel._process_corpus",
    "ragatouille.RAGPretrainedModel.RAGPretrainedModel.index",
    "ragatouille.models.colbert.ColBERT.index",
    "ragatouille.models.index.ModelIndexFactory.construct",
    "ragatouille.models.index.PLAIDModelIndex.__init__",
    "ragatouille.models.index.PLAIDModelIndex.construct",
    "ragatouille.models.index.PLAIDModelIndex.build",
]

# Added: model loading (RAGatouille loads the checkpoint before indexing; the seed's "more memory before
# indexing starts") and RAGatouille's PyTorch k-means (the 27.55 GiB CUDA OOM in the seed).
EXTRA_TARGETS: list[str] = [
    "ragatouille.RAGPretrainedModel.RAGPretrainedModel.from_pretrained",
    "ragatouille.models.torch_kmeans.compute_pytorch_kmeans",
]

RAGATOUILLE_TARGETS: list[str] = SEED_TARGETS + EXTRA_TARGETS + COLBERT_TARGETS

# The packages this kind depends on: their installed versions go into every cell's fingerprint.
PACKAGES: tuple[str, ...] = ("ragatouille", "colbert-ai", "torch", "transformers", "faiss-cpu", "faiss-gpu",
                             "fast-pytorch-kmeans", "fastkmeans", "langchain", "numpy")

# The kind's options: what `memharness validate` and preflight accept (memharness.pipelines.options).
# `overwrite_index` goes to colbert's Indexer.index(overwrite=...) unchanged, so it takes colbert's values.
OPTIONS = OptionSet((
    Option("use_faiss", "bool", "RAGPretrainedModel.index(use_faiss=...); RAGatouille's default false",
           default=False),
    Option("split_documents", "bool", "false so that size N means N documents (RAGatouille's own default "
           "splits them)", default=False, record_default=True),
    Option("max_document_length", "int", "becomes colbert's doc_maxlen", default=256, minimum=1),
    Option("bsize", "int", "encoding batch size", default=32, minimum=1),
    Option("index_name", "str", "RAGPretrainedModel.index(index_name=...) (unset: the pipeline's name)"),
    Option("overwrite_index", "choice", "RAGPretrainedModel.index(overwrite_index=...), colbert-ai's values",
           default=True, choices=(True, False, "reuse", "resume", "force_silent_overwrite")),
    Option("n_gpu", "int", "RAGPretrainedModel.from_pretrained(n_gpu=...): -1 all GPUs (1 rank on CPU), "
           "or a count", default=-1, minimum=-1),
    Option("verbose", "int", "RAGPretrainedModel.from_pretrained(verbose=...)", default=1, minimum=0),
    Option("kmeans", "choice", "which k-means runs where RAGatouille uses faiss (memharness.pipelines.kmeans)",
           default="auto", choices=km.CHOICES),
))
PYTORCH_KMEANS_LIMIT = 75_000  # PLAIDModelIndex.build: below this many documents use_faiss=False means PyTorch
FAISS_CPU_SLEEP_SITE = "ragatouille.models.index"  # PLAIDModelIndex.build calls time.sleep(5) through this module
SLEEP_LABEL = "ragatouille.models.index.PLAIDModelIndex.build.time.sleep"


def library_settings(documents: int, use_faiss: bool) -> dict[str, Any]:
    """The ColBERT settings `PLAIDModelIndex.build` (ragatouille 0.0.9.post2) picks from the collection size,
    whatever the caller asked for."""
    niters = 4 if documents > 100_000 else 10 if documents > 50_000 else 20
    return {"kmeans_niters": niters, "nbits": 4 if documents < 10_000 else 2,
            "pytorch_kmeans_first": (not use_faiss) and documents < PYTORCH_KMEANS_LIMIT}


class _SleepSpy(types.ModuleType):
    """Stands in for `time` inside ragatouille.models.index: its `sleep` is a marked span and is counted."""

    def __init__(self, real: types.ModuleType, seen: list[float]) -> None:
        super().__init__(real.__name__)
        self._real, self._seen = real, seen

    def sleep(self, seconds: float) -> None:
        frame = tracker.enter(SLEEP_LABEL)
        try:
            self._real.sleep(seconds)
        finally:
            tracker.exit_(frame, None)
            self._seen.append(float(seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def sleeps_recorded(seen: list[float]) -> Iterator[None]:
    """Record (and mark as a span) every time.sleep that ragatouille.models.index makes in the block: the
    5 s pause in PLAIDModelIndex.build when a GPU is visible but faiss lacks StandardGpuResources."""
    module = importlib.import_module(FAISS_CPU_SLEEP_SITE)
    real = module.time
    module.time = _SleepSpy(real, seen)
    try:
        yield
    finally:
        module.time = real


class RagatouillePipeline(colbert_setup.ColbertFamilyPipeline):
    kind: ClassVar[str] = "ragatouille"
    default_targets: ClassVar[list[str]] = RAGATOUILLE_TARGETS
    packages: ClassVar[list[str]] = list(PACKAGES)
    option_set: ClassVar[OptionSet] = OPTIONS

    @staticmethod
    def kmeans_plan(ctx: CellContext, use_gpu: bool) -> tuple[str, km.KmeansChoice | None]:
        """Which k-means RAGatouille will run, and the faiss choice for its faiss path."""
        opts = RagatouillePipeline.options(ctx)
        pytorch_first = not opts["use_faiss"] and len(ctx.texts) < PYTORCH_KMEANS_LIMIT
        try:
            choice = km.choose(opts["kmeans"], use_gpu)
        except km.KmeansUnavailable:
            if pytorch_first:  # faiss is only the fallback here; leave it as installed
                return "fast_pytorch_kmeans", None
            raise
        return ("fast_pytorch_kmeans" if pytorch_first else "faiss"), choice

    def _record_kmeans(self, ctx: CellContext, use_gpu: bool) -> km.KmeansChoice | None:
        first, choice = self.kmeans_plan(ctx, use_gpu)
        info: dict[str, Any] = {"ragatouille": first, "use_faiss": self.options(ctx)["use_faiss"]}
        if first == "fast_pytorch_kmeans":
            info["fast_pytorch_kmeans_version"] = km.dist_version("fast-pytorch-kmeans")
        if choice is not None:
            info["faiss_path"] = choice.info()
        # first == "faiss" only with a choice (kmeans_plan returns None only on the PyTorch path)
        pytorch_label = f"fast_pytorch_kmeans {info.get('fast_pytorch_kmeans_version')}"
        info["label"] = choice.label if first == "faiss" else pytorch_label
        info["library_settings"] = library_settings(len(ctx.texts), bool(self.options(ctx)["use_faiss"]))
        ctx.info["kmeans"] = info
        return choice

    def prepare(self, ctx: CellContext) -> None:
        use_gpu = colbert_setup.select_device(ctx.device)
        self._record_kmeans(ctx, use_gpu)
        colbert_setup.remove_stale_index(self.index_path(ctx), self.options(ctx)["overwrite_index"])
        ctx.info["extensions"] = colbert_setup.warm_extensions(use_gpu)

    def run(self, ctx: CellContext) -> None:
        from colbert.indexing.collection_indexer import CollectionIndexer
        from ragatouille import RAGPretrainedModel

        opts = self.options(ctx)
        use_gpu = colbert_setup.select_device(ctx.device)
        choice = self._record_kmeans(ctx, use_gpu)
        before = set(colbert_setup.loaded_extension_classes())
        # PLAIDModelIndex.build replaces CollectionIndexer._train_kmeans on the class and never puts it
        # back; restore it so later code in this process (tests) gets colbert's own k-means.
        train_kmeans = CollectionIndexer._train_kmeans

        rag = RAGPretrainedModel.from_pretrained(
            ctx.model, n_gpu=opts["n_gpu"], verbose=opts["verbose"], index_root=str(Path(ctx.workdir).resolve())
        )
        sleeps: list[float] = []
        try:
            with (km.patched_call_site(choice) if choice is not None else contextlib.nullcontext(),
                  sleeps_recorded(sleeps)):
                index_path = rag.index(
                    collection=ctx.texts,
                    document_ids=ctx.ids,
                    index_name=opts["index_name"],
                    overwrite_index=opts["overwrite_index"],
                    max_document_length=opts["max_document_length"],
                    split_documents=opts["split_documents"],
                    bsize=opts["bsize"],
                    use_faiss=opts["use_faiss"],
                )
        finally:
            ctx.info["kmeans"]["library_sleep_s"] = sum(sleeps)  # 5.0 when the faiss-cpu warning path ran
            CollectionIndexer._train_kmeans = train_kmeans
            # ColBERT.__init__ enters a Run() context by hand and never leaves it.
            run_context = getattr(rag.model, "run_context", None)
            if run_context is not None:
                run_context.__exit__(None, None, None)

        colbert_setup.record_index(ctx, Path(index_path), before)
