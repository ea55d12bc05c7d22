"""The default call to explain: the innermost wrapped call open at the cell's run-phase peak (host), or
the one that holds the cell's GPU peak (`explain --gpu`, from the call records' per-call GPU readings).

The host call is read from the report's summary.json when it names one
(`answer.sizes[].pipelines[].peak_call`), otherwise computed from the cell's call records: among the
calls inside `phase:run`, those whose exact peak equals the highest peak reached (within 1%), the deepest,
then the shortest. The GPU call is computed from the call records the same way (`gpu_peak_call`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from memharness.core.records import CallRecord, read_calls


def _from_summary(run_dir: Path, cell_dir: Path) -> str | None:
    """The report's run-phase peak call for the cell's pipeline and size (`summary.json` `answer.sizes[]
    .pipelines[].peak_call`, the call the report's summary names), when the report has one."""
    try:
        summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
        spec = json.loads((cell_dir / "cell.json").read_text(encoding="utf-8"))
        pipeline, size = spec["pipeline"], int(spec["size"])
        sizes = summary["answer"]["sizes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for entry in sizes if isinstance(sizes, list) else []:
        if not isinstance(entry, dict) or entry.get("size") != size:
            continue
        for row in entry.get("pipelines") or []:
            if isinstance(row, dict) and row.get("pipeline") == pipeline:
                peak = row.get("peak_call")
                return peak if isinstance(peak, str) and peak else None
    return None


def _in_run_phase(calls: list[CallRecord], keep: Callable[[CallRecord], bool]) -> list[CallRecord]:
    """Wrapped calls with `keep` inside `phase:run` (all calls of other processes); all of them when none is."""
    run = [c for c in calls if c.target == "phase:run" and c.complete]
    inside = [c for c in calls if not c.target.startswith("phase:") and keep(c)]
    if run:
        r = run[0]
        in_run = [c for c in inside if c.pid != r.pid or (c.t_start_ns >= r.t_start_ns
                                                           and (c.t_end_ns or 0) <= (r.t_end_ns or 0))]
        inside = in_run or inside
    return inside


def peak_call(calls: list[CallRecord]) -> CallRecord | None:
    inside = _in_run_phase(calls, lambda c: c.peak_rss is not None)
    if not inside:
        return None
    top = max(c.peak_rss or 0 for c in inside)
    at_peak = [c for c in inside if (c.peak_rss or 0) >= 0.99 * top]
    return max(at_peak, key=lambda c: (c.depth, -(c.duration_s or 0.0)))


def gpu_peak(call: CallRecord) -> int | None:
    """torch's peak allocated memory during the call (per-call probe), summed over devices."""
    if not call.gpu_end:
        return None
    return sum(int((r or {}).get("peak_allocated") or 0) for r in call.gpu_end.values())


def gpu_peak_call(calls: list[CallRecord]) -> CallRecord | None:
    """The wrapped call that holds the cell's GPU peak: among the run phase's calls, those whose peak
    allocated (summed over devices) is within 1% of the largest, the deepest, then the shortest. None when
    no call has GPU readings (a CPU cell)."""
    inside = [(gpu_peak(c) or 0, c) for c in _in_run_phase(calls, lambda c: c.complete and bool(gpu_peak(c)))]
    if not inside:
        return None
    top = max(p for p, _ in inside)
    at_peak = [c for p, c in inside if p >= 0.99 * top]
    return max(at_peak, key=lambda c: (c.depth, -(c.duration_s or 0.0), c.call_id))


def default_target(run_dir: Path, cell_id: str, cell_dir: Path) -> str | None:
    named = _from_summary(run_dir, cell_dir)
    if named:
        return named
    call = peak_call(list(read_calls(cell_dir)))
    return call.target if call is not None else None


def default_gpu_target(cell_dir: Path) -> str | None:
    """The call that holds the cell's GPU peak, from the cell's call records (see gpu_peak_call)."""
    call = gpu_peak_call(list(read_calls(cell_dir)))
    return call.target if call is not None else None
