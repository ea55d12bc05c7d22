"""Run inputs through one model variant with a forward hook on every module and keep the outputs.

Every hooked output tensor (a tuple's or ModelOutput's tensors each get a key, see `output_tensors`) is
detached, copied to the CPU as float32 and held in memory: fine for tiny and small models; for larger ones
it costs 4 bytes per output element of every module (`max_capture_mb` stops a run that grows past it;
narrow `modules` or the inputs then).
Outputs are keyed by module name in the order the hooks fire, which is the order modules *finish*:
children before their parent. A module called k > 1 times per forward gets keys `name`, `name#1`, ...
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memharness.drift.config import Inputs, Variant
from memharness.errors import MemharnessError

FORMAT = "memharness-diverge-capture"
VERSION = 1
ROOT = "(model)"  # key of the root module's output


class DivergeError(MemharnessError):
    """A problem the user can fix: bad model folder, unreadable capture file, memory limit hit..."""


@dataclass
class Capture:
    label: str
    variant: dict[str, Any]
    env: dict[str, Any]
    order: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # key -> float32 CPU tensor
    types: dict[str, str] = field(default_factory=dict)  # key -> module class name
    combined: dict[str, str] = field(default_factory=dict)  # key -> "batch" | "first-batch"
    input_ids: Any = None
    attention_mask: Any = None
    notes: list[str] = field(default_factory=list)  # e.g. weights the checkpoint did not hold

    def to_file(self, path: Path) -> None:
        import torch

        payload = {
            "format": FORMAT,
            "version": VERSION,
            "label": self.label,
            "variant": self.variant,
            "env": self.env,
            "order": self.order,
            "outputs": self.outputs,
            "types": self.types,
            "combined": self.combined,
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "notes": self.notes,
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)

    @classmethod
    def from_file(cls, path: Path) -> Capture:
        import torch

        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DivergeError(f"{path}: no such file") from None
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
            raise DivergeError(f"{path}: not a readable capture file ({type(exc).__name__}: {exc})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DivergeError(f"{path}: not a `memharness diverge --save` file")
        if d.get("version") != VERSION:
            raise DivergeError(f"{path}: capture format version {d.get('version')}, this memharness reads {VERSION}")
        fields = ("order", "outputs", "types", "combined", "input_ids", "attention_mask")
        return cls(d["label"], d["variant"], d["env"], **{k: d[k] for k in fields}, notes=d.get("notes", []))


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions that decide the numbers: saved with a capture and printed next to a comparison."""
    import numpy
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": str(torch.__version__),  # a TorchVersion object, which weights_only loading refuses
        "transformers": str(transformers.__version__),
        "numpy": str(numpy.__version__),
        "cuda": torch.version.cuda,
        "device": "cpu",
    }
    if device == "cuda" and torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        env["cudnn"] = torch.backends.cudnn.version()
    return env


# ---------------------------------------------------------------- inputs


def _model_vocab(model_dir: str) -> int:
    try:
        return int(json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"])
    except (OSError, KeyError, ValueError, TypeError):
        raise DivergeError(
            f"{model_dir}: cannot read vocab_size from config.json; give inputs.random.vocab_size"
        ) from None


def build_inputs(inputs: Inputs, model_dir: str, base_dir: Path) -> tuple[Any, Any]:
    """(input_ids, attention_mask), both [N, L] int64, built once and shared by both variants. Texts are
    padded to the longest text of the whole set, so every batch has the same length."""
    import torch

    if inputs.random is not None:
        r = inputs.random
        vocab = r.vocab_size or _model_vocab(model_dir)
        if r.low >= vocab:
            raise DivergeError(f"inputs.random.low ({r.low}) must be below the vocab size ({vocab})")
        gen = torch.Generator().manual_seed(r.seed)
        ids = torch.randint(r.low, vocab, (r.count, r.length), generator=gen, dtype=torch.int64)
        return ids, torch.ones_like(ids)
    if inputs.token_ids is not None:
        width = max(len(row) for row in inputs.token_ids)
        ids = torch.full((len(inputs.token_ids), width), inputs.pad_id, dtype=torch.int64)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(inputs.token_ids):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
            mask[i, : len(row)] = 1
        return ids, mask
    from transformers import AutoTokenizer

    source = inputs.tokenizer or model_dir
    if inputs.tokenizer and not Path(source).is_absolute():
        source = str(base_dir / source)
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
        raise DivergeError(f"cannot load a tokenizer from {source}: {exc}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    enc = tok(
        list(inputs.texts or []),
        padding="longest",
        truncation=True,
        max_length=inputs.max_length,
        return_tensors="pt",
    )
    return enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)


# ---------------------------------------------------------------- model


def load_model(variant: Variant, model_dir: str) -> tuple[Any, list[str]]:
    """The variant's model in eval mode: `dtype_mode: load` passes the dtype to from_pretrained (which
    leaves buffers that the model's code creates in float32, such as RoPE's inv_freq, as they are);
    `dtype_mode: to` loads in float32 and calls `.to(dtype)`, which casts every floating buffer too.
    Also returns notes on weights the checkpoint lacks: transformers initialises them at random, so they
    differ between two loads and make every comparison downstream of them meaningless."""
    import torch
    import transformers

    classes = {
        "auto": transformers.AutoModel,
        "causal-lm": transformers.AutoModelForCausalLM,
        "masked-lm": transformers.AutoModelForMaskedLM,
    }
    if variant.device == "cuda" and not torch.cuda.is_available():
        raise DivergeError("device: cuda requested but torch.cuda.is_available() is False")
    require_model_dir(model_dir)
    dtype = getattr(torch, variant.dtype)
    cls = classes[variant.model_class]
    # transformers >= 4.56 renamed from_pretrained's torch_dtype to dtype (same code path).
    key = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        kw: dict[str, Any] = {"local_files_only": True, "output_loading_info": True}
        if variant.dtype_mode == "load":
            model, info = cls.from_pretrained(model_dir, **kw, **{key: dtype})
            model = model.to(variant.device)
        else:
            model, info = cls.from_pretrained(model_dir, **kw)
            model = model.to(variant.device).to(dtype)
    except (OSError, ValueError) as exc:
        raise DivergeError(f"cannot load {model_dir} as {variant.model_class}: {exc}") from None
    notes = []
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        notes.append(
            f"{len(missing)} weight(s) not in the checkpoint, initialised at random: "
            + ", ".join(missing[:4])
            + (" ..." if len(missing) > 4 else "")
            + " (pick the model_class the checkpoint was saved as)"
        )
    return model.eval(), notes


def require_model_dir(model_dir: str) -> None:
    if not (Path(model_dir) / "config.json").is_file():
        raise DivergeError(f"{model_dir}: not a model folder (no config.json)")


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


# ---------------------------------------------------------------- hooks


def output_tensors(obj: Any) -> list[tuple[str, Any]]:
    """(key suffix, tensor) for a module output: a tensor -> [("", t)]; a tuple/list -> its direct tensor
    elements, the first as "" and the others as "[i]" (so RoPE's (cos, sin) gives `rotary_emb` and
    `rotary_emb[1]`); a dict/ModelOutput -> its tensor values, the first as "" and the others as
    '["key"]'. A first element that is itself a tuple contributes its first tensor."""
    import torch

    if torch.is_tensor(obj):
        return [("", obj)]
    if isinstance(obj, dict):
        items = [(f'["{k}"]', v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(f"[{i}]", v) for i, v in enumerate(obj)]
    else:
        return []
    out: list[tuple[str, Any]] = []
    for suffix, v in items:
        if torch.is_tensor(v):
            out.append(("" if not out else suffix, v))
        elif not out and isinstance(v, (list, tuple, dict)):
            nested = output_tensors(v)
            if nested:
                out.append(("", nested[0][1]))
    return out


class _LimitReached(Exception):
    pass


def capture(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    variant: Variant,
    patterns: list[str],
    max_bytes: float,
    label: str,
) -> Capture:
    """Run the inputs batch by batch and collect every hooked module's output."""
    import torch

    cap = Capture(label=label, variant=variant.model_dump(), env=environment(variant.device))
    cap.input_ids, cap.attention_mask = input_ids, attention_mask
    per_key: dict[str, list[Any]] = {}
    calls: dict[str, int] = {}
    used = [0]

    def make_hook(name: str):
        def hook(module, args, output):
            tensors = output_tensors(output)
            if not tensors:
                return
            k = calls.get(name, 0)
            calls[name] = k + 1
            for suffix, t in tensors:
                key = (name if k == 0 else f"{name}#{k}") + suffix
                if key not in per_key:
                    per_key[key] = []
                    cap.order.append(key)
                    cap.types[key] = type(module).__name__
                kept = t.detach().to("cpu", torch.float32, copy=True)
                used[0] += kept.numel() * 4
                if used[0] > max_bytes:
                    raise _LimitReached
                per_key[key].append(kept)

        return hook

    handles = [
        mod.register_forward_hook(make_hook(name or ROOT))
        for name, mod in model.named_modules()
        if any(fnmatch.fnmatchcase(name or ROOT, p) for p in patterns)
    ]
    if not handles:
        raise DivergeError(f"no module name matches modules: {patterns}")
    if variant.autocast:
        amp_dtype = getattr(torch, variant.autocast_dtype or ("float16" if variant.device == "cuda" else "bfloat16"))
        amp = torch.autocast(device_type=variant.device, dtype=amp_dtype)
    else:
        amp = contextlib.nullcontext()
    sizes = []
    try:
        with torch.no_grad(), amp:
            for s in range(0, input_ids.shape[0], variant.batch_size):
                ids = input_ids[s : s + variant.batch_size]
                calls.clear()
                sizes.append(ids.shape[0])
                model(
                    input_ids=ids.to(variant.device),
                    attention_mask=attention_mask[s : s + ids.shape[0]].to(variant.device),
                )
    except _LimitReached:
        raise DivergeError(
            f"captured outputs of {label} passed max_capture_mb ({max_bytes / 2**20:.0f} MiB): "
            "hook fewer modules (modules: [...]) or use fewer/shorter inputs"
        ) from None
    finally:
        for h in handles:
            h.remove()
    for key in cap.order:
        cap.outputs[key], cap.combined[key] = _combine(per_key.pop(key), sizes)
    return cap


def _combine(tensors: list[Any], sizes: list[int]) -> tuple[Any, str]:
    """Concatenate per-batch outputs along dim 0 when dim 0 is the batch; otherwise (e.g. rotary cos/sin
    of shape [1, L, d], the same for every batch) keep the first batch's output."""
    import torch

    rest = tensors[0].shape[1:]
    if len(tensors) == len(sizes) and all(
        t.dim() >= 1 and t.shape[0] == n and t.shape[1:] == rest for t, n in zip(tensors, sizes, strict=True)
    ):
        return (torch.cat(tensors) if len(tensors) > 1 else tensors[0]), "batch"
    return tensors[0], "first-batch"


def run_variant(
    variant: Variant,
    model_dir: str,
    input_ids: Any,
    attention_mask: Any,
    patterns: list[str],
    max_capture_mb: float,
    label: str,
) -> Capture:
    model, notes = load_model(variant, model_dir)
    try:
        cap = capture(model, input_ids, attention_mask, variant, patterns, max_capture_mb * 2**20, label)
    finally:
        del model
    cap.notes = notes
    return cap
