"""What a cell did on the GPU, as one set of figures every view reads (the summary, the charts, `explain`'s
default target, the forecasts).

Three readings cover three different things, and each figure says which one it is:

- torch's caching allocator in the cell's main process (the per-call probe): *allocated* (tensors alive) and
  *reserved* (blocks the allocator holds, used or not). Their peaks over the `run` phase are exact: the probe
  folds torch's peak counters into every open call (`core/gpuprobe.py`).
- NVML *used by the process tree*: what the driver charges to the cell's processes (CUDA contexts and every
  library's allocations included): the highest of the sampled timeline and the exact readings at the main
  process's call events, over the `run` phase.
- NVML *used on the device*: the whole card, other processes and the driver included.

The call that holds the GPU peak is the innermost call of the main process whose torch peak allocated is
within 1% of the cell's, as `phases.exact_peak_call` does for the host.

Reserved but unused memory (`idle_reserved`): torch keeps freed blocks cached, so after a call returns the
process can hold far more than its tensors need, and a second process on the same GPU cannot have it. The
rule (docs/reports.md): the first call of the main process at whose exit torch's reserved memory exceeds its
allocated memory by at least 1 GiB and by at least half of what it reserves; the report names that call, the
idle amount at its exit, and how long the excess lasted (until a later reading shows it gone, else to the end
of the `run` phase).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memharness.core.records import KIND_GPU_TREE_USED, KIND_GPU_USED, CallRecord
from memharness.results.phases import RUN, phase_window, sampled_sum_peak
from memharness.results.run import CellFolder

SAME = 0.99  # a call holds the peak when its own peak is within 1% of the cell's
IDLE_MIN = 1 << 30  # reserved - allocated of at least 1 GiB ...
IDLE_SHARE = 0.5  # ... and at least half of the reserved memory


def device_sum(gpu: dict[str, Any] | None, key: str) -> int | None:
    """One reading of a call record's `gpu` field summed over its devices (None when no device has it)."""
    if not isinstance(gpu, dict):
        return None
    vals = [d.get(key) for d in gpu.values() if isinstance(d, dict) and isinstance(d.get(key), (int, float))]
    return int(sum(vals)) if vals else None


@dataclass(frozen=True)
class IdleReserved:
    call: str  # the call after whose return the cache stayed large
    idle: int  # reserved - allocated at that call's exit, bytes
    reserved: int
    allocated: int
    seconds: float  # how long the excess lasted
    until: str  # "the end of the run phase", or "<dotted call> returned|entered": the reading that showed it gone


@dataclass(frozen=True)
class GpuFigures:
    torch_allocated: int | None  # peak over the run phase, main process, summed over devices
    torch_reserved: int | None
    call: str | None  # innermost call holding the torch peak
    nvml_tree: int | None  # NVML used by the process tree, highest over the run phase
    nvml_device: int | None  # NVML used on the device(s), highest over the run phase
    idle: IdleReserved | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["idle"] = None if self.idle is None else asdict(self.idle)
        return d


def _main_calls(cell: CellFolder) -> tuple[list[CallRecord], CallRecord | None]:
    """The main process's calls inside the run phase (every call when no phase was recorded), and that
    phase's record."""
    calls = cell.calls
    run = next((c for c in calls if c.target == f"phase:{RUN}" and c.depth == 0), None)
    if run is None:
        tops = [c.pid for c in calls if c.depth == 0]
        main = tops[0] if tops else None
        return [c for c in calls if c.pid == main], None
    end = run.t_end_ns if run.t_end_ns is not None else float("inf")
    return [c for c in calls if c.pid == run.pid and run.t_start_ns <= c.t_start_ns <= end], run


def _highest(*values: int | None) -> int | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def peak_record(calls: list[CallRecord], key: str = "peak_allocated") -> tuple[CallRecord | None, int | None]:
    """(the innermost call whose torch `key` peak is within 1% of the largest, that largest) among `calls`;
    ties: the deepest, then the shortest, then the first to start. The one rule for "the call that holds
    the GPU peak": the summary and `explain --gpu` both use it."""
    with_peak = [(c, v) for c in calls if not c.target.startswith("phase:")
                 and (v := device_sum(c.gpu_end, key)) is not None]
    if not with_peak:
        return None, None
    top = max(v for _, v in with_peak)
    held = [c for c, v in with_peak if v >= SAME * top]
    return min(held, key=lambda c: (-c.depth, c.duration_s or 0.0, c.t_start_ns, c.target)), top


def peak_call(calls: list[CallRecord], key: str = "peak_allocated") -> tuple[str | None, int | None]:
    """`peak_record`'s call as its dotted path."""
    rec, top = peak_record(calls, key)
    return (None if rec is None else rec.target), top


def idle_reserved(calls: list[CallRecord], run_end_ns: int | None) -> IdleReserved | None:
    """The first call after whose return torch kept a large cache it did not use (see the module docstring)."""
    events: list[tuple[int, str, int, int]] = []  # (time, what, reserved, allocated) at every reading, in order
    for c in calls:
        for t, gpu, what in ((c.t_start_ns, c.gpu_start, "entered"), (c.t_end_ns, c.gpu_end, "returned")):
            res, alloc = device_sum(gpu, "reserved"), device_sum(gpu, "allocated")
            if t is not None and res is not None and alloc is not None:
                events.append((t, f"{c.target} {what}", res, alloc))
    events.sort(key=lambda e: (e[0], e[1]))

    def excessive(res: int, alloc: int) -> bool:
        return res - alloc >= IDLE_MIN and res - alloc >= IDLE_SHARE * res

    for c in sorted(calls, key=lambda c: (c.t_end_ns or 0, c.target)):
        if c.target.startswith("phase:") or c.t_end_ns is None:
            continue
        res, alloc = device_sum(c.gpu_end, "reserved"), device_sum(c.gpu_end, "allocated")
        start_res = device_sum(c.gpu_start, "reserved")
        if res is None or alloc is None or not excessive(res, alloc) or (start_res is not None and
                                                                          excessive(start_res, alloc)):
            continue  # not large, or already large when the call began: an earlier call caused it
        later = [e for e in events if e[0] > c.t_end_ns and not excessive(e[2], e[3])]
        if later:
            end, until = later[0][0], later[0][1]
        else:
            end, until = (run_end_ns or max(e[0] for e in events)), "the end of the run phase"
        return IdleReserved(c.target, res - alloc, res, alloc, max(0.0, (end - c.t_end_ns) / 1e9), until)
    return None


def cell_gpu(cell: CellFolder) -> GpuFigures | None:
    """The cell's GPU figures over its run phase; None when it recorded nothing of a GPU."""
    calls, run = _main_calls(cell)
    window = phase_window(cell.calls, RUN)
    start, end = (window.start_ns, window.end_ns) if window is not None else (None, None)
    call, top = peak_call(calls)
    torch_alloc = _highest(device_sum(run.gpu_end, "peak_allocated") if run else None, top)
    torch_res = _highest(device_sum(run.gpu_end, "peak_reserved") if run else None,
                         *(device_sum(c.gpu_end, "peak_reserved") for c in calls))
    exact_tree = _highest(*(device_sum(g, "nvml_tree_used") for c in calls for g in (c.gpu_start, c.gpu_end)))
    exact_dev = _highest(*(device_sum(g, "nvml_used") for c in calls for g in (c.gpu_start, c.gpu_end)))
    nvml_tree = _highest(sampled_sum_peak(cell.timeline, KIND_GPU_TREE_USED, start, end), exact_tree)
    nvml_dev = _highest(sampled_sum_peak(cell.timeline, KIND_GPU_USED, start, end), exact_dev)
    if torch_alloc is None and nvml_tree is None and nvml_dev is None:
        return None
    idle = idle_reserved(calls, end if end is not None else (cell.end_ns()))
    return GpuFigures(torch_alloc, torch_res, call, nvml_tree, nvml_dev, idle)


def torch_readings(cell: CellFolder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's allocated and reserved memory of the main process at each of its call events, in time order:
    (seconds from the cell's start, allocated bytes, reserved bytes). Exact at those moments; between two
    events the allocator may have gone higher (the calls' peaks say how high)."""
    calls, _ = _main_calls(cell)
    t0 = cell.t0_ns or 0
    points = sorted((t, device_sum(g, "allocated"), device_sum(g, "reserved")) for c in calls
                    for t, g in ((c.t_start_ns, c.gpu_start), (c.t_end_ns, c.gpu_end))
                    if t is not None and device_sum(g, "allocated") is not None)
    if not points:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    t = np.array([(p[0] - t0) / 1e9 for p in points])
    return t, np.array([p[1] for p in points], dtype=np.int64), np.array([p[2] or 0 for p in points], dtype=np.int64)


def peak_span(cell: CellFolder, call: str | None) -> tuple[float, float] | None:
    """(start, end) in seconds from the cell's start of the first call of `call` holding the torch peak."""
    if call is None:
        return None
    calls, _ = _main_calls(cell)
    t0 = cell.t0_ns or 0
    mine = [c for c in calls if c.target == call]
    if not mine:
        return None
    top = max(mine, key=lambda c: (device_sum(c.gpu_end, "peak_allocated") or 0, -c.t_start_ns))
    end = top.t_end_ns if top.t_end_ns is not None else (cell.end_ns() or top.t_start_ns)
    return (top.t_start_ns - t0) / 1e9, (end - t0) / 1e9


def tree_gpu_figures(cell: CellFolder) -> dict[str, float]:
    """The run phase's GPU figures of the process-tree row: the same as the summary's (`cell_gpu`)."""
    g = cell_gpu(cell)
    if g is None:
        return {}
    pairs = (("gpu_peak", g.torch_allocated), ("gpu_peak_reserved", g.torch_reserved),
             ("gpu_nvml_peak", g.nvml_tree), ("gpu_nvml_device_peak", g.nvml_device))
    return {k: float(v) for k, v in pairs if v is not None}
