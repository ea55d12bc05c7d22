"""Expand a scenario into its cells: pipeline variant x size x repeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memharness.scenario import format_size

if TYPE_CHECKING:
    from memharness.scenario import Scenario


@dataclass(frozen=True)
class CellPlan:
    id: str
    pipeline: str
    kind: str
    size: int
    repeat: int
    options: dict[str, Any] = field(hash=False)
    model: str | None
    targets: tuple[str, ...]


def cell_id(pipeline: str, size: int, repeat: int) -> str:
    return f"{pipeline}__{format_size(size)}__r{repeat}"


def _pick(values: list, chosen: list | None, what: str, fmt=str) -> list:
    if not chosen:
        return values
    unknown = [c for c in chosen if c not in values]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(fmt(u) for u in unknown)} "
                         f"(the scenario has: {', '.join(fmt(v) for v in values)})")
    return [v for v in values if v in chosen]


def expand(scenario: Scenario, sizes: list[int] | None = None, pipelines: list[str] | None = None,
           repeats: int | None = None) -> list[CellPlan]:
    """Cells in run order: smallest size first; at each size the repeats, each running every pipeline.

    `sizes` (from `--sizes`) replace the scenario's sizes and need not be among them."""
    if sizes is not None and any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise ValueError(f"sizes must be positive integers, got {sizes!r}")
    chosen_sizes = sorted(set(sizes)) if sizes else sorted(scenario.sizes)
    names = [p.name for p in scenario.pipelines]
    chosen_names = _pick(names, pipelines, "pipeline")
    n_repeats = repeats if repeats is not None else scenario.repeats
    if n_repeats < 1:
        raise ValueError("repeats must be >= 1")
    plans = []
    for size in chosen_sizes:
        for r in range(n_repeats):
            for p in scenario.pipelines:
                if p.name not in chosen_names:
                    continue
                plans.append(CellPlan(
                    id=cell_id(p.name, size, r), pipeline=p.name, kind=p.kind, size=size, repeat=r,
                    options=dict(p.options), model=p.model or scenario.model,
                    targets=tuple(dict.fromkeys(list(scenario.targets) + list(p.targets))),
                ))
    return plans
