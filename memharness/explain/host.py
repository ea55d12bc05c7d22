"""Host allocation sites from a memray capture of one window: at its high-water mark, or still alive at its end.

- peak: memray's high-water-mark view (`FileReader.get_high_watermark_allocation_records`), every stack's
  bytes and allocation count alive at the moment the tracked heap was largest;
- retained: memray's leaks view (`get_leaked_allocation_records`), what was allocated inside the window and
  not freed when the tracker stopped. For a call's capture that is what the call leaves behind; for the
  at-entry capture (the cell's start to the target's entry) it is what is alive when the call starts.

Sites are grouped by `sites.SiteGroups` (the frame rule in frames.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from memharness.explain.frames import NO_ROOTS, USER, Roots
from memharness.explain.sites import Site, SiteGroups

MAX_STACK = 128  # frames read per stack: torch and transformers stacks are deep
PEAK = "peak"
RETAINED = "retained"


def _info(reader: Any) -> dict[str, Any]:
    meta = reader.metadata
    return {"peak_memory": int(meta.peak_memory), "total_allocations": int(meta.total_allocations),
            "pid": int(meta.pid), "native": bool(meta.has_native_traces),
            "seconds": (meta.end_time - meta.start_time).total_seconds()}


def read_sites(bin_path: Path, view: str = PEAK, frames: str = USER,
               roots: Roots = NO_ROOTS) -> tuple[list[Site], dict[str, Any]]:
    """All sites of the capture's `view` (PEAK or RETAINED), largest first, and the capture's metadata with
    `total` (bytes of all sites) and `harness_bytes` (the explainer's own, left out)."""
    from memray import FileReader

    reader = FileReader(str(bin_path))
    try:
        info = _info(reader)
        records = (reader.get_high_watermark_allocation_records(merge_threads=True) if view == PEAK
                   else reader.get_leaked_allocation_records(merge_threads=True))
        groups = SiteGroups(frames, roots=roots)
        for rec in records:
            stack = [(f[0], f[1], int(f[2])) for f in rec.stack_trace(max_stacks=MAX_STACK)]
            groups.add(stack, int(rec.size), int(rec.n_allocations))
    finally:
        reader.close()
    sites = groups.sites()
    info["total"] = sum(s.bytes for s in sites)
    if groups.harness_bytes:
        info["harness_bytes"] = groups.harness_bytes
    return sites, info


def sites_at_peak(bin_path: Path, frames: str = USER, roots: Roots = NO_ROOTS) -> tuple[list[Site], dict[str, Any]]:
    """The sites alive at the capture's high-water mark; `total_at_peak` is their bytes."""
    sites, info = read_sites(bin_path, PEAK, frames, roots)
    info["total_at_peak"] = info.pop("total")
    return sites, info


def write_flamegraph(bin_path: Path, out_html: Path) -> str | None:
    """memray's own HTML flame graph (high-water-mark view); an error text if it could not be made."""
    cmd = [sys.executable, "-m", "memray", "flamegraph", "-f", "-o", str(out_html), str(bin_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out_html.exists():
        return (proc.stderr or proc.stdout).strip()[-500:] or f"memray flamegraph exited {proc.returncode}"
    return None
