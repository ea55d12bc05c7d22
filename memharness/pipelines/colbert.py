"""Pipeline kind `colbert`: colbert-ai's `Indexer` over the cell's collection, as in the seed study.

    with Run().context(RunConfig(nranks=1, experiment=..., root=<workdir>, avoid_fork_if_possible=True)):
        Indexer(checkpoint=<model>, config=ColBERTConfig(nbits=2, doc_maxlen=256, kmeans_niters=4, ...))
            .index(name=..., collection=<texts>, overwrite=True)

`avoid_fork_if_possible` defaults to True and goes into the RunConfig: set only in ColBERTConfig it is
ignored (the Run context's RunConfig wins), and then colbert spawns one worker process per rank. The
harness follows spawned children, but when that worker crashes the parent waits on its queue for ever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from memharness.pipelines import kmeans as km
from memharness.pipelines.base import CellContext
from memharness.pipelines.colbert_setup import (
    ColbertFamilyPipeline,
    loaded_extension_classes,
    record_index,
    remove_stale_index,
    select_device,
    warm_extensions,
)
from memharness.pipelines.options import Option, OptionSet

# The functions the seed study profiled, as dotted paths into colbert-ai 0.2.22, in the seed's order.
# `__launch` is name-mangled and written as in the source. Checked against 0.2.22: `__sample_pids` and
# `__sample_embeddings` are `_sample_pids` / `_sample_embeddings` there, and `callee` is not a function of
# colbert.infra.launcher (it is the `encode` function handed to `Launcher`); those three are reported missing.
SEED_TARGETS: list[str] = [
    "colbert.indexer.Indexer.index",
    "colbert.indexer.Indexer.__launch",
    "colbert.indexing.collection_indexer.encode",
    "colbert.indexing.collection_indexer.CollectionIndexer.run",
    "colbert.indexing.collection_indexer.CollectionIndexer.setup",
    "colbert.indexing.collection_indexer.CollectionIndexer.train",
    "colbert.indexing.collection_indexer.CollectionIndexer.index",
    "colbert.indexing.collection_indexer.CollectionIndexer.finalize",
    "colbert.indexing.collection_indexer.CollectionIndexer.__sample_pids",
    "colbert.indexing.collection_indexer.CollectionIndexer.__sample_embeddings",
    "colbert.indexing.collection_encoder.CollectionEncoder.encode_passages",
    "colbert.infra.launcher.Launcher.launch",
    "colbert.infra.launcher.Launcher.launch_without_fork",
    "colbert.infra.launcher.run_process_without_mp",
    "colbert.infra.launcher.callee",
]

# Not in the seed's table, added so every seed function has a resolving counterpart in 0.2.22 and the
# k-means step (where GPU memory fails first) has its own record.
EXTRA_TARGETS: list[str] = [
    "colbert.indexing.collection_indexer.CollectionIndexer._sample_pids",
    "colbert.indexing.collection_indexer.CollectionIndexer._sample_embeddings",
    "colbert.indexing.collection_indexer.compute_faiss_kmeans",
]

COLBERT_TARGETS: list[str] = SEED_TARGETS + EXTRA_TARGETS

# The packages this kind depends on: their installed versions go into every cell's fingerprint.
PACKAGES: tuple[str, ...] = ("colbert-ai", "torch", "transformers", "faiss-cpu", "faiss-gpu", "fastkmeans", "numpy")

# Options that become ColBERTConfig fields when set (unset: the checkpoint's / colbert's default).
CONFIG_OPTIONS = ("nbits", "doc_maxlen", "kmeans_niters", "index_bsize", "dim", "bsize", "query_maxlen")

# The kind's options: what `memharness validate` and preflight accept (memharness.pipelines.options).
OPTIONS = OptionSet((
    Option("nbits", "int", "bits per residual dimension", default=2, choices=(1, 2, 4, 8)),
    Option("doc_maxlen", "int", "document tokens kept", default=256, minimum=1),
    Option("kmeans_niters", "int", "k-means iterations", default=4, minimum=1),
    Option("index_bsize", "int", "ColBERTConfig.index_bsize (unset: colbert's)", minimum=1),
    Option("bsize", "int", "ColBERTConfig.bsize (unset: colbert's)", minimum=1),
    Option("dim", "int", "ColBERTConfig.dim (unset: the checkpoint's)", minimum=1),
    Option("query_maxlen", "int", "ColBERTConfig.query_maxlen (unset: the checkpoint's)", minimum=1),
    Option("nranks", "int", "colbert ranks (processes when > 1)", default=1, minimum=1),
    Option("avoid_fork_if_possible", "bool", "run the indexer in the cell process (put into the RunConfig)",
           default=True),
    Option("kmeans", "choice", "which k-means runs (memharness.pipelines.kmeans)", default="auto",
           choices=km.CHOICES),
    Option("experiment", "str", "RunConfig.experiment: the folder under work/ the index lands in",
           default="memharness"),
    Option("index_name", "str", "Indexer.index(name=...) (unset: the pipeline's name)"),
    Option("overwrite", "choice", "Indexer.index(overwrite=...), colbert-ai's values", default=True,
           choices=(True, False, "reuse", "resume", "force_silent_overwrite")),
    Option("verbose", "int", "Indexer(verbose=...), colbert's verbosity", default=3, minimum=0),
    Option("config", "mapping", "any other ColBERTConfig fields, passed as given (e.g. {ncells: 2})",
           default={}),
))


class ColbertPipeline(ColbertFamilyPipeline):
    kind: ClassVar[str] = "colbert"
    default_targets: ClassVar[list[str]] = COLBERT_TARGETS
    packages: ClassVar[list[str]] = list(PACKAGES)
    option_set: ClassVar[OptionSet] = OPTIONS

    def prepare(self, ctx: CellContext) -> None:
        opts = self.options(ctx)
        use_gpu = select_device(ctx.device)
        choice = km.choose(opts["kmeans"], use_gpu)  # fails here, before any indexing, when unusable
        ctx.info["kmeans"] = choice.info()
        remove_stale_index(self.index_path(ctx), opts["overwrite"])
        ctx.info["extensions"] = warm_extensions(use_gpu)

    def run(self, ctx: CellContext) -> None:
        from colbert import Indexer
        from colbert.infra import ColBERTConfig, Run, RunConfig

        opts = self.options(ctx)
        use_gpu = select_device(ctx.device)
        choice = km.choose(opts["kmeans"], use_gpu)
        ctx.info["kmeans"] = choice.info()
        before = set(loaded_extension_classes())

        run_settings: dict[str, Any] = {
            "nranks": opts["nranks"],
            "experiment": opts["experiment"],
            "root": str(Path(ctx.workdir).resolve()),
            "avoid_fork_if_possible": bool(opts["avoid_fork_if_possible"]),
        }
        if not use_gpu:
            run_settings["gpus"] = 0
        config_fields = {k: opts[k] for k in CONFIG_OPTIONS if opts.get(k) is not None}
        config_fields.update(opts["config"])
        config_fields["avoid_fork_if_possible"] = bool(opts["avoid_fork_if_possible"])

        with Run().context(RunConfig(**run_settings)), km.patched_call_site(choice):
            indexer = Indexer(checkpoint=ctx.model, config=ColBERTConfig(**config_fields), verbose=opts["verbose"])
            index_path = indexer.index(name=opts["index_name"], collection=ctx.texts, overwrite=opts["overwrite"])

        record_index(ctx, Path(index_path), before)
