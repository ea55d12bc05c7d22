"""Overhead of the memharness pytest plugin on a suite of unmarked tests (target: under 1%).

Writes a suite of N unmarked tests (each a few milliseconds of Python and numpy work, like a small unit
test), then runs it in fresh pytest processes with the plugin loaded (the `pytest11` entry point) and with
`-p no:memharness`, alternating which goes first, for several rounds. Prints each pair, the median of the
paired ratios (plugin / without), and the plugin's own cost per unmarked test measured in-process on the
hook itself (what the plugin adds to a test that has no marker).

    python scripts/bench_pytest_plugin.py [--tests 200] [--rounds 7] [--work-ms 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_TEMPLATE = '''
import numpy as np


def _work(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(({n}, 64))
    total = 0
    for row in a[:200]:
        total += int(row.argmax())
    return float((a @ a.T).trace()) + total


@pytest_parametrize
def test_unit(i):
    assert _work(i) != 0.5
'''


def write_suite(folder: Path, n_tests: int, work_ms: float) -> None:
    # size the matrix so one test does about work_ms of work on this machine
    n = max(50, int(300 * (work_ms / 5.0) ** 0.5))
    body = TEST_TEMPLATE.format(n=n).replace(
        "@pytest_parametrize", f"@pytest.mark.parametrize('i', range({n_tests}))")
    (folder / "test_suite.py").write_text("import pytest\n" + body, encoding="utf-8")


def _env() -> dict[str, str]:
    """Bytecode caching on, as in an ordinary install (this machine's shell sets PYTHONDONTWRITEBYTECODE)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(folder: Path, plugin: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one pytest process over the suite."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"]
    if not plugin:
        cmd[3:3] = ["-p", "no:memharness"]
    env = _env()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed ({'plugin' if plugin else 'no plugin'}):\n{out.decode()[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def check_plugin(folder: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "--trace-config", "test_suite.py"],
                         cwd=folder, capture_output=True, text=True, env=_env()).stdout
    if "memharness.pytest_plugin" not in out:
        raise SystemExit("the memharness plugin is not registered (pip install -e . for its pytest11 entry point)")


def hook_cost_us(calls: int = 20000) -> float:
    """Microseconds the plugin's pytest_runtest_call wrapper adds to one unmarked test."""
    from memharness.pytest_plugin import pytest_runtest_call

    class Item:
        def get_closest_marker(self, name):  # noqa: ARG002 - what an unmarked pytest.Item answers
            return None

    item = Item()

    def one() -> None:
        gen = pytest_runtest_call(item)
        next(gen)
        try:
            gen.send(None)
        except StopIteration:
            pass

    for _ in range(1000):
        one()
    t = time.perf_counter()
    for _ in range(calls):
        one()
    return (time.perf_counter() - t) / calls * 1e6


def import_cost_ms(reps: int = 7) -> float:
    """Median milliseconds to import the plugin module in a fresh interpreter that already imported pytest
    (what loading the `pytest11` entry point adds to a session)."""
    code = ("import time, pytest; t = time.perf_counter(); import memharness.pytest_plugin; "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env=_env()).stdout) for _ in range(reps + 1)][1:]  # the first one writes .pyc
    return statistics.median(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work-ms", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="memharness-bench-plugin-") as tmp:
        folder = Path(tmp)
        write_suite(folder, args.tests, args.work_ms)
        check_plugin(folder)
        run_once(folder, True)  # warm the page cache
        wall, cpu = [], []
        print(f"{args.tests} unmarked tests, {args.rounds} rounds, each a fresh pytest process")
        print(f"{'round':>5} {'wall plugin':>12} {'wall without':>13} {'ratio':>7}   "
              f"{'CPU plugin':>11} {'CPU without':>12} {'ratio':>7}")
        for r in range(args.rounds):
            order = [True, False] if r % 2 == 0 else [False, True]
            m = {p: run_once(folder, p) for p in order}
            wall.append(m[True][0] / m[False][0])
            cpu.append(m[True][1] / m[False][1])
            print(f"{r:>5} {m[True][0]:>11.2f}s {m[False][0]:>12.2f}s {wall[-1]:>7.4f}   "
                  f"{m[True][1]:>10.2f}s {m[False][1]:>11.2f}s {cpu[-1]:>7.4f}")
            cpu_without = m[False][1]
    for what, ratios in (("wall", wall), ("CPU", cpu)):
        med = statistics.median(ratios)
        print(f"median paired {what} ratio (plugin / -p no:memharness): {med:.4f} -> overhead {100 * (med - 1):+.2f}%")
    cost = hook_cost_us()
    load = import_cost_ms()
    fixed_s = (load + cost * args.tests / 1e3) / 1e3
    print(f"the plugin's own cost, measured directly: import {load:.1f} ms + {cost:.2f} us per unmarked test x "
          f"{args.tests} = {fixed_s * 1e3:.1f} ms = {100 * fixed_s / cpu_without:.3f}% of the suite's CPU time "
          f"without the plugin ({cpu_without:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
