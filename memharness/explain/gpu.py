"""CUDA allocation sites alive at a call's GPU high-water mark, from torch's allocator history.

`torch.cuda.memory._snapshot()` after `_record_memory_history(stacks="python")` holds, per device, the
trace of allocator events of the recorded window (`device_traces`): `alloc` with address, size and Python
frames, `free_requested`/`free_completed` for the same address. Replaying them gives the live set at the
moment the bytes allocated during the window were largest; blocks allocated before the window are not in
the trace and are left out, so the total is the call's peak over its start (like the host figure).

Pure Python on a dict: unit-tested without a GPU. The pickle itself loads in https://pytorch.org/memory_viz.
"""

from __future__ import annotations

from typing import Any

from memharness.explain.host import Site, trim_stack


def _frames(ev: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(f.get("name", "?"), f.get("filename", "?"), int(f.get("line", 0))) for f in ev.get("frames", [])]


def sites_at_gpu_peak(snapshot: dict[str, Any]) -> tuple[list[Site], dict[str, Any]]:
    """Sites alive at the largest live total of the trace (all devices together), largest first."""
    best_total, best_live = 0, {}
    events = []
    for dev, trace in enumerate(snapshot.get("device_traces", [])):
        for i, ev in enumerate(trace):
            events.append((ev.get("time_us", 0), dev, i, ev))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    live: dict[tuple[int, int], dict[str, Any]] = {}
    total = 0
    for _, dev, _, ev in events:
        action, key = ev.get("action"), (dev, int(ev.get("addr", 0)))
        if action == "alloc":
            live[key] = ev
            total += int(ev.get("size", 0))
            if total > best_total:
                best_total, best_live = total, dict(live)
        elif action in ("free_requested", "free_completed") and key in live:
            total -= int(live.pop(key).get("size", 0))
    by_site: dict[tuple[str, int, str], Site] = {}
    biggest: dict[tuple[str, int, str], int] = {}
    for ev in best_live.values():
        frames = _frames(ev)
        trimmed = trim_stack(frames) or frames
        fn, filename, lineno = trimmed[0] if trimmed else ("<unknown>", "<no python frame>", 0)
        key = (filename, lineno, fn)
        site = by_site.setdefault(key, Site(filename, lineno, fn))
        size = int(ev.get("size", 0))
        site.bytes += size
        site.count += 1
        if size > biggest.get(key, -1):
            biggest[key] = size
            site.stack = [f"{f} {p}:{n}" for f, p, n in trimmed]
    sites = sorted(by_site.values(), key=lambda s: s.bytes, reverse=True)
    return sites, {"total_at_peak": best_total, "events": len(events)}
