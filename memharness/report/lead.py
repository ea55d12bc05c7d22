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
GPU_NOTE = ("GPU columns, run phase: *Used by Tree (NVML)*: the most memory the driver charged to the cell's "
            "processes (CUDA contexts and torch's cached blocks included; what the card must hold, and the figure "
            "pipelines are compared on); *Peak (torch allocated)*: tensors alive at torch's peak in the main process; "
            "*Reserved (torch)*: the most torch's caching allocator held; *Used on Device (NVML)*: the whole card, "
            "other processes included; *GPU Peak inside*: the innermost wrapped call whose torch peak is within 1% "
            "of the cell's.")
TREE_NOTE = ("Wrapped calls nested as they ran (per cell, median over repeats). A row naming several calls "
             "joined by → is a chain of wrappers whose start, final and peak differ by at most "
             f"{calltree.SAME_MIB:g} MiB at every size. `phase:*` rows are the cell's steps; their peaks are "
             "the main process's.")
PREDICT_NOTE = ("Run-phase tree peak and GPU memory used by the tree, fitted against size per pipeline: linear and "
                "power law, the one with the smaller leave-one-out error chosen. *Check*: the largest measured size "
                "predicted from the smaller ones. *Band*: the largest of the leave-one-out errors and the check's, "
                "widening in proportion to the distance beyond the largest measured size. A figure whose measured "
                "values lie within 5% of each other does not grow with size in the measured range and is not "
                "extrapolated; nothing is predicted beyond 4x the largest measured size. A fit of a few sizes says "
                "nothing about a change of regime beyond them.")
METRIC_NAMES = {"peak": "RAM (tree peak)", "gpu_nvml_peak": "GPU (NVML used)"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}%"


def _loo(d: dict[str, float | None]) -> str:
    return ", ".join(f"{m} {'–' if v is None else f'{v * 100:.1f}%'}" for m, v in d.items())


def _check_text(chk: dict[str, Any] | None) -> str:
    if chk is None:
        return "needs 3 sizes"
    return (f"{fmt.size_label(chk['size'])} from {', '.join(fmt.size_label(s) for s in chk['fitted_on'])}: "
            f"{chk['predicted_mib']:.1f} MiB predicted, {chk['measured_mib']:.1f} measured "
            f"({_pct(chk['relative_error'])})")


def _predicted_text(x: dict[str, Any]) -> str:
    if x.get("predicted_mib") is None:
        return f"{fmt.size_label(x['size'])}: {x.get('note') or 'not predicted'}"
    band = "" if x["low_mib"] is None else f" ({x['low_mib']:.0f}–{x['high_mib']:.0f})"
    return f"{fmt.size_label(x['size'])}: {x['predicted_mib']:.0f} MiB{band}"


def prediction_rows(preds: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["Indexing Method", "Figure", "Model (chosen)", "Leave-one-out error", "Check", "Band", "Predicted"]
    budgets = any("budget" in d for by_metric in preds.values() for d in by_metric.values())
    head += ["Budget"] if budgets else []
    rows = []
    for p, by_metric in preds.items():
        for metric, d in by_metric.items():
            model = f"flat: {d['flat_text']}" if d.get("flat") else f"{d['model']}: {d['formula']}"
            band = "–" if d.get("error") is None or d.get("flat") else (
                f"±{d['error'] * 100:.1f}% at {fmt.size_label(max(d['sizes']))}, wider beyond")
            predicted = "; ".join(_predicted_text(x) for x in d["predictions"]) or "–"
            row = [p, METRIC_NAMES.get(metric, metric), model, _loo(d["loo_mean_relative_error"]),
                   _check_text(d["largest_check"]), band, predicted]
            if budgets:
                b = d.get("budget")
                row.append("–" if b is None else f"{b['budget_mib'] / 1024:.2f} GiB: {b['text']}")
            rows.append(row)
    return head, rows


def lead_markdown(ans: dict[str, Any], trees: dict[str, list[calltree.Node]], run: Run,
                  preds: dict[str, dict[str, Any]]) -> str:
    parts = ["## Summary\n", SUMMARY_NOTE + "\n"] + ([GPU_NOTE + "\n"] if "gpu" in ans.get("resources", []) else [])
    parts.append(answer_mod.markdown(ans))
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
    if "gpu" in ans.get("resources", []):
        out.append(f'<p class="note">{_md_note(GPU_NOTE)}</p>')
    if ans["sizes"]:
        head, rows = answer_mod.summary_rows(ans)
        numeric = {i for i, h in enumerate(head) if h not in answer_mod.TEXT_COLUMNS}
        out.append(fmt.html_table(head, rows, numeric=numeric, cls="summary"))
        others = [s["sentence"] for s in ans["sizes"] if s["sentence"] != ans["headline"]]
        if others:
            out.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in others) + "</ul>")
        idle = answer_mod.idle_lines(ans)
        if idle:
            out.append('<p class="note">Reserved but unused GPU memory (torch\'s cache after a call returned):</p>')
            out.append("<ul>" + "".join(f'<li class="bad">{escape(x)}</li>' for x in idle) + "</ul>")
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

