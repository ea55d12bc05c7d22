"""The harness's own figures for the explained call, from a run's call records: what explain's totals are
checked against.

- host peak: the exact peak over start (`peak_rss - rss_start`); host retained: the anonymous increment
  (`anon_end - anon_start`, RssAnon: heap, not the libraries the call mapped), and the increment
  (`rss_end - rss_start`); all of the target's call with the largest peak over start;
- GPU peak: the per-call probe's `peak_allocated` at exit minus `allocated` at entry, summed over devices,
  largest over the target's calls; GPU retained: `allocated` at exit minus at entry, of that same call. The
  probe folds torch's peak counter into every open call before it resets it (core/gpuprobe.py), so this is
  right for nested calls, where `torch.cuda.max_memory_allocated()` read after the call is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memharness.core.records import CallRecord, read_calls


def _gpu_sum(readings: dict[str, Any] | None, key: str) -> int:
    return sum(int((r or {}).get(key) or 0) for r in (readings or {}).values())


def gpu_over_entry(call: CallRecord) -> tuple[int, int] | None:
    """(peak allocated over entry, allocated at exit over entry) of one call, summed over devices; None
    without GPU readings at its exit."""
    if not call.gpu_end:
        return None
    start = _gpu_sum(call.gpu_start, "allocated")  # no readings at entry: CUDA came up inside the call
    return _gpu_sum(call.gpu_end, "peak_allocated") - start, _gpu_sum(call.gpu_end, "allocated") - start


def changed_sources(measured_dir: Path, explained_dir: Path) -> list[dict[str, str]]:
    """The wrapped functions whose source differs between the measured run and the explained run (the hash
    each run recorded in targets.json): their figures came from different code."""
    from memharness.results.run import CellFolder

    def hashes(folder: Path) -> dict[str, str]:
        return {t["path"]: t["source_sha256"] for t in CellFolder.at(folder).targets_json.get("resolved", []) or []
                if isinstance(t, dict) and t.get("source_sha256") and isinstance(t.get("path"), str)}

    before, now = hashes(measured_dir), hashes(explained_dir)
    return [{"target": p, "run": before[p], "now": now[p]} for p in sorted(before) if p in now and now[p] != before[p]]


def harness_call(cell_dir: Path, target: str) -> dict[str, Any] | None:
    """The run's record of `target`: host figures of its call with the largest peak over start, GPU figures
    of its call with the largest GPU peak over entry; None when the target has no complete call."""
    calls = [c for c in read_calls(cell_dir) if c.target == target and c.complete]
    host = [c for c in calls if c.peak_over_start is not None]
    if not host:
        return None
    c = max(host, key=lambda c: (c.peak_over_start or 0, c.call_id))
    out: dict[str, Any] = {"call_id": c.call_id, "pid": c.pid, "peak_over_start": c.peak_over_start,
                           "increment": c.increment, "rss_start": c.rss_start, "peak_rss": c.peak_rss,
                           "anon_increment": (None if c.anon_end is None or c.anon_start is None
                                              else c.anon_end - c.anon_start),
                           "seconds": c.duration_s, "calls": len(calls)}
    gpu = [(g, c) for c in calls if (g := gpu_over_entry(c)) is not None]
    if gpu:
        (peak, retained), g_call = max(gpu, key=lambda p: (p[0][0], p[1].call_id))
        out["gpu"] = {"call_id": g_call.call_id, "peak_over_entry": peak, "retained": retained,
                      "allocated_at_entry": _gpu_sum(g_call.gpu_start, "allocated")}
    return out
