"""One call tree per pipeline: wrapped calls nested as they ran, figures per collection size, and chains
of wrappers whose figures are identical collapsed into one row that names them all (a wrapper's other,
smaller calls then hang under that row).

A node is a path of targets from a phase (`phase:run` > `Indexer.index` > `CollectionIndexer.setup`), so a
function called from two places gets two rows. Calls of a child process hang under the call that was open
in another process when the child's first call started. Per cell the calls of one node fold like a table
row (`results.figures.fold_calls`); across repeats the median is shown.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from memharness.core.records import CallRecord
from memharness.report import fmt
from memharness.results.figures import fold_calls
from memharness.results.run import CellFolder

SAME_MIB = 1.0  # wrappers whose start, final and peak differ by at most this much collapse into one row
COMPARED = ("start", "final", "peak")


@dataclass
class Node:
    names: list[str]  # one target, or a collapsed chain of wrappers (outer first)
    depth: int
    figures: dict[int, dict[str, float]]  # size -> metric -> median over repeats (bytes, seconds)
    children: list[Node] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " → ".join(fmt.short_target(n) for n in self.names)

    def to_dict(self) -> dict[str, Any]:
        return {"targets": self.names, "depth": self.depth,
                "figures": {str(s): f for s, f in self.figures.items()},
                "children": [c.to_dict() for c in self.children]}


def _paths(calls: list[CallRecord]) -> dict[str, tuple[str, ...]]:
    """call id -> path of targets from its root call."""
    by_id = {c.call_id: c for c in calls}
    root_pid = calls[0].pid if calls else None
    cache: dict[str, tuple[str, ...]] = {}

    def holder(c: CallRecord) -> CallRecord | None:
        """The innermost call of another process open when c (the top call of a child process) started."""
        best = None
        for o in calls:
            if o.pid != c.pid and o.t_start_ns <= c.t_start_ns and (o.t_end_ns is None or o.t_end_ns >= c.t_start_ns):
                if best is None or (o.depth, o.t_start_ns) > (best.depth, best.t_start_ns):
                    best = o
        return best

    def path(c: CallRecord) -> tuple[str, ...]:
        if c.call_id in cache:
            return cache[c.call_id]
        cache[c.call_id] = (c.target,)  # guards against a cycle in damaged records
        parent = by_id.get(c.parent_id) if c.parent_id else None
        if parent is None and c.pid != root_pid:
            parent = holder(c)
        result = (path(parent) if parent is not None else ()) + (c.target,)
        cache[c.call_id] = result
        return result

    return {c.call_id: path(c) for c in calls}


def _cell_nodes(cell: CellFolder) -> dict[tuple[str, ...], dict[str, float]]:
    calls = cell.calls
    paths = _paths(calls)
    grouped: dict[tuple[str, ...], list[CallRecord]] = {}
    for c in calls:
        grouped.setdefault(paths[c.call_id], []).append(c)
    return {p: f for p, cs in grouped.items() if (f := fold_calls(cs))}


def _same(a: Node, b: Node) -> bool:
    if set(a.figures) != set(b.figures):
        return False
    for size, fa in a.figures.items():
        fb = b.figures[size]
        for m in COMPARED:
            if m not in fa or m not in fb or abs(fa[m] - fb[m]) > SAME_MIB * fmt.MiB:
                return False
    return True


def _collapse(node: Node, depth: int) -> Node:
    """Merge into `node` the one child whose figures are the node's (a wrapper calling the real work),
    repeatedly; the merged child's siblings and children hang under the merged row, in call order."""
    node.depth = depth
    while not node.names[0].startswith("phase:"):
        same = [c for c in node.children if _same(node, c)]
        if len(same) != 1:
            break
        (inner,) = same
        i = node.children.index(inner)
        node.names += inner.names
        node.children = node.children[:i] + inner.children + node.children[i + 1:]
    node.children = [_collapse(c, depth + 1) for c in node.children]
    return node


def pipeline_tree(cells: list[CellFolder]) -> list[Node]:
    """The roots (phases, or top calls of runs without phases) of one pipeline's call tree, from its
    finished cells."""
    per_path: dict[tuple[str, ...], dict[int, list[dict[str, float]]]] = {}
    first_seen: dict[tuple[str, ...], tuple[int, int]] = {}
    for ci, cell in enumerate(c for c in cells if c.status == "done"):
        for order, (path, figs) in enumerate(_cell_nodes(cell).items()):
            per_path.setdefault(path, {}).setdefault(cell.size, []).append(figs)
            first_seen.setdefault(path, (ci, order))
    nodes: dict[tuple[str, ...], Node] = {}
    for path in sorted(per_path, key=lambda p: first_seen[p]):
        figures = {}
        for size, figs in sorted(per_path[path].items()):
            metrics = list(dict.fromkeys(m for f in figs for m in f))  # first-seen order, not hash order
            figures[size] = {m: float(statistics.median([f[m] for f in figs if m in f])) for m in metrics}
        nodes[path] = Node([path[-1]], len(path) - 1, figures)
    roots = []
    for path, node in nodes.items():
        parent = nodes.get(path[:-1])
        (parent.children if parent is not None else roots).append(node)
    return [_collapse(r, 0) for r in roots]


def flatten(roots: list[Node]) -> list[Node]:
    out: list[Node] = []

    def walk(n: Node) -> None:
        out.append(n)
        for c in n.children:
            walk(c)

    for r in roots:
        walk(r)
    return out


def rows_text(roots: list[Node], sizes: list[int]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows: the call (indented by depth), then Peak / Peak over Start / Duration per
    size, and GPU peak (allocated) per size where any call recorded one."""
    nodes = flatten(roots)
    gpu = any("gpu_peak" in f for n in nodes for f in n.figures.values())
    head = ["Call"]
    for s in sizes:
        label = fmt.size_label(s)
        head += [f"Peak ({label})", f"Peak over Start ({label})"]
        if gpu:
            head.append(f"GPU Peak ({label})")
        head.append(f"Duration ({label})")
    rows = []
    for n in nodes:
        line = ["\u2003" * n.depth + n.label]
        for s in sizes:
            f = n.figures.get(s, {})
            line += [_mib(f.get("peak")), _mib(f.get("peak_over_start"))]
            if gpu:
                line.append(_mib(f.get("gpu_peak")))
            line.append("–" if f.get("duration_s") is None else fmt.seconds(f["duration_s"]) + " s")
        rows.append(line)
    return head, rows


def _mib(v: float | None) -> str:
    return "–" if v is None else f"{v / fmt.MiB:.1f} MiB"


def markdown(roots: list[Node], sizes: list[int]) -> str:
    head, rows = rows_text(roots, sizes)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
