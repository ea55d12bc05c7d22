"""Rendering of the sections before the per-function tables: the summary (the figures of `answer.py`), one
call tree per pipeline, and the predicted sizes; as Markdown for tables.md and as HTML for index.html."""

from __future__ import annotations

from html import escape
from typing import Any

from memharness.report import answer as answer_mod
from memharness.report import calltree, fmt
from memharness.results.run import Run

SUMMARY_NOTE = ("Process-tree figures over the run phase only (imports, extension compiles and model loads "
                "happen in `prepare` and are left out). *× smallest*: peak divided by the lowest peak at that "
                "size. *Peak inside*: the innermost wrapped call open when the peak was reached (from the calls' exact "
                "peaks when the main process held it, else at the highest timeline sample).")
TREE_NOTE = ("Wrapped calls nested as they ran (per cell, median over repeats). A row naming several calls "
             "joined by → is a chain of wrappers whose start, final and peak differ by at most "
             f"{calltree.SAME_MIB:g} MiB at every size. `phase:*` rows are the cell's steps; their peaks are "
             "the main process's.")
PREDICT_NOTE = ("Run-phase tree peak fitted against size per pipeline: linear and power law, the one with the "
                "smaller leave-one-out error chosen. *Check*: the largest measured size predicted from the "
                "smaller ones; its error is the error bar of every prediction. A fit of a few sizes says "
                "nothing about a change of regime beyond them.")
METRIC_NAMES = {"peak": "RAM (tree peak)", "gpu_nvml_peak": "GPU (NVML used)"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}%"


def _loo(d: dict[str, float | None]) -> str:
    return ", ".join(f"{m} {'–' if v is None else f'{v * 100:.1f}%'}" for m, v in d.items())


def prediction_rows(preds: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["Indexing Method", "Figure", "Model (chosen)", "Leave-one-out error", "Check", "Predicted"]
    rows = []
    for p, by_metric in preds.items():
        for metric, d in by_metric.items():
            chk = d["largest_check"]
            check = ("needs 3 sizes" if chk is None else
                     f"{fmt.size_label(chk['size'])} from {', '.join(fmt.size_label(s) for s in chk['fitted_on'])}: "
                     f"{chk['predicted_mib']:.1f} MiB predicted, {chk['measured_mib']:.1f} measured "
                     f"({_pct(chk['relative_error'])})")
            predicted = "; ".join(
                f"{fmt.size_label(x['size'])}: {x['predicted_mib']:.0f} MiB"
                + ("" if x["low_mib"] is None else f" ({x['low_mib']:.0f}–{x['high_mib']:.0f})")
                for x in d["predictions"]) or "–"
            rows.append([p, METRIC_NAMES.get(metric, metric), f"{d['model']}: {d['formula']}",
                         _loo(d["loo_mean_relative_error"]), check, predicted])
    return head, rows


def lead_markdown(ans: dict[str, Any], trees: dict[str, list[calltree.Node]], run: Run,
                  preds: dict[str, dict[str, Any]]) -> str:
    parts = ["## Summary\n", SUMMARY_NOTE + "\n", answer_mod.markdown(ans)]
    if trees:
        parts += ["## Call trees\n", TREE_NOTE + "\n"]
    for p, roots in trees.items():
        sizes = sorted({s for n in calltree.flatten(roots) for s in n.figures})
        parts += [f"**{p}**\n", calltree.markdown(roots, sizes)]
    if preds:
        head, rows = prediction_rows(preds)
        parts += ["## Predicted sizes\n", PREDICT_NOTE + "\n",
                  "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
                  + "".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n" for r in rows)]
    parts.append("## Per-function tables\n")
    return "\n".join(parts)


def lead_html(extra: dict[str, Any]) -> str:
    """The summary, call trees and predictions sections of index.html."""

    ans = extra.get("answer") or {"headline": None, "sizes": []}
    out = ['<h2 id="summary">Summary</h2>']
    if ans["headline"]:
        out.append(f'<p class="headline">{escape(ans["headline"])}</p>')
    out.append(f'<p class="note">{_md_note(SUMMARY_NOTE)}</p>')
    if ans["sizes"]:
        gpu = any(e["gpu_peak"] is not None for s in ans["sizes"] for e in s["pipelines"])
        head = ["Document Size", "Indexing Method", "Peak (run phase)", "× smallest", "Peak inside"]
        head += ["GPU Peak (NVML)"] if gpu else []
        rows = [answer_mod.summary_cells(s["size"], e, gpu) for s in ans["sizes"] for e in s["pipelines"]]
        out.append(fmt.html_table(head, rows, numeric={2, 3, 5}, cls="summary"))
        others = [s["sentence"] for s in ans["sizes"] if s["sentence"] != ans["headline"]]
        if others:
            out.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in others) + "</ul>")
    trees: dict[str, list[calltree.Node]] = extra.get("trees") or {}
    if trees:
        out.append('<h2 id="calltrees">Call trees</h2>')
        out.append(f'<p class="note">{_md_note(TREE_NOTE)}</p>')
        for p, roots in trees.items():
            sizes = sorted({s for n in calltree.flatten(roots) for s in n.figures})
            head, rows = calltree.rows_text(roots, sizes)
            out.append(f"<h3>{escape(p)}</h3>")
            out.append(fmt.html_table(head, rows, numeric_from=1, cls="calltree"))
    preds = extra.get("predictions") or {}
    if preds:
        out.append('<h2 id="predicted">Predicted sizes</h2>')
        out.append(f'<p class="note">{_md_note(PREDICT_NOTE)}</p>')
        head, rows = prediction_rows(preds)
        out.append(fmt.html_table(head, rows))
    return "\n".join(out)


def _md_note(text: str) -> str:
    """The notes' light Markdown (`code`, *emphasis*) as HTML."""
    import re

    html = escape(text)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", html)

