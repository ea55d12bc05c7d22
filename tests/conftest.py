import ctypes
import gc
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


FREE_WANTED = 2 << 30  # the largest calibrated allocation of any test (1 GiB), with room to spare


def _mem_free() -> int:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemFree:"):
                return int(line.split()[1]) * 1024
    return FREE_WANTED


def _make_room() -> None:
    """Free memory before a test when the page cache holds nearly all of it (CI's fresh install leaves it so).
    A calibrated allocation that has to wait for reclaim makes the kernel drop file-backed pages of the
    measuring process too (its mapped libraries), so its RSS rises less than it allocated: a 512 MiB spike
    read as 445 MiB in a fresh-clone CI run right after the install filled the page cache. Touching and
    freeing a buffer first makes the kernel do that reclaim before the test, not inside it."""
    need = FREE_WANTED - _mem_free()
    if need <= 0:
        return
    buf = bytearray(need + (256 << 20))
    buf[::4096] = b"\1" * len(range(0, len(buf), 4096))  # touch every page
    del buf


@pytest.fixture
def calibrated():
    """For tests that measure calibrated allocations in this (pytest's) process, whose RSS they read at call
    boundaries: free memory made first (see `_make_room`), garbage left by earlier tests collected and the
    heap trimmed so that no GC pass or heap trim frees unrelated memory inside a measured call, and the
    cyclic GC off while the test runs (reference counting still frees everything else)."""
    gc.collect()
    _malloc_trim()
    _make_room()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
