"""The seed study's `Indexer.index` figures against ours at every size the seed has, our tree and GPU
peaks beside them, the 2M forecasts and the 1M-from-500k check: the generated part of docs/seed-vs-ours.md.

    .venv/bin/python scripts/seed_table.py            # print the generated section
    .venv/bin/python scripts/seed_table.py --write    # replace it in docs/seed-vs-ours.md

Reads only committed folders: results/samples/genomics-gpu-matrix (100k-500k, rendered run folder) and
results/samples/genomics-gpu-h200 (ColBERT 100k-1M on one H200, summary and tables only).
tests/test_seed_table.py checks that the page holds exactly this output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memharness.report import predict  # noqa: E402
from memharness.report.predict import size_text  # noqa: E402
from memharness.results.run import CellFolder  # noqa: E402
from memharness.scenario import parse_size  # noqa: E402

MATRIX = ROOT / "results/samples/genomics-gpu-matrix"
H200 = ROOT / "results/samples/genomics-gpu-h200"
DOC = ROOT / "docs/seed-vs-ours.md"
BEGIN, END = "<!-- seed_table.py begin -->", "<!-- seed_table.py end -->"
MIB = 2**20
INDEXER = "colbert.indexer.Indexer.index"
PIPELINES = ("colbert", "ragatouille-nofaiss", "ragatouille-faiss")
SIZES = (100_000, 250_000, 500_000, 1_000_000, 2_000_000)

# The seed's `colbert/indexer.py/indexer.index` table (MB as printed by memory_profiler, i.e. MiB):
# pipeline, size, start, increment, final, from ../shared/seeds/003_*.txt.
SEED_ROWS = """
colbert 100k 1596.9 36.7 1633.6
colbert 250k 1754.0 92.8 1846.8
colbert 500k 2072.1 199.1 2271.2
colbert 1M 2707.3 421.9 3129.2
colbert 2M 4000.6 876.4 4877.1
ragatouille-faiss 100k 2114.2 1320.1 3434.3
ragatouille-faiss 250k 2592.5 1175.0 3767.5
ragatouille-faiss 500k 3405.0 1430.0 4835.0
ragatouille-nofaiss 100k 1750.9 1203.9 2954.8
ragatouille-nofaiss 250k 2597.4 1341.4 3938.8
ragatouille-nofaiss 500k 3406.4 1465.8 4872.2
ragatouille-nofaiss 1M 5040.1 1593.3 6633.3
ragatouille-nofaiss 2M 8354.7 1882.0 10236.8
"""
SEED: dict[tuple[str, int], tuple[float, float, float]] = {
    (p, parse_size(size)): (float(a), float(b), float(c))
    for p, size, a, b, c in (line.split() for line in SEED_ROWS.strip().splitlines())
}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ours() -> dict[tuple[str, int], dict[str, float | str]]:
    """(pipeline, size) -> our Indexer.index start/increment/final, tree peak, torch and NVML GPU peaks, source."""
    out: dict[tuple[str, int], dict[str, float | str]] = {}
    sources = ((H200, H200 / "tables", H200 / "summary.json", "H200 (summary sample)"),
               (MATRIX, MATRIX / "report/tables", MATRIX / "report/summary.json", "matrix"))
    for _, tables, summary, label in sources:  # the matrix last: it wins where both have a cell
        rows = _json(summary)["rows"]
        table = _json(tables / f"{INDEXER}.json")["rows"]
        for r in table:
            key = (r["pipeline"], int(r["size"]))
            m = r["metrics"]
            cell: dict[str, float | str] = {k: m[k]["median"] for k in ("start", "increment", "final")}  # MiB
            tree = next(t for t in rows if t["pipeline"] == key[0] and int(t["size"]) == key[1]
                        and t["target"] == predict.TREE)["metrics"]
            cell["tree_peak"] = tree["peak"]["median"] / MIB
            for k in ("gpu_peak", "gpu_nvml_peak"):
                if k in tree:
                    cell[k] = tree[k]["median"] / MIB
            cell["source"] = label
            out[key] = cell
    return out


def _machine(run: Path, pipeline: str, size: int) -> str:
    """The GPU model that ran the cell (H100 / H200), from its fingerprint."""
    cell = CellFolder.at(run / "cells" / f"{pipeline}__{size_text(size)}__r0")
    devices = (cell.fingerprint_json.get("gpu") or {}).get("devices") or []
    name = " ".join(str(d.get("name", "")) for d in devices)
    return next((m for m in ("H100", "H200") if m in name), "?")


def _where_and_gpu(o: dict[str, float | str], pipeline: str, size: int) -> tuple[str, str]:
    """The GPU model that ran our cell, and its GPU peaks as 'torch allocated / NVML tree'."""
    machine = _machine(MATRIX, pipeline, size) if o["source"] == "matrix" else "H200"
    gpu = f"{_f(o.get('gpu_peak'))} / {_f(o.get('gpu_nvml_peak'))}" if "gpu_peak" in o else "not recorded"
    return machine, gpu


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f}"


def _pair(seed: float | None, ours: float | None) -> str:
    """'seed / ours (ours ÷ seed)', or which side is missing."""
    if ours is None:
        return f"{seed:,.1f} / not run"
    if seed is None:
        return f"not in the seed / {ours:,.1f}"
    return f"{seed:,.1f} / {ours:,.1f} ({ours / seed:.2f})"


def table() -> list[str]:
    """One row per pipeline and size that the seed or we measured."""
    ours = _ours()
    lines = [
        "| pipeline | size | GPU | start: seed / ours (ours ÷ seed) | increment: seed / ours | final: seed / ours "
        "| our tree peak (run phase) | our GPU peak: torch allocated / NVML tree |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in PIPELINES:
        for size in SIZES:
            seed, o = SEED.get((p, size)), ours.get((p, size))
            if seed is None and o is None:
                continue
            pairs = [_pair(None if seed is None else seed[i], None if o is None else o[k])
                     for i, k in enumerate(("start", "increment", "final"))]
            machine, gpu = ("–", "not run") if o is None else _where_and_gpu(o, p, size)
            tree = "not run" if o is None else _f(o["tree_peak"])
            lines.append(f"| {p} | {size_text(size)} | {machine} | {' | '.join(pairs)} | {tree} | {gpu} |")
    return lines


FIGURES = (("peak", "host (tree peak)"), ("gpu_nvml_peak", "GPU (NVML tree)"))


def _fitted_sources() -> list[tuple[str, str, list[dict]]]:
    """(pipeline, label, summary rows) for each fit: ColBERT on the H200 sample, every pipeline on the matrix;
    each summary read once."""
    h200, matrix = _json(H200 / "summary.json")["rows"], _json(MATRIX / "report/summary.json")["rows"]
    return [("colbert", "H200", h200)] + [(p, "matrix", matrix) for p in PIPELINES]


def forecasts(sources: list[tuple[str, str, list[dict]]]) -> list[str]:
    lines = ["| pipeline | figure | fitted on | model | 2M forecast (band) |", "|---|---|---|---|---:|"]
    for p, label, rows in sources:
        for metric, name in FIGURES:
            f = predict.fit_rows(rows, p, metric)
            if f is None:
                continue
            at = predict.predict_at(f, 2_000_000)
            if at["predicted_mib"] is None:
                value = at["note"]
            elif at["low_mib"] is None:
                value = f"{at['predicted_mib']:,.0f} MiB (no band: fewer than 3 sizes)"
            else:
                value = f"{at['predicted_mib']:,.0f} MiB ({at['low_mib']:,.0f}–{at['high_mib']:,.0f})"
            where = (f"matrix {', '.join(size_text(s) for s in f.sizes)}" if label == "matrix"
                     else f"{label} {size_text(min(f.sizes))}–{size_text(max(f.sizes))}")
            model = "flat" if f.flat else f.model
            lines.append(f"| {p} | {name} | {where} | {model} | {value} |")
    return lines


def checks(sources: list[tuple[str, str, list[dict]]]) -> list[str]:
    """The predictor checked: fit on the sizes up to 500k, predict each larger measured size, for every
    pipeline of each source that has one (host tree peak; the GPU figure too, where it was sampled)."""
    lines = ["| pipeline | figure | fitted on | predicted | measured | error | inside the band |",
             "|---|---|---|---:|---:|---:|---|"]
    for p, label, rows in sources:
        for metric, name in FIGURES:
            measured = predict.measured(rows, p, metric)
            f = predict.fit_rows(rows, p, metric, max_size=500_000)
            if f is None or len(f.sizes) < 2:
                continue
            for target in sorted(s for s in measured if s > 500_000):
                lines.append(_check_line(p, name, f"{label} {', '.join(size_text(s) for s in f.sizes)}", f,
                                         target, measured[target]))
    return lines


def _check_line(p: str, name: str, fitted_on: str, f: predict.Fit, target: int, got: float) -> str:
    at = predict.predict_at(f, target)
    if at["predicted_mib"] is None:  # flat: the check is whether it stayed flat
        lo, hi = min(f.values), max(f.values)
        off = 0.0 if lo <= got <= hi else (got - hi) / hi if got > hi else (got - lo) / lo
        stays = abs(off) <= predict.FLAT
        where = "inside the range" if off == 0.0 else f"{off * 100:+.1f}% outside the range"
        return (f"| {p} | {name} | {fitted_on} | {size_text(target)}: flat, {lo:,.1f}–{hi:,.1f} MiB "
                f"| {got:,.1f} MiB | {where} | {'yes (stays flat)' if stays else 'no'} |")
    band = "no band" if at["error"] is None else f"±{at['error'] * 100:.1f}%"
    inside = at["low_mib"] is not None and at["low_mib"] <= got <= at["high_mib"]
    return (f"| {p} | {name} | {fitted_on} | {size_text(target)}: {at['predicted_mib']:,.1f} MiB ({band}) "
            f"| {got:,.1f} MiB | {(at['predicted_mib'] - got) / got * 100:+.1f}% | {'yes' if inside else 'no'} |")


def section() -> str:
    sources = _fitted_sources()
    parts = [BEGIN, "", "### `Indexer.index` at every size the seed has (MiB)", "", *table(), "",
             "### 2M forecasts", "", *forecasts(sources), "", "### The predictor checked at 1M", "",
             *checks(sources), "", END]
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the generated section of docs/seed-vs-ours.md")
    args = ap.parse_args()
    text = section()
    if not args.write:
        sys.stdout.write(text)
        return 0
    doc = DOC.read_text(encoding="utf-8")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END + "\n", 1)
    DOC.write_text(head + text + tail, encoding="utf-8")
    print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
