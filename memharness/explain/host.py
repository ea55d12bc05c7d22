"""Host allocation sites alive at a call's high-water mark, from a memray capture of that call only.

memray's high-water-mark view (`FileReader.get_high_watermark_allocation_records`) gives every stack's
bytes and allocation count alive at the moment the tracked heap was largest. Sites are grouped by the
innermost Python frame (file:line, function); each keeps its largest stack, trimmed to the frames under
the explained call (the harness's own wrapper and runner frames are cut off).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The harness's own frames, also where a child imports memharness through the PYTHONPATH symlink folder.
HARNESS_PARTS = tuple(f"/memharness/{d}/" for d in ("core", "explain", "runner", "boot", "pipelines"))


def is_harness_frame(filename: str) -> bool:
    return any(part in filename for part in HARNESS_PARTS)


@dataclass
class Site:
    file: str
    line: int
    function: str
    bytes: int = 0
    count: int = 0
    stack: list[str] = field(default_factory=list)  # innermost first, "function file:line"
    _stack_bytes: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_stack_bytes")
        return d


def trim_stack(frames: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Frames innermost first; keep those above the harness's wrapper (the explained call and below)."""
    kept = []
    for fn, filename, lineno in frames:
        if is_harness_frame(filename):
            if "/memharness/explain/" in filename:
                return []  # made by the explainer itself (starting the recorders)
            break  # the wrapper that called the target (outer frames are the runner's), or the harness's own
        kept.append((fn, filename, lineno))
    return kept


def sites_at_peak(bin_path: Path, max_stack: int = 64) -> tuple[list[Site], dict]:
    """All sites alive at the capture's high-water mark, largest first, and the capture's metadata."""
    from memray import FileReader

    reader = FileReader(str(bin_path))
    try:
        meta = reader.metadata
        info = {"peak_memory": int(meta.peak_memory), "total_allocations": int(meta.total_allocations),
                "pid": int(meta.pid), "native": bool(meta.has_native_traces),
                "seconds": (meta.end_time - meta.start_time).total_seconds()}
        by_site: dict[tuple[str, int, str], Site] = {}
        for rec in reader.get_high_watermark_allocation_records(merge_threads=True):
            frames = [(f[0], f[1], int(f[2])) for f in rec.stack_trace(max_stacks=max_stack)]
            trimmed = trim_stack(frames)
            if frames and not trimmed:
                info["harness_bytes"] = info.get("harness_bytes", 0) + int(rec.size)  # the explainer's own
                continue
            fn, filename, lineno = trimmed[0] if trimmed else ("<unknown>", "<no python frame>", 0)
            key = (filename, lineno, fn)
            site = by_site.setdefault(key, Site(filename, lineno, fn))
            site.bytes += int(rec.size)
            site.count += int(rec.n_allocations)
            if rec.size > site._stack_bytes:
                site._stack_bytes = int(rec.size)
                site.stack = [f"{f} {p}:{n}" for f, p, n in trimmed]
    finally:
        reader.close()
    sites = sorted(by_site.values(), key=lambda s: s.bytes, reverse=True)
    info["total_at_peak"] = sum(s.bytes for s in sites)
    return sites, info


def write_flamegraph(bin_path: Path, out_html: Path) -> str | None:
    """memray's own HTML flame graph (high-water-mark view); an error text if it could not be made."""
    cmd = [sys.executable, "-m", "memray", "flamegraph", "-f", "-o", str(out_html), str(bin_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out_html.exists():
        return (proc.stderr or proc.stdout).strip()[-500:] or f"memray flamegraph exited {proc.returncode}"
    return None
