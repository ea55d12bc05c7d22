"""The one-page report: a self-contained `index.html` (images as base64 data URIs, inline CSS, no script,
no network) with the tables, charts, line profiles, failed cells, missing targets, environment and
scenario."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from memharness import names
from memharness.report import fmt
from memharness.report.charts.base import CHARTS_SECTION, TIMELINES_SECTION, Chart
from memharness.report.lineprof_render import LineTable
from memharness.report.tables import Table, tree_note
from memharness.results.figures import TREE
from memharness.results.run import CellFolder, Run

CSS = """
:root { --fg:#1d1f21; --muted:#666; --line:#d9dce0; --head:#f3f5f7; --accent:#b0171f; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1400px; padding: 16px 28px 60px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
h3 code { font-size: 15px; }
.meta { color: var(--muted); margin: 0 0 12px; }
nav { background: var(--head); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; }
nav a { margin-right: 16px; text-decoration: none; color: #0b5cad; white-space: nowrap; }
.note { color: var(--muted); font-size: 13.5px; margin: 4px 0 8px; max-width: 1000px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 4px 0 10px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; vertical-align: top; }
th { background: var(--head); text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 14px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 4px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px;
      overflow-x: auto; font-size: 12.5px; line-height: 1.35; }
details { margin: 6px 0; }
summary { cursor: pointer; }
.bad { color: var(--accent); font-weight: 600; }
.ok { color: #1a7f37; font-weight: 600; }
.headline { font-size: 17px; font-weight: 600; margin: 8px 0; }
table.calltree td:first-child { white-space: pre-wrap; max-width: 640px; }
"""


@dataclass
class Page:
    run: Run
    tables: list[Table]
    charts: dict[str, list[Chart]]  # index.html section -> its charts (`report.charts.by_section`)
    line_tables: list[LineTable]
    extra: dict[str, Any] = field(default_factory=dict)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(f: Chart) -> str:
    anchor = f' id="{escape(f.anchor)}"' if f.anchor else ""
    return (f'<figure{anchor}><img src="{data_uri(f.path)}" alt="{escape(f.title)}">'
            f"<figcaption>{escape(f.caption)}</figcaption></figure>")


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = d if isinstance(d, str) else json.dumps(d, default=str)
    return out


def _environment(cells: list[CellFolder]) -> str:
    prints = [(c.id, _flatten(c.fingerprint)) for c in cells if c.fingerprint]
    if not prints:
        return '<p class="note">No cell wrote a fingerprint.json.</p>'
    keys = list(dict.fromkeys(k for _, fp in prints for k in fp))
    same = [k for k in keys if len({fp.get(k, "–") for _, fp in prints}) == 1]
    differ = [k for k in keys if k not in same]
    parts = []
    if not differ:
        parts.append(f'<p class="note">Identical in all {len(prints)} cells.</p>')
    else:
        parts.append(f'<p class="note">Common to all {len(prints)} cells:</p>')
    parts.append(fmt.html_table(["Key", "Value"], [[k, prints[0][1][k]] for k in same]))
    if differ:
        parts.append('<p class="note">Different between cells:</p>')
        parts.append(fmt.html_table(["Key"] + [cid for cid, _ in prints],
                            [[k] + [fp.get(k, "–") for _, fp in prints] for k in differ]))
    return "\n".join(parts)


def _failed(cells: list[CellFolder]) -> str:
    bad = [c for c in cells if c.status != "done"]
    if not bad:
        return f'<p class="ok">All {len(cells)} cells finished.</p>'
    rows = []
    for c in bad:
        st = c.status_json
        rows.append([c.id, c.pipeline, fmt.size_label(c.size), str(c.repeat), st.get("status") or c.status,
                     st.get("cause") or c.cause or "–", "–" if st.get("exit_code") is None else str(st["exit_code"]),
                     st.get("message") or ""])
    parts = [f'<p class="bad">{len(bad)} of {len(cells)} cells did not finish.</p>',
             fmt.html_table(["Cell", "Pipeline", "Size", "Repeat", "Status", "Cause", "Exit code", "Message"], rows)]
    for c in bad:
        tail = _tail(c.dir / names.STDERR, 30)
        if tail:
            parts.append(f"<details><summary>{escape(c.id)}: last lines of stderr.log</summary>"
                         f"<pre>{escape(tail)}</pre></details>")
    return "\n".join(parts)


def _tail(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16384))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


def missing_targets(cells: list[CellFolder]) -> list[dict[str, Any]]:
    """Targets that did not resolve, one entry per (path, reason) with the cells it was missing in."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cells:
        for m in c.targets_json.get("missing", []) or []:
            key = (str(m.get("path", "")), str(m.get("reason", "")))
            entry = grouped.setdefault(key, {"path": key[0], "reason": key[1], "default": m.get("default"),
                                             "cells": []})
            entry["cells"].append(c.id)
    return list(grouped.values())


def _missing(cells: list[CellFolder]) -> str:
    entries = missing_targets(cells)
    if not entries:
        return '<p class="note">Every target resolved in every cell.</p>'
    rows = [[e["path"], e["reason"], "default" if e["default"] else "scenario", ", ".join(e["cells"])]
            for e in entries]
    return fmt.html_table(["Target", "Why it is missing", "Named by", "Cells"], rows)


def unreadable_call_lines(cells: list[CellFolder]) -> list[dict[str, Any]]:
    """Garbage lines the call-file reader skipped, per cell (a torn last line is not one of them)."""
    out = []
    for c in cells:
        for bad in getattr(c.calls, "bad_lines", []):
            try:
                file = str(bad.file.relative_to(c.dir))
            except ValueError:
                file = str(bad.file)
            out.append({"cell": c.id, "file": file, "line": bad.line, "reason": bad.reason})
    return out


def unreadable_files(cells: list[CellFolder]) -> list[dict[str, Any]]:
    """Cell JSON files (status, targets, fingerprint, ...) that could not be read: their figures are missing."""
    return [{"cell": c.id, "file": name, "reason": why} for c in cells for name, why in c.unreadable_files().items()]


def _first_few(places: list[str], limit: int) -> str:
    """The first `limit` places, '; '-joined, and how many more summary.json lists."""
    more = f"; {len(places) - limit} more in {names.REPORT_SUMMARY}" if len(places) > limit else ""
    return "; ".join(places[:limit]) + more


def unreadable_files_warning(entries: list[dict[str, Any]], limit: int = 3) -> str:
    """One sentence: how many cell files could not be read, the first few as cells/ID/FILE (why)."""
    shown = _first_few([f"cells/{e['cell']}/{e['file']} ({e['reason']})" for e in entries], limit)
    return f"{len(entries)} cell file(s) could not be read, so what they hold is missing from the report: {shown}"


def unreadable_calls_warning(entries: list[dict[str, Any]], limit: int = 3) -> str:
    """One sentence: how many call-file lines were skipped, the first few as cells/ID/FILE:LINE (why)."""
    shown = _first_few([f"cells/{e['cell']}/{e['file']}:{e['line']} ({e['reason']})" for e in entries], limit)
    return (f"{len(entries)} unreadable line(s) in call files were skipped, so the calls they held are "
            f"missing from the tables: {shown}")


def sampler_gaps(cells: list[CellFolder]) -> list[dict[str, Any]]:
    """When a cell's timeline sampler was not running (it died and was started again, or the cell was stopped
    for it): seconds from the cell's start, `to_s` None when it never came back."""
    out = []
    for c in cells:
        t0 = c.t0_ns
        for gap in c.sampler_gaps:
            to_ns = gap.get("to_ns")
            out.append({"cell": c.id, "why": gap.get("why", ""),
                        "from_s": None if t0 is None else (gap["from_ns"] - t0) / 1e9,
                        "to_s": None if t0 is None or to_ns is None else (to_ns - t0) / 1e9,
                        "seconds": None if to_ns is None else (to_ns - gap["from_ns"]) / 1e9})
    return out


def sampler_gaps_warning(entries: list[dict[str, Any]], limit: int = 3) -> str:
    """One sentence: which cells' timelines have a gap, the first few as `CELL 0.4 s from 3.1 s (why)`."""
    def one(e: dict[str, Any]) -> str:
        start = "?" if e["from_s"] is None else f"{e['from_s']:.1f}"
        span = "until the cell was stopped" if e["seconds"] is None else f"{e['seconds']:.1f} s"
        return f"{e['cell']} {span} from {start} s ({e['why']})"

    cells = len({e["cell"] for e in entries})
    return (f"the timeline sampler of {cells} cell(s) was not running for a while, so their timelines have a gap "
            f"and max_rss was not enforced then: {_first_few([one(e) for e in entries], limit)}")


def _pipelines_phrase(run: Run) -> str:
    """The pipelines with cells in this run; the scenario's others (left out by --pipelines) named apart."""
    with_cells = {c.pipeline for c in run.cells}
    present = [p for p in run.pipelines if p in with_cells]
    absent = [p for p in run.pipelines if p not in with_cells]
    phrase = f"pipelines: {', '.join(present) or 'none'}"
    if absent:
        phrase += f" (the scenario also names {', '.join(absent)}: no cells in this run)"
    return phrase


def _head(page: Page) -> list[str]:
    """The page's head, title line, navigation and the warnings about unreadable input."""
    run = page.run
    created = run.manifest.get("created_wall_ns")
    when = (dt.datetime.fromtimestamp(created / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if created else "unknown time")
    done = sum(c.status == "done" for c in run.cells)
    title = f"memharness report: {run.scenario} / {run.run_id}"
    nav = [("summary", "Summary")] + ([("calltrees", "Call trees")] if page.extra.get("trees") else [])
    nav += [("predicted", "Predicted sizes")] if page.extra.get("predictions") else []
    nav += [("tables", "Tables"), ("charts", "Charts"), ("timelines", "Timelines")]
    if page.line_tables:
        nav.append(("lineprof", "Line profiles"))
    nav += [("failed", "Failed cells"), ("missing", "Missing targets"), ("environment", "Environment"),
            ("scenario", "Scenario")]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>",
           f'<p class="meta">Run {escape(run.run_id)} of scenario <b>{escape(run.scenario)}</b>, started {when}; '
           f"{len(run.cells)} cells, {done} done"
           + (f', <span class="bad">{len(run.cells) - done} not done</span>' if done < len(run.cells) else "")
           + f"; {escape(_pipelines_phrase(run))}.</p>",
           "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in nav) + "</nav>"]
    garbage = unreadable_call_lines(run.cells)
    if garbage:
        out.append(f'<p class="bad">Warning: {escape(unreadable_calls_warning(garbage))}.</p>')
    broken = unreadable_files(run.cells)
    if broken:
        out.append(f'<p class="bad">Warning: {escape(unreadable_files_warning(broken))}.</p>')
    gaps = sampler_gaps(run.cells)
    if gaps:
        out.append(f'<p class="bad">Warning: {escape(sampler_gaps_warning(gaps))}.</p>')
    return out


TABLES_NOTE = ('<p class="note">One table per wrapped function, rows by pipeline then collection size. Memory in '
               "MiB (2<sup>20</sup> bytes). <b>Starting</b>/<b>Final</b>: process RSS when the call began/"
               "returned; <b>Increment</b> = final − starting; <b>Peak</b>: highest RSS during the call, from "
               "the kernel's high-water mark, so it catches spikes the increment misses; <b>Peak over Start</b> "
               "= peak − starting. With repeats: median (min–max).</p>")
TIMELINES_NOTE = ('<p class="note">Process-tree RSS over time (per process when the cell ran several), GPU memory '
                  "when sampled, and the wrapped calls as spans, one lane per nesting depth; the red marker is "
                  "the peak of the sampled timeline, named by the innermost call open at that moment.</p>")


def _tables(page: Page) -> list[str]:
    out = ['<h2 id="tables">Tables</h2>', TABLES_NOTE]
    for t in page.tables:
        h = escape(t.heading) if t.target == TREE else f"<code>{escape(t.target)}</code>"
        out.append(f'<h3 id="t-{escape(t.file_stem)}">{h}</h3>')
        if t.target == TREE:
            out.append(f'<p class="note">{escape(tree_note(t))}</p>')
        out.append(fmt.html_table(t.header(), t.text_rows(), numeric_from=2, cls="results"))
        if page.extra.get("explain"):  # a link from the call's table to its explained sites
            from memharness.report.explain_render import table_note

            out.append(table_note(page.extra["explain"], t.target))
    if not page.tables:
        out.append('<p class="note">No finished cell recorded any call or timeline sample.</p>')
    return out


def _charts(page: Page) -> list[str]:
    out = ['<h2 id="charts">Charts</h2>']
    out += [f"<h3>{escape(f.title)}</h3>" + _figure(f) for f in page.charts.get(CHARTS_SECTION, [])]
    if not page.charts.get(CHARTS_SECTION):
        out.append('<p class="note">A scaling chart needs two or more sizes, a side-by-side chart two or more '
                   "pipelines at one size.</p>")
    out += ['<h2 id="timelines">Timelines</h2>', TIMELINES_NOTE]
    out += [f"<h3>{escape(f.title)}</h3>" + _figure(f) for f in page.charts.get(TIMELINES_SECTION, [])]
    return out


def _line_profiles(page: Page) -> list[str]:
    if not page.line_tables:
        return []
    out = ['<h2 id="lineprof">Line profiles</h2>',
           '<p class="note">memory_profiler line tables of the scenario\'s <code>line_profile</code> '
           "targets, as memory_profiler prints them.</p>"]
    for lt in page.line_tables:
        out.append(f"<h3><code>{escape(lt.name)}</code> in {escape(lt.cell)}</h3><pre>{escape(lt.text)}</pre>")
    return out


def render(page: Page) -> str:
    """index.html: the answer first (lead sections), then tables, charts, line profiles, explained calls, and
    what a reader checks last (failed cells, missing targets, environment, scenario)."""
    from memharness.report.lead import lead_html

    run = page.run
    out = _head(page)
    out.append(lead_html(page.extra))
    out += _tables(page) + _charts(page) + _line_profiles(page)
    if page.extra.get("explain"):  # cells with an explain/ folder (report/explain_render.py)
        from memharness.report.explain_render import html_section

        out.append(html_section(page.extra["explain"]))
    out.append('<h2 id="failed">Failed cells</h2>' + _failed(run.cells))
    out.append('<h2 id="missing">Missing targets</h2>' + _missing(run.cells))
    out.append('<h2 id="environment">Environment</h2>' + _environment(run.cells))
    out.append('<h2 id="scenario">Scenario</h2>' + f"<pre>{escape(run.scenario_text())}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
