"""One figure per fact: what must hold between the figures of one run folder, whatever view shows them.

- a process tree's peak (run phase) is at least every wrapped call's peak, of any process in the tree;
- "Tree Peak during Call" is at least that call's own peak;
- the summary's host peak of a pipeline and size is the process-tree row's (median) and the one the
  side-by-side chart marks (its caption), and its GPU figure is the tree row's `gpu_nvml_peak`;
- no function row carries a `gpu_nvml_peak` (that name is the tree's: NVML used by the tree over the run).
"""

from __future__ import annotations

import json
from pathlib import Path

from memharness.report import build
from memharness.results.figures import TREE, cell_figures
from memharness.results.run import Run

MiB = 1 << 20


def violations(run_dir: Path, out: Path) -> list[str]:
    """Every broken invariant of the run folder `run_dir` (its report rendered into `out`), one line each."""
    bad: list[str] = []
    run = Run.open(run_dir)
    for cell in run.cells:
        if cell.status != "done":
            continue
        figs = cell_figures(cell)
        tree = figs.get(TREE, {}).get("peak")
        for target, f in figs.items():
            if target.startswith("(") or tree is None:
                continue
            if f.get("peak", 0) > tree:
                bad.append(f"{cell.id}: {target} peaks at {f['peak'] / MiB:.1f} MiB above the tree's {tree / MiB:.1f}")
            if "tree_peak_in_call" in f and f["tree_peak_in_call"] < f.get("peak", 0):
                bad.append(f"{cell.id}: {target}: Tree Peak during Call {f['tree_peak_in_call'] / MiB:.1f} MiB below "
                           f"its own peak {f['peak'] / MiB:.1f}")
            if "gpu_nvml_peak" in f:
                bad.append(f"{cell.id}: {target}: a function row names a tree figure (gpu_nvml_peak)")
    build(run_dir, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    html = (out / "index.html").read_text(encoding="utf-8")
    rows = {(r["pipeline"], r["size"]): r["metrics"] for r in summary["rows"] if r["target"] == TREE}
    for s in summary["answer"]["sizes"]:
        for e in s["pipelines"]:
            tree_row = rows[(e["pipeline"], s["size"])]
            if e["peak"] != tree_row["peak"]["median"]:
                bad.append(f"{e['pipeline']}@{s['size']}: summary peak {e['peak']} != tree row {tree_row['peak']}")
            if len(s["pipelines"]) > 1 and f"{e['pipeline']}: peak {e['peak'] / MiB:.1f} MiB" not in html:
                bad.append(f"{e['pipeline']}@{s['size']}: the side-by-side chart does not mark the summary's peak")
            gpu = (e.get("gpu") or {}).get("nvml_tree")
            if gpu is not None and tree_row.get("gpu_nvml_peak", {}).get("median") != gpu:
                bad.append(f"{e['pipeline']}@{s['size']}: summary GPU {gpu} != tree row gpu_nvml_peak")
    return bad
