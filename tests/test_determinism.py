"""Identical inputs give byte-identical outputs whatever the hash seed: `compare` (Markdown and JSON) and
`report` (summary.json, tables.md) run under five PYTHONHASHSEED values.

The runs are built in the on-disk format with a nesting that once flapped: `Builder.build` calls `train`,
which calls `_distances`, and `train` and `_distances` change by the same amount, so which callee a caller
"inherits" and the callers' list depended on set order."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli import cli_env
from runfactory import FakeCall, FakeCell, make_run

SEEDS = ("0", "1", "2", "3", "4")


def _cells(extra: float, repeats: int = 1) -> list[FakeCell]:
    cells = []
    for size in (100, 200):
        grow = extra * size / 100
        for r in range(repeats):
            dist = FakeCall("mypipe._distances", 300, 310, 400 + grow, 2.0, 3.0)
            train = FakeCall("mypipe.train", 300, 310, 400 + grow, 1.8, 3.2, children=[dist])
            side = FakeCall("mypipe.index", 310, 330, 420, 3.5, 4.0)
            build = FakeCall("mypipe.Builder.build", 200, 330, 400 + grow, 1.0, 4.5, children=[train, side])
            cells.append(FakeCell("mypipe", size, repeat=r, calls=[build], prepare_peak_mib=250))
    return cells


def _run(args: list[str], seed: str, cwd: Path) -> str:
    env = dict(cli_env(), PYTHONHASHSEED=seed, COLUMNS="120")
    proc = subprocess.run([sys.executable, "-m", "memharness", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def _report(run: Path, seed: str, out: Path) -> str:
    _run(["report", str(run), "--output", str(out)], seed, out.parent)
    return (out / "summary.json").read_text(encoding="utf-8") + (out / "tables.md").read_text(encoding="utf-8")


def test_compare_and_report_are_byte_identical_under_five_hash_seeds(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", _cells(0.0), scenario="det", run_id="base")
    current = make_run(tmp_path / "current", _cells(90.0), scenario="det", run_id="current")
    jobs = {}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        for seed in SEEDS:
            for fmt in ("md", "json"):
                jobs[("compare", fmt, seed)] = pool.submit(_run, ["compare", str(base), str(current), "--format", fmt],
                                                           seed, tmp_path)
            jobs[("report", "", seed)] = pool.submit(_report, current, seed, tmp_path / f"report-{seed}")
        outputs = {k: f.result() for k, f in jobs.items()}
    for what, fmt in (("compare", "md"), ("compare", "json"), ("report", "")):
        texts = {outputs[(what, fmt, s)] for s in SEEDS}
        assert len(texts) == 1, f"{what} {fmt}: {len(texts)} different outputs over seeds {SEEDS}"
    md = outputs[("compare", "md", "0")]
    # the caller names the innermost source, and every verdict line its cell
    assert "mypipe · 100: `_distances` own peak +90.0 MiB" in md and "mypipe · 200: `_distances` own peak" in md
    assert "inherits `mypipe._distances` (regressed)" in md
    assert "its callers inherit it: `Builder.build`, `train`" in md
    print(f"{len(outputs)} outputs, {len(SEEDS)} seeds: compare md, compare json and report identical")
