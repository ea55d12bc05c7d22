"""The figures of the report's answer (computed here, rendered by `lead.py`): for each collection size, each
pipeline's run-phase process-tree peak and the innermost wrapped call open at that peak; where the cells ran
on a GPU, its GPU peak too (torch's allocated and reserved memory in the main process, NVML's memory used by
the process tree and by the device, and the call holding the torch peak: `results.gpu`); the ratio to the
pipeline that needed least of each, and one sentence per size that leads with the resource that differs
most."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from memharness.report import fmt
from memharness.results.figures import TREE, Row
from memharness.results.gpu import GpuFigures
from memharness.results.phases import SampledPeak, exact_peak_call, run_peak_call
from memharness.results.run import Run

CLOSE = 1.05  # peaks within 5% of each other are called "about the same"
GPU_KEYS = ("torch_allocated", "torch_reserved", "nvml_tree", "nvml_device")


def call_name(target: str | None) -> str | None:
    """A short name for a sentence: `Class.method`, or just `function` when the part before it is a module
    (lower case): 'ragatouille.models.torch_kmeans.compute_pytorch_kmeans' -> 'compute_pytorch_kmeans'."""
    if not target:
        return None
    parts = target.split(".")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return ".".join(parts[-2:])
    return parts[-1]


def _most_named(named: list[tuple[str, float]]) -> str | None:
    """The call named most often over repeats (ties: the repeat with the highest figure, then by name)."""
    if not named:
        return None
    counts = Counter(call for call, _ in named)
    return max(named, key=lambda i: (counts[i[0]], i[1], i[0]))[0]


def _peak_call(run: Run, peaks: dict[str, SampledPeak | None], pipeline: str, size: int) -> str | None:
    """The call open at the run-phase peak: from the calls' exact peaks when the main process held the
    peak (`phases.exact_peak_call`), else the innermost call open at the highest timeline sample."""
    named = []
    for c in run.cells:
        if c.pipeline != pipeline or c.size != size or c.status != "done" or c.id not in peaks:
            continue
        pk = peaks[c.id]
        call = run_peak_call(c, pk) if pk is not None else exact_peak_call(c.calls, 0)
        if call:
            named.append((call, 0 if pk is None else pk.bytes / fmt.MiB))
    return _most_named(named)


def _gpu_entry(run: Run, gpu: dict[str, GpuFigures | None], pipeline: str, size: int) -> dict[str, Any] | None:
    """The GPU figures of one pipeline at one size: the median over its done repeats, the call named most."""
    figs = [g for c in run.cells if c.pipeline == pipeline and c.size == size and c.status == "done"
            and (g := gpu.get(c.id)) is not None]
    if not figs:
        return None
    out: dict[str, Any] = {}
    for key in GPU_KEYS:
        vals = [getattr(g, key) for g in figs if getattr(g, key) is not None]
        out[key] = float(statistics.median(vals)) if vals else None
    out["call"] = _most_named([(g.call, g.torch_allocated or 0) for g in figs if g.call])
    idle = [g.idle for g in figs if g.idle is not None]
    out["idle"] = None if not idle else max(
        ({"call": i.call, "idle": i.idle, "reserved": i.reserved, "allocated": i.allocated, "seconds": i.seconds,
          "until": i.until} for i in idle), key=lambda d: (d["idle"], d["call"]))
    return out


def gpu_used(entry: dict[str, Any]) -> float | None:
    """The GPU memory a pipeline needs, for comparing pipelines: NVML's used by the process tree (what the
    card must hold), else torch's peak allocated."""
    g = entry.get("gpu") or {}
    return g.get("nvml_tree") if g.get("nvml_tree") is not None else g.get("torch_allocated")


def answer(run: Run, rows: list[Row], peaks: dict[str, SampledPeak | None],
           gpu: dict[str, GpuFigures | None] | None = None) -> dict[str, Any]:
    """{"headline": sentence, "resources": ["host"] or ["host", "gpu"], "sizes": [{"size", "sentence",
    "pipelines": [{pipeline, peak, ratio, peak_call, gpu: {...}, gpu_ratio, ...}]}]} with memory in bytes."""
    gpu = gpu or {}
    sizes_out = []
    for size in run.sizes:
        entries = []
        for p in run.pipelines:
            tree = next((r for r in rows if r.target == TREE and r.pipeline == p and r.size == size
                         and "peak" in r.metrics), None)
            if tree is None:
                continue
            g = _gpu_entry(run, gpu, p, size)
            entries.append({"pipeline": p, "peak": tree.metrics["peak"].median,
                            "peak_over_start": tree.metrics["peak_over_start"].median,
                            "peak_call": _peak_call(run, peaks, p, size),
                            "gpu_peak": None if g is None else g["nvml_tree"], "gpu": g, "repeats": tree.repeats})
        if not entries:
            continue
        _ratios(entries, "ratio", lambda e: e["peak"])
        if any(e["gpu"] for e in entries):
            _ratios(entries, "gpu_ratio", gpu_used)
        sizes_out.append({"size": size, "pipelines": entries, "sentence": sentence(size, entries)})
    multi = [s for s in sizes_out if len(s["pipelines"]) >= 2]
    headline = (multi or sizes_out)[-1]["sentence"] if sizes_out else None
    on_gpu = any(e["gpu"] for s in sizes_out for e in s["pipelines"])
    return {"headline": headline, "resources": ["host", "gpu"] if on_gpu else ["host"], "sizes": sizes_out}


def _ratios(entries: list[dict[str, Any]], key: str, value) -> None:
    vals = [v for e in entries if (v := value(e)) is not None]
    low = min(vals) if vals else None
    for e in entries:
        v = value(e)
        e[key] = v / low if v is not None and low else None


def _spread(entries: list[dict[str, Any]], value) -> tuple[dict[str, Any], dict[str, Any], float] | None:
    """(highest, lowest, their ratio) of `value` among the entries that have it."""
    have = [e for e in entries if value(e) is not None]
    if len(have) < 2:
        return None
    hi, lo = max(have, key=lambda e: value(e)), min(have, key=lambda e: value(e))
    return hi, lo, (value(hi) / value(lo) if value(lo) > 0 else float("inf"))


def _mib(b: float) -> str:
    return f"{b / fmt.MiB:,.1f} MiB"


def sentence(size: int, entries: list[dict[str, Any]]) -> str:
    """The size's answer: host only ('At 400 documents ragatouille-nofaiss peaks 1.5x higher than colbert
    (1510.2 vs 1004.3 MiB), inside compute_pytorch_kmeans.'), or, on a GPU, the resource that differs most
    first ('At 50k documents ragatouille-nofaiss needs 12.8x colbert's GPU memory (...); host peaks are within
    1.3x (...).')."""
    if any(e.get("gpu") for e in entries):
        return _gpu_sentence(size, entries)
    return host_sentence(size, entries)


def host_sentence(size: int, entries: list[dict[str, Any]]) -> str:
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


def _inside(call: str | None) -> str:
    return f" inside {call_name(call)}" if call else " outside any wrapped call"


def _gpu_detail(e: dict[str, Any]) -> str:
    """'51,486.0 MiB used by its processes, 51,974.8 MiB on the device (NVML); torch 49,955.5 MiB allocated
    inside compute_pytorch_kmeans'."""
    g = e["gpu"]
    parts = []
    if g.get("nvml_tree") is not None or g.get("nvml_device") is not None:
        nv = [f"{_mib(g['nvml_tree'])} used by its processes" if g.get("nvml_tree") is not None else "",
              f"{_mib(g['nvml_device'])} on the device" if g.get("nvml_device") is not None else ""]
        parts.append(", ".join(x for x in nv if x) + " (NVML)")
    if g.get("torch_allocated") is not None:
        parts.append(f"torch {_mib(g['torch_allocated'])} allocated{_inside(g.get('call'))}")
    return "; ".join(parts)


def _gpu_sentence(size: int, entries: list[dict[str, Any]]) -> str:
    at = f"At {fmt.size_label(size)} documents"
    if len(entries) == 1:
        e = entries[0]
        g = e["gpu"] or {}
        lead = (f"{at} {e['pipeline']} peaks at {_mib(g['torch_allocated'])} of GPU memory allocated by torch"
                f"{_inside(g.get('call'))}" if g.get("torch_allocated") is not None else
                f"{at} {e['pipeline']} uses up to {_mib(gpu_used(e))} of GPU memory")
        nv = [f"{_mib(g['nvml_tree'])} used by its processes" if g.get("nvml_tree") is not None else "",
              f"{_mib(g['nvml_device'])} on the device" if g.get("nvml_device") is not None else ""]
        nv_text = ", ".join(x for x in nv if x)
        return (lead + (f" (NVML: {nv_text})" if nv_text else "")
                + f", and at {_mib(e['peak'])} of host memory{_inside(e['peak_call'])}.")
    host = _spread(entries, lambda e: e["peak"])
    dev = _spread(entries, gpu_used)
    if dev is not None and host is not None and dev[2] < CLOSE and host[2] < CLOSE:
        return (f"{at} the pipelines are within {(dev[2] - 1) * 100:.0f}% of each other on the GPU "
                f"({dev[0]['pipeline']} {_mib(gpu_used(dev[0]))} vs {dev[1]['pipeline']} {_mib(gpu_used(dev[1]))} "
                f"used) and within {(host[2] - 1) * 100:.0f}% on the host ({host[0]['pipeline']} "
                f"{_mib(host[0]['peak'])}{_inside(host[0]['peak_call'])} vs {host[1]['pipeline']} "
                f"{_mib(host[1]['peak'])}).")
    gpu_first = dev is not None and (host is None or dev[2] >= host[2])
    if gpu_first:
        hi, lo, ratio = dev
        first = (f"{at} {hi['pipeline']} needs {ratio:.1f}x {lo['pipeline']}'s GPU memory "
                 f"({_mib(gpu_used(hi))} vs {_mib(gpu_used(lo))} used"
                 + ("" if hi["gpu"].get("nvml_tree") is None else " by the process tree")
                 + (f"; torch {_mib(hi['gpu']['torch_allocated'])} allocated{_inside(hi['gpu'].get('call'))}"
                    if hi["gpu"].get("torch_allocated") is not None else "") + ")")
        return first + "; " + _second(host, "host peaks", lambda e: e["peak"], lambda e: e["peak_call"]) + "."
    hi, lo, ratio = host
    first = (f"{at} {hi['pipeline']} peaks {ratio:.1f}x higher than {lo['pipeline']} in host memory "
             f"({_mib(hi['peak'])} vs {_mib(lo['peak'])}){_inside(hi['peak_call'])}")
    return first + "; " + _second(dev, "GPU memory used", gpu_used, lambda e: (e["gpu"] or {}).get("call")) + "."


def _second(spread, what: str, value, where) -> str:
    """The other resource, in a clause: 'host peaks are within 1.3x (colbert 6,050.5 vs ragatouille-nofaiss
    4,528.2 MiB)'."""
    if spread is None:
        return f"{what}: not recorded for every pipeline"
    hi, lo, ratio = spread
    return (f"{what} are within {ratio:.2f}x" if ratio < CLOSE else f"{what} are within {ratio:.1f}x") + (
        f" ({hi['pipeline']} {_mib(value(hi))}{_inside(where(hi))} vs {lo['pipeline']} {_mib(value(lo))})")


def markdown(ans: dict[str, Any]) -> str:
    """The summary section of tables.md."""
    if not ans["sizes"]:
        return "No finished cell recorded a process-tree timeline.\n"
    head, rows = summary_rows(ans)
    lines = [f"**{ans['headline']}**\n", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if h in TEXT_COLUMNS else "---:" for h in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines += [s["sentence"] for s in ans["sizes"] if s["sentence"] != ans["headline"]]
    idle = idle_lines(ans)
    if idle:
        lines += ["", "Reserved but unused GPU memory (torch's cache after a call returned):", ""]
        lines += [f"- {x}" for x in idle]
    return "\n".join(lines) + "\n"


HOST_HEAD = ["Document Size", "Indexing Method", "Peak (run phase)", "× smallest", "Peak inside"]
GPU_HEAD = ["GPU Used by Tree (NVML)", "GPU × smallest", "GPU Peak (torch allocated)", "GPU Reserved (torch)",
            "GPU Used on Device (NVML)", "GPU Peak inside"]
TEXT_COLUMNS = {"Document Size", "Indexing Method", "Peak inside", "GPU Peak inside"}


def summary_rows(ans: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The summary table: host columns, and the GPU's where any cell ran on one."""
    gpu = "gpu" in ans.get("resources", [])
    head = HOST_HEAD + (GPU_HEAD if gpu else [])
    return head, [summary_cells(s["size"], e, gpu) for s in ans["sizes"] for e in s["pipelines"]]


def _cell_mib(v: float | None) -> str:
    return "–" if v is None else f"{v / fmt.MiB:.1f} MiB"


def summary_cells(size: int, e: dict[str, Any], gpu: bool) -> list[str]:
    inside = fmt.short_target(e["peak_call"]) if e["peak_call"] else "(no wrapped call open)"
    cells = [fmt.size_label(size), e["pipeline"], f"{e['peak'] / fmt.MiB:.1f} MiB",
             "–" if e["ratio"] is None else f"{e['ratio']:.2f}x", inside]
    if gpu:
        g = e.get("gpu") or {}
        ratio = e.get("gpu_ratio")
        cells += [_cell_mib(g.get("nvml_tree")), "–" if ratio is None else f"{ratio:.2f}x",
                  _cell_mib(g.get("torch_allocated")), _cell_mib(g.get("torch_reserved")),
                  _cell_mib(g.get("nvml_device")),
                  fmt.short_target(g["call"]) if g.get("call") else ("–" if not g else "(no wrapped call open)")]
    return cells


def idle_lines(ans: dict[str, Any]) -> list[str]:
    """One line per pipeline and size where torch kept a large cache it did not use (`results.gpu`)."""
    out = []
    for s in ans["sizes"]:
        for e in s["pipelines"]:
            idle = (e.get("gpu") or {}).get("idle")
            if not idle:
                continue
            until = idle["until"]
            until = until if until == "the end of the run phase" else \
                f"{call_name(until.rsplit(' ', 1)[0])} {until.rsplit(' ', 1)[1]}"
            out.append(f"{e['pipeline']} at {fmt.size_label(s['size'])}: after {call_name(idle['call'])} returned, "
                       f"torch kept {_mib(idle['idle'])} reserved but unused ({_mib(idle['reserved'])} reserved, "
                       f"{_mib(idle['allocated'])} allocated) for {idle['seconds']:.1f} s, until {until}; another "
                       "process on this GPU could not use it (torch.cuda.empty_cache() would release it).")
    return out
