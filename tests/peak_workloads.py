"""Calibrated workloads for the process-peak and private/file-backed tests (issue 11).

Plain `bytes` only (no numpy): a spawned worker then starts at a few MiB, so its peak is the calibrated
figure plus the interpreter. `b"\\x01" * n` writes every byte, so every page is resident.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
PAGE = mmap.PAGESIZE
_kept: list = []

PLAIN_CHILD = """\
import sys
a = b"\\x01" * ({mib} << 20)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def worker_700_copy_200() -> None:
    """Allocate 700 MiB and copy 200 MiB of it: peak 900 MiB over the start."""
    a = b"\x01" * (700 * MiB)
    b = a[: 200 * MiB]  # slicing bytes copies
    del b, a


def launch_worker(method: str = "spawn") -> int:
    """Start the worker with the given start method and wait for it."""
    proc = mp.get_context(method).Process(target=worker_700_copy_200)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"worker exited with {proc.exitcode}")
    return proc.pid


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEMHARNESS_BOOT")}


def run_plain_child(mib: int = 600) -> None:
    """A subprocess running a plain Python script (no site, no memharness) that allocates `mib` MiB."""
    code = f"a = b'\\x01' * ({mib} << 20)"
    subprocess.run([sys.executable, "-S", "-E", "-c", code], env=_plain_env(), check=True)


def start_plain_child(cell_dir: str, mib: int = 600) -> None:
    """Start a plain child that holds `mib` MiB; return once the sampler has read its high-water mark (the
    child is released and reaped later, outside this call: only the sampler can see its peak here)."""
    from memharness.core.records import KIND_PROC_HWM, read_memory_timeline

    proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", PLAIN_CHILD.format(mib=mib)], env=_plain_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait on the event: a sampled VmHWM of the child at its size
        rows = read_memory_timeline(Path(cell_dir))
        sel = rows[(rows["kind"] == KIND_PROC_HWM) & (rows["pid"] == proc.pid)]
        if len(sel) and sel["value"].max() >= mib * MiB:
            break
        time.sleep(0.02)
    _kept.append(proc)


def release_children() -> None:
    for proc in [k for k in _kept if isinstance(k, subprocess.Popen)]:
        proc.stdin.close()
        proc.wait()
    _kept.clear()


def map_and_allocate(path: str, anon_mib: int = 256) -> int:
    """Map a file and read every page of it (file-backed RSS + its size), then allocate anon_mib MiB
    (private RSS + anon_mib); both kept until release_children()."""
    fh = open(path, "rb")
    mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    total = 0
    for i in range(0, len(mm), PAGE):
        total += mm[i]
    _kept.extend([fh, mm, b"\x01" * (anon_mib * MiB)])
    return total


def write_file(path: str, mib: int) -> None:
    """A file of `mib` MiB of non-zero bytes (no holes)."""
    block = b"\x5a" * MiB
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(block)


# --- `callable` pipelines: function(ids, texts, options, workdir) -----------------------------------------

def pipeline_spawn_worker(ids, texts, options, workdir) -> None:
    launch_worker(options.get("method", "spawn"))


def pipeline_plain_child(ids, texts, options, workdir) -> None:
    run_plain_child(options.get("mib", 600))


def pipeline_plain_child_held(ids, texts, options, workdir) -> None:
    start_plain_child(str(Path(workdir).parent), options.get("mib", 600))
    release_children()


def pipeline_map_file(ids, texts, options, workdir) -> None:
    map_and_allocate(options["path"], options.get("anon_mib", 256))
    release_children()


def run_true_while_holding(mib: int = 300) -> None:
    """Hold mib MiB, then run a tiny exec'd child (`true`): the kernel's reaped-children peak then reports
    about mib MiB (the parent's memory the child had before exec), not the child's own few MiB."""
    held = b"\x01" * (mib * MiB)
    subprocess.run(["true"], check=True)
    del held
