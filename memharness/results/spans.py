"""Wrapped calls as spans on a cell's time axis (the timeline chart draws them; a sampled peak is named by the
innermost span open at that moment): one lane per nesting level, so a call sits right below the call it ran
inside; calls of child processes nest under the call of another process that was open when they started;
calls that would overlap in a lane (threads) move down to the next free lane."""

from __future__ import annotations

from dataclasses import dataclass

from memharness.core.records import CallRecord


@dataclass
class Span:
    call: CallRecord
    start: float  # seconds from cell start
    end: float
    lane: int
    open: bool  # no end event: still running when the process ended


def assign_lanes(calls: list[CallRecord], t0_ns: int, end_ns: int) -> list[Span]:
    """Spans of the non-phase calls, in start order, with lanes (0 = top)."""
    recs = [c for c in calls if not c.target.startswith("phase:")]
    recs.sort(key=lambda c: (c.t_start_ns, c.depth))
    lane_of: dict[str, int] = {}
    lane_end: list[float] = []  # per lane: end of the last span placed there
    spans: list[Span] = []
    root_pid = recs[0].pid if recs else None
    for c in recs:
        start = (c.t_start_ns - t0_ns) / 1e9
        end = ((c.t_end_ns if c.t_end_ns is not None else max(end_ns, c.t_start_ns)) - t0_ns) / 1e9
        if c.parent_id in lane_of:
            lane = lane_of[c.parent_id] + 1
        elif c.pid != root_pid:  # top call of a child process: under the call open in another process
            holders = [s for s in spans if s.call.pid != c.pid and s.start <= start <= s.end]
            lane = max((s.lane for s in holders), default=-1) + 1
        else:
            lane = 0
        while lane < len(lane_end) and lane_end[lane] > start:
            lane += 1
        while len(lane_end) <= lane:
            lane_end.append(float("-inf"))
        lane_end[lane] = max(lane_end[lane], end)
        lane_of[c.call_id] = lane
        spans.append(Span(c, start, end, lane, c.t_end_ns is None))
    return spans


def innermost_at(spans: list[Span], t: float) -> Span | None:
    """The deepest span open at time t (ties: the one that started last)."""
    best: Span | None = None
    for s in spans:
        if s.start <= t <= s.end and (best is None or (s.lane, s.start) > (best.lane, best.start)):
            best = s
    return best
