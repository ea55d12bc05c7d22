"""Overhead of the harness on a real pipeline cell, measured side by side.

For a finished cell of a run, re-runs the same pipeline on the same corpus slice and checkpoint with no
harness (scripts/bare_cell.py, fresh interpreter, same environment) and again under the harness (the cell
entry point with wrapping, call records and the 50 ms sampler), alternating `--rounds` times, and prints
the median ratio of the measured `phase:run` time (harness / bare).

    python scripts/bench_cell_overhead.py RUN_DIR CELL_ID [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bare(cell_dir: Path, python: str, env: dict) -> float:
    work = Path(tempfile.mkdtemp(prefix="mh-bare-"))
    try:
        out = subprocess.run([python, str(HERE / "bare_cell.py"), str(cell_dir), str(work)], env=env,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["run_seconds"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def harness(cell_dir: Path, python: str, env: dict) -> float:
    from memharness.core.records import read_calls
    from memharness.core.session import start_sampler, stop_sampler

    tmp = Path(tempfile.mkdtemp(prefix="mh-harness-"))
    try:
        shutil.copy(cell_dir / "cell.json", tmp / "cell.json")
        from memharness.core.launch import start_cell_process

        proc = start_cell_process(python, tmp, env)
        sampler = start_sampler(proc.pid, tmp, 0.05)
        rc = proc.wait()
        stop_sampler(sampler)
        if rc != 0:
            raise RuntimeError(f"harness cell failed with {rc}")
        (run,) = [c for c in read_calls(tmp) if c.target == "phase:run"]
        return run.duration_s
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("cell_id")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--reuse-harness", action="store_true",
                    help="take the harness time from the cell's own phase:run record instead of re-running it")
    args = ap.parse_args()
    from memharness.core.session import interpreter_env

    cell_dir = args.run_dir / "cells" / args.cell_id
    spec = json.loads((cell_dir / "cell.json").read_text())
    python = spec.get("python") or sys.executable
    env = interpreter_env()
    if spec["device"] == "cpu":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    ratios, b_all, h_all = [], [], []
    for r in range(args.rounds):
        order = ("bare", "harness") if r % 2 == 0 else ("harness", "bare")
        t = {}
        for mode in order:
            if mode == "harness" and args.reuse_harness:
                from memharness.core.records import read_calls

                (run,) = [c for c in read_calls(cell_dir) if c.target == "phase:run"]
                t[mode] = run.duration_s
            else:
                t[mode] = bare(cell_dir, python, env) if mode == "bare" else harness(cell_dir, python, env)
        b_all.append(t["bare"])
        h_all.append(t["harness"])
        ratios.append(t["harness"] / t["bare"])
        print(f"round {r + 1}: bare {t['bare']:.1f} s, harness {t['harness']:.1f} s, ratio {ratios[-1]:.3f}",
              flush=True)
    print(f"{args.cell_id}: median bare {statistics.median(b_all):.1f} s, harness {statistics.median(h_all):.1f} s, "
          f"median ratio {statistics.median(ratios):.3f} over {len(ratios)} round(s) (device {spec['device']})")
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
