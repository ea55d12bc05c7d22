"""Calibrated `callable` pipelines for the verdict tests (tests/test_compare_verdict_e2e.py).

`index` (wrapped) calls `work` (wrapped), which allocates WORK_MIB (+ extra_mib), holds it and frees it.
- `run`: the plain pipeline;
- `run_grown`: `work` allocates GROWN_EXTRA_MIB more (its own peak grows; `index` only inherits that);
- `workloads_shift_heavy:run`: the same `run`, from a module whose import keeps BALLAST_MIB
  (`workloads_ballast`), so the process holds that much more before `index` and `work` start.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MiB = 1 << 20
WORK_MIB = 200
GROWN_EXTRA_MIB = 100
HOLD_S = 0.2


def _touched(n_mib: float) -> np.ndarray:
    a = np.empty(int(n_mib * MiB), dtype=np.uint8)
    a.fill(1)  # every page resident
    return a


def work(extra_mib: float = 0) -> int:
    """Allocates WORK_MIB (+ extra_mib), holds it HOLD_S, frees it on return."""
    a = _touched(WORK_MIB + extra_mib)
    time.sleep(HOLD_S)
    return int(a[::4096].sum())


def index(texts: list[str], extra_mib: float = 0) -> int:
    """The caller: a little bookkeeping of its own, then `work`."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    return work(extra_mib) + int(lengths.sum())


def run(ids: list[str], texts: list[str], options: dict, workdir: Path) -> None:
    n = index(texts)
    (Path(workdir) / "done.txt").write_text(f"{len(ids)} {n}\n")


def run_grown(ids: list[str], texts: list[str], options: dict, workdir: Path) -> None:
    n = index(texts, extra_mib=GROWN_EXTRA_MIB)
    (Path(workdir) / "done.txt").write_text(f"{len(ids)} {n}\n")
