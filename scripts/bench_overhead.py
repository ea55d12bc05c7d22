"""Overhead of the harness on a workload that mixes Python loops and numpy.

Runs the same workload bare, under memharness (call records on 12 wrapped functions + the out-of-process
sampler at 50 ms), and under memory_profiler's line-by-line `@profile` on the same functions. Each run is a
fresh interpreter; bare and harness runs alternate for several rounds and the script prints the median
ratio (target <= 1.03), and the same ratio of CPU time (the process's own plus, under the harness, its
sampler process's, during the workload), which waiting for a core on a busy machine does not blur.
memory_profiler is run fewer rounds because it is much slower.

It also prints the fixed cost of one wrapped call (entry + exit records) on an empty function (target
<= 50 us): batches of wrapped and bare calls alternate; the cost is the difference of the fastest batches
(timeit's convention: the least disturbed run on a busy machine), with the medians and the CPU time per
call beside it.

    python scripts/bench_overhead.py [--rounds 7] [--mprof-rounds 1] [--per-call-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
FUNCS = ["split_words", "count_terms", "hash_terms", "embed", "normalize", "project", "score", "top_k",
         "sample", "bucketize", "compress", "batch"]
TARGETS = [f"bench_overhead.{f}" for f in FUNCS]


# --- the workload: one "indexing" pass over batches ----------------------------------------------------

def split_words(texts):
    return [t.split() for t in texts]


def count_terms(tokens):
    counts = {}
    for doc in tokens:
        for w in doc:
            counts[w] = counts.get(w, 0) + 1
    return counts


def hash_terms(tokens):
    return [[hash(w) % 30522 for w in doc] for doc in tokens]


def embed(ids, rng):
    table = rng.standard_normal((30522 // 8, 64), dtype=np.float32)
    return [table[np.asarray(d) % table.shape[0]] for d in ids]


def normalize(embs):
    return [e / np.linalg.norm(e, axis=1, keepdims=True) for e in embs]


def project(embs, w):
    return np.concatenate([e @ w for e in embs])


def score(flat, centroids):
    return flat @ centroids.T


def top_k(scores):
    return np.argmax(scores, axis=1)


def sample(flat, rng):
    return flat[rng.choice(len(flat), size=min(len(flat), 2000), replace=False)]


def bucketize(flat, codes, centroids):
    return np.digitize(flat - centroids[codes], np.linspace(-0.5, 0.5, 7))


def compress(buckets):
    return np.packbits(buckets.astype(np.uint8) & 3, axis=1)


def batch(texts, rng, w, centroids):
    tokens = split_words(texts)
    count_terms(tokens)
    ids = hash_terms(tokens)
    embs = normalize(embed(ids, rng))
    flat = project(embs, w)
    codes = top_k(score(flat, centroids))
    sample(flat, rng)
    return compress(bucketize(flat, codes, centroids))


def workload(n_batches: int = 16) -> None:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(5000)]
    w = rng.standard_normal((64, 32), dtype=np.float32)
    centroids = rng.standard_normal((256, 32), dtype=np.float32)
    for _ in range(n_batches):
        texts = [" ".join(rng.choice(vocab, size=120)) for _ in range(400)]
        batch(texts, rng, w, centroids)


# --- modes, each in its own interpreter ------------------------------------------------------------------

def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(mode: str) -> dict[str, float]:
    """Wall seconds of the workload, and CPU seconds during it: the process's own plus, under the harness,
    its sampler's."""
    sys.path.insert(0, str(HERE.parent))
    import bench_overhead as mod  # the functions must be reachable by their dotted paths

    if mode == "harness":
        from memharness.core.session import Session

        out = Path(tempfile.mkdtemp(prefix="mh-overhead-"))
        session = Session(out, TARGETS, sample_interval=0.05).start()
        time.sleep(0.2)
    elif mode == "mprof":
        from memory_profiler import profile

        for name in FUNCS:
            setattr(mod, name, profile(getattr(mod, name), stream=open("/dev/null", "w")))
    sampler = session._sampler.pid if mode == "harness" else None  # noqa: SLF001 - the bench reads its CPU
    sampler_cpu = _process_cpu(sampler) if sampler else 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    mod.workload()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    sampler_cpu = _process_cpu(sampler) - sampler_cpu if sampler else 0.0
    if mode == "harness":
        session.stop()
    return {"seconds": elapsed, "cpu": cpu + sampler_cpu, "sampler_cpu": sampler_cpu}


def _batch(f, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of n calls of f."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def per_call_cost(n: int = 100, batches: int = 200) -> dict[str, float]:
    """Cost of one wrapped call over a bare one, in seconds: min and median of the wall time per call over
    alternating batches, and the min CPU time per call."""
    from memharness.core.session import Session

    def empty():
        return None

    mod = sys.modules[__name__]
    mod.empty = empty
    wrapped, bare = [], []
    with Session(Path(tempfile.mkdtemp(prefix="mh-percall-")), [f"{__name__}.empty"], sample_interval=None):
        f = mod.empty
        for _ in range(batches):
            wrapped.append(_batch(f, n))
            bare.append(_batch(empty, n))
    return {
        "min": min(w for w, _ in wrapped) - min(w for w, _ in bare),
        "median": statistics.median(w for w, _ in wrapped) - statistics.median(w for w, _ in bare),
        "cpu_min": min(c for _, c in wrapped) - min(c for _, c in bare),
    }


def print_per_call_cost() -> None:
    cost = per_call_cost()
    print(f"fixed cost of one wrapped call (empty function, entry + exit records): {cost['min'] * 1e6:.1f} us "
          f"(fastest batches; target <= 50 us); median batches {cost['median'] * 1e6:.1f} us; "
          f"CPU time {cost['cpu_min'] * 1e6:.1f} us")


def run_mode(mode: str) -> dict[str, float]:
    # One BLAS thread: on a 2-core machine a second BLAS thread competes with the sampler process for the
    # other core and turns scheduling noise into the measurement.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(HERE), "--child", mode], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--mprof-rounds", type=int, default=1)
    ap.add_argument("--child", choices=["bare", "harness", "mprof"])
    ap.add_argument("--per-call-only", action="store_true", help="only the fixed cost of one wrapped call")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.per_call_only:
        print_per_call_cost()
        return
    bare, harness, ratios, cpu_ratios = [], [], [], []
    for r in range(args.rounds):
        order = ("bare", "harness") if r % 2 == 0 else ("harness", "bare")
        runs = {m: run_mode(m) for m in order}
        t = {m: v["seconds"] for m, v in runs.items()}
        bare.append(t["bare"])
        harness.append(t["harness"])
        ratios.append(t["harness"] / t["bare"])
        cpu_ratios.append(runs["harness"]["cpu"] / runs["bare"]["cpu"])
        print(f"round {r + 1}: bare {t['bare']:.3f} s, harness {t['harness']:.3f} s, ratio {ratios[-1]:.3f}; "
              f"CPU bare {runs['bare']['cpu']:.3f} s, harness {runs['harness']['cpu']:.3f} s (sampler "
              f"{runs['harness']['sampler_cpu']:.2f} s of it), ratio {cpu_ratios[-1]:.3f}", flush=True)
    mprof = [run_mode("mprof")["seconds"] for _ in range(args.mprof_rounds)]
    med_bare = statistics.median(bare)
    print(f"\nworkload: 16 batches x 400 passages, 12 wrapped functions, {16 * 11 + 1} wrapped calls per run")
    print(f"bare     median {med_bare:.3f} s over {len(bare)} runs")
    print(f"harness  median {statistics.median(harness):.3f} s; median paired ratio {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.03)")
    print(f"CPU time (not blurred by waiting for a core, still by cache contention): median paired ratio "
          f"{statistics.median(cpu_ratios):.3f} (min {min(cpu_ratios):.3f}, max {max(cpu_ratios):.3f})")
    if mprof:
        print(f"memory_profiler @profile (line by line) median {statistics.median(mprof):.3f} s; "
              f"ratio {statistics.median(mprof) / med_bare:.2f}x over {len(mprof)} run(s)")
    print_per_call_cost()


if __name__ == "__main__":
    main()
