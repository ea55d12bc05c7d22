"""CUDA allocation sites of a call, from torch's allocator history: at its GPU high-water mark and at its exit.

`torch.cuda.memory._snapshot()` after `_record_memory_history(stacks="python")` holds, per device, the
trace of allocator events of the recorded window (`device_traces`): `alloc` with address, size and Python
frames, `free_requested`/`free_completed` for the same address. Replaying them gives the live set at the
moment the bytes allocated during the window were largest (peak) and the live set at the window's end, the
call's exit (retained). Blocks allocated before the window are not in the trace and are left out, so the
totals are over the call's start, like the host figures.

Pure Python on a dict: unit-tested without a GPU. The pickle itself loads in https://pytorch.org/memory_viz.
"""

from __future__ import annotations

from typing import Any

from memharness.explain.frames import NO_ROOTS, USER, Roots
from memharness.explain.sites import Site, SiteGroups

Live = dict[tuple[int, int], dict[str, Any]]


def _frames(ev: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(f.get("name", "?"), f.get("filename", "?"), int(f.get("line", 0))) for f in ev.get("frames", [])]


def _apply(live: Live, dev: int, ev: dict[str, Any]) -> int:
    """Apply one allocator event to the live set; returns the change of live bytes."""
    action, key = ev.get("action"), (dev, int(ev.get("addr", 0)))
    if action == "alloc":
        live[key] = ev
        return int(ev.get("size", 0))
    if action in ("free_requested", "free_completed") and key in live:
        return -int(live.pop(key).get("size", 0))
    return 0


def replay(snapshot: dict[str, Any]) -> tuple[Live, Live, int, int]:
    """(live blocks at the peak, live blocks at the end, peak bytes, events) over all devices together.
    Two passes (find the peak's event, then replay up to it): linear in the trace's length."""
    events = []
    for dev, trace in enumerate(snapshot.get("device_traces", [])):
        for i, ev in enumerate(trace):
            events.append((ev.get("time_us", 0), dev, i, ev))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    live: Live = {}
    best_total, best_index, total = 0, -1, 0
    for n, (_, dev, _, ev) in enumerate(events):
        total += _apply(live, dev, ev)
        if total > best_total:
            best_total, best_index = total, n
    at_peak: Live = {}
    for _, dev, _, ev in events[:best_index + 1]:
        _apply(at_peak, dev, ev)
    return at_peak, live, best_total, len(events)


def _sites(live: Live, frames: str, roots: Roots) -> list[Site]:
    groups = SiteGroups(frames, keep_empty=True, roots=roots)
    for key in sorted(live):
        ev = live[key]
        groups.add(_frames(ev), int(ev.get("size", 0)))
    return groups.sites()


def sites_at_gpu_peak(snapshot: dict[str, Any], frames: str = USER,
                      roots: Roots = NO_ROOTS) -> tuple[list[Site], dict[str, Any]]:
    """Sites alive at the largest live total of the trace (all devices together), largest first."""
    at_peak, _, best_total, n = replay(snapshot)
    return _sites(at_peak, frames, roots), {"total_at_peak": best_total, "events": n}


def sites_retained_gpu(snapshot: dict[str, Any], frames: str = USER,
                       roots: Roots = NO_ROOTS) -> tuple[list[Site], dict[str, Any]]:
    """Sites of the blocks allocated in the window and still allocated at its end (the call's exit)."""
    _, at_end, _, n = replay(snapshot)
    sites = _sites(at_end, frames, roots)
    return sites, {"total": sum(s.bytes for s in sites), "events": n}
