"""Allocation sites: stacks grouped by the frame that names their site (see frames.py), host and GPU alike.

Each stack is first trimmed to the frames under the harness's wrapper (the explained call and what it
called; the runner's frames below it are cut), then grouped by its site frame (file, line, function). A
site keeps its largest stack, complete and innermost first. Output order is stable: bytes, then file,
line and function, so identical captures give identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memharness.explain.frames import NO_ROOTS, USER, Frame, Roots, frame_text, site_frame

# The harness's own frames, also where a child imports memharness through the PYTHONPATH symlink folder.
HARNESS_PARTS = tuple(f"/memharness/{d}/" for d in ("core", "explain", "runner", "boot", "pipelines"))


def is_harness_frame(filename: str) -> bool:
    return any(part in filename for part in HARNESS_PARTS)


def trim_stack(frames: list[Frame]) -> list[Frame]:
    """Frames innermost first; keep those above the harness's wrapper (the explained call and below)."""
    kept = []
    for fn, filename, lineno in frames:
        if is_harness_frame(filename):
            if "/memharness/explain/" in filename:
                return []  # made by the explainer itself (starting the recorders)
            break  # the wrapper that called the target (outer frames are the runner's), or the harness's own
        kept.append((fn, filename, lineno))
    return kept


@dataclass
class Site:
    file: str
    line: int
    function: str
    bytes: int = 0
    count: int = 0
    stack: list[str] = field(default_factory=list)  # innermost first, "function file:line"
    site_frame: int = 0  # index of this site's frame in `stack` (0 unless library frames were skipped)
    _stack_key: tuple = ()

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function, "bytes": self.bytes,
                "count": self.count, "stack": self.stack, "site_frame": self.site_frame}


class SiteGroups:
    """Adds up (stack, bytes, allocations) records into sites; `harness_bytes` are the explainer's own."""

    def __init__(self, frames: str = USER, keep_empty: bool = False, roots: Roots = NO_ROOTS) -> None:
        self.frames = frames
        self.roots = roots
        self.keep_empty = keep_empty  # GPU: a stack trimmed to nothing keeps its full frames
        self.harness_bytes = 0
        self._sites: dict[tuple[str, int, str], Site] = {}

    def add(self, frames: list[Frame], size: int, count: int = 1) -> None:
        trimmed = trim_stack(frames)
        if frames and not trimmed:
            if not self.keep_empty:
                self.harness_bytes += size
                return
            trimmed = frames
        i = site_frame(trimmed, self.frames, self.roots)
        fn, filename, lineno = trimmed[i] if trimmed else ("<unknown>", "<no python frame>", 0)
        key = (filename, lineno, fn)
        site = self._sites.setdefault(key, Site(filename, lineno, fn))
        site.bytes += size
        site.count += count
        stack = [frame_text(f) for f in trimmed]
        rank = (size, tuple(stack))
        if not site._stack_key or rank > site._stack_key:
            site._stack_key, site.stack, site.site_frame = rank, stack, i

    def sites(self) -> list[Site]:
        return sorted(self._sites.values(), key=lambda s: (-s.bytes, s.file, s.line, s.function))
