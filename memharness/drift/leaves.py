"""One index artifact file as named leaves (`memharness artifacts diff`).

A `.pt` file becomes one leaf per tensor, number or flat numeric list inside its nested tuples, lists and
dicts (`buckets.pt[0]`, `x.pt["key"]`); a `.npy` file one array; a `.json` file one leaf, compared like a
tensor when it is a flat list of numbers and structurally otherwise. A file that cannot be read becomes a
`LoadError` leaf, so the diff shows a row for it instead of stopping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memharness.numeric import is_number


def numeric_list(x: Any) -> bool:
    """A non-empty flat list of numbers (or of bools), compared as one tensor rather than per element."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    return all(is_number(v) for v in x) or all(isinstance(v, bool) for v in x)


def is_tensor_like(x: Any) -> bool:
    import numpy as np
    import torch

    return torch.is_tensor(x) or (isinstance(x, np.ndarray) and x.dtype != object)


def flatten(obj: Any, prefix: str) -> list[tuple[str, Any]]:
    """(name, leaf) pairs: tensors, arrays, numbers, flat numeric lists; other objects compared by value."""
    if is_tensor_like(obj) or is_number(obj) or isinstance(obj, bool) or numeric_list(obj):
        return [(prefix, obj)]
    if isinstance(obj, (list, tuple)) and obj:
        return [pair for i, v in enumerate(obj) for pair in flatten(v, f"{prefix}[{i}]")]
    if isinstance(obj, dict) and obj:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            key = f'"{k}"' if isinstance(k, str) else repr(k)
            out.extend(flatten(v, f"{prefix}[{key}]"))
        return out
    return [(prefix, obj)]


def load_torch(path: Path) -> Any:
    """torch.load onto the CPU. Index files are pickles of tuples and dicts, hence weights_only=False:
    only compare folders you trust. Memory-maps when the file format allows it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=False)


def load_leaves(rel: str, path: Path) -> list[tuple[str, Any]]:
    """The leaves of one file; a file that cannot be read gives one `LoadError` leaf."""
    import numpy as np

    try:
        if path.suffix == ".pt":
            return flatten(load_torch(path), rel)
        if path.suffix == ".npy":
            return [(rel, np.load(path, allow_pickle=False))]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return [(rel, data if numeric_list(data) else Json(data))]
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes a row, not a crash
        return [(rel, LoadError(f"{type(exc).__name__}: {exc}"))]


@dataclass
class Json:
    data: Any


@dataclass
class LoadError:
    message: str
