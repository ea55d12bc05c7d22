"""The report's "Explained calls" section: cells with an `explain/` folder (memharness explain, or the
scenario's `explain:` field), their top three allocation sites inline and links to the full results."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from memharness import names

MiB = 1 << 20


def explained(run_dir: Path, out_dir: Path) -> list[dict[str, Any]]:
    """One entry per explained cell: target, agreement, top three host/GPU sites, links relative to out_dir."""
    entries = []
    for path in sorted(Path(run_dir).glob(f"{names.CELLS}/*/{names.EXPLAIN}/{names.EXPLAIN_JSON}")):
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        folder = path.parent
        rel = Path(os.path.relpath(folder, out_dir))
        entry: dict[str, Any] = {"cell": folder.parent.name, "target": res.get("target"),
                                 "second_run": res.get("second_run"), "error": res.get("error"),
                                 "links": {"markdown": str(rel / names.EXPLAIN_MD),
                                           "json": str(rel / names.EXPLAIN_JSON)}}
        for key, name in (("host_flamegraph", "host_flamegraph"), ("gpu_snapshot", "gpu_snapshot")):
            if res.get(key):
                entry["links"][name] = str(rel / res[key])
        head = next((c for c in res.get("calls", []) if c.get("name") == res.get("headline")), None)
        for kind in ("host", "gpu"):
            if head and kind in head:
                entry[kind] = {"total_at_peak": head[kind]["total_at_peak"], "sites": head[kind]["sites"][:3],
                               "agreement": res.get(f"{kind}_agreement")}
        entries.append(entry)
    return entries


def table_note(entries: list[dict[str, Any]], target: str) -> str:
    """Under a call's table: which cells explain that call, with their top site, linking to the section."""
    mine = [e for e in entries if e.get("target") == target]
    if not mine:
        return ""
    parts = []
    for e in mine:
        top = (e.get("host") or e.get("gpu") or {}).get("sites") or []
        site = f": top site <code>{escape(Path(top[0]['file']).name)}:{top[0]['line']}</code>" if top else ""
        parts.append(f'<a href="#explain-{escape(e["cell"])}">{escape(e["cell"])}</a>{site}')
    return '<p class="note">Explained (allocation sites at the peak): ' + "; ".join(parts) + "</p>"


def html_section(entries: list[dict[str, Any]]) -> str:
    out = ['<h2 id="explain">Explained calls</h2>',
           '<p class="note">Allocation sites alive at the call\'s high-water mark (memray for host memory, '
           "torch's allocator history for CUDA), measured in a second run of the cell with the recorders on "
           "(or, for the scenario's <code>explain:</code> cells, in this run); the tables above keep the "
           "harness's exact peaks. Top three sites; the rest behind the links.</p>"]
    for e in entries:
        links = " · ".join(f'<a href="{escape(v)}">{escape(k.replace("_", " "))}</a>' for k, v in e["links"].items())
        out.append(f'<h3 id="explain-{escape(e["cell"])}"><code>{escape(str(e["target"]))}</code> in '
                   f"{escape(e['cell'])}</h3><p>{links}</p>")
        if e.get("error"):
            out.append(f'<p class="bad">{escape(e["error"])}</p>')
        for kind in ("host", "gpu"):
            if kind not in e:
                continue
            ag = e[kind].get("agreement") or {}
            verdict = {"agree": "agrees with the harness", "disagree": "DISAGREES with the harness"}.get(
                ag.get("status"), "no harness figure to compare")
            ratio = f" (ratio {ag['ratio']:.2f})" if ag.get("ratio") else ""
            cls = ' class="bad"' if ag.get("status") == "disagree" else ""
            out.append(f"<p{cls}>{kind}: {e[kind]['total_at_peak'] / MiB:,.1f} MiB at the call's peak; "
                       f"{verdict}{ratio}.</p><ol>")
            for s in e[kind]["sites"]:
                out.append(f"<li><code>{escape(Path(s['file']).name)}:{s['line']}</code> "
                           f"<code>{escape(s['function'])}</code>: {s['bytes'] / MiB:,.1f} MiB "
                           f"in {s['count']} allocations</li>")
            out.append("</ol>")
    return "\n".join(out)
