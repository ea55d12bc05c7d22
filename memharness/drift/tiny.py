"""Tiny randomly initialised models built offline, for tests and the example diverge config.

`tiny:llama` and `tiny:bert` in a diverge config are built once (seeded, float32, `save_pretrained`) into
`$MEMHARNESS_CACHE/drift/` (default `./.cache/drift/`). The weights come from torch's RNG, which may draw
differently in another torch version: for a two-environment `--save/--compare`, build the model once
(`memharness diverge --make-tiny-llama DIR`) and point both configs at DIR.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Small enough to load in well under a second on a CPU; the LLaMA keeps rotary embeddings (head_dim 16,
# so inv_freq has 8 entries) and grouped-query attention like SmolLM2.
_SMALL = dict(vocab_size=1000, num_hidden_layers=2)
LLAMA = dict(_SMALL, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, rope_theta=10000.0, tie_word_embeddings=False)
BERT = dict(_SMALL, hidden_size=32, intermediate_size=64, num_attention_heads=2, max_position_embeddings=128)
TINY_KINDS = ("llama", "bert")


def make_tiny(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """Build `tiny:<kind>` into `out_dir` (written to a temporary folder first, then renamed)."""
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    if kind not in TINY_KINDS:
        raise ValueError(f"unknown tiny model {kind!r}; known: {', '.join(TINY_KINDS)}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "llama":
            model = LlamaForCausalLM(LlamaConfig(**LLAMA))
        else:
            model = BertModel(BertConfig(**BERT))  # with pooler, so AutoModel loads every weight
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.to(torch.float32).save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def cache_dir() -> Path:
    return Path(os.environ.get("MEMHARNESS_CACHE", ".cache")) / "drift"


def resolve_model(spec: str, base_dir: Path) -> str:
    """`tiny:<kind>` -> its cached folder (built on first use); a relative path -> relative to `base_dir`
    (the config file's folder); an absolute path as is."""
    if spec.startswith("tiny:"):
        kind = spec.removeprefix("tiny:")
        folder = cache_dir() / f"tiny-{kind}"
        if not (folder / "config.json").is_file():
            make_tiny(kind, folder)
        return str(folder)
    path = Path(spec).expanduser()
    return str(path if path.is_absolute() else (base_dir / path))
