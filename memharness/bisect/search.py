"""The bisection itself: which candidate to measure next, and what the verdicts so far conclude.

Candidates are ordered oldest first; index 0 is the good end, the last the bad end. Verdicts are GOOD, BAD
or SKIP (could not be installed, imported or run). The good end is measured first: it is the reference every
step is judged against. The bad end is taken as bad on the user's word and measured only when the search
ends next to it without having seen any bad version (then it is the answer, or, judged good, the range did
not regress). So with n candidates a clear regression is found in 1 + ceil(log2(n - 1)) cell runs, as
`git bisect` would after being told both ends.

A skipped candidate is treated as `git bisect skip` does: the next pick is the untested candidate nearest to
the middle of the open interval; when only skipped candidates are left between the last good and the first
bad, the first bad is any of them or the first bad itself.
"""

from __future__ import annotations

from dataclasses import dataclass

GOOD, BAD, SKIP = "good", "bad", "skip"


@dataclass
class Outcome:
    """What the verdicts conclude once `next_index` is None."""

    kind: str  # "found" | "ambiguous" | "no_regression" | "unknown"
    first_bad: int | None = None
    candidates: tuple[int, ...] = ()  # "ambiguous": the first bad is one of these
    last_good: int | None = None


def _bounds(n: int, verdicts: dict[int, str]) -> tuple[int, int]:
    bad = [i for i, v in verdicts.items() if v == BAD]
    hi = min(bad) if bad else n - 1
    good = [i for i, v in verdicts.items() if v == GOOD and i < hi]
    lo = max(good) if good else 0
    return lo, hi


def next_index(n: int, verdicts: dict[int, str]) -> int | None:
    """The candidate to measure next, or None when the search is over."""
    if n < 2:
        raise ValueError("bisection needs a good and a bad end")
    if 0 not in verdicts:
        return 0
    if verdicts[0] != GOOD:
        return None  # the reference could not be measured: nothing to judge against
    lo, hi = _bounds(n, verdicts)
    if hi == n - 1 and verdicts.get(hi) == GOOD:
        return None  # the bad end was judged good
    open_ = [i for i in range(lo + 1, hi) if i not in verdicts]
    if open_:
        mid = (lo + hi) // 2
        return min(open_, key=lambda i: (abs(i - mid), i))
    if hi not in verdicts:
        return hi  # the search ends next to an unmeasured bad end: measure it
    return None


def outcome(n: int, verdicts: dict[int, str]) -> Outcome:
    lo, hi = _bounds(n, verdicts)
    if verdicts.get(0) != GOOD:
        return Outcome("unknown")
    if verdicts.get(n - 1) == GOOD and hi == n - 1:
        return Outcome("no_regression", last_good=n - 1)
    skipped = tuple(i for i in range(lo + 1, hi) if verdicts.get(i) == SKIP)
    if verdicts.get(hi) == BAD:
        if skipped:
            return Outcome("ambiguous", candidates=(*skipped, hi), last_good=lo)
        return Outcome("found", first_bad=hi, last_good=lo)
    # the bad end could not be measured (skip): the first bad is unknown among the rest
    return Outcome("ambiguous", candidates=(*skipped, hi), last_good=lo)
