"""What a line-by-line memory profile cannot see: a buffer allocated and freed inside one line.

The seed study's Q1 and Q8. `allocate_and_free_in_one_line` touches SIZE_MIB of fresh memory and drops
it before its line ends; memory_profiler (the seed's tool) reports the line's Increment and Mem usage,
memharness the call's exact peak over its start (the kernel's high-water mark, reset at the call's entry).

    .venv/bin/python scripts/line_profile_blind_spot.py [SIZE_MIB]

prints one line per tool and exits 0; tests/test_findings.py runs it and checks the figures.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np

MIB = 2**20


def allocate_and_free_in_one_line(size_mib: int) -> float:
    return float(np.ones(size_mib * MIB // 8).sum())  # allocated, touched and freed within this line


def memory_profiler_figures(size_mib: int) -> dict[str, float]:
    """memory_profiler's Mem usage and Increment of the allocating line (MiB)."""
    from memory_profiler import LineProfiler, show_results

    profiler = LineProfiler()
    profiler(allocate_and_free_in_one_line)(size_mib)
    out = io.StringIO()
    show_results(profiler, stream=out)
    for line in out.getvalue().splitlines():
        if "np.ones" in line:
            fields = line.split()
            return {"mem_usage_mib": float(fields[1]), "increment_mib": float(fields[3])}
    raise RuntimeError(f"memory_profiler printed no line for np.ones:\n{out.getvalue()}")


def memharness_figures(size_mib: int) -> dict[str, float]:
    """memharness's figures for the same call (MiB)."""
    import memharness

    profiled = memharness.profile(sample_interval=None)(allocate_and_free_in_one_line)
    profiled(size_mib)
    prof = profiled.profile
    name = "allocate_and_free_in_one_line"
    row = next(r for r in prof.table() if r["function"].endswith(name))
    return {"peak_over_start_mib": row["peak_over_start_mib"], "increment_mib": row["increment_mib"]}


def main(argv: list[str]) -> int:
    size_mib = int(argv[0]) if argv else 1024
    mp = memory_profiler_figures(size_mib)
    mh = memharness_figures(size_mib)
    print(f"buffer: {size_mib} MiB allocated, touched and freed inside one line")
    print(f"memory_profiler: line increment {mp['increment_mib']:.1f} MiB, "
          f"mem usage after the line {mp['mem_usage_mib']:.1f} MiB")
    print(f"memharness: call peak over start {mh['peak_over_start_mib']:.1f} MiB, "
          f"increment {mh['increment_mib']:.1f} MiB")
    print(json.dumps({"size_mib": size_mib, "memory_profiler": mp, "memharness": mh}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
