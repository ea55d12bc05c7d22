"""Text formatting shared by the tables and charts: sizes, MiB, durations, repeat ranges, names."""

from __future__ import annotations

from html import escape

from memharness.core.targets import file_name
from memharness.results.figures import TREE, Stat

MiB = float(1 << 20)


def size_label(n: int) -> str:
    """100000 -> '100k', 2000000 -> '2M', 1500000 -> '1.5M', 300 -> '300'."""
    n = int(n)
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


def mib(value: float) -> str:
    return f"{value / MiB:.1f}"


def seconds(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def signed(value: float) -> str:
    """'+12.3' / '-4.0', never '-0.0'."""
    return f"{round(value, 1) + 0.0:+.1f}"


def count(value: float) -> str:
    return f"{value:g}"


def stat_text(stat: Stat | None, number, unit: str = "") -> str:
    """`1546.7 MiB` for one value; `1546.7 MiB (1540.2–1551.0)` (median, min–max) for repeats."""
    if stat is None or not stat.values:
        return "–"
    sep = f" {unit}" if unit else ""
    text = f"{number(stat.median)}{sep}"
    if len(stat.values) > 1:
        text += f" ({number(stat.min)}–{number(stat.max)})"
    return text


def safe_name(target: str) -> str:
    """A file name for a target: 'process_tree' for the tree pseudo-target, else the dotted path with
    anything but letters, digits, '.', '_' and '-' replaced."""
    return "process_tree" if target == TREE else file_name(target)


def short_target(target: str) -> str:
    """The last two parts of a dotted path: 'colbert.indexing.collection_indexer.CollectionIndexer.setup'
    -> 'CollectionIndexer.setup'."""
    if target.startswith("phase:"):
        return target
    parts = target.split(".")
    return ".".join(parts[-2:])


def heading(target: str) -> str:
    return "Whole process tree" if target == TREE else target


def html_table(header: list[str], rows: list[list[str]], numeric_from: int = 99, cls: str = "",
               numeric: set[int] | None = None) -> str:
    """An HTML table in the report's style: the columns from `numeric_from` on (or those in `numeric`)
    right-aligned, every cell escaped."""
    def td(i: int, v: object) -> str:
        right = i in numeric if numeric is not None else i >= numeric_from
        return f'<td class="num">{escape(str(v))}</td>' if right else f"<td>{escape(str(v))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(td(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")
