"""Compare two captures module by module and name the first module whose output differs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from memharness.drift.capture import Capture
from memharness.drift.leafdiff import tensor_stats


@dataclass
class ModuleRow:
    index: int  # execution index (order in which A's hooks fired; B-only modules come last)
    module: str
    type: str
    present: str  # "both", "A" or "B"
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    frac_equal: float | None = None
    allclose: bool | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.present == "both" and self.allclose)


@dataclass
class DivergeResult:
    a: Capture
    b: Capture
    rtol: float
    atol: float
    rows: list[ModuleRow] = field(default_factory=list)

    @property
    def first(self) -> ModuleRow | None:
        return next((r for r in self.rows if not r.ok), None)

    @property
    def ok(self) -> bool:
        return self.first is None

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "a": {"label": self.a.label, "variant": self.a.variant, "env": self.a.env, "notes": self.a.notes},
            "b": {"label": self.b.label, "variant": self.b.variant, "env": self.b.env, "notes": self.b.notes},
            "rtol": self.rtol,
            "atol": self.atol,
            "ok": self.ok,
            "first_diverging": first.module if first else None,
            "diverging": sum(not r.ok for r in self.rows),
            "rows": [asdict(r) | {"ok": r.ok} for r in self.rows],
        }


def compare(a: Capture, b: Capture, rtol: float, atol: float) -> DivergeResult:
    result = DivergeResult(a, b, rtol, atol)
    for i, key in enumerate([*a.order, *(k for k in b.order if k not in a.outputs)]):
        in_a, in_b = key in a.outputs, key in b.outputs
        row = ModuleRow(
            i, key, a.types.get(key) or b.types.get(key, "?"), "both" if in_a and in_b else "A" if in_a else "B"
        )
        ta, tb = a.outputs.get(key), b.outputs.get(key)
        row.shape_a = list(ta.shape) if ta is not None else None
        row.shape_b = list(tb.shape) if tb is not None else None
        if row.present != "both":
            row.note = f"only in {row.present}"
        else:
            if row.shape_a != row.shape_b:
                ta, tb = _first_batches(ta, tb, a.combined.get(key), b.combined.get(key))
                if ta is None:
                    row.allclose = False
                    row.note = f"shape {tuple(row.shape_a)} vs {tuple(row.shape_b)}"
                    result.rows.append(row)
                    continue
                row.note = "first batch only (batch sizes differ)"
            stats = tensor_stats(ta, tb, rtol, atol)
            row.allclose = stats["allclose"]
            row.max_abs_diff, row.mean_abs_diff = stats["max_abs_diff"], stats["mean_abs_diff"]
            row.frac_equal = stats["frac_equal"]
        result.rows.append(row)
    return result


def _first_batches(ta: Any, tb: Any, mode_a: str | None, mode_b: str | None) -> tuple[Any, Any]:
    """A batch-independent output (e.g. position embeddings, [1, L, d]) is kept from the first batch only,
    except when every batch held one input: then it looks batched ([N, L, d]). Compare the first rows."""
    if {mode_a, mode_b} != {"batch", "first-batch"}:
        return None, None
    batched, single = (ta, tb) if mode_a == "batch" else (tb, ta)
    n = single.shape[0] if single.dim() else 0
    if not n or batched.dim() != single.dim() or batched.shape[1:] != single.shape[1:] or batched.shape[0] < n:
        return None, None
    return (batched[:n], single) if mode_a == "batch" else (single, batched[:n])
