"""Baseline shifts: a move of the memory a process holds before its wrapped calls, reported once.

For each matched cell the checkpoints of `levels.py` common to every repeat of both sides are walked in
time order. A step between two checkpoints (say `import faiss`, or `prepare`) is a source of a shift when
its change passes the rule with the threshold taken against the level it leads to and the change exceeds
the absolute floor. Sources are gathered up to the next wrapped function's entry and reported there:
"+100 MiB held before `Indexer.index`, from imports (faiss +98 MiB, faiss-cpu 1.15.1 -> 1.13.2)". When no
single step passes but the level at a wrapped function's entry does, the shift is reported with its
largest steps as sources. Host RSS and torch's allocated GPU bytes are walked separately.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from memharness.compare.entry_levels import CALL, IMPORTS, CellLevels, label, segment_label, short
from memharness.compare.rule import UNCHANGED, Rule, decide

MiB = float(1 << 20)
HOST = "host"
GPU = "gpu"


@dataclass
class ImportChange:
    module: str
    delta: float  # bytes, median CURRENT import cost - median BASE import cost (0 where not imported)
    package_base: str | None
    package_current: str | None

    def text(self) -> str:
        out = f"{self.module} {_mib(self.delta)}"
        b, c = self.package_base, self.package_current
        if b and c and b != c:
            out += f": {b} -> {_version_only(b, c)}"
        elif b != c:
            out += f": {b or 'not imported'} -> {c or 'not imported'}"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "delta": self.delta, "delta_mib": self.delta / MiB,
                "package_base": self.package_base, "package_current": self.package_current}


@dataclass
class Source:
    key: str  # checkpoint the step leads to
    text: str  # what ran in that step
    delta: float  # bytes, median CURRENT step - median BASE step
    imports: list[ImportChange] = field(default_factory=list)  # for the imports step: the modules that moved
    kept_by: list[tuple[str, float]] = field(default_factory=list)  # (function returning in the step, kept delta)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.key, "text": self.text, "delta": self.delta, "delta_mib": self.delta / MiB,
                "imports": [x.to_dict() for x in self.imports],
                "kept_by": [{"target": t, "delta": d, "delta_mib": d / MiB} for t, d in self.kept_by]}


@dataclass
class Shift:
    kind: str  # HOST or GPU
    pipeline_base: str
    pipeline_current: str
    size: int
    before: str  # checkpoint key where it is first held: "call:pkg.f" (or the last checkpoint)
    delta: float  # bytes, median level change at `before` (all shifts up to here)
    change: float  # bytes, what this shift adds to the shifts reported before it in the same cell
    level_base: float
    level_current: float
    sources: list[Source] = field(default_factory=list)
    spread: bool = False  # no single step passed; sources are the largest steps

    @property
    def from_imports(self) -> bool:
        return any(s.key == IMPORTS for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pipeline_base": self.pipeline_base, "pipeline_current": self.pipeline_current,
                "size": self.size, "before": self.before, "delta": self.delta, "delta_mib": self.delta / MiB,
                "change": self.change, "change_mib": self.change / MiB,
                "level_base": self.level_base, "level_current": self.level_current, "spread": self.spread,
                "from_imports": self.from_imports, "sources": [s.to_dict() for s in self.sources],
                "text": describe(self)}


def _values(levels: list[CellLevels], key: str, kind: str) -> list[float]:
    out = []
    for lv in levels:
        for cp in lv.checkpoints:
            if cp.key == key:
                v = cp.rss if kind == HOST else cp.gpu
                if v is not None:
                    out.append(float(v))
                break
    return out


def _package(levels: list[CellLevels], module: str) -> str | None:
    found = [lv.imports[module].package for lv in levels if module in lv.imports and lv.imports[module].package]
    return " | ".join(dict.fromkeys(found)) or None  # type: ignore[arg-type]


def import_changes(base: list[CellLevels], current: list[CellLevels], total: float) -> list[ImportChange]:
    """Modules whose import cost moved, largest first: those that make up the imports step's change."""
    modules = list(dict.fromkeys(m for lv in base + current for m in lv.imports))
    out = []
    for m in modules:
        b = [lv.imports[m].delta if m in lv.imports else 0.0 for lv in base]
        c = [lv.imports[m].delta if m in lv.imports else 0.0 for lv in current]
        delta = float(statistics.median(c) - statistics.median(b))
        if abs(delta) >= max(0.05 * abs(total), MiB):
            out.append(ImportChange(m, delta, _package(base, m), _package(current, m)))
    return sorted(out, key=lambda x: -abs(x.delta))[:4]


def _common_keys(base: list[CellLevels], current: list[CellLevels], kind: str) -> list[str]:
    everyone = base + current
    if not everyone:
        return []
    order = [cp.key for cp in base[0].checkpoints]
    keys = []
    for key in order:
        n_b, n_c = len(_values(base, key, kind)), len(_values(current, key, kind))
        if n_b == len(base) and n_c == len(current):
            keys.append(key)
    return keys


def _t(levels: CellLevels, key: str) -> int | None:
    return next((cp.t_ns for cp in levels.checkpoints if cp.key == key), None)


def kept_changes(base: list[CellLevels], current: list[CellLevels], prev: str, key: str, kind: str,
                 total: float) -> list[tuple[str, float]]:
    """Functions whose first call returned between checkpoints PREV and KEY and kept more (or less) memory
    at exit than in BASE: what a step between two wrapped calls is made of."""
    def kept(levels: list[CellLevels], target: str) -> list[float]:
        out = []
        for lv in levels:
            t0, t1, k = _t(lv, prev), _t(lv, key), lv.kept.get(target)
            if t0 is None or t1 is None or k is None or not t0 <= k[0] <= t1:
                continue
            v = k[1] if kind == HOST else k[2]
            if v is not None:
                out.append(v)
        return out

    found = []
    for target in dict.fromkeys(t for lv in base + current for t in lv.kept):
        b, c = kept(base, target), kept(current, target)
        if b and c:
            delta = float(statistics.median(c) - statistics.median(b))
            if delta * total > 0 and abs(delta) >= 0.25 * abs(total):
                found.append((target, delta))
    # a caller's kept memory includes its callees': name the innermost functions that moved
    inner = [(t, d) for t, d in found
             if not any(o in lv.descendants.get(t, ()) for o, _ in found if o != t for lv in base + current)]
    return sorted(inner, key=lambda x: -abs(x[1]))[:3]


def _changed(old: list[float], new: list[float], rule: Rule, reference: float) -> bool:
    d = decide(old, new, rule, reference=reference)
    return d.verdict != UNCHANGED and abs(d.delta) > rule.min_bytes


def _steps(levels: list[CellLevels], prev: str, key: str, kind: str) -> list[float]:
    a, b = _values(levels, prev, kind), _values(levels, key, kind)
    return [y - x for x, y in zip(a, b, strict=True)]


def find_shifts(base: list[CellLevels], current: list[CellLevels], rule: Rule, kind: str,
                pipeline_base: str, pipeline_current: str, size: int) -> list[Shift]:
    keys = _common_keys(base, current, kind)
    shifts: list[Shift] = []
    pending: list[Source] = []
    steps_since: list[Source] = []  # every step since the last report, for a shift spread over steps
    reported_delta = 0.0
    significant: list[Source] = []

    def med(vals: list[float]) -> float:
        return float(statistics.median(vals))

    for i, key in enumerate(keys):
        lb, lc = _values(base, key, kind), _values(current, key, kind)
        if i > 0:
            prev = keys[i - 1]
            sb, sc = _steps(base, prev, key, kind), _steps(current, prev, key, kind)
            src = Source(key, segment_label(prev, key), med(sc) - med(sb))
            if key == IMPORTS:
                src.imports = import_changes(base, current, src.delta)
            elif prev.startswith(CALL):
                src.kept_by = kept_changes(base, current, prev, key, kind, src.delta)
            steps_since.append(src)
            if _changed(sb, sc, rule, reference=med(lb)):
                pending.append(src)
                significant.append(src)
        last = i == len(keys) - 1
        if not (key.startswith(CALL) or last):
            continue
        delta = med(lc) - med(lb)
        level_moved = _changed(lb, lc, rule, reference=med(lb))
        news = abs(delta - reported_delta) > max(rule.min_bytes, rule.threshold * med(lb))
        if not (level_moved and news):
            if pending:  # the steps cancelled out (memory held more earlier was released): no shift here
                pending, steps_since = [], []
                reported_delta = delta
            continue
        if not pending:
            biggest = sorted(steps_since, key=lambda s: -abs(s.delta))[:3]
            pending = [s for s in biggest if s.delta * (delta - reported_delta) > 0] or biggest
        shifts.append(Shift(kind, pipeline_base, pipeline_current, size, key, delta, delta - reported_delta,
                            med(lb), med(lc), pending, spread=not any(p in pending for p in significant)))
        reported_delta = delta
        pending, steps_since = [], []
    return shifts


def _mib(v: float) -> str:
    return f"{v / MiB:+.1f} MiB"


def _source_text(sources: list[Source]) -> str:
    parts = []
    for s in sources:
        if s.kept_by:
            kept = ", ".join(f"`{short(t)}` {_mib(d)}" for t, d in s.kept_by)
            parts.append(f"memory kept at exit by {kept} ({s.text}: {_mib(s.delta)})")
            continue
        detail = "; ".join(x.text() for x in s.imports) if s.imports else ""
        parts.append(f"{s.text} ({_mib(s.delta)}{': ' + detail if detail else ''})")
    return ", ".join(parts)


def _version_only(base: str, current: str) -> str:
    """'faiss-cpu 1.13.2' after 'faiss-cpu 1.15.1' reads as '1.13.2'."""
    b_name, _, _ = base.partition(" ")
    c_name, _, c_ver = current.partition(" ")
    return c_ver if b_name == c_name and c_ver else current


def describe(shift: Shift) -> str:
    what = "held" if shift.kind == HOST else "torch-allocated on the GPU"
    where = f"before {label(shift.before)}" if shift.before.startswith(CALL) else f"at {label(shift.before)}"
    spread = "spread over steps, largest: " if shift.spread else ""
    total = f" ({_mib(shift.delta)} in all)" if abs(shift.delta - shift.change) >= MiB else ""
    return f"{_mib(shift.change)} {what} {where}{total}, from {spread}{_source_text(shift.sources)}"
