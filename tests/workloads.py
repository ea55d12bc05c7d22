"""Calibrated workloads: allocate exactly N MiB with every page touched, so the harness's figures can be
checked against known numbers. Used by the measurement tests and by `callable` pipelines in runner tests.
"""

from __future__ import annotations

import time

import numpy as np

MiB = 1 << 20
_kept: list[np.ndarray] = []


def touch(n_mib: float) -> np.ndarray:
    """An array of n_mib MiB whose pages are all resident."""
    a = np.empty(int(n_mib * MiB), dtype=np.uint8)
    a.fill(1)
    return a


def inner(spike_mib: float = 1024, hold_s: float = 0.02) -> None:
    """Allocate spike_mib, hold it hold_s, free it."""
    a = touch(spike_mib)
    time.sleep(hold_s)
    del a


def outer(keep_mib: float = 200, spike_mib: float = 1024, hold_s: float = 0.02) -> None:
    """Keep keep_mib (until release()), then call inner()."""
    _kept.append(touch(keep_mib))
    inner(spike_mib, hold_s)


def release() -> None:
    _kept.clear()


def run_outer_in_child(keep_mib: float = 200, spike_mib: float = 1024, hold_s: float = 0.02) -> None:
    outer(keep_mib, spike_mib, hold_s)
    release()


def spin_python(seconds: float) -> int:
    """Hold the GIL in a pure-Python loop."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


# --- `callable` pipelines for runner tests: function(ids, texts, options, workdir) ---------------------

def stage(mib: float) -> np.ndarray:
    """A wrapped step that returns mib MiB of touched memory."""
    return touch(mib)


def pipeline_ok(ids, texts, options, workdir) -> None:
    kept = stage(options.get("mib", 20))
    (workdir / "out.txt").write_text(f"{len(texts)} {kept.size}")


def pipeline_raises(ids, texts, options, workdir) -> None:
    _ = stage(10)
    raise ValueError(f"boom after {len(texts)} passages")


def pipeline_grows(ids, texts, options, workdir) -> None:
    """Grows by options['step_mib'] every 50 ms until something stops it."""
    held = []
    while True:
        held.append(stage(options.get("step_mib", 64)))
        time.sleep(0.05)


def pipeline_sleeps(ids, texts, options, workdir) -> None:
    """Takes a wrapped step, writes its pid where the test can find it, then sleeps `seconds` (or until the
    file `release` exists); returns at once when the variable named by `quick_env` is set."""
    import os
    from pathlib import Path

    _ = stage(10)
    if options.get("quick_env") and os.environ.get(options["quick_env"]):
        return  # a resumed run of a test: return at once (an earlier run's cell may still be sleeping)
    if options.get("pidfile"):
        Path(options["pidfile"]).write_text(str(os.getpid()))
    release = Path(options["release"]) if options.get("release") else None
    end = time.monotonic() + options.get("seconds", 600)
    while time.monotonic() < end and not (release is not None and release.exists()):
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def pipeline_exits(ids, texts, options, workdir) -> None:
    """Leaves through os._exit without raising (as a library calling os._exit would)."""
    import os

    _ = stage(5)
    os._exit(options.get("code", 3))


def pipeline_leaves_helper(ids, texts, options, workdir) -> None:
    """Starts a detached helper process (its own session) that outlives the cell; writes its pid."""
    import subprocess
    import sys
    from pathlib import Path

    helper = subprocess.Popen([sys.executable, "-c", "import time\nx = bytearray(30 << 20)\ntime.sleep(600)"],
                              start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the helper holds its 30 MiB
        try:
            with open(f"/proc/{helper.pid}/statm", "rb") as fh:
                if int(fh.read().split()[1]) * 4096 > 30 * MiB:
                    break
        except OSError:
            break
        time.sleep(0.02)
    Path(options["pidfile"]).write_text(str(helper.pid))


def pipeline_fills_disk(ids, texts, options, workdir) -> None:
    """While the file `flag` exists: write zeros into `fill` until the disk is full, then fail like a
    pipeline whose index write hit ENOSPC. Without the flag: a quick normal cell."""
    from pathlib import Path

    _ = stage(5)
    if not Path(options["flag"]).exists():
        return
    block = b"\0" * MiB
    with open(options["fill"], "wb", buffering=0) as fh:
        while True:
            fh.write(block)  # raises OSError(ENOSPC) once the disk is full


def prepare_spike(ids, texts, options, workdir) -> None:
    """A `prepare` step that needs options['prepare_mib'] for a moment (like an extension compile) and
    leaves nothing behind."""
    a = stage(options.get("prepare_mib", 1024))
    time.sleep(options.get("hold_s", 0.3))
    del a


def pipeline_peaks(ids, texts, options, workdir, prepared=None) -> None:
    """A run step that needs options['mib'] for a moment, then frees it."""
    a = stage(options.get("mib", 300))
    time.sleep(options.get("hold_s", 0.3))
    del a


def pipeline_closes_stdio(ids, texts, options, workdir) -> None:
    """Prints a line, then closes stdout and stderr, the Python streams and file descriptors 1 and 2 under
    them (as a daemonising library might), and returns normally."""
    import os
    import sys

    _ = stage(5)
    print(f"indexed {len(texts)} passages")
    sys.stdout.close()
    sys.stderr.close()
    os.close(1)
    os.close(2)


def pipeline_grows_on_release(ids, texts, options, workdir) -> None:
    """Writes its pid, waits for the file `release`, then grows by options['step_mib'] every 20 ms until
    something stops it."""
    import os
    from pathlib import Path

    _ = stage(5)
    Path(options["pidfile"]).write_text(str(os.getpid()))
    while not Path(options["release"]).exists():
        time.sleep(0.02)
    held = []
    while True:
        held.append(stage(options.get("step_mib", 64)))
        time.sleep(0.02)
