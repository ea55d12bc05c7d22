"""Turn the explainer's captures into `CELL/explain/`: explain.json, explain.md, flame graph, GPU snapshot.

The figures come from the second run (or, for a scenario's `explain:` cells, from the same run with the
recorders on); the call's figures in the report stay the harness's. Each explainer total is checked against
the harness's own figure for the same window (explain/harness.py), from the measured run:

- host at the call's peak vs the exact peak over start; GPU at the call's peak vs the per-call GPU peak over
  entry: agree within AGREEMENT (10%);
- retained at exit (host) vs the rise of anonymous RSS over the call in the *explained* run, the same
  process and window as the capture (the measured run's increment varies run to run with what the
  allocator keeps, and counts the libraries the call mapped); GPU retained vs torch allocated at exit minus
  at entry; alive at entry vs the rise of anonymous RSS over the at-entry window: agree within 10% or
  ABS_FLOOR (16 MiB), these figures being often near zero.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

from memharness import names
from memharness.explain.frames import SKIP_PACKAGES, USER, Roots
from memharness.explain.gpu import sites_at_gpu_peak, sites_retained_gpu
from memharness.explain.harness import harness_call
from memharness.explain.host import RETAINED, read_sites, sites_at_peak, write_flamegraph
from memharness.explain.markdown import render_markdown
from memharness.explain.sites import Site

AGREEMENT = 0.10
ABS_FLOOR = 16 << 20


def agreement(total: int, reference: int | None, floor: int = 0) -> dict[str, Any]:
    """agree / disagree / unknown, with the ratio and the reference itself."""
    if reference is None or (reference <= 0 and not floor):
        return {"status": "unknown", "ratio": None, "reference": reference}
    ratio = total / reference if reference > 0 else None
    ok = abs(total - reference) <= max(AGREEMENT * abs(reference), floor)
    out = {"status": "agree" if ok else "disagree", "ratio": ratio, "reference": reference}
    return {**out, "floor": floor} if floor else out


def _view(sites: list[Site], info: dict[str, Any], top: int) -> dict[str, Any]:
    return {**info, "sites": [s.to_dict() for s in sites[:top]], "n_sites": len(sites)}


def _at_entry(meta: dict[str, Any], out: Path, top: int, frames: str, roots: Roots) -> dict[str, Any]:
    """The sites alive at the target's first entry in this process (memray's leaks at the window's stop)."""
    facts = {k: meta[k] for k in ("seconds", "start", "end", "errors") if k in meta}
    capture = Path(meta["capture"]) if meta.get("capture") else None
    if capture is None or not capture.exists():
        return {**facts, "error": "no at-entry capture"}
    sites, info = read_sites(capture, RETAINED, frames, roots)
    return {**_view(sites, info, top), **facts, "capture": str(capture.relative_to(out))}


def _call_entry(meta: dict[str, Any], out: Path, top: int, frames: str, retained: bool) -> dict[str, Any]:
    capture = out / names.EXPLAIN_CAPTURE
    entry: dict[str, Any] = {"name": meta["name"], "pid": meta["pid"], "seconds": meta["seconds"],
                             "errors": meta.get("errors", []), "call_error": meta.get("call_error")}
    roots = Roots.from_meta(meta.get("frame_roots"))
    if meta.get("frame_roots"):
        entry["frame_roots"] = meta["frame_roots"]
    host_bin = capture / names.capture_file("host", meta["name"])
    if meta.get("host") and host_bin.exists():
        sites, info = sites_at_peak(host_bin, frames, roots)
        entry["host"] = {**_view(sites, info, top), "capture": str(host_bin.relative_to(out))}
        if retained:
            entry["host"]["retained"] = _view(*read_sites(host_bin, RETAINED, frames, roots), top)
    if meta.get("gpu"):
        with open(meta["gpu"]["snapshot"], "rb") as fh:
            snapshot = pickle.load(fh)
        sites, info = sites_at_gpu_peak(snapshot, frames, roots)
        entry["gpu"] = {**_view(sites, info, top),
                        "torch_peak_over_start": meta["gpu"]["max_allocated"] - meta["gpu"]["start_allocated"],
                        "snapshot": str(Path(meta["gpu"]["snapshot"]).relative_to(out))}
        if retained:
            entry["gpu"]["retained"] = _view(*sites_retained_gpu(snapshot, frames, roots), top)
    if "at_entry" in meta:
        entry["at_entry"] = _at_entry(meta["at_entry"], out, top, frames, roots)
    return entry


def _drop_unused_entry_captures(capture: Path, calls: list[dict[str, Any]]) -> None:
    """Processes that never ran the target were tracked until they ended: their captures are not used."""
    used = {c["at_entry"].get("capture") for c in calls if "at_entry" in c}
    for path in sorted(capture.glob(names.capture_glob("entry"))):
        if str(path.relative_to(capture.parent)) not in used:
            path.unlink(missing_ok=True)


def _retained_reference(measured: dict[str, Any] | None,
                        explained: dict[str, Any] | None) -> tuple[int | None, str]:
    if explained and explained.get("anon_increment") is not None:
        where = "this run" if explained is measured else "the explained run"
        return explained["anon_increment"], f"harness's anonymous RSS increment ({where})"
    for run, where in ((explained, "the explained run"), (measured, "the measured run")):
        if run and run.get("increment") is not None:
            return run["increment"], f"harness's increment, rss_end - rss_start ({where})"
    return None, "harness's increment"


def _gpu_reference(measured: dict[str, Any] | None, explained: dict[str, Any] | None,
                   head_gpu: dict[str, Any]) -> tuple[int | None, str]:
    for run, where in ((measured, "the measured run"), (explained, "the explained run")):
        if run and run.get("gpu"):
            return run["gpu"]["peak_over_entry"], f"harness's per-call GPU peak over entry ({where})"
    return head_gpu.get("torch_peak_over_start"), "torch max_memory_allocated over start (no harness GPU figure)"


def collect(cell_dir: Path, target: str, top: int, measured_dir: Path, explained_dir: Path,
            second_run: bool, frames: str = USER, retained: bool = False) -> dict[str, Any]:
    """Analyse every captured invocation; the headline is the one with the largest host (else GPU) total."""
    out = cell_dir / names.EXPLAIN
    capture = out / names.EXPLAIN_CAPTURE
    calls = [_call_entry(json.loads(p.read_text(encoding="utf-8")), out, top, frames, retained)
             for p in sorted(capture.glob(names.capture_glob("calls")))]
    _drop_unused_entry_captures(capture, calls)
    result: dict[str, Any] = {"target": target, "top": top, "second_run": second_run, "calls": calls,
                              "agreement_tolerance": AGREEMENT, "frames": frames,
                              "skipped_frames": list(SKIP_PACKAGES) + ["standard library"] if frames == USER
                              else []}
    if not calls:
        result["error"] = f"the call {target} did not run in the explained run"
        return result
    head = max(calls, key=lambda c: (c.get("host", {}).get("total_at_peak", 0),
                                     c.get("gpu", {}).get("total_at_peak", 0), c["name"]))
    result["headline"] = head["name"]
    measured = harness_call(measured_dir, target)
    explained = harness_call(explained_dir, target) if explained_dir != measured_dir else measured
    result["harness"] = measured
    result["harness_explained_run"] = explained
    # the reference: the measured run's figures, the explained run's where the measured run did not wrap the call
    harness = measured or explained
    result["harness_source"] = "measured run" if measured or not explained else "explained run"
    if "host" in head:
        result["host_agreement"] = agreement(head["host"]["total_at_peak"], (harness or {}).get("peak_over_start"))
        if "retained" in head["host"]:
            reference, name = _retained_reference(measured, explained)
            result["host_retained_agreement"] = {**agreement(head["host"]["retained"]["total"], reference,
                                                             ABS_FLOOR), "reference_name": name}
        err = write_flamegraph(capture / names.capture_file("host", head["name"]), out / names.EXPLAIN_FLAMEGRAPH)
        result["host_flamegraph"] = None if err else names.EXPLAIN_FLAMEGRAPH
        if err:
            result["host_flamegraph_error"] = err
    if "gpu" in head:
        shutil.copyfile(out / head["gpu"]["snapshot"], out / names.EXPLAIN_GPU_SNAPSHOT)
        result["gpu_snapshot"] = names.EXPLAIN_GPU_SNAPSHOT
        reference, name = _gpu_reference(measured, explained, head["gpu"])
        result["gpu_agreement"] = {**agreement(head["gpu"]["total_at_peak"], reference), "reference_name": name}
        if "retained" in head["gpu"]:
            gpu_ref = ((harness or {}).get("gpu") or (explained or {}).get("gpu") or {}).get("retained")
            result["gpu_retained_agreement"] = agreement(head["gpu"]["retained"]["total"], gpu_ref, ABS_FLOOR)
    entry_call = next((c for c in calls if c["pid"] == head["pid"] and "at_entry" in c), None)
    if entry_call is not None:
        result["at_entry_call"] = entry_call["name"]
        ae = entry_call["at_entry"]
        if "total" in ae and ae.get("start", {}).get("anon") is not None and ae.get("end", {}).get("anon") is not None:
            result["at_entry_agreement"] = agreement(ae["total"], ae["end"]["anon"] - ae["start"]["anon"], ABS_FLOOR)
    overhead: dict[str, Any] = {"explained_call_s": head["seconds"]}
    if measured and measured.get("seconds"):
        overhead["measured_call_s"] = measured["seconds"]
        overhead["time_factor"] = head["seconds"] / measured["seconds"]
    if explained and measured and explained is not measured:
        overhead["peak_over_start_explained_run"] = explained["peak_over_start"]
    result["overhead"] = overhead
    return result


def write(cell_dir: Path, result: dict[str, Any]) -> Path:
    out = cell_dir / names.EXPLAIN
    (out / names.EXPLAIN_JSON).write_text(json.dumps(result, indent=2), encoding="utf-8")
    md = out / names.EXPLAIN_MD
    md.write_text(render_markdown(result), encoding="utf-8")
    return md


__all__ = ["AGREEMENT", "Site", "agreement", "collect", "render_markdown", "write"]
