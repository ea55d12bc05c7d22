"""Run one scenario with the local and the Ray executor side by side; print both wall times and whether the
two reports have the same structure (same files, same tables with the same columns and rows).

    .venv/bin/python scripts/bench_executors.py [SCENARIO.yaml] [--output DIR]

Default scenario: a reduced quickstart (ColBERT on builtin:tiny, 200 passages, two repeats).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REDUCED = textwrap.dedent("""\
    name: executors
    description: reduced quickstart, ColBERT on builtin:tiny, two cells
    corpus: {source: synthetic, seed: 0}
    model: builtin:tiny
    device: cpu
    pipelines:
      - name: colbert
        kind: colbert
        options: {nbits: 2, doc_maxlen: 128, kmeans_niters: 4, avoid_fork_if_possible: true}
    sizes: [200]
    repeats: 2
    sample_interval: 50ms
    timeout: 15m
    max_rss: 3GiB
    output: OUTPUT
    env: {OMP_NUM_THREADS: "1", TOKENIZERS_PARALLELISM: "false"}
    """)


def run(scenario: Path, executor: str) -> tuple[float, Path]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "memharness", "run", str(scenario), "--executor", executor],
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"{executor}: exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("run folder: ")][-1]
    return wall, Path(line.split(": ", 1)[1])


def tables(run: Path) -> dict[str, list[str]]:
    """Each markdown/csv file of the report: its headings (run id blanked), table header lines, and the
    first two cells of every row (pipeline, size): the structure, not the figures."""
    out = {}
    for f in sorted((run / "report").rglob("*")):
        if f.suffix not in (".md", ".csv"):
            continue
        lines = f.read_text(encoding="utf-8", errors="replace").replace(run.name, "RUN").splitlines()
        if f.suffix == ".csv":
            out[str(f.relative_to(run))] = lines[:1] + [",".join(x.split(",")[:2]) for x in lines[1:]]
            continue
        shape = []
        for i, x in enumerate(lines):
            if x.startswith("#"):
                shape.append(x)
            elif x.startswith("|"):
                below = lines[i + 1] if i + 1 < len(lines) else ""
                header = below.startswith("|") and set(below.replace("|", "").strip()) <= set("-: ")
                shape.append(x if header else "|".join(x.split("|")[:3]))
        out[str(f.relative_to(run))] = shape
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?")
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    output = Path(args.output or tempfile.mkdtemp(prefix="memharness-executors-"))
    if args.scenario:
        scenario = Path(args.scenario)
    else:
        scenario = output / "executors.yaml"
        output.mkdir(parents=True, exist_ok=True)
        scenario.write_text(REDUCED.replace("OUTPUT", str(output / "results")))
    walls, runs = {}, {}
    for executor in ("local", "ray"):
        walls[executor], runs[executor] = run(scenario, executor)
        print(f"{executor}: {runs[executor]}", flush=True)
    files = {e: sorted(str(p.relative_to(r / "report")) for p in (r / "report").rglob("*") if p.is_file())
             for e, r in runs.items()}
    same_files = files["local"] == files["ray"]
    shapes = {e: tables(r) for e, r in runs.items()}
    same_tables = shapes["local"] == shapes["ray"]
    print(f"{'executor':<10}{'wall s':>10}")
    for e in ("local", "ray"):
        print(f"{e:<10}{walls[e]:>10.1f}")
    print(f"ray / local: {walls['ray'] / walls['local']:.2f}")
    print(f"report files: {len(files['local'])} local, {len(files['ray'])} ray, same names: {same_files}")
    if not same_files:
        print("  only local:", sorted(set(files["local"]) - set(files["ray"])))
        print("  only ray:", sorted(set(files["ray"]) - set(files["local"])))
    print(f"same tables (headings, column headers, row labels of {len(shapes['local'])} .md/.csv files): "
          f"{same_tables}")
    for name in sorted(shapes["local"]):
        if shapes["local"][name] != shapes["ray"].get(name):
            print(f"  differs: {name}")
    return 0 if same_files and same_tables else 1


if __name__ == "__main__":
    raise SystemExit(main())
