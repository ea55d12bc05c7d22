"""The figures of the report's answer (computed here, rendered by `lead.py`): for each collection size,
each pipeline's run-phase process-tree peak, the innermost wrapped call open at that peak, the GPU peak
where sampled, the ratio to the pipeline that needed least, and one generated sentence per size."""

from __future__ import annotations

from collections import Counter
from typing import Any

from memharness.report import fmt
from memharness.results.figures import TREE, Row
from memharness.results.phases import exact_peak_call
from memharness.results.run import Run

CLOSE = 1.05  # peaks within 5% of each other are called "about the same"


def call_name(target: str | None) -> str | None:
    """A short name for a sentence: `Class.method`, or just `function` when the part before it is a module
    (lower case): 'ragatouille.models.torch_kmeans.compute_pytorch_kmeans' -> 'compute_pytorch_kmeans'."""
    if not target:
        return None
    parts = target.split(".")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return ".".join(parts[-2:])
    return parts[-1]


def _peak_call(run: Run, timelines: dict[str, dict[str, Any]], pipeline: str, size: int) -> str | None:
    """The call open at the run-phase peak: from the calls' exact peaks when the main process held the
    peak (`phases.exact_peak_call`), else the innermost call open at the highest timeline sample. With
    repeats, the call named most often (ties: the repeat with the highest peak)."""
    named = []
    for c in run.cells:
        if c.pipeline != pipeline or c.size != size or c.status != "done" or c.id not in timelines:
            continue
        info = timelines[c.id]
        tree_peak = (info.get("peak_mib") or 0) * fmt.MiB
        call = exact_peak_call(c.calls, tree_peak) or info.get("peak_call")
        if call:
            named.append({"peak_call": call, "peak_mib": info.get("peak_mib")})
    if not named:
        return None
    counts = Counter(i["peak_call"] for i in named)
    return max(named, key=lambda i: (counts[i["peak_call"]], i.get("peak_mib") or 0))["peak_call"]


def _gpu_peak(rows: list[Row], pipeline: str, size: int) -> float | None:
    tree = next((r for r in rows if r.target == TREE and r.pipeline == pipeline and r.size == size), None)
    if tree is not None and "gpu_nvml_peak" in tree.metrics:
        return tree.metrics["gpu_nvml_peak"].median
    vals = [r.metrics["gpu_nvml_peak"].median for r in rows
            if r.pipeline == pipeline and r.size == size and "gpu_nvml_peak" in r.metrics]
    return max(vals) if vals else None


def answer(run: Run, rows: list[Row], timelines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"headline": sentence, "sizes": [{"size", "sentence", "pipelines": [{pipeline, peak, ratio, ...}]}]}
    with memory in bytes."""
    sizes_out = []
    for size in run.sizes:
        entries = []
        for p in run.pipelines:
            tree = next((r for r in rows if r.target == TREE and r.pipeline == p and r.size == size
                         and "peak" in r.metrics), None)
            if tree is None:
                continue
            entries.append({"pipeline": p, "peak": tree.metrics["peak"].median,
                            "peak_over_start": tree.metrics["peak_over_start"].median,
                            "peak_call": _peak_call(run, timelines, p, size),
                            "gpu_peak": _gpu_peak(rows, p, size), "repeats": tree.repeats})
        if not entries:
            continue
        low = min(e["peak"] for e in entries)
        for e in entries:
            e["ratio"] = e["peak"] / low if low > 0 else None
        sizes_out.append({"size": size, "pipelines": entries, "sentence": sentence(size, entries)})
    multi = [s for s in sizes_out if len(s["pipelines"]) >= 2]
    headline = (multi or sizes_out)[-1]["sentence"] if sizes_out else None
    return {"headline": headline, "sizes": sizes_out}


def sentence(size: int, entries: list[dict[str, Any]]) -> str:
    """'At 400 documents ragatouille-nofaiss peaks 1.5x higher than colbert (1510.2 vs 1004.3 MiB),
    inside compute_pytorch_kmeans.'"""
    at = f"At {fmt.size_label(size)} documents"
    hi = max(entries, key=lambda e: e["peak"])
    lo = min(entries, key=lambda e: e["peak"])
    where = f", inside {call_name(hi['peak_call'])}" if hi["peak_call"] else ", outside any wrapped call"
    if len(entries) == 1:
        return f"{at} {hi['pipeline']} peaks at {hi['peak'] / fmt.MiB:.1f} MiB{where}."
    figures = f" ({hi['peak'] / fmt.MiB:.1f} vs {lo['peak'] / fmt.MiB:.1f} MiB)"
    ratio = hi["peak"] / lo["peak"] if lo["peak"] > 0 else float("inf")
    if ratio < CLOSE:
        return (f"{at} {hi['pipeline']} and {lo['pipeline']} peak within {(ratio - 1) * 100:.0f}% of each other"
                f"{figures}; the higher peak is{where.removeprefix(',')}.")
    return f"{at} {hi['pipeline']} peaks {ratio:.1f}x higher than {lo['pipeline']}{figures}{where}."


def markdown(ans: dict[str, Any]) -> str:
    """The summary section of tables.md."""
    if not ans["sizes"]:
        return "No finished cell recorded a process-tree timeline.\n"
    gpu = any(e["gpu_peak"] is not None for s in ans["sizes"] for e in s["pipelines"])
    head = ["Document Size", "Indexing Method", "Peak (run phase)", "× smallest", "Peak inside"]
    if gpu:
        head.append("GPU Peak (NVML)")
    lines = [f"**{ans['headline']}**\n", "| " + " | ".join(head) + " |",
             "|---|---|---:|---:|---|" + ("---:|" if gpu else "")]
    for s in ans["sizes"]:
        for e in s["pipelines"]:
            lines.append("| " + " | ".join(summary_cells(s["size"], e, gpu)) + " |")
    lines.append("")
    lines += [s["sentence"] for s in ans["sizes"] if s["sentence"] != ans["headline"]]
    return "\n".join(lines) + "\n"


def summary_cells(size: int, e: dict[str, Any], gpu: bool) -> list[str]:
    inside = fmt.short_target(e["peak_call"]) if e["peak_call"] else "(no wrapped call open)"
    cells = [fmt.size_label(size), e["pipeline"], f"{e['peak'] / fmt.MiB:.1f} MiB",
             "–" if e["ratio"] is None else f"{e['ratio']:.2f}x", inside]
    if gpu:
        cells.append("–" if e["gpu_peak"] is None else f"{e['gpu_peak'] / fmt.MiB:.1f} MiB")
    return cells
