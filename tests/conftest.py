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


@pytest.fixture(autouse=True)
def _steady_heap():
    """Calibrated in-process tests read this process's RSS at call boundaries. Garbage left by earlier tests
    (or by collecting ~400 tests) that a GC pass or a heap trim frees in the middle of a measured call lowers
    those readings: seen once in a fresh-clone CI run, a 512 MiB spike read as 445 MiB and a kept 200 MiB as
    176 MiB. So each test starts with the garbage collected and the heap trimmed, and runs with the cyclic
    GC off (reference counting still frees everything else)."""
    gc.collect()
    _malloc_trim()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
