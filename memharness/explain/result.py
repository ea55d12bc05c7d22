"""Turn the explainer's captures into `CELL/explain/`: explain.json, explain.md, flame graph, GPU snapshot.

The figures come from the second run (or, for a scenario's `explain:` cells, from the same run with the
recorders on); the call's peak stays the harness's exact figure. The explainer's total at its peak must
agree with the harness's exact peak over start within AGREEMENT (10%), else both files say they disagree.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

from memharness.core.records import read_calls
from memharness.explain.gpu import sites_at_gpu_peak
from memharness.explain.host import Site, sites_at_peak, write_flamegraph

AGREEMENT = 0.10
MiB = 1 << 20


def _harness_call(cell_dir: Path, target: str) -> dict[str, Any] | None:
    """The harness's record of the target's call with the largest exact peak over start."""
    calls = [c for c in read_calls(cell_dir) if c.target == target and c.peak_over_start is not None]
    if not calls:
        return None
    c = max(calls, key=lambda c: c.peak_over_start or 0)
    return {"call_id": c.call_id, "pid": c.pid, "peak_over_start": c.peak_over_start, "peak_rss": c.peak_rss,
            "seconds": c.duration_s, "calls": len(calls)}


def _agreement(total: int, harness: dict[str, Any] | None) -> dict[str, Any]:
    if harness is None or not harness.get("peak_over_start"):
        return {"status": "unknown", "ratio": None}
    ratio = total / harness["peak_over_start"]
    return {"status": "agree" if abs(ratio - 1) <= AGREEMENT else "disagree", "ratio": ratio}


def collect(cell_dir: Path, target: str, top: int, measured_dir: Path, explained_dir: Path,
            second_run: bool) -> dict[str, Any]:
    """Analyse every captured invocation; the headline is the one with the largest host (else GPU) total."""
    out = cell_dir / "explain"
    capture = out / "capture"
    calls: list[dict[str, Any]] = []
    for meta_path in sorted((capture / "calls").glob("*.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        entry: dict[str, Any] = {"name": meta["name"], "pid": meta["pid"], "seconds": meta["seconds"],
                                 "errors": meta.get("errors", []), "call_error": meta.get("call_error")}
        host_bin = capture / "host" / f"{meta['name']}.bin"
        if meta.get("host") and host_bin.exists():
            sites, info = sites_at_peak(host_bin)
            entry["host"] = {**info, "sites": [s.to_dict() for s in sites[:top]], "n_sites": len(sites),
                             "capture": str(host_bin.relative_to(out))}
        if meta.get("gpu"):
            with open(meta["gpu"]["snapshot"], "rb") as fh:
                snapshot = pickle.load(fh)
            sites, info = sites_at_gpu_peak(snapshot)
            entry["gpu"] = {**info, "sites": [s.to_dict() for s in sites[:top]], "n_sites": len(sites),
                            "torch_peak_over_start": meta["gpu"]["max_allocated"] - meta["gpu"]["start_allocated"],
                            "snapshot": str(Path(meta["gpu"]["snapshot"]).relative_to(out))}
        calls.append(entry)
    result: dict[str, Any] = {"target": target, "top": top, "second_run": second_run, "calls": calls,
                              "agreement_tolerance": AGREEMENT}
    if not calls:
        result["error"] = f"the call {target} did not run in the explained run"
        return result
    head = max(calls, key=lambda c: (c.get("host", {}).get("total_at_peak", 0),
                                     c.get("gpu", {}).get("total_at_peak", 0)))
    result["headline"] = head["name"]
    harness = _harness_call(measured_dir, target)
    explained = _harness_call(explained_dir, target) if explained_dir != measured_dir else harness
    result["harness"] = harness
    result["harness_explained_run"] = explained
    if "host" in head:
        result["host_agreement"] = _agreement(head["host"]["total_at_peak"], harness)
        err = write_flamegraph(capture / "host" / f"{head['name']}.bin", out / "host-flamegraph.html")
        result["host_flamegraph"] = None if err else "host-flamegraph.html"
        if err:
            result["host_flamegraph_error"] = err
    if "gpu" in head:
        shutil.copyfile(out / head["gpu"]["snapshot"], out / "gpu-snapshot.pickle")
        result["gpu_snapshot"] = "gpu-snapshot.pickle"
        tp = head["gpu"]["torch_peak_over_start"]
        ratio = head["gpu"]["total_at_peak"] / tp if tp else None
        result["gpu_agreement"] = {"status": "unknown" if ratio is None else
                                   ("agree" if abs(ratio - 1) <= AGREEMENT else "disagree"), "ratio": ratio}
    overhead: dict[str, Any] = {"explained_call_s": head["seconds"]}
    if harness and harness.get("seconds"):
        overhead["measured_call_s"] = harness["seconds"]
        overhead["time_factor"] = head["seconds"] / harness["seconds"] if harness["seconds"] else None
    if explained and harness and explained is not harness:
        overhead["peak_over_start_explained_run"] = explained["peak_over_start"]
    result["overhead"] = overhead
    return result


def _mib(n: float | None) -> str:
    return "?" if n is None else f"{n / MiB:,.1f} MiB"


def _site_rows(sites: list[dict[str, Any]]) -> list[str]:
    rows = ["| # | site (file:line) | function | bytes at peak | allocations | stack (innermost first) |",
            "|---|---|---|---:|---:|---|"]
    for i, s in enumerate(sites, 1):
        stack = " ← ".join(f.split(" ")[0] for f in s["stack"][:6]) + (" …" if len(s["stack"]) > 6 else "")
        rows.append(f"| {i} | `{short_path(s['file'])}:{s['line']}` | `{s['function']}` | {_mib(s['bytes'])} "
                    f"| {s['count']} | {stack} |")
    return rows


def short_path(path: str) -> str:
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def agreement_line(kind: str, total: int, agreement: dict[str, Any], reference: int | None, ref_name: str) -> str:
    if agreement["status"] == "unknown":
        return f"{kind}: explainer total at peak {_mib(total)}; no {ref_name} to compare with."
    verdict = ("agrees with" if agreement["status"] == "agree" else "DISAGREES with")
    return (f"{kind}: explainer total at peak {_mib(total)} {verdict} the {ref_name} {_mib(reference)} "
            f"(ratio {agreement['ratio']:.2f}, tolerance ±{AGREEMENT:.0%}).")


def render_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Explain: `{result['target']}`", ""]
    if result.get("error"):
        return "\n".join(lines + [f"Not explained: {result['error']}.", ""])
    head = next(c for c in result["calls"] if c["name"] == result["headline"])
    src = ("a second run of this cell with the explainer on" if result["second_run"]
           else "this run, with the explainer on for this cell")
    lines.append(f"Figures below come from {src}; the call's peak in the report stays the harness's exact "
                 "figure. Explained invocations: " + ", ".join(f"{c['name']} (pid {c['pid']})" for c in result["calls"])
                 + f"; shown: {head['name']}.")
    ov = result.get("overhead", {})
    if ov.get("time_factor"):
        lines.append(f"Overhead: the call took {ov['explained_call_s']:.2f} s under the explainer vs "
                     f"{ov['measured_call_s']:.2f} s in the measured run (ratio {ov['time_factor']:.2f}; it also "
                     "carries run-to-run variation: machine load, iterations to convergence).")
    if ov.get("peak_over_start_explained_run") is not None and result.get("harness"):
        measured, explained = result["harness"]["peak_over_start"], ov["peak_over_start_explained_run"]
        change = f" ({(explained / measured - 1) * 100:+.1f}%)" if measured else ""
        lines.append(f"Harness peak over start of the call: {_mib(measured)} in the measured run, "
                     f"{_mib(explained)} in the explained run{change}.")
    lines.append("")
    if "host" in head:
        h = head["host"]
        ref = result.get("harness") or {}
        lines += ["## Host (memray, high-water mark of the call)", "",
                  agreement_line("Host", h["total_at_peak"], result["host_agreement"], ref.get("peak_over_start"),
                                 "harness's exact peak over start"), ""]
        lines += _site_rows(h["sites"])
        lines += ["", f"{h['n_sites']} sites in all. Flame graph: "
                  + (f"[{result['host_flamegraph']}]({result['host_flamegraph']})" if result.get("host_flamegraph")
                     else f"not written ({result.get('host_flamegraph_error', '?')})"), ""]
    if "gpu" in head:
        g = head["gpu"]
        lines += ["## GPU (torch allocator history, high-water mark of the call)", "",
                  agreement_line("GPU", g["total_at_peak"], result["gpu_agreement"], g["torch_peak_over_start"],
                                 "torch max_memory_allocated over start"), ""]
        lines += _site_rows(g["sites"])
        lines += ["", f"Snapshot for https://pytorch.org/memory_viz: [{result['gpu_snapshot']}]"
                  f"({result['gpu_snapshot']})", ""]
    errors = [e for c in result["calls"] for e in c["errors"]]
    if errors:
        lines += ["Explainer errors: " + "; ".join(errors), ""]
    return "\n".join(lines)


def write(cell_dir: Path, result: dict[str, Any]) -> Path:
    out = cell_dir / "explain"
    (out / "explain.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    md = out / "explain.md"
    md.write_text(render_markdown(result), encoding="utf-8")
    return md


__all__ = ["Site", "collect", "render_markdown", "write"]
