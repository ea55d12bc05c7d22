"""`explain ... --against [RUN:]CELL_B`: two cells' host sites side by side, with the difference B - A.

For each host view both cells recorded (alive at entry with --at-entry, retained at exit with --retained, at
the call's peak always), every site of the two captures (not only the top N kept in explain.json), matched
by file (after site-packages/), line and function. Rows are ordered by the size of the difference; the rest
is summed in one row, then the totals. GPU sites are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memharness import names
from memharness.explain.frames import Roots, short_path
from memharness.explain.host import PEAK, RETAINED, read_sites
from memharness.explain.markdown import mib

VIEWS = (("at_entry", "Alive at the call's entry"), ("retained", "Retained at the call's exit"),
         ("peak", "At the call's host peak"))


Capture = tuple[Path, str, Roots]  # a memray file, the view read from it, the frame rule's folders


def _captures(explain_dir: Path, result: dict[str, Any]) -> dict[str, Capture]:
    """The memray capture and view behind each host view of the result's headline invocation."""
    head = next((c for c in result.get("calls", []) if c["name"] == result.get("headline")), None)
    out: dict[str, Capture] = {}
    if head is None:
        return out
    entry = next((c for c in result["calls"] if c["name"] == result.get("at_entry_call")), None)
    if entry is not None and entry["at_entry"].get("capture"):
        roots = Roots.from_meta(entry.get("frame_roots"))
        out["at_entry"] = (explain_dir / entry["at_entry"]["capture"], RETAINED, roots)
    if "host" in head:
        roots = Roots.from_meta(head.get("frame_roots"))
        out["peak"] = (explain_dir / head["host"]["capture"], PEAK, roots)
        if "retained" in head["host"]:
            out["retained"] = (explain_dir / head["host"]["capture"], RETAINED, roots)
    return out


def _by_key(capture: Capture, frames: str) -> dict[tuple[str, int, str], tuple[int, int]]:
    path, view, roots = capture
    sites, _ = read_sites(path, view, frames, roots)
    out: dict[tuple[str, int, str], tuple[int, int]] = {}
    for s in sites:
        key = (short_path(s.file), s.line, s.function)
        b, n = out.get(key, (0, 0))
        out[key] = (b + s.bytes, n + s.count)
    return out


def compare(a: tuple[str, Path, dict[str, Any]], b: tuple[str, Path, dict[str, Any]], top: int) -> dict[str, Any]:
    """a, b: (label, explain folder, explain.json's result). The rows of every view both cells have."""
    (label_a, dir_a, res_a), (label_b, dir_b, res_b) = a, b
    cap_a, cap_b = _captures(dir_a, res_a), _captures(dir_b, res_b)
    frames = res_a.get("frames", "user")
    views = []
    for view, title in VIEWS:
        if view not in cap_a or view not in cap_b:
            continue
        sa, sb = _by_key(cap_a[view], frames), _by_key(cap_b[view], frames)
        rows = [{"file": k[0], "line": k[1], "function": k[2], "a": sa.get(k, (0, 0))[0], "b": sb.get(k, (0, 0))[0],
                 "diff": sb.get(k, (0, 0))[0] - sa.get(k, (0, 0))[0]} for k in set(sa) | set(sb)]
        rows.sort(key=lambda r: (-abs(r["diff"]), r["file"], r["line"], r["function"]))
        rest = rows[top:]
        views.append({"view": view, "title": title, "rows": rows[:top], "n_sites": len(rows),
                      "other": {"a": sum(r["a"] for r in rest), "b": sum(r["b"] for r in rest),
                                "diff": sum(r["diff"] for r in rest)},
                      "total": {"a": sum(v[0] for v in sa.values()), "b": sum(v[0] for v in sb.values())}})
    return {"target": res_a.get("target"), "a": label_a, "b": label_b, "frames": frames, "views": views}


def render(cmp: dict[str, Any]) -> str:
    lines = [f"# `{cmp['target']}`: {cmp['a']} (A) vs {cmp['b']} (B)", "",
             "Host sites of both cells' second runs side by side (memray); B - A > 0: B holds more there.", ""]
    if not cmp["views"]:
        lines += ["No host view recorded in both cells.", ""]
    for v in cmp["views"]:
        t = v["total"]
        lines += [f"## {v['title']}", "",
                  f"A {mib(t['a'])}, B {mib(t['b'])}, B - A {mib(t['b'] - t['a'])} ({v['n_sites']} sites).", "",
                  "| # | site (file:line) | function | A | B | B - A |", "|---|---|---|---:|---:|---:|"]
        for i, r in enumerate(v["rows"], 1):
            lines.append(f"| {i} | `{r['file']}:{r['line']}` | `{r['function']}` | {mib(r['a'])} | {mib(r['b'])} "
                         f"| {mib(r['diff'])} |")
        o = v["other"]
        lines += [f"| | other sites | | {mib(o['a'])} | {mib(o['b'])} | {mib(o['diff'])} |",
                  f"| | total | | {mib(t['a'])} | {mib(t['b'])} | {mib(t['b'] - t['a'])} |", ""]
    return "\n".join(lines)


def write(explain_dir: Path, name: str, cmp: dict[str, Any]) -> Path:
    js, md_name = names.against_files(name)
    (explain_dir / js).write_text(json.dumps(cmp, indent=2), encoding="utf-8")
    md = explain_dir / md_name
    md.write_text(render(cmp), encoding="utf-8")
    return md
