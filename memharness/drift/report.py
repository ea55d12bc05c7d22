"""Markdown and JSON renderings of `artifacts diff` and `diverge` results."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from memharness.drift.artifacts import DiffResult
from memharness.drift.divergence import DivergeResult


def fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.4g}"


def fmt_frac(x: float | None) -> str:
    """Fractions that are not exactly 0 or 1 never print as 0 or 1."""
    if x is None:
        return "-"
    if x in (0, 1):
        return str(int(x))
    s = f"{x:.6g}"
    if s == "1":
        return ">0.999999"
    return s


def fmt_bool(x: bool | None) -> str:
    return "-" if x is None else str(bool(x))


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


# ---------------------------------------------------------------- artifacts diff

# Each table: (column header, the row's cell) in column order.
ARTIFACT_TABLE: list[tuple[str, Callable[[Any], str]]] = [
    ("Artifact", lambda r: f"`{r.artifact}`"), ("present", lambda r: r.present),
    ("shape match", lambda r: fmt_bool(r.shape_match)), ("dtype match", lambda r: fmt_bool(r.dtype_match)),
    ("torch.allclose", lambda r: fmt_bool(r.allclose)), ("max abs diff", lambda r: fmt_num(r.max_abs_diff)),
    ("mean abs diff", lambda r: fmt_num(r.mean_abs_diff)), ("fraction exactly equal", lambda r: fmt_frac(r.frac_equal)),
    ("fraction changed", lambda r: fmt_frac(r.frac_changed)), ("note", lambda r: r.note),
]
ARTIFACT_COLUMNS = [header for header, _ in ARTIFACT_TABLE]


def _rows(table: list[tuple[str, Callable[[Any], str]]], rows: list[Any]) -> list[str]:
    """The markdown lines of `rows` rendered by `table`."""
    return _table([header for header, _ in table], [[cell(r) for _, cell in table] for r in rows])


def artifacts_markdown(res: DiffResult) -> str:
    lines = [f"A: `{res.dir_a}`" + (f" (index folder `{res.index_a}`)" if res.index_a != res.dir_a else "")]
    lines.append(f"B: `{res.dir_b}`" + (f" (index folder `{res.index_b}`)" if res.index_b != res.dir_b else ""))
    lines += [f"Tolerance: rtol={res.rtol:g} atol={res.atol:g}", ""]
    lines += _rows(ARTIFACT_TABLE, res.rows)
    c = res.counts()
    lines += [
        "",
        f"{c['rows']} compared: {c['allclose']} equal within tolerance, {c['differ']} differ, "
        f"{c['only_a']} only in A, {c['only_b']} only in B"
        + (f", {c['load_errors']} could not be loaded (see the note)." if c["load_errors"] else "."),
    ]
    if res.ignored:
        lines.append(f"Ignored ({len(res.ignored)}): " + ", ".join(f"`{x}`" for x in res.ignored))
    if res.not_compared:
        shown = ", ".join(f"`{x}`" for x in res.not_compared[:10])
        more = f" and {len(res.not_compared) - 10} more" if len(res.not_compared) > 10 else ""
        lines.append(f"Not compared (not .pt/.npy/.json): {shown}{more}")
    lines.append("Result: " + ("identical within tolerance" if res.ok else "DIFFERENT"))
    return "\n".join(lines) + "\n"


def artifacts_json(res: DiffResult) -> str:
    return json.dumps(_finite(res.to_dict()), indent=2) + "\n"


# ---------------------------------------------------------------- diverge

def _shape(r: Any) -> str:
    s = r.shape_a if r.shape_a is not None else r.shape_b
    return "x".join(str(n) for n in s) if s is not None else "-"


DIVERGE_TABLE: list[tuple[str, Callable[[Any], str]]] = [
    ("#", lambda r: str(r.index)), ("Module", lambda r: f"`{r.module}`"), ("Type", lambda r: r.type),
    ("Shape", _shape), ("max abs diff", lambda r: fmt_num(r.max_abs_diff)),
    ("mean abs diff", lambda r: fmt_num(r.mean_abs_diff)), ("torch.allclose", lambda r: fmt_bool(r.allclose)),
    ("note", lambda r: r.note),
]
DIVERGE_COLUMNS = [header for header, _ in DIVERGE_TABLE]


def diverge_markdown(res: DivergeResult) -> str:
    lines = []
    for side, cap in (("A", res.a), ("B", res.b)):
        env = cap.env
        lines.append(
            f"{side} ({cap.label}): {_describe(cap.variant)}; torch {env.get('torch')}, "
            f"transformers {env.get('transformers')}, {env.get('device')}"
        )
        lines += [f"  warning ({side}): {note}" for note in cap.notes]
    lines += [f"Tolerance: rtol={res.rtol:g} atol={res.atol:g}", ""]
    lines += _rows(DIVERGE_TABLE, res.rows)
    lines.append("")
    first = res.first
    if first is None:
        lines.append(f"No divergence: all {len(res.rows)} module outputs are allclose.")
    else:
        n_bad = sum(not r.ok for r in res.rows)
        lines.append(
            f"First diverging module: `{first.module}` ({first.type}, execution index {first.index}): "
            f"max abs diff {fmt_num(first.max_abs_diff)}, mean abs diff {fmt_num(first.mean_abs_diff)}"
            + (f", {first.note}" if first.note else "")
            + f". {n_bad} of {len(res.rows)} module outputs differ."
        )
    return "\n".join(lines) + "\n"


def _describe(v: dict[str, Any]) -> str:
    how = "from_pretrained(dtype=...)" if v.get("dtype_mode") == "load" else ".to(dtype) after load"
    auto = f"autocast {v.get('autocast_dtype') or 'default'}" if v.get("autocast") else "no autocast"
    return f"{v.get('model')} {v.get('dtype')} via {how}, {auto}, batch {v.get('batch_size')}, {v.get('device')}"


def diverge_json(res: DivergeResult) -> str:
    return json.dumps(_finite(res.to_dict()), indent=2) + "\n"


def _finite(obj: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
