"""Time `memharness.report.build` on a synthetic run whose timelines hold 1M process-tree samples.

    .venv/bin/python scripts/bench_report.py [--samples 1000000] [--cells 4] [--calls 300] [--keep DIR]

Writes the run in the documented on-disk format (docs/format.md): 2 pipelines x (cells / 2) sizes, each
cell a noisy RSS signal of a main process plus a worker process for the middle third (per-process rows
and the tree sum), and a realistic nesting of wrapped calls (index > setup > sample/encode > batches,
train, index > encode batches, finalize). Then builds the report 3 times and prints the median seconds
per phase and in total against the 10 s target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memharness.core.atomic import write_json  # noqa: E402
from memharness.core.records import KIND_PROC_RSS, KIND_TREE_RSS, timeline_dtype  # noqa: E402
from memharness.report import build  # noqa: E402
from memharness.results import RUN_FORMAT, names  # noqa: E402

MiB = 1 << 20
TARGET_S = 10.0
INTERVAL_S = 0.05
P = "colbert.indexing.collection_indexer.CollectionIndexer."


def _signal(n: int, rng: np.random.Generator, base_mib: float, grow_mib: float) -> np.ndarray:
    """A plausible RSS curve in bytes: a ramp with steps, slow noise, and a few short spikes."""
    x = np.linspace(0, 1, n)
    level = base_mib + grow_mib * x + 0.25 * grow_mib * (x > 0.3) - 0.2 * grow_mib * (x > 0.75)
    level += np.cumsum(rng.normal(0, 0.4, n))
    level = np.maximum(level, base_mib * 0.8)
    for k in rng.integers(0, n - 50, 6):
        level[k:k + 40] += rng.uniform(0.3, 1.0) * grow_mib
    return (level * MiB).astype(np.int64)


def _calls(pid: int, t0: int, dur_s: float, n_calls: int, rng: np.random.Generator) -> list[dict]:
    """B/E events of a nested indexing run with about n_calls calls."""
    events: list[dict] = []
    counter = [0]
    stack: list[str] = []

    def call(target: str, a: float, b: float, inner=None) -> None:
        counter[0] += 1
        cid = f"{pid}:{counter[0]}"
        rss0 = int((900 + 400 * a / dur_s) * MiB)
        events.append({"ev": "B", "id": cid, "parent": stack[-1] if stack else None, "depth": len(stack),
                       "target": target, "pid": pid, "tid": 1, "thread": "MainThread",
                       "t": t0 + int(a * 1e9), "rss": rss0, "children_rss": 0})
        stack.append(cid)
        if inner:
            inner(a, b)
        stack.pop()
        rss1 = rss0 + int(rng.uniform(-50, 300) * MiB)
        events.append({"ev": "E", "id": cid, "t": t0 + int(b * 1e9), "rss": rss1,
                       "peak_rss": max(rss0, rss1) + int(rng.uniform(0, 800) * MiB), "peak_method": "hwm",
                       "children_rss": 0, "children_peak_rss": 0, "error": None})

    batches = max(1, (n_calls - 10) // 4)  # each batch: encode_passages + docFromText

    def batch_run(a: float, b: float) -> None:
        step = (b - a) / batches
        for i in range(batches):
            s = a + i * step
            call("colbert.indexing.collection_encoder.CollectionEncoder.encode_passages", s, s + step * 0.95,
                 lambda x, y: call("colbert.modeling.checkpoint.Checkpoint.docFromText", x + 0.01 * (y - x),
                                   y - 0.01 * (y - x)))

    def setup(a: float, b: float) -> None:
        call(P + "_sample_pids", a, a + 0.02 * (b - a))
        call(P + "_sample_embeddings", a + 0.03 * (b - a), b - 0.05 * (b - a), batch_run)

    def index_all(a: float, b: float) -> None:
        w = b - a
        call(P + "setup", a + 0.01 * w, a + 0.25 * w, setup)
        call(P + "train", a + 0.26 * w, a + 0.35 * w)
        call(P + "index", a + 0.36 * w, a + 0.9 * w, batch_run)
        call(P + "finalize", a + 0.91 * w, a + 0.98 * w)

    call("colbert.indexer.Indexer.index", 0.02 * dur_s, 0.98 * dur_s, index_all)
    return events


def make_bench_run(root: Path, samples: int, cells: int, n_calls: int, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    run_dir = root / "bench" / "run1"
    pipelines = ["ragatouille", "colbert"]
    sizes = [100_000 * 2**i for i in range(max(1, cells // len(pipelines)))]
    per_cell = samples // (len(pipelines) * len(sizes))
    manifest_cells = []
    for ci, (p, size) in enumerate((p, s) for p in pipelines for s in sizes):
        cid = f"{p}__{size}__r0"
        cdir = run_dir / names.CELLS / cid
        (cdir / names.CALLS).mkdir(parents=True, exist_ok=True)
        pid, worker = 4000 + 10 * ci, 4001 + 10 * ci
        t0 = 10**12 + ci * 10**13
        t = t0 + (np.arange(per_cell) * INTERVAL_S * 1e9).astype(np.int64)
        main = _signal(per_cell, rng, 800 + 300 * ci, 1500 + size / 1000)
        w = np.zeros(per_cell, dtype=np.int64)
        mid = slice(per_cell // 3, 2 * per_cell // 3)
        w[mid] = _signal(mid.stop - mid.start, rng, 400, 300)
        has_w = w > 0
        n_rows = 2 * per_cell + int(has_w.sum())
        rows = np.zeros(n_rows, dtype=timeline_dtype())
        per_tick = 2 + has_w.astype(np.int64)  # main, [worker], tree
        first = np.concatenate([[0], np.cumsum(per_tick)[:-1]])
        rows["t_ns"][first], rows["pid"][first], rows["kind"][first], rows["dev"][first] = t, pid, KIND_PROC_RSS, -1
        rows["value"][first] = main
        wi = first[has_w] + 1
        rows["t_ns"][wi], rows["pid"][wi], rows["kind"][wi], rows["dev"][wi] = t[has_w], worker, KIND_PROC_RSS, -1
        rows["value"][wi] = w[has_w]
        ti = first + per_tick - 1
        rows["t_ns"][ti], rows["pid"][ti], rows["kind"][ti], rows["dev"][ti] = t, 0, KIND_TREE_RSS, -1
        rows["value"][ti] = main + w
        rows.tofile(cdir / names.TIMELINE)
        dur = per_cell * INTERVAL_S
        write_json(cdir / names.TIMELINE_HEADER, {"format": "memharness-timeline", "version": 1, "row_bytes": 24,
                                            "interval_s": INTERVAL_S, "root_pid": pid, "started_ns": t0,
                                            "stopped_ns": int(t[-1]), "ticks": per_cell, "late_ticks": 0,
                                            "clock": "CLOCK_MONOTONIC"})
        events = [{"ev": "P", "v": 1, "pid": pid, "ppid": 1, "argv": ["cell"], "t": t0, "start_method": "main"}]
        events += _calls(pid, t0, dur, n_calls, rng)
        (cdir / names.CALLS / f"{pid}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        (cdir / names.CALLS / f"{worker}.jsonl").write_text(json.dumps(
            {"ev": "P", "v": 1, "pid": worker, "ppid": pid, "argv": ["worker"], "t": int(t[mid.start]),
             "start_method": "spawn"}) + "\n")
        write_json(cdir / names.STATUS, {"status": "done", "cause": None, "message": "", "exit_code": 0,
                                          "t_start_ns": t0, "t_end_ns": int(t[-1]), "wall_seconds": dur})
        write_json(cdir / names.FINGERPRINT, {"python": "3.11.7", "torch": "2.13.0"})
        manifest_cells.append({"id": cid, "pipeline": p, "kind": p, "size": size, "repeat": 0,
                               "dir": names.cell_dir_name(cid), "status": "done", "cause": None})
    write_json(run_dir / names.MANIFEST, {
        "format": RUN_FORMAT, "version": 1, "scenario": "bench", "run_id": "run1", "created_wall_ns": 0,
        "clock": {"monotonic_ns": 10**12, "wall_ns": 1_700_000_000 * 10**9},
        "scenario_spec": {"name": "bench", "pipelines": [{"name": p, "kind": p} for p in pipelines]},
        "cells": manifest_cells})
    return run_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000, help="process-tree samples over all cells")
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--calls", type=int, default=300, help="wrapped calls per cell (about)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build the run here and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        t = time.perf_counter()
        run_dir = make_bench_run(root, args.samples, args.cells, args.calls)
        made = time.perf_counter() - t
        n_tree = sum(int((np.fromfile(c / names.TIMELINE, dtype=timeline_dtype())["kind"] == KIND_TREE_RSS).sum())
                     for c in sorted((run_dir / names.CELLS).iterdir()))
        n_calls = sum(sum(1 for line in open(f) if '"ev": "B"' in line)
                      for f in (run_dir / names.CELLS).glob(f"*/{names.CALLS}/*.jsonl"))
        print(f"run: {run_dir} ({n_tree:,} tree samples, {n_calls:,} calls, "
              f"{len(list((run_dir / names.CELLS).iterdir()))} cells; written in {made:.1f} s)")
        runs: list[dict[str, float]] = []
        for _ in range(args.repeats):
            timings: dict[str, float] = {}
            build(run_dir, timings=timings)
            runs.append(timings)
        print(f"build(run_dir), median of {args.repeats}:")
        for phase in runs[0]:
            if phase != "total":
                print(f"  {phase:<10} {statistics.median(r[phase] for r in runs):7.2f} s")
        total = statistics.median(r["total"] for r in runs)
        verdict = "OK" if total < TARGET_S else "OVER"
        each = ", ".join(f"{r['total']:.2f}" for r in runs)
        print(f"  {'total':<10} {total:7.2f} s   (target < {TARGET_S:.0f} s: {verdict}; runs: {each})")
        return 0 if total < TARGET_S else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
