"""How two leaves of an index artifact compare: one `ArtifactRow` per leaf (`memharness artifacts diff`).

Tensors and arrays are compared in float64 (int64 for two integer tensors), chunk by chunk, so memory stays
near the size of the two loaded leaves; JSON structurally, key path by key path, numbers within tolerance;
anything else by value. `drift.divergence` uses `tensor_stats` for the module outputs of two captures.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from memharness.drift.leaves import Json, LoadError, is_tensor_like, numeric_list
from memharness.numeric import is_number

CHUNK = 1 << 22  # elements compared at a time


@dataclass
class ArtifactRow:
    """One compared leaf: a tensor, a number, a JSON file."""

    artifact: str
    present: str  # "both", "A" or "B"
    kind: str = "tensor"  # tensor | scalar | json | value | error
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    shape_match: bool | None = None
    dtype_match: bool | None = None
    allclose: bool | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    frac_equal: float | None = None
    frac_changed: float | None = None  # integer and bool tensors only
    numel: int | None = None
    note: str = ""
    ignored_keys: list[str] = field(default_factory=list)  # JSON key paths left out by --ignore

    @property
    def ok(self) -> bool:
        return bool(self.present == "both" and self.shape_match and self.dtype_match and self.allclose)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def dtype_name(x: Any) -> str:
    import numpy as np
    import torch

    if torch.is_tensor(x):
        return str(x.dtype).removeprefix("torch.")
    if isinstance(x, np.ndarray):
        return str(x.dtype)
    if isinstance(x, (list, tuple)):
        return f"list[{type(x[0]).__name__}]"
    return type(x).__name__


def as_tensor(x: Any):
    import numpy as np
    import torch

    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.tensor(x)


def _is_integral(t) -> bool:
    return not (t.is_floating_point() or t.is_complex())


def tensor_stats(a, b, rtol: float, atol: float) -> dict[str, Any]:
    """allclose / max and mean abs diff / fraction equal of two same-shape tensors, in float64 (int64 for
    two integer tensors), chunk by chunk. NaN == NaN counts as equal; a NaN on one side only is an
    infinite difference."""
    import torch

    fa, fb = a.reshape(-1), b.reshape(-1)
    n = fa.numel()
    integral = _is_integral(a) and _is_integral(b)
    max_d, sum_d, n_eq, close = 0.0, 0.0, 0, True
    for s in range(0, n, CHUNK):
        x, y = fa[s : s + CHUNK], fb[s : s + CHUNK]
        if integral:
            x, y = x.to(torch.int64), y.to(torch.int64)
            eq = x == y
            d = (x - y).abs().to(torch.float64)
        else:
            x, y = x.to(torch.float64), y.to(torch.float64)
            both_nan = torch.isnan(x) & torch.isnan(y)
            eq = (x == y) | both_nan
            d = (x - y).abs()
            d = torch.where(eq, torch.zeros_like(d), d)
            d = torch.nan_to_num(d, nan=math.inf, posinf=math.inf)
        n_eq += int(eq.sum())
        if d.numel():
            max_d = max(max_d, float(d.max()))
            sum_d += float(d.sum())
        close = close and bool(torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))
    return {
        "allclose": close,
        "max_abs_diff": max_d if n else None,
        "mean_abs_diff": sum_d / n if n else None,
        "frac_equal": n_eq / n if n else None,
        "frac_changed": ((n - n_eq) / n if n else None) if integral else None,
        "numel": n,
    }


def compare_leaf(name: str, a: Any, b: Any, rtol: float, atol: float, ignore: list[str]) -> ArtifactRow:
    """Compare one leaf present on both sides."""
    if isinstance(a, LoadError) or isinstance(b, LoadError):
        msgs = [f"{side}: {x.message}" for side, x in (("A", a), ("B", b)) if isinstance(x, LoadError)]
        return ArtifactRow(name, "both", kind="error", allclose=False, note="; ".join(msgs))
    if isinstance(a, Json) and isinstance(b, Json):
        return compare_json(name, a.data, b.data, rtol, atol, ignore)
    numeric = [is_tensor_like(x) or is_number(x) or isinstance(x, bool) or numeric_list(x) for x in (a, b)]
    if not all(numeric):
        same = type(a) is type(b) and a == b
        return ArtifactRow(
            name,
            "both",
            kind="value",
            dtype_a=dtype_name(a),
            dtype_b=dtype_name(b),
            shape_match=True,
            dtype_match=type(a) is type(b),
            allclose=same,
            frac_equal=1.0 if same else 0.0,
            note="" if same else f"{_short(a)} != {_short(b)}",
        )
    ta, tb = as_tensor(a), as_tensor(b)
    row = ArtifactRow(
        name,
        "both",
        kind="tensor" if ta.dim() else "scalar",
        shape_a=list(ta.shape),
        shape_b=list(tb.shape),
        dtype_a=dtype_name(a),
        dtype_b=dtype_name(b),
    )
    row.shape_match = row.shape_a == row.shape_b
    row.dtype_match = row.dtype_a == row.dtype_b
    if not row.shape_match:
        row.allclose = False
        row.note = f"shape {tuple(row.shape_a)} vs {tuple(row.shape_b)}"
        return row
    for k, v in tensor_stats(ta, tb, rtol, atol).items():
        setattr(row, k, v)
    if not row.dtype_match:
        row.note = f"dtype {row.dtype_a} vs {row.dtype_b}"
    return row


def _short(x: Any, limit: int = 40) -> str:
    s = json.dumps(x) if isinstance(x, (str, int, float, bool, type(None), list, dict)) else repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def json_leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """Key path -> leaf (`config.nbits`, `chunks[2].num_passages`); empty containers are leaves."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(json_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data:
        out = {}
        for i, v in enumerate(data):
            out.update(json_leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix or "$": data}


def compare_json(name: str, a: Any, b: Any, rtol: float, atol: float, ignore: list[str]) -> ArtifactRow:
    """Structural comparison: same key paths, same kinds of values, strings/bools equal, numbers within
    `atol + rtol * |b|`. The note names the first differing key paths."""
    la, lb = json_leaves(a), json_leaves(b)
    skipped = {k for k in set(la) | set(lb) if ignored(f"{name}:{k}", ignore)}
    keys = [k for k in dict.fromkeys([*la, *lb]) if k not in skipped]
    diffs: list[str] = []
    abs_diffs: list[float] = []
    n_eq = 0
    shape_match = dtype_match = True
    for k in keys:
        if k not in la or k not in lb:
            shape_match = False
            diffs.append(f"{k}: only in {'A' if k in la else 'B'}")
            continue
        x, y = la[k], lb[k]
        if is_number(x) and is_number(y):
            d = abs(float(x) - float(y))
            abs_diffs.append(d)
            n_eq += x == y
            if not d <= atol + rtol * abs(float(y)):
                diffs.append(f"{k}: {_short(x)} -> {_short(y)}")
            continue
        if type(x) is not type(y):
            dtype_match = False
        if x == y and type(x) is type(y):
            n_eq += 1
        else:
            diffs.append(f"{k}: {_short(x)} -> {_short(y)}")
    note = "; ".join(diffs[:3]) + (f"; ... {len(diffs) - 3} more" if len(diffs) > 3 else "")
    if skipped:
        note = (note + "; " if note else "") + f"{len(skipped)} key(s) ignored"
    return ArtifactRow(
        name,
        "both",
        kind="json",
        dtype_a="json",
        dtype_b="json",
        shape_match=shape_match,
        dtype_match=dtype_match,
        allclose=not diffs,
        max_abs_diff=max(abs_diffs) if abs_diffs else None,
        mean_abs_diff=sum(abs_diffs) / len(abs_diffs) if abs_diffs else None,
        frac_equal=n_eq / len(keys) if keys else 1.0,
        numel=len(keys),
        note=note,
        ignored_keys=sorted(f"{name}:{k}" for k in skipped),
    )


def ignored(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def one_sided(name: str, side: str, value: Any) -> ArtifactRow:
    row = ArtifactRow(name, side, allclose=False, note=f"missing in {'B' if side == 'A' else 'A'}")
    if not isinstance(value, (LoadError, Json)) and (is_tensor_like(value) or numeric_list(value)):
        t = as_tensor(value)
        shape, dtype = list(t.shape), dtype_name(value)
        row.shape_a, row.dtype_a = (shape, dtype) if side == "A" else (None, None)
        row.shape_b, row.dtype_b = (shape, dtype) if side == "B" else (None, None)
    return row
