"""The default call to explain: the innermost wrapped call open at the cell's run-phase peak (host), or
the one that holds the cell's GPU peak (`explain --gpu`, from the call records' per-call GPU readings).

The host call is the one the report's summary names for the cell (`results.phases.run_peak_call`; without a
timeline, among the calls inside `phase:run` those whose exact peak equals the highest peak reached within
1%, the deepest, then the shortest). The GPU call follows the summary's rule too (`results.gpu.peak_record`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from memharness.core.records import CallRecord, read_calls
from memharness.results.gpu import peak_record
from memharness.results.phases import run_peak_call
from memharness.results.run import CellFolder


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
    """The wrapped call that holds the cell's GPU peak: among the run phase's calls (any process), the rule of
    the report's summary (`results.gpu.peak_record`: within 1% of the largest peak allocated, the deepest, then
    the shortest). None when no call has GPU readings (a CPU cell)."""
    return peak_record(_in_run_phase(calls, lambda c: c.complete and bool(gpu_peak(c))))[0]


def default_target(run_dir: Path, cell_id: str, cell_dir: Path) -> str | None:
    """The call the report's summary names for this cell's run-phase peak (`results.phases.run_peak_call`),
    else, without a timeline, the call with the highest exact peak (`peak_call`)."""
    cell = CellFolder.at(cell_dir)
    named = run_peak_call(cell)
    if named:
        return named
    call = peak_call(list(cell.calls))
    return call.target if call is not None else None


def default_gpu_target(cell_dir: Path) -> str | None:
    """The call that holds the cell's GPU peak, from the cell's call records (see gpu_peak_call)."""
    call = gpu_peak_call(list(read_calls(cell_dir)))
    return call.target if call is not None else None
