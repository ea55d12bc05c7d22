# %% [markdown]
# # memharness from a notebook: per-function memory of a tiny ColBERT index
#
# The Python API on real colbert-ai, on CPU and offline: the `builtin:tiny` checkpoint (built locally from
# the MiniLM vocabulary, no hub), a few hundred synthetic passages, and the functions the seed study
# profiled, wrapped for the duration of one `with` block and restored after it.
#
#     .venv/bin/python examples/api_colbert_tiny.py [N_PASSAGES]
#
# Writes examples/out/api_colbert_tiny.png (the timeline chart) and examples/out/api_colbert_tiny-run/ (a
# run folder: `memharness report examples/out/api_colbert_tiny-run` renders it).

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU: colbert-ai decides at import time

import shutil
import sys
import time
from pathlib import Path

import memharness
from memharness.corpus import materialize, read_slice
from memharness.models import resolve
from memharness.pipelines.colbert import COLBERT_TARGETS
from memharness.runner.preflight import cache_dir

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
OUT = Path(__file__).resolve().parent / "out"
WORK = OUT / "api_colbert_tiny-work"

# %% The model and the passages (both cached under ~/.cache/memharness after the first run)
model = resolve("builtin:tiny", cache_dir() / "models")
ids, texts = read_slice(materialize({"source": "synthetic", "seed": 0}, N, cache_dir() / "corpus"), N)
print(f"model {model}\n{len(texts)} passages, e.g. {texts[0][:80]!r}")

# %% colbert-ai's indexer, set up as the seed study did (nbits=2, doc_maxlen=256, kmeans_niters=4)
from colbert import Indexer  # noqa: E402
from colbert.infra import ColBERTConfig, Run, RunConfig  # noqa: E402

from memharness.pipelines.colbert_setup import warm_extensions  # noqa: E402

warm_extensions(use_gpu=False)  # compile / load colbert's C++ extension outside the measurement
shutil.rmtree(WORK, ignore_errors=True)
run_config = RunConfig(nranks=1, gpus=0, experiment="api", root=str(WORK), avoid_fork_if_possible=True)
config = ColBERTConfig(nbits=2, doc_maxlen=256, kmeans_niters=4, avoid_fork_if_possible=True)

# %% Profile the indexing. Targets the installed colbert-ai lacks are only reported (optional_targets).
t = time.perf_counter()
with memharness.profile(optional_targets=COLBERT_TARGETS, label="colbert", size=N, name="api-colbert-tiny") as prof:
    with Run().context(run_config):
        Indexer(checkpoint=model, config=config, verbose=0).index(name="tiny", collection=texts, overwrite=True)
print(f"indexed {N} passages in {time.perf_counter() - t:.1f} s; {len(prof.calls)} wrapped calls recorded")

# %% The seed-format table: one row per function (MiB), the sampled process tree first
print(prof.table().to_markdown())

# %% Single figures, in bytes
train = prof.peak("CollectionIndexer.train")
print(f"CollectionIndexer.train: peak RSS {train / 2**20:.1f} MiB, "
      f"{prof.peak('CollectionIndexer.train', over_start=True) / 2**20:.1f} MiB above its entry")
timeline = prof.timeline()
print(f"timeline: {len(timeline)} samples over {timeline['t_s'][-1]:.1f} s, "
      f"tree peak {timeline['rss'].max() / 2**20:.1f} MiB")

# %% The timeline chart (a matplotlib Figure; a notebook shows it inline) and a run folder
OUT.mkdir(parents=True, exist_ok=True)
fig = prof.plot(OUT / "api_colbert_tiny.png")
print(f"chart: {OUT / 'api_colbert_tiny.png'} ({fig.get_figwidth():.0f} x {fig.get_figheight():.1f} in)")
run_dir = OUT / "api_colbert_tiny-run"
shutil.rmtree(run_dir, ignore_errors=True)
print(f"run folder: {prof.save(run_dir)}  (memharness report {run_dir})")
