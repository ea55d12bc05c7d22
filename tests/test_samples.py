"""The committed GPU sample run re-renders with the current report code (a slice of it, to stay quick)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memharness.report import build
from memharness.report.series import cell_series
from memharness.results.run import Run

MiB = 1 << 20

SAMPLE = Path(__file__).resolve().parent.parent / "results" / "samples" / "genomics-gpu-matrix"
SLICE = 2  # cells re-rendered: the 100k ColBERT cell and the first RAGatouille one


def _rows(summary: dict, cells: list[dict]) -> dict[tuple[str, int, str], float]:
    keep = {(c["pipeline"], int(c["size"])) for c in cells}
    return {(r["pipeline"], r["size"], r["target"]): r["metrics"]["peak"]["median"]
            for r in summary["rows"] if (r["pipeline"], r["size"]) in keep and "peak" in r["metrics"]}


def test_committed_gpu_sample_rerenders(tmp_path: Path) -> None:
    manifest = json.loads((SAMPLE / "manifest.json").read_text(encoding="utf-8"))
    cells = [c for c in manifest["cells"] if c["status"] == "done"][:SLICE]
    assert len(cells) == SLICE and {c["kind"] for c in cells} == {"colbert", "ragatouille"}
    run = tmp_path / "run"
    run.mkdir()
    for c in cells:
        shutil.copytree(SAMPLE / c["dir"], run / c["dir"])
        assert not (run / c["dir"] / "work").exists()  # index artifacts stay out of the sample
    shutil.copy(SAMPLE / "scenario.yaml", run / "scenario.yaml")
    (run / "manifest.json").write_text(json.dumps({**manifest, "cells": cells}), encoding="utf-8")

    info = Run.open(run)
    for cell in info.cells:  # the timeline is committed xz-compressed and read back transparently
        assert (cell.dir / "timeline.bin.xz").exists() and not (cell.dir / "timeline.bin").exists()
        assert cell_series(cell).samples > 1000
        assert cell.fingerprint["chosen"]["kmeans"].startswith("fastkmeans")

    index = build(run, tmp_path / "report")
    assert index.exists() and (tmp_path / "report" / "tables" / "process_tree.md").exists()
    fresh = json.loads((tmp_path / "report" / "summary.json").read_text(encoding="utf-8"))
    committed = json.loads((SAMPLE / "report" / "summary.json").read_text(encoding="utf-8"))
    got, want = _rows(fresh, cells), _rows(committed, cells)
    assert ("colbert", 100_000, "(process tree)") in got
    assert got == pytest.approx(want, rel=0)  # the same peaks, to the byte, from the raw records


H100 = SAMPLE.parent / "h100-2026-12-07"


def _first_sentence(run_dir: Path, out: Path, **budgets) -> tuple[str, dict]:
    build(run_dir, out, budgets=budgets or None)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary["answer"]["sizes"][0]["sentence"], summary


def test_the_ragatouille_50k_sample_leads_with_its_gpu_peak_inside_pytorch_kmeans(tmp_path: Path) -> None:
    """The seed study's question, answered first: torch allocated ~49,955 MiB inside compute_pytorch_kmeans."""
    sentence, summary = _first_sentence(H100 / "ragatouille-nofaiss-50k", tmp_path / "r")
    assert sentence.startswith("At 50k documents ragatouille-nofaiss peaks at 49,955.5 MiB of GPU memory allocated "
                               "by torch inside compute_pytorch_kmeans (NVML: 51,486.0 MiB used by its processes, "
                               "51,974.8 MiB on the device)"), sentence
    gpu = summary["answer"]["sizes"][0]["pipelines"][0]["gpu"]
    assert gpu["call"] == "ragatouille.models.torch_kmeans.compute_pytorch_kmeans"
    assert gpu["idle"]["call"] == gpu["call"] and gpu["idle"]["idle"] / MiB == pytest.approx(50498.2, abs=0.1)
    tree = next(r for r in summary["rows"] if r["target"] == "(process tree)")
    assert tree["metrics"]["gpu_nvml_peak"]["median"] == gpu["nvml_tree"]  # one figure per fact


def test_merged_50k_samples_say_ragatouille_needs_12_8x_colberts_gpu_memory(tmp_path: Path) -> None:
    from memharness.results.merge import merge

    merged = merge([Run.open(H100 / "colbert-50k-local"), Run.open(H100 / "ragatouille-nofaiss-50k")], tmp_path / "m")
    sentence, _ = _first_sentence(merged, tmp_path / "r")
    assert sentence.startswith("At 50k documents ragatouille-nofaiss needs 12.8x colbert's GPU memory (51,486.0 MiB "
                               "vs 4,028.0 MiB used by the process tree; torch 49,955.5 MiB allocated inside "
                               "compute_pytorch_kmeans); host peaks are within 1.3x"), sentence


def test_colbert_gpu_does_not_grow_from_100k_to_500k_and_is_not_extrapolated(tmp_path: Path) -> None:
    _, summary = _first_sentence(H100 / "colbert-100k-250k-500k", tmp_path / "r", gpu_nvml_peak=80 << 30,
                                 peak=20 << 30)
    gpu = summary["predictions"]["colbert"]["gpu_nvml_peak"]
    assert gpu["flat"] and gpu["budget"]["text"].startswith(
        "does not grow with size between 100k and 500k (3.9–4.0 GiB): not the limit in the measured range")
    for x in gpu["predictions"]:  # the scenario's 1M and 2M: not extrapolated
        assert x["predicted_mib"] is None and "does not grow" in x["note"]
    ram = summary["predictions"]["colbert"]["peak"]
    assert not ram["flat"] and all(x["size"] <= 4 * 500_000 for x in ram["predictions"] if x["predicted_mib"])
    md = (tmp_path / "r" / "tables.md").read_text(encoding="utf-8")
    assert "20.00 GiB: up to" in md and "does not grow with size" in md  # the budget answer is in the report


RENDERED = sorted(p.parent for p in (SAMPLE.parent).rglob("manifest.json") if (p.parent / "cells").is_dir()
                  and (p.parent / "report" / "summary.json").exists())


@pytest.mark.parametrize("sample", RENDERED, ids=[str(p.relative_to(SAMPLE.parent)) for p in RENDERED])
def test_committed_report_is_what_the_current_code_renders(sample: Path, tmp_path: Path) -> None:
    """Every committed sample with raw cells re-renders to the committed summary.json and index.html byte for
    byte: a report change that moves a figure or a word shows here, and the samples are re-rendered with it."""
    run = tmp_path / sample.name
    shutil.copytree(sample, run, ignore=shutil.ignore_patterns("report"))
    build(run)
    for name in ("summary.json", "index.html"):
        fresh, committed = (run / "report" / name).read_bytes(), (sample / "report" / name).read_bytes()
        assert fresh == committed, f"{sample.name}/report/{name} is stale: run `memharness report {sample}`"


# Links in committed samples that point at files deliberately left out, with the reason.
LEFT_OUT = {
    "gpu-snapshot.pickle": "torch's memory snapshot: tens of MiB, and a pickle is not a format to open blindly",
    "findings-cpu-400/explains/q6-ragatouille-compute_pytorch_kmeans.md": "its flame graph was overwritten by a "
    "later explain of the cell before scripts/findings_cpu.sh kept copies of flame graphs",
}


def test_every_relative_link_in_the_committed_samples_and_docs_resolves() -> None:
    import re

    root = SAMPLE.parent.parent.parent
    pages = sorted([*SAMPLE.parent.rglob("*.md"), *(root / "docs").rglob("*.md"), root / "README.md"])
    broken = []
    for page in pages:
        rel = str(page.relative_to(SAMPLE.parent)) if SAMPLE.parent in page.parents else str(page)
        for m in re.finditer(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target) or (page.parent / target).exists():
                continue
            if target in LEFT_OUT or rel in LEFT_OUT:
                continue
            broken.append(f"{rel}: {target}")
    assert len(pages) > 20 and broken == []
