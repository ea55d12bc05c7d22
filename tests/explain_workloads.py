"""Calibrated workloads for `memharness explain`: one call allocating 400 MiB in a numpy buffer and
100 MiB in 1 MiB bytes objects, at lines marked SITE_NUMPY and SITE_BYTES (the tests find them by marker)."""

from __future__ import annotations

import multiprocessing

import numpy as np

MiB = 1 << 20
CHUNK = MiB


def allocate(numpy_mib: int = 400, bytes_mib: int = 100) -> int:
    buf = np.empty(numpy_mib * MiB, dtype=np.uint8)  # SITE_NUMPY
    buf.fill(1)  # touch every page
    chunks = []
    for _ in range(bytes_mib):
        chunks.append(b"\x01" * CHUNK)  # SITE_BYTES
    return int(buf[-1]) + len(chunks)


def pipeline_in_process(ids, texts, options, workdir) -> None:
    allocate()


def pipeline_in_spawned_worker(ids, texts, options, workdir) -> None:
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=allocate)
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise RuntimeError(f"worker exited with {worker.exitcode}")
