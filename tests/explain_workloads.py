"""Calibrated workloads for `memharness explain`, at lines marked SITE_* (the tests find them by marker).

- `allocate`: one call allocating 1 GiB with `np.ones` (numpy's own Python frame is the innermost) and
  100 MiB in 1 MiB bytes objects;
- `keep_and_free`: keeps 200 MiB in a module global and frees 300 MiB before it returns (--retained);
- `pipeline_keeps`: allocates a known buffer (options `entry_mib`, 256 MiB by default) before it calls
  `keep_and_free` (--at-entry, and side by side with a smaller buffer).
"""

from __future__ import annotations

import multiprocessing

import numpy as np

MiB = 1 << 20
CHUNK = MiB
KEPT: list[np.ndarray] = []


def allocate(numpy_mib: int = 1024, bytes_mib: int = 100) -> int:
    buf = np.ones(numpy_mib * MiB, dtype=np.uint8)  # SITE_NUMPY
    chunks = []
    for _ in range(bytes_mib):
        chunks.append(b"\x01" * CHUNK)  # SITE_BYTES
    return int(buf[-1]) + len(chunks)


def keep_and_free(keep_mib: int = 200, free_mib: int = 300) -> int:
    KEPT.append(np.ones(keep_mib * MiB, dtype=np.uint8))  # SITE_KEEP
    scratch = np.ones(free_mib * MiB, dtype=np.uint8)  # SITE_FREED
    total = int(scratch[-1])
    del scratch
    return total


def pipeline_in_process(ids, texts, options, workdir) -> None:
    allocate()


def pipeline_in_spawned_worker(ids, texts, options, workdir) -> None:
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=allocate)
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise RuntimeError(f"worker exited with {worker.exitcode}")


def pipeline_keeps(ids, texts, options, workdir) -> None:
    before = np.ones(int(options.get("entry_mib", 256)) * MiB, dtype=np.uint8)  # SITE_ENTRY
    keep_and_free()
    assert before[-1] == 1
