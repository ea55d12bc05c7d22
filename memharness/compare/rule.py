"""The verdict for one row: regressed, improved or unchanged (docs/compare.md states the rule in words).

Medians of the per-repeat values are compared. A change must pass the relative threshold; then

- with at least `MIN_REPEATS_FOR_TEST` repeats on both sides, a one-sided Mann-Whitney U test
  (`alternative="greater"` for a regression, `"less"` for an improvement) must give p < alpha;
  where the two sample sizes are too small for that test to ever reach alpha (its smallest exact p-value,
  1 / C(n+m, min(n, m)), is not below alpha: 3 against 3 at alpha 0.05), asv's precaution is followed and
  the test is not trusted; the change must then clear the absolute floor and the two samples must not
  overlap at all;
- with fewer repeats, the change must also exceed the absolute floor (`min_bytes`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from memharness import metrics

MIN_REPEATS_FOR_TEST = metrics.MIN_REPEATS

REGRESSED = "regressed"
IMPROVED = "improved"
UNCHANGED = "unchanged"

TEST_MWU = "mann-whitney"
TEST_SEPARATION = "separation"  # samples too small for the test to reach alpha
TEST_FLOOR = "floor"  # fewer than MIN_REPEATS_FOR_TEST repeats on a side


@dataclass(frozen=True)
class Rule:
    threshold: float = metrics.THRESHOLD  # relative change of the median, as a fraction of the base median
    min_bytes: float = metrics.FLOOR_MIB * metrics.MiB
    alpha: float = metrics.ALPHA
    floor_share: float = metrics.FLOOR_SHARE  # the floor grows with the process: this share of its tree peak

    def floor_for(self, tree_peak: float | None) -> tuple[float, str]:
        """(the absolute floor in bytes for a cell whose BASE tree peak is `tree_peak`, which one applied)."""
        share = self.floor_share * tree_peak if tree_peak else 0.0
        if share > self.min_bytes:
            return share, f"{self.floor_share * 100:g}% of the {tree_peak / 2**20:,.1f} MiB process-tree peak"
        return self.min_bytes, f"--min-mib {self.min_bytes / 2**20:g}"


@dataclass
class Decision:
    verdict: str
    old: float
    new: float
    delta: float
    ratio: float | None
    test: str
    p_value: float | None  # of the one-sided test in the direction of the change; None when not run
    exceeds_threshold: bool


def min_exact_p(n: int, m: int) -> float:
    """Smallest one-sided p-value the exact Mann-Whitney U test can give for sample sizes n and m."""
    return 1.0 / math.comb(n + m, min(n, m))


def _mwu_p(old: list[float], new: list[float], alternative: str) -> float:
    from scipy.stats import mannwhitneyu

    if len(set(old) | set(new)) == 1:  # every value equal: no evidence of any shift
        return 1.0
    return float(mannwhitneyu(new, old, alternative=alternative).pvalue)


def decide(old: list[float], new: list[float], rule: Rule, reference: float | None = None) -> Decision:
    """Verdict for one row from the per-repeat values of both sides (bytes).

    REFERENCE, when given, is what the relative threshold is a fraction of instead of the BASE median
    (a step between two levels is judged against the level, not against the step).
    """
    if not old or not new:
        raise ValueError("decide() needs at least one value on each side")
    med_old = float(statistics.median(old))
    med_new = float(statistics.median(new))
    delta = med_new - med_old
    ratio = med_new / med_old if med_old != 0 else None
    scale = abs(med_old) if reference is None else abs(reference)
    exceeds = delta != 0 and abs(delta) > rule.threshold * scale
    up = delta > 0
    alternative = "greater" if up else "less"

    def done(verdict_if_shifted: bool, test: str, p: float | None) -> Decision:
        verdict = (REGRESSED if up else IMPROVED) if verdict_if_shifted else UNCHANGED
        return Decision(verdict, med_old, med_new, delta, ratio, test, p, exceeds)

    if min(len(old), len(new)) < MIN_REPEATS_FOR_TEST:
        return done(exceeds and abs(delta) > rule.min_bytes, TEST_FLOOR, None)

    p = _mwu_p(old, new, alternative) if delta != 0 else None
    if min_exact_p(len(old), len(new)) < rule.alpha:
        return done(exceeds and p is not None and p < rule.alpha, TEST_MWU, p)
    separated = min(new) > max(old) if up else max(new) < min(old)
    return done(exceeds and separated and abs(delta) > rule.min_bytes, TEST_SEPARATION, p)
