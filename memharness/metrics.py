"""The figures a regression verdict can be judged on, and the rule's defaults, in one table.

`memharness compare` (its engine and its `--metric` help), `compare --baseline` and the pytest plugin's
`--memharness-*` options read this table; a new metric is one row here and, where it is not a column of the
aggregated rows already, one branch in `compare/engine.py` that computes it. A leaf: standard library only,
so the CLI and the pytest plugin can read it at start-up for free.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20

# The decision rule's defaults (docs/compare.md): a change counts when it exceeds THRESHOLD of the base median
# and, with fewer than 3 repeats, also FLOOR_MIB; with 3 or more, a one-sided Mann-Whitney U test at ALPHA.
THRESHOLD = 0.10
THRESHOLD_TEXT = "10%"
FLOOR_MIB = 64.0
FLOOR_SHARE = 0.02  # ... or this share of the cell's process-tree peak (BASE), whichever is larger
FLOOR_SHARE_TEXT = "2%"
ALPHA = 0.05
MIN_REPEATS = 3  # fewer repeats on a side: no significance test, the verdict says so


@dataclass(frozen=True)
class Metric:
    name: str
    meaning: str  # what a row is judged on, in words
    function_figure: str  # the aggregated figure a wrapped function's row is judged on
    tree_figure: str  # the figure the process tree's row is judged on
    resource: str  # "host" (RSS) or "gpu" (torch's allocator)
    unit: str = "bytes"
    direction: str = "lower is better"


METRICS: tuple[Metric, ...] = (
    Metric("own", "each function on its peak over entry, the process tree on its peak", "peak_over_start", "peak",
           "host"),
    Metric("peak", "the highest RSS during the call (absolute)", "peak", "peak", "host"),
    Metric("increment", "RSS at exit minus RSS at entry, summed over calls", "increment", "increment", "host"),
    Metric("final", "RSS at the last call's exit", "final", "final", "host"),
    Metric("peak_over_start", "the highest RSS during a call minus its RSS at entry", "peak_over_start",
           "peak_over_start", "host"),
    Metric("gpu_own", "each function on its torch-allocated GPU peak over entry, the tree on its GPU peak",
           "gpu_own", "gpu_peak", "gpu"),
    Metric("gpu_peak", "torch's peak allocated GPU memory during the call", "gpu_peak", "gpu_peak", "gpu"),
)
BY_NAME = {m.name: m for m in METRICS}
NAMES = tuple(BY_NAME)
CLI_DEFAULT = "own"  # `memharness compare --metric` and `pytest --memharness-metric`


def get(name: str) -> Metric:
    return BY_NAME[name]


def cli_help() -> str:
    """The `--metric` help of `memharness compare`: the default with its meaning, then the other names."""
    default = BY_NAME[CLI_DEFAULT]
    return " | ".join([f"{default.name} (default: {default.meaning})"] + [n for n in NAMES if n != CLI_DEFAULT])
